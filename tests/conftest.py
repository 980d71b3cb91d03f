from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from semcache_core import Backend
from tests.backends import BACKEND_KINDS, fresh_namespace, make_backend


@pytest.fixture(scope="session")
def server_urls() -> dict[str, str]:
    """URLs of the servers started for this session (kind -> URL)."""
    return {}


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(backend_kind: str, tmp_path: Path, server_urls: dict[str, str]) -> Iterator[Backend]:
    instance = make_backend(backend_kind, tmp_path, server_urls)
    yield instance
    instance.close()


@pytest.fixture
def namespace() -> str:
    return fresh_namespace()
