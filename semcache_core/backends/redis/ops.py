"""Every Redis operation, written once as a flow of :class:`~.commands.Round` steps.

Values, reads by key, deletes, TTL refreshes, counters and ``clear`` are the same on every
server; vector writes and searches go to the :class:`~.strategy.VectorStrategy` chosen once,
when the server first answers (``vector_search="auto"`` probes ``MODULE LIST`` and
``FT._LIST``; ``"query-engine"`` requires the Query Engine; ``"mirror"`` never uses it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from semcache_core import keys as keyspace
from semcache_core.backends.base import (
    KeyPage,
    OneStepRead,
    Operations,
    VectorHit,
    VectorSearch,
    VectorWrite,
    counters_of,
)
from semcache_core.backends.redis.commands import (
    Command,
    Primaries,
    Round,
    Topology,
    as_text,
    is_error,
    is_out_of_memory,
    one,
    pairs,
    refused,
)
from semcache_core.backends.redis.keys import (
    CLUSTER,
    STANDALONE,
    KeyLayout,
    glob_escape,
    index_name,
    is_index_of,
    partition_prefix,
    record_id,
    stats_key,
    value_key,
    vector_prefix,
)
from semcache_core.backends.redis.log_mirror import LogMirrorSearch
from semcache_core.backends.redis.lua import (
    COMPARE_AND_SET,
    EXPIRE_VECTORS,
    ScriptCall,
    run_commands,
)
from semcache_core.backends.redis.query_engine import QueryEngineSearch
from semcache_core.backends.redis.strategy import VectorStrategy
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow
from semcache_core.mirror import MirrorSet

VectorSearchMode = Literal["auto", "query-engine", "mirror"]

logger = logging.getLogger("semcache")

#: Clusters (by their primaries) whose fallback to the mirror path was already logged: once
#: per process, however many caches connect to them.
FALLBACK_LOGGED: set[tuple[str, ...]] = set()
_FALLBACK_LOCK = threading.Lock()

#: Oldest RediSearch with vector similarity search (2.4.0 reports ``ver`` 20400).
MIN_SEARCH_VERSION = 20400
#: SCAN page size (a hint to Redis) and keys per UNLINK when clearing.
SCAN_COUNT = 1000
logger = logging.getLogger("semcache")


class RedisOperations(Operations):
    """The protocol on Redis, plus the client-side state (search strategy, mirrors)."""

    label = "the Redis"

    def __init__(
        self,
        *,
        vector_search: VectorSearchMode,
        recreate_index: bool,
        max_mirror_rows: int,
        layout: KeyLayout | None = STANDALONE,
    ) -> None:
        if vector_search not in ("auto", "query-engine", "mirror"):
            raise SemcacheInputError(
                f"vector_search must be 'auto', 'query-engine' or 'mirror', got {vector_search!r}"
            )
        self.requested_mode: VectorSearchMode = vector_search
        self.recreate_index = recreate_index
        self.mirrors = MirrorSet(max_rows=max_mirror_rows)
        #: Runs a flow off the caller's operation (set by the transport; ``None``: never).
        self.background: Callable[[Flow[object]], None] | None = None
        #: The vector strategy, once the server has answered (``"mirror"``: at once).
        self.strategy: VectorStrategy | None = (
            LogMirrorSearch(self.mirrors, self._in_background)
            if vector_search == "mirror"
            else None
        )
        #: The key layout, once the transport said whether the server is a cluster.
        self.layout: KeyLayout | None = layout
        self._state = threading.Lock()

    def _in_background(self, flow: Flow[object]) -> None:
        if self.background is None:
            flow.close()
        else:
            self.background(flow)

    @property
    def mode(self) -> Literal["query-engine", "mirror"] | None:
        """``"query-engine"`` or ``"mirror"`` once known; ``None`` until the server answered."""
        if self.strategy is None:
            return None
        return "query-engine" if isinstance(self.strategy, QueryEngineSearch) else "mirror"

    # -- the vector strategy, chosen once --------------------------------------------------------
    def topology(self) -> Flow[KeyLayout]:
        """The key layout; asks the transport once whether the server is a Redis Cluster."""
        if self.layout is None:
            cluster = yield Topology()
            self.layout = CLUSTER if cluster else STANDALONE
        return self.layout

    def resolve_strategy(self) -> Flow[VectorStrategy]:
        if self.strategy is not None:
            return self.strategy
        layout = yield from self.topology()
        node: str | None = None
        primaries: tuple[str, ...] = ()
        probes: tuple[Command, ...] = (("MODULE", "LIST"), ("FT._LIST",))
        if layout.cluster:
            # Search modules answer per shard unless a coordinator makes them cluster-wide
            # (Redis Cloud / Enterprise, Redis 8 with the coordinator): its commands tell.
            primaries = tuple((yield Primaries()))
            node = primaries[0]
            probes += (("SEARCH.CLUSTERINFO",), ("FT.CLUSTERINFO",))
        module_list, ft_list, *coordinator = yield Round(probes, tolerate=True, node=node)
        version = 0
        if not is_error(module_list):
            for module in module_list or ():
                fields = pairs(module)
                if as_text(fields.get("name", "")).lower() == "search":
                    version = max(version, int(fields.get("ver", 0) or 0))
        else:  # MODULE LIST may be denied (ACL, managed services): FT._LIST alone decides
            version = MIN_SEARCH_VERSION
        found = version >= MIN_SEARCH_VERSION and not is_error(ft_list)
        fallback = None
        if layout.cluster and not _has_coordinator(coordinator):
            fallback = "a search module per shard" if found else "no search module"
            found = False
        if self.requested_mode == "query-engine" and not found:
            raise SemcacheInputError(
                "vector_search='query-engine' but this Redis server has no Query Engine "
                f"(RediSearch >= 2.4; MODULE LIST reports search version {version}); use "
                "Redis Stack or Redis 8, or vector_search='auto'/'mirror'"
                + (f" (this Redis Cluster has {fallback}, none cluster-wide)" if fallback else "")
            )
        with self._state:
            if self.strategy is None:
                with _FALLBACK_LOCK:
                    first = fallback is not None and primaries not in FALLBACK_LOGGED
                    if first:
                        FALLBACK_LOGGED.add(primaries)
                if first:
                    logger.warning(
                        "semcache: this Redis Cluster has no cluster-wide Query Engine (%s); "
                        "semantic search uses the mirror path (vector_search='mirror')",
                        fallback,
                    )
                self.strategy = (
                    QueryEngineSearch(recreate_index=self.recreate_index)
                    if found
                    else LogMirrorSearch(self.mirrors, self._in_background)
                )
            return self.strategy

    # -- values ----------------------------------------------------------------------------------
    def one_step_get(self, namespace: str, key: str) -> OneStepRead | None:
        # The round _get_many sends for one value key once the layout is known (standalone
        # or cluster alike: a value key does not depend on the layout).
        if self.layout is None or key.startswith(keyspace.VECTOR_PREFIX):
            return None
        return Round((("GET", f"{namespace}:{key}"),), tolerate=True), _first_value  # value_key

    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]:
        layout = yield from self.topology()
        ids = [keyspace.vector_id(key) for key in keys]
        # On a cluster the keys of one batch live on many slots: one GET each, which the
        # transport sends as one pipeline per primary (an MGET must stay within one slot).
        if layout.cluster or any(entry_id is not None for entry_id in ids):
            commands: list[Command] = [
                ("GET", value_key(namespace, key))
                if entry_id is None
                else ("HGET", layout.vector_key(namespace, entry_id), "payload")
                for key, entry_id in zip(keys, ids, strict=True)
            ]
            replies = yield Round(commands, tolerate=True)
        elif len(keys) == 1:  # the exact-cache lookup: GET is a little cheaper than MGET
            replies = [(yield from one(("GET", value_key(namespace, keys[0])), tolerate=True))]
        else:
            replies = yield from one(("MGET", *(value_key(namespace, k) for k in keys)))
        return [_value_of(v) for v in replies]

    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]:
        yield from self.topology()
        expiry = ("PX", ttl_ms) if ttl_ms else ()
        yield Round([("SET", value_key(namespace, k), v, *expiry) for k, v in items])

    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]:
        # Log entries of deleted records become dead: verification skips them and the next
        # compaction drops them.
        layout = yield from self.topology()
        yield Round([("UNLINK", self._record_or_value(layout, namespace, k)) for k in keys])

    @staticmethod
    def _record_or_value(layout: KeyLayout, namespace: str, key: str) -> str:
        entry_id = keyspace.vector_id(key)
        if entry_id is None:
            return value_key(namespace, key)
        return layout.vector_key(namespace, entry_id)

    def _scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]:
        layout = yield from self.topology()
        vectors = prefix.startswith(keyspace.VECTOR_PREFIX)
        id_prefix = prefix[len(keyspace.VECTOR_PREFIX) :]
        pattern = glob_escape(vector_prefix(namespace) if vectors else value_key(namespace, prefix))
        pattern += "*"
        node, position = None, cursor or "0"
        if layout.cluster:
            # The cursor of a cluster scan is "<primary index>:<that primary's cursor>".
            primaries = yield Primaries()
            index_text, _, position = (cursor or "0:0").partition(":")
            index = int(index_text)
            if index >= len(primaries):
                return KeyPage([], None)
            node = primaries[index]
        replies = yield Round(
            (("SCAN", int(position), "MATCH", pattern, "COUNT", SCAN_COUNT),), node=node
        )
        next_cursor, raw_keys = replies[0]
        if node is None:
            following = None if int(next_cursor) == 0 else str(int(next_cursor))
        elif int(next_cursor) != 0:
            following = f"{index}:{int(next_cursor)}"
        else:
            following = f"{index + 1}:0" if index + 1 < len(primaries) else None
        strip = len(namespace) + 1
        keys = []
        for raw in raw_keys:
            key = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
            if vectors:
                # A record's key carries its slot tag: back to ``vec:<id>``; keys of another
                # form (untagged keys of earlier versions) are not listed.
                entry_id = record_id(namespace, key)
                if entry_id is not None and entry_id.startswith(id_prefix):
                    keys.append(keyspace.vector_key(entry_id))
                continue
            key = key[strip:]
            if not keyspace.is_reserved(key):
                keys.append(key)
        return KeyPage(keys, following)

    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int | None) -> Flow[None]:
        layout = yield from self.topology()
        ids = [i for i in map(keyspace.vector_id, keys) if i is not None]
        commands: list[Command | ScriptCall] = [
            ("PERSIST", value_key(namespace, k))
            if ttl_ms is None
            else ("PEXPIRE", value_key(namespace, k), ttl_ms)
            for k in keys
            if keyspace.vector_id(k) is None
        ]
        # One script call per partition tag (one slot each: a cluster runs them on their
        # shards, in one round trip per primary).
        by_tag: dict[str | None, list[str]] = {}
        for entry_id in ids:
            by_tag.setdefault(keyspace.split_entry_id(entry_id)[0], []).append(entry_id)
        for tag, tagged in by_tag.items():
            hashes = [layout.vector_key(namespace, i) for i in tagged]
            prefixes = [partition_prefix(k, namespace, tag) for k in ("vlog", "vmeta", "vdim")]
            commands.append(ScriptCall(EXPIRE_VECTORS, hashes, [ttl_ms or 0, *prefixes]))
        yield from run_commands(commands)

    def _get_expiries(self, namespace: str, keys: list[str]) -> Flow[dict[str, float | None]]:
        layout = yield from self.topology()
        asked = time.time()
        replies = yield Round(
            [("PTTL", self._record_or_value(layout, namespace, key)) for key in keys]
        )
        found: dict[str, float | None] = {}
        for key, reply in zip(keys, replies, strict=True):
            ms = int(reply)
            if ms == -1:
                found[key] = None
            elif ms >= 0:
                found[key] = asked + ms / 1000
        return found

    # -- atomic values (semcache_core.context_cache) ---------------------------------------------
    # Values are plain keys with either vector strategy, so these need no Query Engine.
    def _set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        expiry = ("PX", ttl_ms) if ttl_ms else ()
        reply = yield from one(("SET", value_key(namespace, key), value, "NX", *expiry))
        return reply is not None

    def _compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        args = [b"" if expected is None else expected, int(expected is None), new, ttl_ms or 0]
        call = ScriptCall(COMPARE_AND_SET, [value_key(namespace, key)], args)
        (reply,) = yield from run_commands([call])
        return int(reply) == 1

    # -- vectors ---------------------------------------------------------------------------------
    def _add_vectors(self, namespace: str, write: VectorWrite) -> Flow[None]:
        layout = yield from self.topology()
        strategy = yield from self.resolve_strategy()
        yield from strategy.add(namespace, write, layout)

    def _search_vectors(self, namespace: str, search: VectorSearch) -> Flow[list[VectorHit]]:
        layout = yield from self.topology()
        strategy = yield from self.resolve_strategy()
        return (yield from strategy.search(namespace, search, layout))

    # -- counters --------------------------------------------------------------------------------
    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]:
        yield from self.topology()
        key = stats_key(namespace, name)
        fields = list(deltas.items())
        replies = yield Round([("HINCRBYFLOAT", key, f, repr(d)) for f, d in fields], tolerate=True)
        # A field that holds no number (planted, or another program's) refuses HINCRBYFLOAT:
        # it is reset to this delta, so a bad counter never fails the flush (nor opens the
        # circuit breaker and takes lookups down with it).
        full = next((reply for reply in replies if is_out_of_memory(reply)), None)
        if full is not None:  # Redis is full (maxmemory), the counter is fine
            raise refused("HINCRBYFLOAT", full)
        broken = [(f, d) for (f, d), reply in zip(fields, replies, strict=True) if is_error(reply)]
        if broken:
            logger.warning("semcache: resetting counters that were not numbers: %s", broken)
            yield Round([("HSET", key, f, repr(d)) for f, d in broken])

    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        yield from self.topology()
        reply = yield from one(("HGETALL", stats_key(namespace, name)))
        return counters_of(pairs(reply).items())

    # -- namespace-wide --------------------------------------------------------------------------
    def _clear(self, namespace: str) -> Flow[None]:
        layout = yield from self.topology()
        if layout.cluster:
            yield from self._clear_cluster(namespace)
        else:
            yield from self._clear_standalone(namespace)
        with self.mirrors.lock:
            self.mirrors.drop_namespace(namespace)
        if self.strategy is not None:
            self.strategy.drop_namespace(namespace)

    def _clear_cluster(self, namespace: str) -> Flow[None]:
        """Every primary in turn: ``SCAN`` a page of that node, ``UNLINK`` its keys (one
        command each, routed by slot: keys of several slots cannot share an UNLINK)."""
        primaries = yield Primaries()
        if self.mode == "query-engine":  # every index of the namespace (one per dimension)
            (listed,) = yield Round((("FT._LIST",),), tolerate=True, node=primaries[0])
            names = _indexes_of(namespace, listed) or [index_name(namespace)]
            yield Round(
                [("FT.DROPINDEX", name) for name in names], tolerate=True, node=primaries[0]
            )
        pattern = glob_escape(namespace) + ":*"
        for node in primaries:
            cursor = 0
            while True:
                scanned = yield Round(
                    (("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT),), node=node
                )
                cursor, found = int(scanned[0][0]), list(scanned[0][1])
                if found:
                    yield Round([("UNLINK", key) for key in found])
                if not cursor:
                    break

    def _clear_standalone(self, namespace: str) -> Flow[None]:
        # The index goes first (in the first round), so Redis does not re-index what is being
        # deleted; its errors are ignored: the server may have no Query Engine or no index.
        # The Query Engine has one index per dimension: the others (FT._LIST) go in the next
        # round, still before any UNLINK.
        pattern = glob_escape(namespace) + ":*"
        listed, _dropped, scanned = yield Round(
            (
                ("FT._LIST",),
                ("FT.DROPINDEX", index_name(namespace)),
                ("SCAN", 0, "MATCH", pattern, "COUNT", SCAN_COUNT),
            ),
            tolerate=True,
        )
        others = [name for name in _indexes_of(namespace, listed) if name != index_name(namespace)]
        if others:
            yield Round([("FT.DROPINDEX", name) for name in others], tolerate=True)
        if is_error(scanned):
            raise refused("SCAN", scanned)
        # One round per page: UNLINK the previous page and SCAN the next one.
        cursor, pending = int(scanned[0]), list(scanned[1])
        while pending or cursor:
            commands: list[Command] = [("UNLINK", *pending)] if pending else []
            if cursor:
                commands.append(("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT))
            replies = yield Round(commands)
            if cursor:
                cursor, pending = int(replies[-1][0]), list(replies[-1][1])
            else:
                pending = []

    def forget(self) -> None:
        """Drop all client-side state (mirrors, known indexes)."""
        with self.mirrors.lock:
            self.mirrors.drop_all()
        if self.strategy is not None:
            self.strategy.forget()


def _indexes_of(namespace: str, listed: object) -> list[str]:
    """The names of ``namespace``'s indexes in an ``FT._LIST`` reply (none if it failed)."""
    if is_error(listed) or not isinstance(listed, (list, tuple, set)):
        return []
    return sorted({as_text(name) for name in listed if is_index_of(namespace, as_text(name))})


def _first_value(replies: list[Any]) -> bytes | None:
    reply = replies[0]
    return reply if reply is None or type(reply) is bytes else _value_of(reply)


def _value_of(reply: object) -> bytes | None:
    """A read value; a key of the wrong type (``WRONGTYPE``: planted by another program)
    is a miss with a warning, never an error that would open the circuit breaker."""
    if is_error(reply):
        logger.warning("semcache: ignoring a Redis key of the wrong type: %s", reply)
        return None
    return bytes(reply) if isinstance(reply, (bytes, bytearray, memoryview)) else None


def _has_coordinator(replies: list[Any]) -> bool:
    """Whether the search coordinator answered ``SEARCH.CLUSTERINFO`` or ``FT.CLUSTERINFO``
    (unknown commands elsewhere, or refused: then the safe mirror path is used)."""
    return any(not is_error(reply) for reply in replies)
