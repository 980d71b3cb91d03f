"""The Redis backend: plain Redis (OSS 6+, Valkey, ElastiCache) or Redis with the Query Engine.

Connect with a URL (``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
``unix:///path/to/redis.sock?db=0``; redis-py parses it; ``redis+sentinel://`` and
``redis+cluster://`` below) or with a redis-py client. Clients
the backend creates get ``socket_timeout``/``socket_connect_timeout`` of 1 s, one retry
without backoff of a dropped connection (never of a timed-out command: a hung server costs one
timeout per call, not two), and a blocking pool of ``max_connections=100`` where a caller waits up to
``pool_timeout=1`` s for a free connection (all configurable; ``redis_options`` passes any
other redis-py setting), so a dead server costs about a second and the engine turns the
failure into a miss. Every redis-py error (connection refused, timeout, an error reply) is
raised as :class:`~semcache_core.errors.BackendError`. Async clients are bound to the event
loop that first used them; a new loop (``asyncio.run`` called again) gets a new client.

**Clients passed in.** ``RedisBackend.from_client(client, async_client=None, ...)`` accepts a
``redis.Redis`` and/or a ``redis.asyncio.Redis`` (or either ``RedisCluster``, or a client made
by ``Sentinel.master_for``). When only one kind is given, the backend builds the other one
(on first use) from the given client's connection settings: host/port or unix socket, db,
credentials (or credential provider), TLS settings, timeouts, protocol, response decoding; for
a cluster its startup nodes; for a Sentinel client its sentinels, their settings and the
service name (so both sides follow a failover). What cannot be copied (a custom connection
class, a Sentinel replica client) is refused at construction with a
:class:`~semcache_core.errors.SemcacheInputError` that says to pass both clients. Clients the
user passed are never closed; clients the backend built are closed by :meth:`close` (sync)
and :meth:`aclose` (both).

**Redis Sentinel** (:mod:`~semcache_core.backends.redis.sentinel`):
``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]``
(``rediss+sentinel`` for TLS; ``?sentinel_password=`` for the sentinels' own password). Both
clients are redis-py's ``Sentinel(...).master_for(service_name)``: every new connection asks
the sentinels for the master, so a failover is followed.

**Redis Cluster** (:mod:`~semcache_core.backends.redis.cluster`): ``redis+cluster://host:port
[,host:port...]``, a ``redis://`` URL to any node (asked ``INFO cluster`` before the first
client is built), or a ``RedisCluster`` / ``redis.asyncio.cluster.RedisCluster`` client. Keys
follow :class:`~semcache_core.backends.redis.keys.KeyLayout`; a round is one pipeline per
primary; scans and ``clear`` visit every primary; :attr:`RedisBackend.topology` says which.

**Layout and search.** Keys: :mod:`~semcache_core.backends.redis.keys`. ``clear(ns)`` drops
the index and UNLINKs ``<ns>:*`` in SCAN pages; other namespaces, even ``<ns>x``, are untouched
(the pattern includes the colon). No FLUSHDB, ever. Semantic search is one
:class:`~semcache_core.backends.redis.strategy.VectorStrategy`, chosen at connect time
(``vector_search="auto"``, the default, probes ``MODULE LIST`` and ``FT._LIST``;
``"query-engine"`` requires it; ``"mirror"`` never uses it) or, if the server is unreachable
then, on the first vector operation; the resolved mode is :attr:`RedisBackend.vector_search`:

* ``"query-engine"``: :mod:`~semcache_core.backends.redis.query_engine`;
* ``"mirror"`` (plain Redis): :mod:`~semcache_core.backends.redis.log_mirror`. Each client
  holds at most ``max_mirror_rows`` rows (default 200,000; about ``rows * (4 * dim + 100)``
  bytes): partitions beyond the budget are dropped least recently searched first (and rebuilt
  when searched again); a partition whose log is longer than the budget is mirrored from its
  newest ``max_mirror_rows / 2`` entries (older entries cannot be semantic hits on that
  client; a miss is always safe). Redis holds each vector twice (hash and log). All clients of
  one namespace should use the same mode (``"auto"`` does that by itself); a Query Engine
  client also indexes what mirror clients wrote, not the other way round.

**Operations and transport.** Every operation is a flow in
:mod:`~semcache_core.backends.redis.ops` that yields the commands of each round trip
(:class:`~semcache_core.backends.redis.commands.Round`) and receives their replies; this
class is their transport: :meth:`RedisBackend.execute` sends a round as one pipeline on the
sync client, :meth:`RedisBackend.aexecute` on the async one. A failed round is thrown into the
flow, so an operation can handle a failure itself (a failed log compaction does not fail the
write that triggered it). The round trips are explicit: one ``MGET`` for a batch get; one
pipeline for a batch set (``SET ... PX``), delete, expire or counter update; one for a mirror
catch-up plus search, and one more to verify candidates.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.exceptions import ClusterError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from semcache_core.backends.base import Backend
from semcache_core.backends.loops import Guard, close_at_loop_end, close_in_loop
from semcache_core.backends.redis import cluster, sentinel
from semcache_core.backends.redis.commands import Primaries, Round, Topology, is_out_of_memory
from semcache_core.backends.redis.keys import CLUSTER, STANDALONE
from semcache_core.backends.redis.ops import RedisOperations, VectorSearchMode
from semcache_core.errors import BackendError, SemcacheInputError, StorageFullError
from semcache_core.flow import Flow, Step, run

__all__ = ["RedisBackend"]

# Binary values must stay bytes even on a client built with decode_responses=True.
_RAW: dict[str, Any] = {NEVER_DECODE: []}

# Connection settings copied from a user's client when the backend builds the other kind: the
# shared ones, plus what only a standalone connection has.
_COPIED_SETTINGS = ("db", *cluster.CONNECTION_SETTINGS, "ssl_ca_path")

logger = logging.getLogger("semcache")


class RedisBackend(Backend):
    """Values, vectors and counters in Redis (see the module docstring)."""

    schemes: ClassVar[tuple[str, ...]] = (
        "redis",
        "rediss",
        "unix",
        *cluster.CLUSTER_SCHEMES,
        *sentinel.SENTINEL_SCHEMES,
    )

    def __init__(
        self,
        *,
        url: str | None = None,
        client: redis.Redis | cluster.ClusterClient | None = None,
        async_client: redis.asyncio.Redis | cluster.AsyncClusterClient | None = None,
        vector_search: VectorSearchMode = "auto",
        recreate_index: bool = False,
        max_mirror_rows: int = 200_000,
        socket_timeout: float | None = 1.0,
        socket_connect_timeout: float | None = 1.0,
        retries: int = 1,
        max_connections: int = 100,
        pool_timeout: float | None = 1.0,
        redis_options: Mapping[str, Any] | None = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise SemcacheInputError("RedisBackend needs a URL or a redis-py client")
        if max_mirror_rows < 1:
            raise SemcacheInputError(f"max_mirror_rows must be >= 1, got {max_mirror_rows!r}")
        if retries < 0:
            raise SemcacheInputError(f"retries must be >= 0, got {retries!r}")
        scheme = url.split("://", 1)[0].lower() if url is not None else ""
        self._url = url
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **dict(redis_options or {}),
        }
        self._retries = retries
        self._pool_limits = {"max_connections": max_connections, "timeout": pool_timeout}
        self._max_connections = max_connections
        self._client: Any = client
        self._async_client: Any = async_client
        #: The master and its sentinels, for a ``redis+sentinel://`` URL or a client made by
        #: ``Sentinel.master_for``: every client the backend builds asks them for the master.
        self._sentinel: sentinel.SentinelTarget | None = None
        #: Constructor settings of the side (sync or asyncio) the backend builds from the one
        #: client it was given; worked out here, so a client it cannot copy fails now.
        self._derived_settings: dict[str, Any] = {}
        #: Whether the server is a Redis Cluster; ``None`` until a ``redis://`` node answered.
        self._cluster: bool | None = None
        if client is not None or async_client is not None:
            self._cluster = any(cluster.is_cluster_client(c) for c in (client, async_client))
            if (client is None) != (async_client is None):
                self._plan_missing_side(client if client is not None else async_client)
        elif url is not None:
            if scheme in sentinel.SENTINEL_SCHEMES:
                self._sentinel = sentinel.parse_sentinel_url(url, self._options)
            else:
                _check_db(url)
            self._cluster = True if scheme in cluster.CLUSTER_SCHEMES else None
            if scheme == "unix" or self._sentinel is not None:
                self._cluster = False
        self._owns_client = False
        self._owns_async_client = False
        # Counts close() calls: a background read started before one stops at its next round
        # instead of opening (and leaking) a new client.
        self._closes = 0
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._async_guard: Guard | None = None
        self.ops: RedisOperations = RedisOperations(
            vector_search=vector_search,
            recreate_index=recreate_index,
            max_mirror_rows=max_mirror_rows,
            layout=None if self._cluster is None else CLUSTER if self._cluster else STANDALONE,
        )
        self._clients_lock = threading.Lock()
        #: The sync client and the options its one-command rounds are sent with.
        self._command_options: tuple[Any, dict[str, Any]] | None = None
        self.ops.background = self._run_in_background
        if url is not None:
            try:
                self._sync_client()
            except SemcacheInputError:
                raise
            except (ValueError, TypeError, IndexError) as exc:
                raise SemcacheInputError(f"malformed Redis URL {_redact(url)!r}: {exc}") from exc
            except (RedisError, RedisClusterException, OSError):
                pass  # unreachable now: the first call asks again
        # Resolve the search mode now when a sync client is at hand; an unreachable server
        # is not an error here (a cache must not stop the application from starting).
        if self._client is not None and self.ops.strategy is None:
            with contextlib.suppress(BackendError):
                run(self.ops.resolve_strategy(), self)

    def _plan_missing_side(self, given: Any) -> None:
        """Work out how to build the other kind of client from the one given (at construction,
        so a client whose settings cannot be copied is refused now, not on first use)."""
        if self._cluster:
            return  # cluster.sync_from / async_from copy the startup nodes and settings
        if sentinel.is_sentinel_client(given):
            self._sentinel = sentinel.target_of(given)
            return
        target = redis.Redis if isinstance(given, redis.asyncio.Redis) else redis.asyncio.Redis
        self._derived_settings = _settings_of(given, target)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        return cls(url=url, **options)

    @classmethod
    def from_client(cls, client: Any, **options: Any) -> RedisBackend:
        """Wrap a ``redis.Redis``, ``redis.asyncio.Redis`` or either ``RedisCluster`` (pass
        the other side as ``client=`` / ``async_client=`` to give both); semcache never closes
        them."""
        if isinstance(client, (redis.asyncio.Redis, cluster.AsyncClusterClient)):
            return cls(async_client=client, **options)
        if isinstance(client, (redis.Redis, cluster.ClusterClient)):
            return cls(client=client, **options)
        raise TypeError(
            f"expected a redis.Redis, redis.asyncio.Redis or RedisCluster client, got "
            f"{type(client).__module__}.{type(client).__name__}"
        )

    @property
    def vector_search(self) -> str:
        """``"query-engine"`` or ``"mirror"``; ``"auto"`` until the server has answered."""
        return self.ops.mode or self.ops.requested_mode

    @property
    def topology(self) -> str:
        """``"cluster"``, ``"standalone"``, ``"sentinel"`` (a standalone master found through
        sentinels), or ``"unknown"`` until a ``redis://`` node answered."""
        if self._sentinel is not None:
            return "sentinel"
        return {True: "cluster", False: "standalone", None: "unknown"}[self._cluster]

    def describe(self) -> dict[str, str]:
        return {"vector_search": self.vector_search, "redis_topology": self.topology}

    def _retry(self, *, sync: bool) -> Any:
        # Retry a dropped connection (a restarted server, an idle connection closed by a
        # proxy), never a timeout: redis-py's default also retries a timed-out command, so a
        # hung server cost two socket timeouts per call instead of one.
        if sync:
            return Retry(NoBackoff(), self._retries, supported_errors=(RedisConnectionError,))
        return AsyncRetry(NoBackoff(), self._retries, supported_errors=(RedisConnectionError,))

    def _sync_client(self) -> Any:
        if self._client is None:
            with self._clients_lock:
                if self._client is None and self._cluster is None:
                    assert self._url is not None
                    self._cluster = self._probe_cluster(self._url)
                    self.ops.layout = CLUSTER if self._cluster else STANDALONE
                if self._client is None:
                    self._client = self._build_client(sync=True)
                    self._owns_client = True
        return self._client

    def _build_client(self, *, sync: bool) -> Any:
        """A new sync or asyncio client: from the URL, else from the other side's client."""
        retry = self._retry(sync=sync)
        other = self._async_client if sync else self._client
        if self._sentinel is not None:
            build = sentinel.sync_master if sync else sentinel.async_master
            return build(self._sentinel, retry=retry, max_connections=self._max_connections)
        if self._cluster:
            if self._url is not None:
                build_cluster = cluster.sync_client if sync else cluster.async_client
                return build_cluster(
                    self._url, retry=retry, options=self._options, pool_limits=self._pool_limits
                )
            return (
                cluster.sync_from(other, retry=retry)
                if sync
                else cluster.async_from(other, retry=retry)
            )
        client_class: Any = redis.Redis if sync else redis.asyncio.Redis
        if self._url is not None:
            template = client_class.from_url(self._url, retry=retry, **self._options)
        else:
            assert other is not None
            template = client_class(retry=retry, **self._derived_settings)
        pool_class = redis.BlockingConnectionPool if sync else redis.asyncio.BlockingConnectionPool
        return client_class(connection_pool=_blocking_pool(template, pool_class, self._pool_limits))

    def _probe_cluster(self, url: str) -> bool:
        """Ask the node of a ``redis://`` URL whether it is part of a Redis Cluster (a server
        that refuses ``INFO``, e.g. by ACL, is taken as standalone)."""
        probe = redis.Redis.from_url(url, retry=self._retry(sync=True), **self._options)
        try:
            return cluster.is_cluster_info(probe.info("cluster"))
        except ResponseError:
            return False
        finally:
            probe.close()

    async def _aprobe_cluster(self, url: str) -> bool:
        probe = redis.asyncio.Redis.from_url(url, retry=self._retry(sync=False), **self._options)
        try:
            return cluster.is_cluster_info(await probe.info("cluster"))
        except ResponseError:
            return False
        finally:
            await probe.aclose()

    async def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._owns_async_client and self._async_loop is not loop:
            # asyncio connections belong to the loop that opened them: a client built in an
            # earlier loop (asyncio.run called again) is unusable there; it is closed in its
            # own loop (when that loop ends: see semcache_core.backends.loops).
            self._async_client = None
            self._owns_async_client = False
            self._async_guard = None
        if self._async_client is None and self._cluster is None:
            assert self._url is not None
            self._cluster = await self._aprobe_cluster(self._url)
            self.ops.layout = CLUSTER if self._cluster else STANDALONE
        if self._async_client is None:
            self._async_loop = loop
            self._async_client = self._build_client(sync=False)
            self._owns_async_client = True
            self._async_guard = await close_at_loop_end(partial(_close_async, self._async_client))
        return self._async_client

    # -- the transport ---------------------------------------------------------------------------
    def execute(self, step: Step) -> Any:
        try:
            if type(step) is Round and len(step.commands) == 1 and self._cluster is False:
                # One command on a standalone server (an exact lookup's GET): what the general
                # path below does for it, without its intermediate calls.
                client = self._client if self._client is not None else self._sync_client()
                known = self._command_options
                options = known[1] if known is not None and known[0] is client else None
                if options is None:
                    options = self._options_for(client)
                return [client.execute_command(*step.commands[0], **options)]
            if isinstance(step, Topology):
                self._sync_client()
                return self._cluster
            if isinstance(step, Primaries):
                return cluster.primaries(self._sync_client())
            round_ = _round(step)
            client = self._sync_client()
            if self._cluster:
                return round_.replies(cluster.send(client, round_, _RAW))
            return round_.replies(_request(client, round_)())
        except (RedisError, RedisClusterException, OSError) as exc:
            return _settle(step, exc)

    def _options_for(self, client: Any) -> dict[str, Any]:
        """redis-py's ``NEVER_DECODE`` option where ``client`` decodes replies
        (``decode_responses=True``), else none: the option costs ~1 µs on every command."""
        known = self._command_options
        if known is not None and known[0] is client:
            return known[1]
        try:
            decodes = bool(client.get_encoder().decode_responses)
        except Exception:  # not a client that tells: keep the option
            decodes = True
        options = _RAW if decodes else {}
        self._command_options = (client, options)
        return options

    async def aexecute(self, step: Step) -> Any:
        try:
            if isinstance(step, Topology):
                await self._async()
                return self._cluster
            if isinstance(step, Primaries):
                return await cluster.asyncio_primaries(await self._async())
            round_ = _round(step)
            client = await self._async()
            if self._cluster:
                return round_.replies(await cluster.asend(client, round_, _RAW))
            return round_.replies(await _request(client, round_)())
        except (RedisError, RedisClusterException, OSError, asyncio.TimeoutError) as exc:
            return _settle(step, exc)

    def _run_in_background(self, flow: Flow[object]) -> None:
        """Run ``flow`` in a daemon thread with the sync client (reading a mirror's vectors
        while lookups go on). Its rounds fail like any other: the flow handles them."""

        backend, closes = self, self._closes

        class UntilClosed:
            def execute(self, step: Step) -> Any:
                if backend._closes != closes:
                    raise BackendError("the backend was closed during a background read")
                return backend.execute(step)

            async def aexecute(self, step: Step) -> Any:  # the flow runs synchronously
                return self.execute(step)

        def work() -> None:
            try:
                run(flow, UntilClosed())
            except Exception:  # a cache never takes the application down
                logger.debug("semcache: a background read failed", exc_info=True)

        threading.Thread(target=work, name="semcache-mirror-load", daemon=True).start()

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync client if the backend created it. Async code should call
        :meth:`aclose`, which also closes the async client the backend created."""
        self._closes += 1
        if self._owns_client and self._client is not None:
            self._client.close()
            if not self._cluster:
                self._client.connection_pool.disconnect()
            self._client = None
            self._owns_client = False
        self.ops.forget()

    async def aclose(self) -> None:
        """Close both clients the backend created, the async one in its own event loop (from
        any loop: ``asyncio.run`` called twice leaves the first client in the first loop)."""
        guard, loop = self._async_guard, self._async_loop
        if self._owns_async_client:
            self._async_client = None
            self._owns_async_client = False
            self._async_guard = None
        if guard is not None and loop is not None:
            await close_in_loop(loop, guard)
        self.close()

    def __repr__(self) -> str:
        where = _redact(self._url) if self._url else "client"
        if self._sentinel is not None:
            where = self._sentinel.describe()
        return (
            f"RedisBackend({where!r}, vector_search={self.vector_search!r}, "
            f"topology={self.topology!r})"
        )


async def _close_async(client: Any) -> None:
    await client.aclose()
    pool = getattr(client, "connection_pool", None)  # a cluster client has one per node
    if pool is not None:
        await pool.disconnect()


def _request(client: Any, round_: Round) -> Callable[[], Any]:
    """What sends ``round_`` on ``client`` (sync or asyncio): a single command directly (a
    little cheaper than a pipeline of one), else a pipeline (``transaction=False``)."""
    if len(round_.commands) == 1:
        return partial(client.execute_command, *round_.commands[0], **_RAW)
    pipe = client.pipeline(transaction=False)
    for command in round_.commands:
        pipe.execute_command(*command, **_RAW)
    return partial(pipe.execute, raise_on_error=not round_.tolerate)


def _settle(step: Step, exc: BaseException) -> list[Any]:
    """A failed command's error as its reply when the round tolerates it, else BackendError.

    A cluster that is down or reconfiguring (``CLUSTERDOWN``, an uncovered slot) is a
    failure of the backend, never a reply, even in a tolerant round.
    """
    if not isinstance(step, Round):
        detail = str(exc) or type(exc).__name__
        raise BackendError(f"Redis did not answer {type(step).__name__}: {detail}") from exc
    if step.tolerate and isinstance(exc, ResponseError) and not isinstance(exc, ClusterError):
        return [exc]
    raise _backend_error(step, exc) from exc


def _round(step: Step) -> Round:
    if not isinstance(step, Round):
        raise TypeError(f"the Redis backend cannot execute {step!r}")
    return step


def _backend_error(round_: Round, exc: BaseException) -> BackendError:
    names = sorted({str(command[0]) for command in round_.commands})
    detail = str(exc) or type(exc).__name__
    if is_out_of_memory(exc):
        return StorageFullError(f"Redis {'/'.join(names)} refused, it is full: {detail}")
    return BackendError(f"Redis {'/'.join(names)} failed: {detail}")


def _check_db(url: str) -> None:
    """redis-py reads ``redis://host/notadb`` as database 0: refuse a path that is no number."""
    parts = urlsplit(url)
    path = unquote(parts.path).strip("/") if parts.scheme in ("redis", "rediss") else ""
    dbs = [path] if path else []
    dbs += parse_qs(parts.query).get("db", [])
    for db in dbs:
        if not db.isdigit():
            raise SemcacheInputError(
                f"malformed Redis URL {_redact(url)!r}: the database must be a number "
                f"(redis://host:6379/0), got {db!r}"
            )


