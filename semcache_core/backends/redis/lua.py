"""Lua scripts (atomic multi-key writes) and how they are called: by SHA1, re-sent in full
when the server does not know them (so the server must allow ``EVAL``/``EVALSHA``, as Redis OSS,
Valkey and ElastiCache do)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis.exceptions import NoScriptError

from semcache_core import keys as keyspace
from semcache_core.backends.base import VectorRecord, VectorWrite
from semcache_core.backends.redis.commands import Command, Round, as_text, is_error, refused
from semcache_core.backends.redis.keys import (
    KeyLayout,
    check_ids,
    partition_token,
    tag_token,
)
from semcache_core.codecs import canonical_json
from semcache_core.flow import Flow

#: Records per EVAL of the write script (bounds the size of one command).
WRITE_CHUNK = 200
#: Lifetime of the lock that lets one client at a time compact a partition's log.
COMPACT_LOCK_MS = 60_000


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

# Writes vector records atomically: checks/sets the partition's dimension (one per partition
# on both paths: the mirrors need it, and on the Query Engine path it picks the partition's
# index; it lives as long as the log or, without one, the longest-lived entry), appends each record
# to its partition's log (XADD: the entry id is the record's version), replaces the record's
# hash with its TTL (Query Engine path: vector, payload, partition, tag tokens, for the index;
# log path: payload, partition, version only, the vector living in the log), keeps the log alive at
# least as long as its longest-lived entry, and elects one writer to compact an overgrown log.
# KEYS (one slot: the partition's): partition dim, log, meta, lock, hash...
# ARGV: dim, ttl_ms (0 = none), use_log, partition,
# partition token, compact floor, lock ms, the hash's vector field (Query Engine path: the
# one its index reads), then per record: id, vector, payload, tags json, tag tokens.
WRITE_VECTORS = Script(
    """
local ttl = tonumber(ARGV[2])
local use_log = ARGV[3] == '1'
local dim = redis.call('GET', KEYS[1])
if dim and not tonumber(dim) then dim = false end
if dim and dim ~= ARGV[1] then return {'dim', dim} end
if not dim then redis.call('SET', KEYS[1], ARGV[1]) end
local log_ttl = -1
if use_log then log_ttl = redis.call('PTTL', KEYS[2]) end
for i = 5, #KEYS do
  local b = 9 + (i - 5) * 5
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
    redis.call('HSET', KEYS[i], ARGV[8], ARGV[b + 1], 'payload', ARGV[b + 2],
      'partition', ARGV[4], 'ptag', ARGV[5], 'tags', ARGV[b + 3], 'ver', ver)
    if ARGV[b + 4] ~= '' then redis.call('HSET', KEYS[i], 'ttag', ARGV[b + 4]) end
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
if not use_log then
  -- No log: the partition's dimension lives at least as long as its longest-lived entry.
  local t = redis.call('PTTL', KEYS[1])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[1])
  elseif (t == -1 and not dim) or (t >= 0 and t < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return {'ok', 0, 0}
end
if ttl == 0 then
  redis.call('PERSIST', KEYS[2])
elseif log_ttl == -2 or (log_ttl >= 0 and log_ttl < ttl) then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local t = redis.call('PTTL', KEYS[2])
for _, k in ipairs({KEYS[3], KEYS[1]}) do
  if redis.call('EXISTS', k) == 1 then
    if t >= 0 then redis.call('PEXPIRE', k, t) else redis.call('PERSIST', k) end
  end
end
local len = redis.call('XLEN', KEYS[2])
local at = tonumber(redis.call('HGET', KEYS[3], 'compact_at') or ARGV[6])
if len >= at and redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[7]) then
  return {'ok', len, 1}
end
return {'ok', len, 0}
"""
)

# Resets the TTL of vector records and extends their partition log (and its meta hash and
# dimension) so the log outlives every live entry. KEYS: hashes of one partition tag (one
# slot).  ARGV: ttl_ms (0: remove the expiry, of the log too), log, meta and dimension key
# prefixes of that tag (the partition completes them: the same slot).
EXPIRE_VECTORS = Script(
    """
