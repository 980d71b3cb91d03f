"""Every Redis operation of :class:`~semcache_core.backends.redis.RedisBackend`, written once.

An operation is a generator (:data:`Op`) that yields :class:`Round` objects, the commands to
send in one network round trip, receives their replies, and finally returns its result. It
never touches a client: ``RedisBackend._run`` drives it with a ``redis.Redis`` and
``RedisBackend._arun`` with a ``redis.asyncio.Redis``, so the sync and async sides share every
line of logic and cannot drift apart (the engine's ``_drive``/``_adrive`` use the same
pattern). The module holds no I/O and no client, only key layout, command building, reply
parsing, and the client-side state (resolved search mode, known indexes, vector mirrors).

Replies are parsed tolerantly: RESP2 and RESP3 (redis-py 8 speaks RESP3 by default), and
clients created with ``decode_responses=True`` (commands are sent with redis-py's
``NEVER_DECODE`` option, so binary values always come back as ``bytes``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from redis.exceptions import NoScriptError, ResponseError

from semcache_core.backends.base import VectorHit, VectorRecord
from semcache_core.codecs import Vector
from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheInputError,
    VectorDimensionError,
)
from semcache_core.keys import stable_hash
from semcache_core.mirror import MirrorSet, PartitionMirror

T = TypeVar("T")
Command = tuple[Any, ...]
VectorSearchMode = Literal["auto", "query-engine", "mirror"]

#: Oldest RediSearch with vector similarity search (2.4.0 reports ``ver`` 20400).
MIN_SEARCH_VERSION = 20400
#: SCAN page size (a hint to Redis) and keys per UNLINK when clearing.
SCAN_COUNT = 1000
#: Log entries read per round trip when a mirror catches up or the log is compacted.
LOG_PAGE = 1000
#: Records per EVAL of the write script (bounds the size of one command).
WRITE_CHUNK = 200
#: A partition log is not compacted before it holds this many entries.
COMPACT_FLOOR = 1024
#: Lifetime of the lock that lets one client at a time compact a partition's log.
COMPACT_LOCK_MS = 60_000
#: Extra nearest candidates fetched beyond ``k``: some may fail verification.
EXTRA_CANDIDATES = 4
#: Lower bound of the HNSW candidate list per KNN query (``EF_RUNTIME``).
HNSW_EF_RUNTIME = 200
#: Re-searches allowed after candidates failed verification, before settling for fewer hits.
MAX_VERIFY_ROUNDS = 8

#: Value keys may not use these kinds: they hold the backend's own records.
RESERVED_KINDS = frozenset({"vec", "vlog", "vmeta", "vlock", "vdim", "stats"})

_LOW64 = (1 << 64) - 1
logger = logging.getLogger("semcache")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


class IndexDimensionError(VectorDimensionError, SchemaConflictError):
    """The namespace's existing search index was created for vectors of another dimension.

    Both a :class:`VectorDimensionError` (like every backend's dimension check) and a
    :class:`SchemaConflictError` (an existing index that does not fit): clear the namespace,
    use another one, or pass ``recreate_index=True``.
    """


@dataclass(frozen=True, slots=True)
class Round:
    """Commands sent in one round trip (pipelined, ``transaction=False``).

    With ``tolerate`` the replies of failed commands come back as ``ResponseError`` objects
    instead of raising; connection errors and timeouts always raise ``BackendError``.
    """

    commands: Sequence[Command]
    tolerate: bool = False


Op = Generator[Round, list[Any], T]


class Script:
    """A Lua script, sent by SHA1 and re-sent in full when the server does not know it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: Script
    keys: Sequence[str]
    args: Sequence[Any]

    def evalsha(self) -> Command:
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)

    def eval(self) -> Command:
        return ("EVAL", self.script.source, len(self.keys), *self.keys, *self.args)


# -- Lua scripts -----------------------------------------------------------------------------

