"""The Redis key layout (``SCAN`` shows it as is; ``<ns>`` cannot contain ``:``)::

    <ns>:kv:<user key>       values of ByteStore / KV adapters (SET ... PX ttl)
    <ns>:llm:<hash>          exact LLM entries
    <ns>:vec:<id>            semantic entries: HASH of vector, payload, partition, tags, version
    <ns>:vlog:<partition>    log-mirror path only: STREAM of the partition's writes
    <ns>:vmeta:<partition>   log-mirror path only: compaction threshold and epoch
    <ns>:vlock:<partition>   log-mirror path only: compaction lock (expires)
    <ns>:vdim                Query Engine path: dimension of the namespace's index
    <ns>:vdim:<partition>    log-mirror path: dimension of the partition's vectors (a new
                             embedding model is a new partition and starts its own)
    <ns>:stats:<name>        persisted counters (HASH, HINCRBYFLOAT)
    <ns>:idx                 Query Engine path only: the index name (not a key)

The kinds are :data:`semcache_core.keys.RESERVED_KINDS`; a vector record's key is
``value_key(ns, keys.vector_key(id))``, the same string as :func:`vector_key`.
"""

from __future__ import annotations

import logging
import re

from semcache_core.keys import stable_hash

logger = logging.getLogger("semcache")

_LOW64 = (1 << 64) - 1
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


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


def dim_key(namespace: str, partition: str | None = None) -> str:
    return f"{namespace}:vdim" if partition is None else f"{namespace}:vdim:{partition}"


def dimension_of(marker: object) -> int | None:
    """A stored dimension marker as an int; ``None`` (with a warning) when it is garbage."""
    if marker is None:
        return None
    text = marker.decode("ascii", "replace") if isinstance(marker, bytes) else str(marker)
    if text.isdigit() and 0 < int(text) <= 65536:
        return int(text)
    logger.warning("semcache: ignoring a malformed Redis dimension marker %r", text[:40])
    return None


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


# -- stream ids <-> mirror sequence numbers ----------------------------------------------------


def seq_of(entry_id: bytes | str) -> int:
    """A stream entry id ``<ms>-<n>`` as one int, ordered like the ids."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return (int(ms) << 64) | int(n)


def entry_id_of(seq: int) -> str:
    return f"{seq >> 64}-{seq & _LOW64}"