def _redact(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return (
        f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else f"{scheme}{sep}{user}@{host}"
    )


def _blocking_pool(template: Any, pool_class: type[Any], limits: Mapping[str, Any]) -> Any:
    """A blocking pool with the connection settings of ``template`` (which opened nothing).

    Callers beyond ``max_connections`` wait up to ``timeout`` for a free connection instead
    of failing at once (redis-py's default pool raises "Too many connections").
    """
    pool = template.connection_pool
    return pool_class(connection_class=pool.connection_class, **limits, **pool.connection_kwargs)


# redis-py's connection kinds (sync, asyncio) whose settings the backend can copy, most
# specific first (SSLConnection is a Connection).
_CONNECTION_KINDS: tuple[tuple[str, tuple[type[Any], ...]], ...] = (
    ("tls", (redis.connection.SSLConnection, redis.asyncio.connection.SSLConnection)),
    (
        "unix",
        (
            redis.connection.UnixDomainSocketConnection,
            redis.asyncio.connection.UnixDomainSocketConnection,
        ),
    ),
    ("tcp", (redis.connection.Connection, redis.asyncio.connection.Connection)),
)


def _settings_of(client: Any, target: type[Any]) -> dict[str, Any]:
    """Constructor arguments of ``target`` that reach the same server as ``client``.

    A subclass of redis-py's own connection classes (instrumentation, say) is copied as the
    redis-py class it extends: the settings are the same, its own behaviour is not copied.
    """
    pool = getattr(client, "connection_pool", None)
    connection_class = getattr(pool, "connection_class", None)
    kind = next(
        (
            name
            for name, classes in _CONNECTION_KINDS
            if isinstance(connection_class, type) and issubclass(connection_class, classes)
        ),
        None,
    )
    if pool is None or kind is None:
        shown = getattr(connection_class, "__qualname__", type(pool).__name__)
        raise SemcacheInputError(
            f"cannot build a {target.__module__}.{target.__name__} client from the given "
            f"client's connection settings: its connections are "
            f"{getattr(connection_class, '__module__', '?')}.{shown}, and semcache copies only "
            "redis-py's Connection, SSLConnection and UnixDomainSocketConnection (and their "
            "subclasses) and Sentinel-managed connections; pass both clients: "
            "RedisBackend(client=sync_client, async_client=async_client)"
        )
    given: dict[str, Any] = dict(pool.connection_kwargs)
    settings: dict[str, Any] = {}
    if kind == "unix":
        settings["unix_socket_path"] = given["path"]
    else:
        settings["host"] = given.get("host", "localhost")
        settings["port"] = given.get("port", 6379)
        if kind == "tls":
            settings["ssl"] = True
    settings.update({name: given[name] for name in _COPIED_SETTINGS if name in given})
    accepted = inspect.signature(target.__init__).parameters
    return {name: value for name, value in settings.items() if name in accepted}
