"""The Redis key layout (``SCAN`` shows it as is; ``<ns>`` cannot contain ``:`` or braces)::

    <ns>:kv:<user key>              values of ByteStore / KV adapters (SET ... PX ttl)
    <ns>:llm:<hash>                 exact LLM entries
    <ns>:vec:{<ns>:<tag>}<hash>     semantic entry ``<tag>.<hash>``: HASH of vector, payload,
                                    partition, tags, version
    <ns>:vlog:{<ns>:<tag>}<part>    log-mirror path only: STREAM of the partition's writes
    <ns>:vmeta:{<ns>:<tag>}<part>   log-mirror path only: compaction threshold and epoch
    <ns>:vlock:{<ns>:<tag>}<part>   log-mirror path only: compaction lock (expires)
    <ns>:vdim:{<ns>:<tag>}<part>    dimension of the partition's vectors
    <ns>:vsnap:{<ns>:<tag>}<part>   log-mirror path only: a snapshot of a large partition's mirror
    <ns>:vdim                       Query Engine path only: dimension of the index <ns>:idx
    <ns>:stats:<name>               persisted counters (HASH, HINCRBYFLOAT)
    <ns>:idx                        Query Engine path only: the index of <ns>:vdim vectors
    <ns>:idx:d<dim>                 Query Engine path only: the index of <dim> vectors, each
                                    other dimension (index names, not keys)

``<tag>`` is the partition's tag (:func:`semcache_core.keys.partition_tag`), which a semantic
entry id carries (:func:`semcache_core.keys.semantic_entry_id`); ids and partitions without a
tag use ``{<ns>}`` instead of ``{<ns>:<tag>}``. The same layout serves plain Redis and Redis
Cluster (see :class:`KeyLayout`).

The kinds are :data:`semcache_core.keys.RESERVED_KINDS`; a vector record's key is
computed from ``keys.vector_key(id)`` by :func:`vector_key`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from semcache_core import keys as keyspace
from semcache_core.keys import stable_hash

logger = logging.getLogger("semcache")

_LOW64 = (1 << 64) - 1
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def value_key(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"


def stats_key(namespace: str, name: str) -> str:
    return f"{namespace}:stats:{name}"


def index_name(namespace: str, dim: int | None = None) -> str:
    """The Query Engine index of ``namespace``'s first dimension (``dim=None``), or the one
    of vectors of ``dim`` when the first dimension is another (a switched embedding model)."""
    return f"{namespace}:idx" if dim is None else f"{namespace}:idx:d{dim}"


def is_index_of(namespace: str, name: str) -> bool:
    """Whether ``name`` is one of ``namespace``'s Query Engine indexes."""
    return (
        name == index_name(namespace)
        or re.fullmatch(re.escape(index_name(namespace)) + r":d[0-9]+", name) is not None
    )


def slot_tag(namespace: str, tag: str | None) -> str:
    """The hash tag of a partition's keys: ``{<ns>:<tag>}``, or ``{<ns>}`` without a tag."""
    return f"{{{namespace}}}" if tag is None else f"{{{namespace}:{tag}}}"


def partition_prefix(kind: str, namespace: str, tag: str | None) -> str:
    """What precedes the partition in the ``kind`` key of a partition tagged ``tag``."""
    return f"{namespace}:{kind}:{slot_tag(namespace, tag)}"


def _partition_keys(kind: str, namespace: str, partition: str) -> str:
    return partition_prefix(kind, namespace, keyspace.partition_tag(partition)) + partition


def vector_key(namespace: str, entry_id: str) -> str:
    """The key of the record ``entry_id``: in its partition's slot, found from the id alone."""
    tag, rest = keyspace.split_entry_id(entry_id)
    return f"{namespace}:vec:{slot_tag(namespace, tag)}{rest}"


def vector_prefix(namespace: str) -> str:
    """The prefix of every record key of ``namespace``: the Query Engine index's prefix (it
    also covers the untagged ``<ns>:vec:<id>`` keys of earlier versions, so their indexes
    stay valid; :func:`record_id` skips those keys' search hits)."""
    return f"{namespace}:vec:"


def record_id(namespace: str, key: str) -> str | None:
    """The id of the record named ``key`` (the inverse of :func:`vector_key`); ``None`` for a
    key of another form (such as the untagged ``<ns>:vec:<id>`` of semcache < the slot tags)."""
    prefix = f"{namespace}:vec:{{{namespace}"
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if rest.startswith("}"):
        return rest[1:]
    tag, close, entry = rest[1:].partition("}") if rest.startswith(":") else ("", "", "")
    if not close or not entry or keyspace.split_entry_id(f"{tag}.{entry}")[0] != tag:
        return None
    return f"{tag}{keyspace.ENTRY_ID_SEPARATOR}{entry}"


