"""Fixtures of the Gemini context-cache tests: the fake API, clients, and registry backends.

Import them into a test module (``from tests.gemini_fixtures import *``-style, by name).
Registries run on the kinds the issue names: SQLite (several processes share a file), plain
Redis and Elasticsearch, each selected by ``SEMCACHE_TEST_BACKENDS`` like every other test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace
from tests.fake_gemini import FakeClock, FakeGemini, make_client

REGISTRY_KINDS = [kind for kind in ("sqlite", "redis", "elasticsearch") if kind in BACKEND_KINDS]


def backend_url(kind: str, tmp_path: Path, pool: ServerPool) -> str:
    """A URL every process can open (the registry tests also run in child processes)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return pool.url(kind)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeGemini]:
    server = FakeGemini(clock=clock).start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeGemini) -> Any:
    return make_client(fake.url)


@pytest.fixture(params=REGISTRY_KINDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path, server_pool: ServerPool) -> str:
    return backend_url(str(request.param), tmp_path, server_pool)


@pytest.fixture
def context_namespace() -> str:
    return fresh_namespace("ctx")
