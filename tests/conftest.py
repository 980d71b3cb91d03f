from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from semcache_core import Backend
from semcache_core.guard import TrapGuard
from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace, make_backend


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def backend(
    backend_kind: str, tmp_path: Path, server_pool: ServerPool
) -> AsyncIterator[Backend]:
    # Async fixture: network backends bind their async clients to the test's event loop,
    # and aclose() releases both the sync and the async connections.
    instance = make_backend(backend_kind, tmp_path, server_pool)
    yield instance
    await instance.aclose()


@pytest.fixture
def namespace() -> str:
    return fresh_namespace()


@pytest.fixture(scope="session")
def guard() -> TrapGuard:
    """One trap guard for the guard tests (its per-prompt caches are shared, as in a process)."""
    return TrapGuard()