# Writes vector records atomically: checks/sets the namespace's dimension, appends each record
# to its partition's log (XADD: the entry id is the record's version), replaces the record's
# hash with its TTL (Query Engine path: vector, payload, partition, tag tokens, for the index;
# log path: payload, partition, version only, the vector living in the log), keeps the log alive at
# least as long as its longest-lived entry, and elects one writer to compact an overgrown log.
# KEYS: dim, log, meta, lock, hash...   ARGV: dim, ttl_ms (0 = none), use_log, partition,
# partition token, compact floor, lock ms, then per record: id, vector, payload, tags json,
# tag tokens.
WRITE_VECTORS = Script(
    """
local dim = redis.call('GET', KEYS[1])
if dim and dim ~= ARGV[1] then return {'dim', dim} end
if not dim then redis.call('SET', KEYS[1], ARGV[1]) end
local ttl = tonumber(ARGV[2])
local use_log = ARGV[3] == '1'
local log_ttl = -1
if use_log then log_ttl = redis.call('PTTL', KEYS[2]) end
for i = 5, #KEYS do
  local b = 8 + (i - 5) * 5
  local ver = ''
  if use_log then
    ver = redis.call('XADD', KEYS[2], '*', 'id', ARGV[b], 'vector', ARGV[b + 1], 'tags', ARGV[b + 3])
  end
  redis.call('DEL', KEYS[i])
  if use_log then
    -- The log holds the vector and tags the mirrors read; the hash keeps what verification
    -- and exact lookups read, so a vector is not stored twice.
    redis.call('HSET', KEYS[i], 'payload', ARGV[b + 2], 'partition', ARGV[4], 'ver', ver)
  else
    redis.call('HSET', KEYS[i], 'vector', ARGV[b + 1], 'payload', ARGV[b + 2],
      'partition', ARGV[4], 'ptag', ARGV[5], 'tags', ARGV[b + 3], 'ver', ver)
    if ARGV[b + 4] ~= '' then redis.call('HSET', KEYS[i], 'ttag', ARGV[b + 4]) end
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
if not use_log then return {'ok', 0, 0} end
if ttl == 0 then
  redis.call('PERSIST', KEYS[2])
elseif log_ttl == -2 or (log_ttl >= 0 and log_ttl < ttl) then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local t = redis.call('PTTL', KEYS[2])
  if t >= 0 then redis.call('PEXPIRE', KEYS[3], t) else redis.call('PERSIST', KEYS[3]) end
end
local len = redis.call('XLEN', KEYS[2])
local at = tonumber(redis.call('HGET', KEYS[3], 'compact_at') or ARGV[6])
if len >= at and redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[7]) then
  return {'ok', len, 1}
end
return {'ok', len, 0}
"""
)

# Resets the TTL of vector records and extends their partition log (and its meta hash) so the
# log outlives every live entry. KEYS: hashes.  ARGV: ttl_ms, namespace.
EXPIRE_VECTORS = Script(
    """
local ttl = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('PEXPIRE', key, ttl) == 1 then
    local part = redis.call('HGET', key, 'partition')
    if part then
      for _, k in ipairs({ARGV[2] .. ':vlog:' .. part, ARGV[2] .. ':vmeta:' .. part}) do
        local t = redis.call('PTTL', k)
        if t >= 0 and t < ttl then redis.call('PEXPIRE', k, ttl) end
      end
    end
  end
end
return 0
"""
)

# Ends a log compaction: next threshold, new epoch (mirrors rebuild), release the lock.
# KEYS: meta, log, lock.  ARGV: compact_at.
FINISH_COMPACTION = Script(
    """
redis.call('HSET', KEYS[1], 'compact_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local t = redis.call('PTTL', KEYS[2])
if t >= 0 then redis.call('PEXPIRE', KEYS[1], t) end
redis.call('DEL', KEYS[3])
return 0
"""
)


# -- key layout ------------------------------------------------------------------------------


def value_key(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"


def vector_key(namespace: str, entry_id: str) -> str:
    return f"{namespace}:vec:{entry_id}"


def log_key(namespace: str, partition: str) -> str:
    return f"{namespace}:vlog:{partition}"


def meta_key(namespace: str, partition: str) -> str:
    return f"{namespace}:vmeta:{partition}"


def lock_key(namespace: str, partition: str) -> str:
    return f"{namespace}:vlock:{partition}"


def dim_key(namespace: str) -> str:
    return f"{namespace}:vdim"


def stats_key(namespace: str, name: str) -> str:
    return f"{namespace}:stats:{name}"


def index_name(namespace: str) -> str:
    return f"{namespace}:idx"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``*``, ``?``, ``[``, ``]``, ``\\``)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def tag_token(name: str, value: str) -> str:
    """The indexed token of one tag: hex, so it needs no escaping in a TAG query."""
    return stable_hash("tag", name, value)


def partition_token(partition: str) -> str:
    return stable_hash("partition-tag", partition)


def is_reserved(key: str) -> bool:
    return key.split(":", 1)[0] in RESERVED_KINDS


def ttl_ms(ttl: float | None) -> int:
    """Milliseconds for ``PX``/``PEXPIRE`` (at least 1), 0 for no expiry."""
    return 0 if ttl is None else max(1, math.ceil(ttl * 1000))


# -- stream ids <-> mirror sequence numbers ----------------------------------------------------