def log_key(namespace: str, partition: str) -> str:
    return _partition_keys("vlog", namespace, partition)


def meta_key(namespace: str, partition: str) -> str:
    return _partition_keys("vmeta", namespace, partition)


def lock_key(namespace: str, partition: str) -> str:
    return _partition_keys("vlock", namespace, partition)


def partition_dim_key(namespace: str, partition: str) -> str:
    return _partition_keys("vdim", namespace, partition)


def snapshot_key(namespace: str, partition: str) -> str:
    return _partition_keys("vsnap", namespace, partition)


def dimension_of(marker: object) -> int | None:
    """A stored dimension marker as an int; ``None`` (with a warning) when it is garbage."""
    if marker is None:
        return None
    text = marker.decode("ascii", "replace") if isinstance(marker, bytes) else str(marker)
    if text.isdigit() and 0 < int(text) <= 65536:
        return int(text)
    logger.warning("semcache: ignoring a malformed Redis dimension marker %r", text[:40])
    return None


def dim_key(namespace: str) -> str:
    return f"{namespace}:vdim"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where the vector records of a namespace live: one layout on plain Redis and on a
    Redis Cluster (``cluster`` only decides how batches and scans are sent).

    On a cluster every key that one Lua script touches must be in one hash slot. The write
    script reads and writes the partition's dimension, log, meta and lock, and the records'
    hashes; so those keys carry the hash tag ``{<ns>:<tag>}`` of their partition, and Redis
    places each partition by the namespace and partition: one namespace's semantic data
    spreads over the shards partition by partition::

        <ns>:vec:{<ns>:<tag>}<hash>   <ns>:vlog:{<ns>:<tag>}<partition>   ...

    A record is also addressed by its key alone (``get_many(ns, ["vec:<id>"])``,
    ``delete_many``, ``expire_many`` know no partition): that works because the id carries
    the tag (``<tag>.<hash>``, :func:`semcache_core.keys.semantic_entry_id`). Ids and
    partitions of another form (no tag) share ``{<ns>}``; a write whose ids do not carry
    their partition's tag is refused (:func:`check_ids`), as it would cross slots.

    The namespace's first dimension (``<ns>:vdim``, the one of the index ``<ns>:idx``)
    cannot be in every partition's slot: it is claimed outside the script when that index is
    created (``SET NX``, then ``GET``; other dimensions get ``<ns>:idx:d<dim>``); the script
    checks each partition's own dimension atomically with its writes, on both paths. Values, exact entries and counters (``<ns>:kv:...``,
    ``<ns>:llm:...``) carry no tag: they spread over every shard key by key.
    """

    cluster: bool

    def vector_key(self, namespace: str, entry_id: str) -> str:
        return vector_key(namespace, entry_id)

    def log_key(self, namespace: str, partition: str) -> str:
        return log_key(namespace, partition)

    def meta_key(self, namespace: str, partition: str) -> str:
        return meta_key(namespace, partition)

    def lock_key(self, namespace: str, partition: str) -> str:
        return lock_key(namespace, partition)

    def partition_dim_key(self, namespace: str, partition: str) -> str:
        return partition_dim_key(namespace, partition)

    def snapshot_key(self, namespace: str, partition: str) -> str:
        return snapshot_key(namespace, partition)

    def dim_key(self, namespace: str) -> str:
        return dim_key(namespace)


STANDALONE = KeyLayout(cluster=False)
CLUSTER = KeyLayout(cluster=True)


def check_ids(partition: str, ids: list[str]) -> None:
    """Refuse records whose ids do not carry ``partition``'s tag: their hashes would be in
    another slot than the partition's log (a cross-slot script on a cluster)."""
    tag = keyspace.partition_tag(partition)
    wrong = [i for i in ids if keyspace.split_entry_id(i)[0] != tag]
    if wrong:
        from semcache_core.errors import SemcacheInputError

        shown = ", ".join(repr(i) for i in wrong[:3])
        raise SemcacheInputError(
            f"on Redis a vector record of partition {partition!r} needs an id "
            + (f"'{tag}.<rest>'" if tag else "without a '<16 hex digits>.' prefix")
            + f" (semcache_core.keys.semantic_entry_id makes such ids); got {shown}"
        )


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
