"""Which backends the tests run on, and how to get a fresh, isolated one.

Every adapter test is parametrized over :data:`BACKEND_KINDS` through the ``backend`` fixture
of ``conftest.py``; a new backend adds its kind here, not new tests. Isolation between tests
comes from a fresh namespace per test, never from flushing a server.

Kinds:

* ``memory``, ``sqlite``: the embedded backend, no server.
* ``redis``: plain Redis (Debian's redis-server 7), semantic search through the client mirror.
* ``redis-qe``: Redis with the Query Engine (RediSearch), semantic search in the server.
* ``redis-cluster``: a Redis Cluster of three primaries and three replicas (Debian's
  redis-server 7), reached by a ``redis://`` URL to one node (semcache detects the cluster);
  ``vector_search="auto"`` falls back to the mirror path (no cluster-wide Query Engine).
* ``elasticsearch``: the Elasticsearch-compatible server (or a real cluster).

Servers are started once per session by :class:`ServerPool` (``tests/servers.py``), unless an
environment variable points at one already running:

* ``REDIS_URL``: used for ``redis`` (forced onto the mirror path) and, if that server has the
  Query Engine, for ``redis-qe``.
* ``REDIS_CLUSTER_URL``: an existing cluster for ``redis-cluster`` (``redis://node:port`` or
  ``redis+cluster://host:port,...``).
* ``ELASTICSEARCH_URL`` (``http(s)://user:pass@host:port``): a real cluster for
  ``elasticsearch``.
* ``SEMCACHE_TEST_BACKENDS``: comma-separated kinds to run (default: all).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

from semcache_core import Backend, connect
from semcache_core.testing import fresh_namespace

__all__ = ["BACKEND_KINDS", "ServerPool", "fresh_namespace", "make_backend"]

EMBEDDED_KINDS = ["memory", "sqlite"]
SERVER_KINDS = ["redis", "redis-qe", "redis-cluster", "elasticsearch"]
_ALL_KINDS = [*EMBEDDED_KINDS, *SERVER_KINDS]
_BACKEND_MODULES = {
    "redis": "semcache_core.backends.redis",
    "redis-qe": "semcache_core.backends.redis",
    "redis-cluster": "semcache_core.backends.redis",
    "elasticsearch": "semcache_core.backends.elasticsearch",
}


def _selected_kinds() -> list[str]:
    wanted = os.environ.get("SEMCACHE_TEST_BACKENDS")
    kinds = [k.strip() for k in wanted.split(",")] if wanted else _ALL_KINDS
    unknown = set(kinds) - set(_ALL_KINDS)
    if unknown:
        raise ValueError(f"SEMCACHE_TEST_BACKENDS has unknown kinds {sorted(unknown)}")
    # A backend module not written yet is simply not a kind yet.
    return [
        k
        for k in kinds
        if k not in _BACKEND_MODULES or importlib.util.find_spec(_BACKEND_MODULES[k]) is not None
    ]


BACKEND_KINDS = _selected_kinds()


class ServerPool:
    """Starts each server kind at most once per session and stops them all at the end."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._running: list[Any] = []
        #: The cluster this session started (``None`` with ``REDIS_CLUSTER_URL``).
        self.cluster: Any = None

    def url(self, kind: str) -> str:
        if kind not in self._urls:
            self._urls[kind] = self._start(kind)
        return self._urls[kind]

    def _start(self, kind: str) -> str:
        from tests import servers

        if kind in ("redis", "redis-qe") and os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        if kind == "redis-cluster" and os.environ.get("REDIS_CLUSTER_URL"):
            return os.environ["REDIS_CLUSTER_URL"]
        if kind == "redis-cluster":
            self.cluster = servers.start_redis_cluster()
            self._running.append(self.cluster)
            return str(self.cluster.url)
        if kind == "elasticsearch" and os.environ.get("ELASTICSEARCH_URL"):
            return "elasticsearch+" + os.environ["ELASTICSEARCH_URL"]
        if kind == "redis":
            server = servers.start_redis(query_engine=False)
        elif kind == "redis-qe":
            server = servers.start_redis(query_engine=True)
        elif kind == "elasticsearch":
            server = servers.start_elasticsearch()
        else:
            raise ValueError(f"no server for backend kind {kind!r}")
        self._running.append(server)
        return server.url if kind != "elasticsearch" else "elasticsearch+" + server.url

    def stop_all(self) -> None:
        for server in self._running:
            server.stop()
        self._running.clear()


def make_backend(kind: str, tmp_path: Path, pool: ServerPool) -> Backend:
    if kind == "memory":
        return connect("memory://")
    if kind == "sqlite":
        return connect(f"sqlite:///{tmp_path / 'cache.db'}")
    url = pool.url(kind)
    if kind == "redis":
        # Plain-Redis path even when the server happens to have the Query Engine.
        return connect(url, vector_search="mirror")
    if kind == "redis-qe":
        backend = connect(url, vector_search="auto")
        if getattr(backend, "vector_search", None) != "query-engine":
            pytest.skip(f"the Redis server at {url} has no Query Engine")
        return backend
    if kind == "redis-cluster":
        return connect(url, vector_search="auto")
    return connect(url)