def seq_of(entry_id: bytes | str) -> int:
    """A stream entry id ``<ms>-<n>`` as one int, ordered like the ids."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return (int(ms) << 64) | int(n)


def entry_id_of(seq: int) -> str:
    return f"{seq >> 64}-{seq & _LOW64}"


# -- reply parsing ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def pairs(reply: Any) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat ``[k1, v1, k2, v2, ...]`` list as a dict with str keys."""
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    if isinstance(reply, (list, tuple)):
        return {_text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    return {}


def stream_entries(reply: Any) -> list[tuple[bytes, dict[str, Any]]]:
    """XRANGE/XREVRANGE replies (raw or parsed by redis-py) as ``[(id, fields)]``."""
    entries: list[tuple[bytes, dict[str, Any]]] = []
    for item in reply or ():
        entry_id, fields = item[0], item[1]
        raw_id = entry_id if isinstance(entry_id, bytes) else str(entry_id).encode()
        entries.append((raw_id, pairs(fields)))
    return entries


def _is_error(reply: Any) -> bool:
    return isinstance(reply, ResponseError)


def _missing_index(reply: Any) -> bool:
    text = str(reply).lower()
    return _is_error(reply) and (
        "unknown index" in text or "no such index" in text or "not found" in text
    )


def _refused(what: str, reply: Any) -> BackendError:
    return BackendError(f"Redis refused {what}: {reply}")


def one(command: Command, *, tolerate: bool = False) -> Op[Any]:
    """A single command as an operation."""
    replies = yield Round((command,), tolerate)
    return replies[0]


def run_commands(commands: Sequence[Command | ScriptCall]) -> Op[list[Any]]:
    """Plain commands and script calls in one round trip (plus one if a script is unknown)."""
    if not commands:
        return []
    wire = [c.evalsha() if isinstance(c, ScriptCall) else c for c in commands]
    replies = list((yield Round(wire, tolerate=True)))
    unknown = [
        i
        for i, (command, reply) in enumerate(zip(commands, replies, strict=True))
        if isinstance(command, ScriptCall) and isinstance(reply, NoScriptError)
    ]
    if unknown:
        again = yield Round(
            [commands[i].eval() for i in unknown],  # type: ignore[union-attr]
            tolerate=True,
        )
        for i, reply in zip(unknown, again, strict=True):
            replies[i] = reply
    for command, reply in zip(wire, replies, strict=True):
        if _is_error(reply):
            raise _refused(str(command[0]), reply)
    return replies


# Compare-and-set of one value key (semcache_core.context_cache). KEYS: the value key.
# ARGV: expected value, "1" if the key is expected absent, new value, ttl_ms (0 = none).
COMPARE_AND_SET = Script(
    """
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
"""
)


# -- the operations --------------------------------------------------------------------------


class RedisOperations:
    """The backend's logic as generator operations, plus the client-side state they share."""

    def __init__(
        self,
        *,
        vector_search: VectorSearchMode,
        recreate_index: bool,
        max_mirror_rows: int,
    ) -> None:
        if vector_search not in ("auto", "query-engine", "mirror"):
            raise SemcacheInputError(
                f"vector_search must be 'auto', 'query-engine' or 'mirror', got {vector_search!r}"
            )
        self.requested_mode: VectorSearchMode = vector_search
        #: ``"query-engine"`` or ``"mirror"`` once known; ``None`` until the server answered.
        self.mode: Literal["query-engine", "mirror"] | None = (
            "mirror" if vector_search == "mirror" else None
        )
        self.recreate_index = recreate_index
        self.max_mirror_rows = max_mirror_rows
        self.mirrors = MirrorSet(max_rows=max_mirror_rows)
        # The log epoch each mirror was built at (a compaction bumps it: the mirror rebuilds).
        self._epochs: weakref.WeakKeyDictionary[PartitionMirror, int] = weakref.WeakKeyDictionary()
        self._indexes: dict[str, int] = {}  # namespace -> dimension of its checked index
        self._recreated: set[str] = set()
        self._state = threading.Lock()

    # -- search mode ---------------------------------------------------------------------------
    def resolve_mode(self) -> Op[Literal["query-engine", "mirror"]]:
        if self.mode is not None:
            return self.mode
        module_list, ft_list = yield Round((("MODULE", "LIST"), ("FT._LIST",)), tolerate=True)
        version = 0
        if not _is_error(module_list):
            for module in module_list or ():
                fields = pairs(module)
                if _text(fields.get("name", "")).lower() == "search":
                    version = max(version, int(fields.get("ver", 0) or 0))
        else:  # MODULE LIST may be denied (ACL, managed services): FT._LIST alone decides
            version = MIN_SEARCH_VERSION
        found = version >= MIN_SEARCH_VERSION and not _is_error(ft_list)
        if self.requested_mode == "query-engine" and not found:
            raise SemcacheInputError(
                "vector_search='query-engine' but this Redis server has no Query Engine "
                f"(RediSearch >= 2.4; MODULE LIST reports search version {version}); use "
                "Redis Stack or Redis 8, or vector_search='auto'/'mirror'"
            )
        mode: Literal["query-engine", "mirror"] = "query-engine" if found else "mirror"
        self.mode = mode
        return mode

    # -- values --------------------------------------------------------------------------------
    def get_many(self, namespace: str, keys: Sequence[str]) -> Op[list[bytes | None]]:
        if not keys:
            return []
        if len(keys) == 1:  # the exact-cache lookup: GET is a little cheaper than MGET
            value = yield from one(("GET", value_key(namespace, keys[0])))
            return [None if value is None else bytes(value)]
        values = yield from one(("MGET", *(value_key(namespace, k) for k in keys)))
        return [None if v is None else bytes(v) for v in values]

    def set_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], ttl: float | None
    ) -> Op[None]:
        for key, _ in items:
            if is_reserved(key):
                raise SemcacheInputError(
                    f"value key {key!r} uses a kind reserved by the Redis backend "
                    f"({', '.join(sorted(RESERVED_KINDS))})"
                )
        ms = ttl_ms(ttl)
        expiry = ("PX", ms) if ms else ()
        commands = [("SET", value_key(namespace, k), v, *expiry) for k, v in items]
        if commands:
            yield Round(commands)

    def delete_many(self, namespace: str, keys: Sequence[str]) -> Op[None]:
        if keys:
            yield Round([("UNLINK", value_key(namespace, k)) for k in keys])

    def scan_page(self, namespace: str, prefix: str, cursor: int) -> Op[tuple[int, list[str]]]:
        """One SCAN page of value keys starting with ``prefix``; cursor 0 ends the scan."""
        pattern = glob_escape(value_key(namespace, prefix)) + "*"
        reply = yield from one(("SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT))
        next_cursor, raw_keys = reply
        strip = len(namespace) + 1
        keys = []
        for raw in raw_keys:
            key = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
            key = key[strip:]
            if not is_reserved(key):
                keys.append(key)
        return int(next_cursor), keys

    def expire_many(self, namespace: str, keys: Sequence[str], ttl: float) -> Op[None]:
        if not keys:
            return
        ms = ttl_ms(ttl)
        commands: list[Command | ScriptCall] = [
            ("PEXPIRE", value_key(namespace, k), ms) for k in keys
        ]
        commands.append(
            ScriptCall(EXPIRE_VECTORS, [vector_key(namespace, k) for k in keys], [ms, namespace])
        )
        yield from run_commands(commands)

    # -- counters ------------------------------------------------------------------------------
    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> Op[None]:
        key = stats_key(namespace, name)
        commands = [("HINCRBYFLOAT", key, f, repr(float(d))) for f, d in deltas.items()]
        if commands:
            yield Round(commands)

    def get_counters(self, namespace: str, name: str) -> Op[dict[str, float]]:
        reply = yield from one(("HGETALL", stats_key(namespace, name)))
        return {field: float(value) for field, value in pairs(reply).items()}

    # -- namespace-wide ------------------------------------------------------------------------
    def clear(self, namespace: str) -> Op[None]:
        # The index goes first (in the first round), so Redis does not re-index what is being
        # deleted; its errors are ignored: the server may have no Query Engine or no index.
        pattern = glob_escape(namespace) + ":*"
        _dropped, scanned = yield Round(
            (
                ("FT.DROPINDEX", index_name(namespace)),
                ("SCAN", 0, "MATCH", pattern, "COUNT", SCAN_COUNT),
            ),
            tolerate=True,
        )
        if _is_error(scanned):
            raise _refused("SCAN", scanned)
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
        with self._state, self.mirrors.lock:
            self.mirrors.drop_namespace(namespace)
            self._indexes.pop(namespace, None)

    # -- vectors: shared -----------------------------------------------------------------------
    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> Op[list[bytes | None]]:
        if not ids:
            return []
        replies = yield Round([("HGET", vector_key(namespace, i), "payload") for i in ids])
        return [None if r is None else bytes(r) for r in replies]

    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> Op[None]:
        # Log entries of deleted records become dead: verification skips them and the next
        # compaction drops them.
        if ids:
            yield Round([("UNLINK", vector_key(namespace, i)) for i in ids])

    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        ttl: float | None,
    ) -> Op[None]:
        if not records:
            return
        dims = {int(record.vector.shape[0]) for record in records}
        if len(dims) != 1:
            raise VectorDimensionError(f"one batch holds vectors of dimensions {sorted(dims)}")
        dim = dims.pop()
        rows = [_record_args(record) for record in records]
        mode = yield from self.resolve_mode()
        if mode == "query-engine":
            yield from self._ensure_index(namespace, dim, create=True, adding=True)
        use_log = mode == "mirror"
        ms = ttl_ms(ttl)
        keys = [
            dim_key(namespace),
            log_key(namespace, partition),
            meta_key(namespace, partition),
            lock_key(namespace, partition),
        ]
        calls: list[Command | ScriptCall] = []
        for start in range(0, len(records), WRITE_CHUNK):
            chunk = range(start, min(start + WRITE_CHUNK, len(records)))
            args: list[Any] = [
                dim,
                ms,
                "1" if use_log else "0",
                partition,
                partition_token(partition),
                COMPACT_FLOOR,
                COMPACT_LOCK_MS,
            ]
            for i in chunk:
                args.extend(rows[i])
            hashes = [vector_key(namespace, records[i].id) for i in chunk]
            calls.append(ScriptCall(WRITE_VECTORS, [*keys, *hashes], args))
        replies = yield from run_commands(calls)
        compact = False
        for reply in replies:
            status = _text(reply[0])
            if status == "dim":
                raise VectorDimensionError(
                    f"vector has dimension {dim}, but namespace {namespace!r} stores vectors "
                    f"of dimension {_text(reply[1])}; use one embedding model per namespace "
                    "or clear it"
                )
            compact = compact or int(reply[2]) == 1
        if compact:
            try:
                yield from self._compact_log(namespace, partition)
            except BackendError as exc:
                # The records are written; the lock expires and a later write compacts.
                logger.debug(
                    "semcache: compacting %s failed: %s", log_key(namespace, partition), exc
                )

    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None,
    ) -> Op[list[VectorHit]]:
        if k < 1:
            return []
        mode = yield from self.resolve_mode()
        if mode == "query-engine":
            return (
                yield from self._index_search(namespace, partition, vector, k, max_distance, tags)
            )
        return (yield from self._mirror_search(namespace, partition, vector, k, max_distance, tags))

    # -- vectors: Query Engine -----------------------------------------------------------------
    def _ensure_index(self, namespace: str, dim: int, *, create: bool, adding: bool) -> Op[bool]:
        """Check (once per client) or create the namespace's index; False if none exists."""
        with self._state:
            known = self._indexes.get(namespace)
        if known is not None:
            if known != dim:
                raise _dimension_error(namespace, dim, known, adding=adding)
            return True
        name = index_name(namespace)
        info, stored_dim = yield Round(
            (("FT.INFO", name), ("GET", dim_key(namespace))), tolerate=True
        )
        if _is_error(stored_dim):
            raise _refused("GET", stored_dim)
        if _is_error(info) and not _missing_index(info):
            raise _refused("FT.INFO", info)
        if _is_error(info):  # no index yet
            if stored_dim is not None:
                # Vectors exist (written before the index, or the index was dropped by a
                # clear elsewhere): index them with their dimension.
                dim_in_store = int(stored_dim)
                if dim_in_store != dim:
                    raise _dimension_error(namespace, dim, dim_in_store, adding=adding)
            elif not create:
                return False
            yield from self._create_index(namespace, dim, replace=False)
        else:
            problems, index_dim = _schema_problems(info, namespace)
            if index_dim is None and stored_dim is not None:
                index_dim = int(stored_dim)
            conflict = bool(problems) or (index_dim is not None and index_dim != dim)
            if conflict and self.recreate_index and namespace not in self._recreated:
                yield Round((("FT.DROPINDEX", name),))
                yield from self._create_index(namespace, dim, replace=True)
                with self._state:
                    self._recreated.add(namespace)
            elif problems:
                raise SchemaConflictError(
                    f"Redis index {name!r} exists with a schema semcache did not create "
                    f"({'; '.join(problems)}); drop it, use another namespace, or pass "
                    "recreate_index=True"
                )
            elif index_dim is not None and index_dim != dim:
                raise _dimension_error(namespace, dim, index_dim, adding=adding)
        with self._state:
            self._indexes[namespace] = dim
        return True

    def _create_index(self, namespace: str, dim: int, *, replace: bool) -> Op[None]:
        commands: list[Command] = [
            (
                "FT.CREATE", index_name(namespace), "ON", "HASH",
                "PREFIX", 1, vector_key(namespace, ""),
                "SCHEMA",
                "ptag", "TAG", "SEPARATOR", ",",
                "ttag", "TAG", "SEPARATOR", ",",
                "vector", "VECTOR", "HNSW", 6,
                "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
            )
        ]  # fmt: skip
        if replace:
            commands.append(("SET", dim_key(namespace), dim))
        replies = yield Round(commands, tolerate=True)
        created = replies[0]
        if _is_error(created) and "already exists" not in str(created).lower():
            raise _refused("FT.CREATE", created)
        if _is_error(created):  # another client created it meanwhile: check it like ours
            info = yield from one(("FT.INFO", index_name(namespace)))
            problems, index_dim = _schema_problems(info, namespace)
            if problems:
                raise SchemaConflictError(
                    f"Redis index {index_name(namespace)!r} was just created by another "
                    f"client with another schema ({'; '.join(problems)})"
                )
            if index_dim is not None and index_dim != dim:
                raise _dimension_error(namespace, dim, index_dim, adding=True)

    def _index_search(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None,
    ) -> Op[list[VectorHit]]:
        dim = int(vector.shape[0])
        wanted = k + EXTRA_CANDIDATES
        # Pre-filter: the KNN runs only over entries of the partition holding every tag.
        terms = [f"@ptag:{{{partition_token(partition)}}}"]
        terms += [f"@ttag:{{{tag_token(n, v)}}}" for n, v in sorted((tags or {}).items())]
        # EF_RUNTIME: with RediSearch's default (10) the HNSW graph misses near entries of
        # large partitions (100k random vectors: 40% of near queries found; 98% at 100). A miss
        # is no wrong answer, but a paid LLM call. Small partitions are searched exhaustively.
        query = f"({' '.join(terms)})=>[KNN $K @vector $BLOB EF_RUNTIME $EF AS __dist]"
        command: Command = (
            "FT.SEARCH", index_name(namespace), query,
            "PARAMS", 6, "K", wanted, "EF", max(HNSW_EF_RUNTIME, 10 * wanted),
            "BLOB", np.asarray(vector, dtype="<f4").tobytes(),
            "SORTBY", "__dist", "ASC",
            "RETURN", 2, "payload", "vector",
            "LIMIT", 0, wanted,
            "DIALECT", 2,
        )  # fmt: skip
        for attempt in range(2):
            ready = yield from self._ensure_index(namespace, dim, create=False, adding=False)
            if not ready:
                return []
            reply = yield from one(command, tolerate=True)
            if not _is_error(reply):
                return _rank(_search_results(reply, namespace), vector, k, max_distance)
            if not _missing_index(reply) or attempt:
                raise _refused("FT.SEARCH", reply)
            with self._state:  # dropped elsewhere (clear): check again, recreate if needed
                self._indexes.pop(namespace, None)
        return []

    # -- vectors: client mirror ----------------------------------------------------------------
    def _mirror_search(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None,
    ) -> Op[list[VectorHit]]:
        mirror = yield from self._catch_up(namespace, partition, int(vector.shape[0]))
        if mirror is None:
            return []
        wanted = k + EXTRA_CANDIDATES
        expected_partition = partition.encode()
        for _ in range(MAX_VERIFY_ROUNDS):
            with self.mirrors.lock:
                candidates = mirror.search(
                    vector, k=wanted, max_distance=max_distance, now=time.time(), tags=tags
                )
            if not candidates:
                return []
            # Verify against the source of truth: the record must exist (Redis expires it)
            # and be the very version the mirror matched (same log entry, same partition).
            replies = yield Round(
                [
                    ("HMGET", vector_key(namespace, c.id), "ver", "partition", "payload")
                    for c in candidates
                ]
            )
            hits: list[VectorHit] = []
            stale = False
            for candidate, (version, part, payload) in zip(candidates, replies, strict=True):
                current = (
                    payload is not None
                    and version is not None
                    and bytes(version) == entry_id_of(candidate.seq).encode()
                    and part is not None
                    and bytes(part) == expected_partition
                )
                if not current:
                    with self.mirrors.lock:
                        mirror.discard_seq(candidate.seq, candidate.id)
                    stale = True
                    continue
                hits.append(VectorHit(candidate.id, candidate.distance, bytes(payload)))
                if len(hits) == k:
                    return hits
            # Stale rows may have crowded out live ones: search again without them.
            if not stale or len(candidates) < wanted:
                return hits
        return hits

    def _catch_up(self, namespace: str, partition: str, dim: int) -> Op[PartitionMirror | None]:
        """This client's mirror of ``partition``, updated with the log entries it lacks.

        One round trip in the common case: the namespace's dimension, the log's epoch and
        length, and the entries after the mirror's offset come back together.
        """
        log = log_key(namespace, partition)
        cap = self.max_mirror_rows
        while True:
            with self.mirrors.lock:
                mirror = self.mirrors.get(namespace, partition, dim)
                start = mirror.last_seq
                epoch = self._epochs.get(mirror)
            fresh = epoch is None
            page = (
                ("XREVRANGE", log, "+", "-", "COUNT", LOG_PAGE)
                if fresh
                else (
                    "XRANGE",
                    log,
                    entry_id_of(start + 1) if start else "-",
                    "+",
                    "COUNT",
                    LOG_PAGE,
                )
            )
            stored_dim, server_epoch, length, entries = yield Round(
                (
                    ("GET", dim_key(namespace)),
                    ("HGET", meta_key(namespace, partition), "epoch"),
                    ("XLEN", log),
                    page,
                )
            )
            if stored_dim is None:
                with self.mirrors.lock:
                    self.mirrors.drop(namespace, partition)
                return None  # no vector was ever stored in this namespace (or it was cleared)
            if int(stored_dim) != dim:
                raise VectorDimensionError(
                    f"vector has dimension {dim}, but namespace {namespace!r} stores vectors "
                    f"of dimension {int(stored_dim)}; use one embedding model per namespace "
                    "or clear it"
                )
            current_epoch = int(server_epoch or 0)
            if not fresh and current_epoch != epoch:
                with self.mirrors.lock:  # the log was compacted: rebuild from it
                    self.mirrors.drop(namespace, partition)
                continue
            if fresh:
                entries = yield from self._read_newest(
                    log, stream_entries(entries), cap if int(length) <= cap else max(1, cap // 2)
                )
                with self.mirrors.lock:
                    _apply(mirror, entries, dim)
                    self._epochs[mirror] = current_epoch
                    self.mirrors.enforce_bound()
                return mirror
            batch = stream_entries(entries)
            while True:
                with self.mirrors.lock:
                    _apply(mirror, batch, dim)
                if len(batch) < LOG_PAGE:
                    break
                batch = stream_entries(
                    (
                        yield from one(
                            (
                                "XRANGE",
                                log,
                                entry_id_of(seq_of(batch[-1][0]) + 1),
                                "+",
                                "COUNT",
                                LOG_PAGE,
                            )
                        )
                    )
                )
            with self.mirrors.lock:
                if mirror.size > cap:
                    # Over its budget: rebuild from the newest entries on the next search.
                    self.mirrors.drop(namespace, partition)
                else:
                    self.mirrors.enforce_bound()
            return mirror

    @staticmethod
    def _read_newest(
        log: str, first_page: list[tuple[bytes, dict[str, Any]]], limit: int
    ) -> Op[list[tuple[bytes, dict[str, Any]]]]:
        """Up to ``limit`` newest log entries, oldest first (``first_page`` is the newest)."""
        newest = first_page[:limit]
        page = first_page
        while len(newest) < limit and len(page) == LOG_PAGE:
            before = seq_of(page[-1][0]) - 1
            page = stream_entries(
                (yield from one(("XREVRANGE", log, entry_id_of(before), "-", "COUNT", LOG_PAGE)))
            )
            newest.extend(page[: limit - len(newest)])
        newest.reverse()
        return newest

    def _compact_log(self, namespace: str, partition: str) -> Op[None]:
        """Drop dead entries (deleted, replaced or expired records) from a partition's log.

        Run by the one writer that won the compaction lock, when the log holds at least
        ``COMPACT_FLOOR`` entries and twice as many as were live at the last compaction. Entry
        ids never change (XDEL), so concurrent readers keep their offsets; bumping the epoch
        makes every client rebuild its mirror from the shorter log once.
        """
        log = log_key(namespace, partition)
        expected_partition = partition.encode()
        live = 0
        start = "-"
        pending_dead: list[bytes] = []
        while True:
            commands: list[Command] = []
            if pending_dead:
                commands.append(("XDEL", log, *pending_dead))
            commands.append(("XRANGE", log, start, "+", "COUNT", LOG_PAGE))
            replies = yield Round(commands)
            entries = stream_entries(replies[-1])
            if not entries:
                pending_dead = []
                break
            checks = yield Round(
                [
                    (
                        "HMGET",
                        vector_key(namespace, _text(fields.get("id", b""))),
                        "ver",
                        "partition",
                    )
                    for _, fields in entries
                ]
            )
            pending_dead = [
                entry_id
                for (entry_id, _), (version, part) in zip(entries, checks, strict=True)
                if version is None
                or bytes(version) != entry_id
                or part is None
                or bytes(part) != expected_partition
            ]
            live += len(entries) - len(pending_dead)
            if len(entries) < LOG_PAGE:
                break
            start = entry_id_of(seq_of(entries[-1][0]) + 1)
        if pending_dead:
            yield Round((("XDEL", log, *pending_dead),))
        yield from run_commands(
            [
                ScriptCall(
                    FINISH_COMPACTION,
                    [meta_key(namespace, partition), log, lock_key(namespace, partition)],
                    [max(COMPACT_FLOOR, 2 * live)],
                )
            ]
        )

    # -- atomic values (semcache_core.context_cache) ---------------------------------------
    # Values are plain keys on both search paths, so these need no Query Engine.
    def set_if_absent(self, namespace: str, key: str, value: bytes, ttl: float | None) -> Op[bool]:
        _check_value_key(key)
        ms = ttl_ms(ttl)
        expiry = ("PX", ms) if ms else ()
        reply = yield from one(("SET", value_key(namespace, key), value, "NX", *expiry))
        return reply is not None

    def compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl: float | None
    ) -> Op[bool]:
        _check_value_key(key)
        args = [b"" if expected is None else expected, int(expected is None), new, ttl_ms(ttl)]
        (reply,) = yield from run_commands(
            [ScriptCall(COMPARE_AND_SET, [value_key(namespace, key)], args)]
        )
        return int(reply) == 1

    def forget(self) -> None:
        """Drop all client-side state (mirrors, known indexes)."""
        with self._state, self.mirrors.lock:
            self.mirrors.drop_all()
            self._indexes.clear()


