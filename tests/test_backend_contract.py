"""The backend contract (:mod:`semcache_core.testing.contract`) on every backend kind.

The ``backend`` fixture of ``conftest.py`` is parametrized over :data:`tests.backends.
BACKEND_KINDS`; the suite itself ships in the package so third-party backends run it too.
"""

from __future__ import annotations

from semcache_core.testing.contract import BackendContract


class TestBackendContract(BackendContract):
    pass
