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

On a Redis Cluster the vector keys carry the hash tag ``{<ns>}`` (see :class:`KeyLayout`).

The kinds are :data:`semcache_core.keys.RESERVED_KINDS`; a vector record's key is
``value_key(ns, keys.vector_key(id))``, the same string as :func:`vector_key`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from semcache_core.keys import stable_hash

logger = logging.getLogger("semcache")

_LOW64 = (1 << 64) - 1
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def value_key(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"


def stats_key(namespace: str, name: str) -> str:
    return f"{namespace}:stats:{name}"


def index_name(namespace: str) -> str:
    return f"{namespace}:idx"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where the vector records of a namespace live: standalone, or on a Redis Cluster.

    On a cluster every key that one Lua script or one verification round touches must be in
    one hash slot: the write script reads and writes the namespace's dimension, the
    partition's log, meta and lock, and the records' hashes; a search reads the dimension and
    the log, then the hashes. So those keys carry the hash tag ``{<ns>}`` (a namespace has
    no braces), and Redis places them by the namespace alone::

        <ns>:vec:{<ns>}<id>   <ns>:vlog:{<ns>}<partition>   <ns>:vdim:{<ns>}   ...

    The tag cannot be per partition: a record is also addressed by its key alone
    (``get_many(ns, ["vec:<id>"])``, ``delete_many``, ``expire_many`` know no partition).
    Values, exact entries and counters (``<ns>:kv:...``, ``<ns>:llm:...``) carry no tag: they
    spread over every shard key by key.
    """

    cluster: bool

    def _tag(self, namespace: str) -> str:
        return f"{{{namespace}}}" if self.cluster else ""

    def vector_key(self, namespace: str, entry_id: str) -> str:
        return f"{namespace}:vec:{self._tag(namespace)}{entry_id}"

    def log_key(self, namespace: str, partition: str) -> str:
        return f"{namespace}:vlog:{self._tag(namespace)}{partition}"

    def meta_key(self, namespace: str, partition: str) -> str:
        return f"{namespace}:vmeta:{self._tag(namespace)}{partition}"

    def lock_key(self, namespace: str, partition: str) -> str:
        return f"{namespace}:vlock:{self._tag(namespace)}{partition}"

    def dim_key(self, namespace: str, partition: str | None = None) -> str:
        """The namespace's dimension (Query Engine index) or, given ``partition``, the
        partition's (log-mirror path: a new embedding model is a new partition)."""
        if partition is not None:
            return f"{namespace}:vdim:{self._tag(namespace)}{partition}"
        return f"{namespace}:vdim" + (f":{self._tag(namespace)}" if self.cluster else "")


STANDALONE = KeyLayout(cluster=False)
CLUSTER = KeyLayout(cluster=True)

# The standalone layout as functions (benchmarks and profiles name keys with them).
vector_key = STANDALONE.vector_key
log_key = STANDALONE.log_key
meta_key = STANDALONE.meta_key
lock_key = STANDALONE.lock_key
dim_key = STANDALONE.dim_key


def dimension_of(marker: object) -> int | None:
    """A stored dimension marker as an int; ``None`` (with a warning) when it is garbage."""
    if marker is None:
        return None
    text = marker.decode("ascii", "replace") if isinstance(marker, bytes) else str(marker)
    if text.isdigit() and 0 < int(text) <= 65536:
        return int(text)
    logger.warning("semcache: ignoring a malformed Redis dimension marker %r", text[:40])
    return None


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