# -- helpers ---------------------------------------------------------------------------------


def _check_value_key(key: str) -> None:
    if is_reserved(key):
        raise SemcacheInputError(
            f"value key {key!r} uses a kind reserved by the Redis backend "
            f"({', '.join(sorted(RESERVED_KINDS))})"
        )


def _record_args(record: VectorRecord) -> list[Any]:
    tags = dict(record.tags)
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"vector tags must map str to str, got {name!r}: {value!r}")
    tokens = ",".join(sorted(tag_token(n, v) for n, v in tags.items()))
    return [
        record.id,
        np.asarray(record.vector, dtype="<f4").tobytes(),
        bytes(record.payload),
        json.dumps(tags, sort_keys=True, ensure_ascii=False),
        tokens,
    ]


def _apply(
    mirror: PartitionMirror, entries: Iterable[tuple[bytes, dict[str, Any]]], dim: int
) -> None:
    """Append log entries newer than the mirror's offset (callers hold the mirrors lock)."""
    seqs: list[int] = []
    ids: list[str] = []
    vectors: list[bytes] = []
    tags: list[Mapping[str, str]] = []
    last = seen = mirror.last_seq
    width = 4 * dim
    for entry_id, fields in entries:
        seq = seq_of(entry_id)
        if seq <= last:
            continue  # already mirrored (a concurrent catch-up)
        seen = max(seen, seq)
        raw = fields.get("vector")
        if raw is None or len(raw) != width or "id" not in fields:
            continue  # foreign or corrupt: skipped, never read again
        try:
            entry_tags = json.loads(fields.get("tags") or b"{}")
        except ValueError:
            continue
        seqs.append(seq)
        ids.append(_text(fields["id"]))
        vectors.append(bytes(raw))
        tags.append(entry_tags if isinstance(entry_tags, dict) else {})
    if seqs:
        matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(-1, dim)
        # Expiry is left to Redis (TTLs can be refreshed by other clients): every candidate
        # is verified against its hash, which Redis expires.
        mirror.append(seqs, ids, matrix, [None] * len(seqs), tags)
    mirror.last_seq = max(mirror.last_seq, seen)


