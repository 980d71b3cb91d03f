"""What every section needs: the run's options, its own servers, backends and raw clients.

Servers are started on first use with ``tests/servers.py`` (each kind at most once) and all
stopped by :meth:`BenchContext.close`. Anything that cannot be had here (a backend module
not written yet, a server that does not start, a package not installed) raises
:class:`~benchmarks.harness.Skip` with the reason, and the section records that row as
skipped instead of failing the run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import Skip
from semcache_core import Backend, connect

EMBEDDED = "embedded"
REDIS = "redis"
REDIS_QE = "redis-qe"
REDIS_CLUSTER = "redis-cluster"
ELASTICSEARCH = "elasticsearch"
ALL_KINDS = (EMBEDDED, REDIS, REDIS_QE, REDIS_CLUSTER, ELASTICSEARCH)
SERVER_KINDS = (REDIS, REDIS_QE, REDIS_CLUSTER, ELASTICSEARCH)

_BACKEND_MODULES = {
    REDIS: "semcache_core.backends.redis",
    REDIS_QE: "semcache_core.backends.redis",
    REDIS_CLUSTER: "semcache_core.backends.redis",
    ELASTICSEARCH: "semcache_core.backends.elasticsearch",
}


@dataclass
class Sizes:
    """Iteration counts and data sizes of one run (``--quick`` shrinks them)."""

    exact_iterations: int
    bytestore_keys: int
    bytestore_iterations: int
    semantic_sizes: tuple[int, ...]
    semantic_queries: int
    embedding_texts: int
    embedding_reps: int
    memory_entries: int
    calls_prompts: int
    budget_s: float  # per contender and measurement, seconds of timed calls at most
    load_budget_s: float  # per backend and size, seconds of loading before it is capped


FULL = Sizes(
    exact_iterations=2000,
    bytestore_keys=1000,
    bytestore_iterations=30,
    semantic_sizes=(1_000, 10_000, 100_000),
    semantic_queries=200,
    embedding_texts=10_000,
    embedding_reps=3,
    memory_entries=2000,
    calls_prompts=50,
    budget_s=5.0,
    load_budget_s=150.0,
)
QUICK = Sizes(
    exact_iterations=300,
    bytestore_keys=1000,
    bytestore_iterations=10,
    semantic_sizes=(1_000,),
    semantic_queries=60,
    embedding_texts=1_000,
    embedding_reps=1,
    memory_entries=300,
    calls_prompts=10,
    budget_s=1.0,
    load_budget_s=20.0,
)


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_module(name: str, install: str) -> None:
    if not module_available(name):
        raise Skip(f"`{name}` is not installed (pip install {install})")


@dataclass
class BenchContext:
    quick: bool
    kinds: frozenset[str]
    sizes: Sizes
    tmpdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="semcache-bench-")))
    _servers: dict[str, Any] = field(default_factory=dict)
    _server_errors: dict[str, str] = field(default_factory=dict)
    _to_close: list[Callable[[], object]] = field(default_factory=list)

    @classmethod
    def create(cls, *, quick: bool, kinds: frozenset[str]) -> BenchContext:
        return cls(quick=quick, kinds=kinds, sizes=QUICK if quick else FULL)

    # -- availability ----------------------------------------------------------------------
    def require_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise Skip(f"{kind} not selected (--only)")
        module = _BACKEND_MODULES.get(kind)
        if module is not None and not module_available(module):
            raise Skip(f"`{module}` does not exist yet")

    def server_url(self, kind: str) -> str:
        """URL of this run's server of ``kind`` (``redis://...`` or ``http://...``)."""
        if kind not in SERVER_KINDS:
            raise ValueError(kind)
        if kind not in self.kinds:
            raise Skip(f"{kind} not selected (--only)")
        if kind in self._server_errors:
            raise Skip(self._server_errors[kind])
        if kind not in self._servers:
            try:
                from tests import servers
            except ImportError as exc:
                self._server_errors[kind] = f"tests/servers.py not importable: {exc}"
                raise Skip(self._server_errors[kind]) from exc
            try:
                if kind == ELASTICSEARCH:
                    server = servers.start_elasticsearch()
                elif kind == REDIS_CLUSTER:
                    server = servers.start_redis_cluster()
                else:
                    server = servers.start_redis(query_engine=kind == REDIS_QE)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self._server_errors[kind] = f"{kind} server did not start: {first[:200]}"
                raise Skip(self._server_errors[kind]) from exc
            self._servers[kind] = server
        return str(self._servers[kind].url)

    def server_version(self, kind: str) -> str | None:
        if kind not in self._servers:
            return None
        try:
            if kind == ELASTICSEARCH:
                client = self.es_client()
                return str(client.info()["version"]["number"])
            client = self.redis_client(kind)
            if kind == REDIS_CLUSTER:
                client = client.get_default_node().redis_connection
            info = client.info("server")
            return str(info.get("redis_version")) + (
                " cluster, 3 + 3" if kind == REDIS_CLUSTER else ""
            )
        except Exception:
            return None

    # -- semcache backends ---------------------------------------------------------------------
    def semcache_backend(self, kind: str, **options: Any) -> Backend:
        """A fresh semcache backend of ``kind`` (closed by :meth:`close`); ``options`` go to
        ``connect`` (Elasticsearch only: the benchmark never changes Redis defaults)."""
        self.require_kind(kind)
        if kind == EMBEDDED:
            backend = connect("memory://")
        elif kind == ELASTICSEARCH:
            backend = self._connect("elasticsearch+" + self.server_url(kind), **options)
        elif kind == REDIS:
            backend = self._connect(self.server_url(kind), vector_search="mirror")
        elif kind == REDIS_CLUSTER:  # no cluster-wide Query Engine: auto picks the mirror
            backend = self._connect(self.server_url(kind), vector_search="auto")
        else:
            backend = self._connect(self.server_url(kind), vector_search="auto")
            if getattr(backend, "vector_search", None) != "query-engine":
                backend.close()
                raise Skip("the redis-qe server's Query Engine was not detected by the backend")
        self._to_close.append(backend.close)
        return backend

    def sqlite_backend(self, name: str) -> Backend:
        self.require_kind(EMBEDDED)
        backend = connect(f"sqlite:///{self.tmpdir / name}")
        self._to_close.append(backend.close)
        return backend

    @staticmethod
    def _connect(url: str, **options: Any) -> Backend:
        try:
            return connect(url, **options)
        except Skip:
            raise
        except Exception as exc:
            raise Skip(f"semcache could not connect: {type(exc).__name__}: {exc}") from exc

    # -- raw clients (anchors and floors) ------------------------------------------------------
    def redis_client(self, kind: str = REDIS) -> Any:
        """A redis-py client of ``kind``'s server (a ``RedisCluster`` for the cluster)."""
        import redis
        import redis.cluster

        if kind == REDIS_CLUSTER:
            client = redis.cluster.RedisCluster.from_url(self.server_url(kind))
            self._to_close.append(client.close)
            return client
        client = redis.Redis.from_url(self.server_url(kind))
        self._to_close.append(client.close)
        return client

    def es_client(self) -> Any:
        from elasticsearch import Elasticsearch

        client = Elasticsearch(self.server_url(ELASTICSEARCH), request_timeout=60)
        self._to_close.append(client.close)
        return client

    def wait_idle(
        self, *, timeout: float = 60.0, window: float = 0.5, max_cpu: float = 0.05
    ) -> float:
        """Wait until this run's servers are idle (background indexing, merges, a bulk request
        still being processed after a client timeout), so they do not steal the CPU of the
        next measurement. Returns the seconds waited."""
        groups = {
            int(node.pid)
            for server in self._servers.values()
            for node in getattr(server, "nodes", [server])
        }
        if not groups:
            return 0.0
        started = time.monotonic()
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        while time.monotonic() - started < timeout:
            before = _group_cpu_ticks(groups)
            time.sleep(window)
            if before is None:
                break
            after = _group_cpu_ticks(groups) or before
            if (after - before) / ticks / window < max_cpu:
                break
        return time.monotonic() - started

    def namespace(self, prefix: str) -> str:
        return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"

    def close(self) -> None:
        for close in reversed(self._to_close):
            with contextlib.suppress(Exception):
                close()
        self._to_close.clear()
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                server.stop()
        self._servers.clear()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _group_cpu_ticks(groups: set[int]) -> int | None:
    """User + system CPU ticks of every process in the process groups ``groups`` (Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is the state (field 3 of stat); pgrp is field 5, utime/stime 14/15.
        if int(fields[2]) in groups:
            total += int(fields[11]) + int(fields[12])
    return total


# -- round trips and server commands --------------------------------------------------------------


@dataclass
class RoundTrips:
    redis: int = 0
    http: int = 0


_patch_lock = threading.Lock()


@contextlib.contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    """Count client round trips while the block runs: redis-py ``send_packed_command`` calls
    (a pipeline is one) and Elasticsearch transport requests. Client-side, any client."""
    from redis.connection import AbstractConnection

    counts = RoundTrips()
    original_send = AbstractConnection.send_packed_command

    def send(self: Any, command: Any, check_health: bool = True) -> None:
        counts.redis += 1
        original_send(self, command, check_health)

    es_transport: Any = None
    original_request: Any = None
    if module_available("elastic_transport"):
        es_transport = importlib.import_module("elastic_transport").Transport
        original_request = es_transport.perform_request

        def request(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts.http += 1
            return original_request(self, *args, **kwargs)

    with _patch_lock:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        if es_transport is not None:
            es_transport.perform_request = request
        try:
            yield counts
        finally:
            AbstractConnection.send_packed_command = original_send  # type: ignore[method-assign]
            if es_transport is not None:
                es_transport.perform_request = original_request


def command_stats(client: Any) -> Counter[str]:
    """Calls per command from ``INFO commandstats`` (the INFO calls themselves excluded)."""
    stats = client.info("commandstats")
    calls: Counter[str] = Counter()
    for name, values in stats.items():
        command = str(name).removeprefix("cmdstat_")
        if command != "info" and isinstance(values, dict):
            calls[command] = int(values.get("calls", 0))
    return calls


def command_delta(client: Any, action: Callable[[], object]) -> Counter[str]:
    """Server commands ``action`` caused, from ``INFO commandstats`` before and after."""
    before = command_stats(client)
    action()
    after = command_stats(client)
    after.subtract(before)
    return Counter({k: v for k, v in after.items() if v})


def fmt_commands(delta: Counter[str], per: int = 1) -> str:
    """``"mget×1"`` or ``"set×1000, exec×1, multi×1"`` (per ``per`` repetitions)."""
    if not delta:
        return "–"
    parts = []
    for name, calls in sorted(delta.items(), key=lambda kv: (-kv[1], kv[0])):
        value = calls / per
        parts.append(f"{name}×{value:g}")
    return ", ".join(parts)