local ttl = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
    local part = redis.call('HGET', key, 'partition')
    if part then
      for _, k in ipairs({ARGV[2] .. part, ARGV[3] .. part, ARGV[4] .. part}) do
        local t = redis.call('PTTL', k)
        if ttl == 0 then
          if t >= 0 then redis.call('PERSIST', k) end
        elseif t >= 0 and t < ttl then
          redis.call('PEXPIRE', k, ttl)
        end
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


def run_commands(commands: Sequence[Command | ScriptCall]) -> Flow[list[Any]]:
    """Plain commands and script calls in one round trip (plus one if a script is unknown)."""
    if not commands:
        return []
    wire = [c.evalsha() if isinstance(c, ScriptCall) else c for c in commands]
    replies = list((yield Round(wire, tolerate=True)))
    unknown = [
        (i, command)
        for i, (command, reply) in enumerate(zip(commands, replies, strict=True))
        if isinstance(command, ScriptCall) and isinstance(reply, NoScriptError)
    ]
    if unknown:
        again = yield Round([command.eval() for _, command in unknown], tolerate=True)
        for (i, _), reply in zip(unknown, again, strict=True):
            replies[i] = reply
    for command, reply in zip(wire, replies, strict=True):
        if is_error(reply):
            raise refused(str(command[0]), reply)
    return replies


def _record_args(record: VectorRecord, vector_dtype: str) -> list[Any]:
    tags = dict(record.tags)  # checked by Operations.add_vectors
    tokens = ",".join(sorted(tag_token(n, v) for n, v in tags.items()))
    return [
        record.id,
        np.asarray(record.vector, dtype=vector_dtype).tobytes(),
        bytes(record.payload),
        canonical_json(tags),
        tokens,
    ]


def write_records(
    namespace: str,
    write: VectorWrite,
    layout: KeyLayout,
    *,
    use_log: bool,
    compact_floor: int = 0,
    vector_field: str = "vector",
    vector_dtype: str = "<f4",
) -> Flow[bool]:
    """Write ``records`` with :data:`WRITE_VECTORS`; True when this writer should compact.

    ``vector_field``/``vector_dtype``: the hash field and encoding of the vectors on the Query
    Engine path (its index's type); the log always holds float32."""
    if use_log and (vector_field, vector_dtype) != ("vector", "<f4"):
        raise ValueError("the vector log holds float32 vectors")
    partition, records, dim = write.partition, write.records, write.dim
    check_ids(partition, [record.id for record in records])
    # A new embedding model is a new partition and simply starts its own dimension, in the
    # same namespace: the log path checks the partition's in the script; the Query Engine
    # path has one index per dimension (query_engine.QueryEngineSearch._ensure_index).
    rows = [_record_args(record, vector_dtype) for record in records]
    keys = [
        layout.partition_dim_key(namespace, partition),
        layout.log_key(namespace, partition),
        layout.meta_key(namespace, partition),
        layout.lock_key(namespace, partition),
    ]
    calls: list[Command | ScriptCall] = []
    for start in range(0, len(records), WRITE_CHUNK):
        chunk = range(start, min(start + WRITE_CHUNK, len(records)))
        args: list[Any] = [
            dim,
            write.ttl_ms or 0,
            "1" if use_log else "0",
            partition,
            partition_token(partition),
            compact_floor,
            COMPACT_LOCK_MS,
            vector_field,
        ]
        for i in chunk:
            args.extend(rows[i])
        hashes = [layout.vector_key(namespace, records[i].id) for i in chunk]
        calls.append(ScriptCall(WRITE_VECTORS, [*keys, *hashes], args))
    replies = yield from run_commands(calls)
    compact = False
    for reply in replies:
        if as_text(reply[0]) == "dim":
            raise keyspace.dimension_error(namespace, dim, int(as_text(reply[1])))
        compact = compact or int(reply[2]) == 1
    return compact