def _search_results(reply: Any, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """FT.SEARCH replies (RESP2 list or RESP3 map) as ``[(entry id, fields)]``."""
    strip = len(vector_key(namespace, ""))
    results: list[tuple[str, dict[str, Any]]] = []
    if isinstance(reply, dict):
        for item in pairs(reply).get("results", ()):
            fields = pairs(item)
            doc = _text(fields.get("id", ""))
            results.append((doc[strip:], pairs(fields.get("extra_attributes", {}))))
    else:
        for i in range(1, len(reply) - 1, 2):
            results.append((_text(reply[i])[strip:], pairs(reply[i + 1])))
    return results


def _rank(
    results: list[tuple[str, dict[str, Any]]], query: Vector, k: int, max_distance: float
) -> list[VectorHit]:
    """Distances recomputed like the mirror does (float32 ``1 - v.q``): one decision rule."""
    width = 4 * int(query.shape[0])
    found = [
        (doc, bytes(fields["vector"]), bytes(fields["payload"]))
        for doc, fields in results
        if fields.get("payload") is not None
        and fields.get("vector") is not None
        and len(fields["vector"]) == width
    ]
    if not found:
        return []
    matrix = np.frombuffer(b"".join(v for _, v, _ in found), dtype="<f4").reshape(len(found), -1)
    distances = 1.0 - matrix @ query
    order = np.argsort(distances, kind="stable")
    hits = [
        VectorHit(found[i][0], max(0.0, float(distances[i])), found[i][2])
        for i in order
        if distances[i] <= max_distance
    ]
    return hits[:k]


def _schema_problems(info: Any, namespace: str) -> tuple[list[str], int | None]:
    """How an existing index differs from the one semcache creates; and its dimension."""
    fields = pairs(info)
    problems: list[str] = []
    definition = pairs(fields.get("index_definition", ()))
    key_type = _text(definition.get("key_type", "HASH")).upper()
    if key_type != "HASH":
        problems.append(f"indexes {key_type} instead of HASH")
    prefixes = [_text(p) for p in definition.get("prefixes", ()) or ()]
    if prefixes and prefixes != [vector_key(namespace, "")]:
        problems.append(f"prefixes {prefixes} instead of [{vector_key(namespace, '')!r}]")
    attributes: dict[str, dict[str, str]] = {}
    for attribute in fields.get("attributes", ()) or ():
        described = {key.lower(): value for key, value in pairs(attribute).items()}
        name = _text(described.get("attribute", described.get("identifier", "")))
        attributes[name] = {
            key: _text(value)
            for key, value in described.items()
            if not isinstance(value, (list, tuple, dict))
        }
    dim: int | None = None
    expected = {"ptag": "TAG", "ttag": "TAG", "vector": "VECTOR"}
    for name, kind in expected.items():
        found = attributes.get(name)
        if found is None:
            problems.append(f"no {kind} field {name!r}")
            continue
        if str(found.get("type", "")).upper() != kind:
            problems.append(f"field {name!r} is {found.get('type')} instead of {kind}")
        if kind == "TAG" and str(found.get("separator", ",")) != ",":
            problems.append(f"TAG field {name!r} uses separator {found.get('separator')!r}")
    vector = attributes.get("vector", {})
    metric = str(vector.get("distance_metric", "COSINE")).upper()
    if metric != "COSINE":
        problems.append(f"distance metric {metric} instead of COSINE")
    data_type = str(vector.get("data_type", "FLOAT32")).upper()
    if data_type != "FLOAT32":
        problems.append(f"vector type {data_type} instead of FLOAT32")
    if "dim" in vector:
        dim = int(vector["dim"])
    extra = sorted(set(attributes) - set(expected))
    if extra:
        problems.append(f"unexpected fields {extra}")
    return problems, dim


def _dimension_error(
    namespace: str, dim: int, stored: int, *, adding: bool
) -> VectorDimensionError:
    message = (
        f"vector has dimension {dim}, but the Redis index of namespace {namespace!r} holds "
        f"vectors of dimension {stored}; use one embedding model per namespace, clear it"
    )
    if adding:
        return IndexDimensionError(message + ", or pass recreate_index=True")
    return VectorDimensionError(message)
