"""The backend contract (:mod:`semcache_core.testing.contract`) on every backend kind.

The ``backend`` fixture of ``conftest.py`` is parametrized over :data:`tests.backends.
BACKEND_KINDS`; the suite itself ships in the package so third-party backends run it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from semcache_core import Backend, connect
from semcache_core.testing.contract import BackendContract


class TestBackendContract(BackendContract):
    pass


class TestCountingEmbeddedBackends(BackendContract):
    """The embedded backends counting hits (``track_hits``): the whole contract still holds,
    and the hit test runs its counting half."""

    @pytest.fixture(params=["memory", "sqlite"])
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        if request.param == "memory":
            instance = connect("memory://", track_hits=True)
        else:
            instance = connect(f"sqlite:///{tmp_path / 'hits.db'}", track_hits=True)
        assert instance.ops.counts_hits
        yield instance
        instance.close()
