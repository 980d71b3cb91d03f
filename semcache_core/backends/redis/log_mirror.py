"""Semantic search on plain Redis: a per-client numpy mirror fed by a per-partition log.

Redis stays the source of truth. The write script (:mod:`~semcache_core.backends.redis.lua`)
writes each record atomically: ``XADD`` to the partition's log stream
``<ns>:vlog:{<ns>:<tag>}<partition>`` (id, vector, tags), then the record's hash with the log entry id as its version, and its TTL.
Each client keeps a numpy mirror of the partitions it searches (:mod:`semcache_core.mirror`)
and, in the same round trip that checks the dimension, reads only the log entries after its
offset (the last entry id it has). Candidates are verified with one ``HMGET`` round trip
(:func:`~semcache_core.mirror.verified_search`): the hash must exist (Redis expires it), carry
the same version and the same partition; deleted, replaced and expired entries are never
served.

*Compaction:* the write script elects one writer (a lock key with a 60 s expiry) when a log
holds at least :data:`COMPACT_FLOOR` entries and twice its live count at the last compaction;
that writer ``XDEL``\\s the entries whose hash is gone or has another version, then bumps the
log's epoch so every client rebuilds its mirror from the shorter log once. Entry ids never
change, so readers keep their offsets. A log (and its meta hash) carries the TTL of its
longest-lived entry, so the logs of abandoned partitions expire with their entries. A log,
its meta, lock and dimension keys and its records' hashes share the partition's hash slot
(:class:`~semcache_core.backends.redis.keys.KeyLayout`), so the scripts run on one shard.

*Memory bound:* at most ``max_mirror_rows`` rows per client (see the backend's docstring).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from semcache_core import keys as keyspace
from semcache_core.backends.base import VectorHit, VectorSearch, VectorWrite
from semcache_core.backends.redis.commands import (
    Command,
    Round,
    as_text,
    one,
    stream_entries,
)
from semcache_core.backends.redis.keys import KeyLayout, dimension_of, entry_id_of, seq_of
from semcache_core.backends.redis.lua import (
    FINISH_COMPACTION,
    ScriptCall,
    run_commands,
    write_records,
)
from semcache_core.backends.redis.strategy import VectorStrategy
from semcache_core.codecs import loads_untrusted
from semcache_core.errors import BackendError
from semcache_core.flow import Flow
from semcache_core.mirror import Candidate, MirrorSet, PartitionMirror, verified_search

logger = logging.getLogger("semcache")

#: Log entries read per round trip when a mirror catches up or the log is compacted.
LOG_PAGE = 1000
#: A partition log is not compacted before it holds this many entries.
COMPACT_FLOOR = 1024


class LogMirrorSearch(VectorStrategy):
    """Vector records mirrored from their partition logs and searched in the client."""

    def __init__(self, mirrors: MirrorSet) -> None:
        self.mirrors = mirrors
        self.max_mirror_rows = mirrors.max_rows
        # The log epoch each mirror was built at (a compaction bumps it: the mirror rebuilds).
        self._epochs: weakref.WeakKeyDictionary[PartitionMirror, int] = weakref.WeakKeyDictionary()

    def add(self, namespace: str, write: VectorWrite, layout: KeyLayout) -> Flow[None]:
        partition = write.partition
        compact = yield from write_records(
            namespace, write, layout, use_log=True, compact_floor=COMPACT_FLOOR
        )
        if compact:
            try:
                yield from self._compact_log(namespace, partition, layout)
            except BackendError as exc:
                # The records are written; the lock expires and a later write compacts.
                logger.debug(
                    "semcache: compacting %s failed: %s", layout.log_key(namespace, partition), exc
                )

    def search(
        self, namespace: str, search: VectorSearch, layout: KeyLayout
    ) -> Flow[list[VectorHit]]:
        partition, vector, k = search.partition, search.vector, search.k
        max_distance, tags = search.max_distance, search.tags
        mirror = yield from self._catch_up(namespace, partition, int(vector.shape[0]), layout)
        if mirror is None:
            return []

        def verify(candidates: list[Candidate]) -> Flow[list[bytes | None]]:
            # The record must exist (Redis expires it) and be the very version the mirror
            # matched (same log entry, same partition).
            replies = yield Round(
                [
                    ("HMGET", layout.vector_key(namespace, c.id), "ver", "partition", "payload")
                    for c in candidates
                ]
            )
            expected = partition.encode()
            return [
                bytes(payload)
                if payload is not None
                and version is not None
                and bytes(version) == entry_id_of(c.seq).encode()
                and part is not None
                and bytes(part) == expected
                else None
                for c, (version, part, payload) in zip(candidates, replies, strict=True)
            ]

        return (
            yield from verified_search(self.mirrors, mirror, vector, k, max_distance, tags, verify)
        )

    def drop_namespace(self, namespace: str) -> None:
        with self.mirrors.lock:
            self.mirrors.drop_namespace(namespace)

    def forget(self) -> None:
        with self.mirrors.lock:
            self.mirrors.drop_all()

    def _catch_up(
        self, namespace: str, partition: str, dim: int, layout: KeyLayout
    ) -> Flow[PartitionMirror | None]:
        """This client's mirror of ``partition``, updated with the log entries it lacks.

        One round trip in the common case: the partition's dimension, the log's epoch and
        length, and the entries after the mirror's offset come back together (one slot).
        """
        log = layout.log_key(namespace, partition)
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
                    ("GET", layout.partition_dim_key(namespace, partition)),
                    ("HGET", layout.meta_key(namespace, partition), "epoch"),
                    ("XLEN", log),
                    page,
                )
            )
            if stored_dim is None:
                with self.mirrors.lock:
                    self.mirrors.drop(namespace, partition)
                return None  # no vector is stored in this partition (or it was cleared)
            marked = dimension_of(stored_dim)  # garbage: ignored (the next write replaces it)
            if marked is not None and marked != dim:
                raise keyspace.dimension_error(namespace, dim, marked)
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
    ) -> Flow[list[tuple[bytes, dict[str, Any]]]]:
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

    def _compact_log(self, namespace: str, partition: str, layout: KeyLayout) -> Flow[None]:
        """Drop dead entries (deleted, replaced or expired records) from a partition's log.

        Run by the one writer that won the compaction lock, when the log holds at least
        ``COMPACT_FLOOR`` entries and twice as many as were live at the last compaction. Entry
        ids never change (XDEL), so concurrent readers keep their offsets; bumping the epoch
        makes every client rebuild its mirror from the shorter log once.
        """
        log = layout.log_key(namespace, partition)
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
                        layout.vector_key(namespace, as_text(fields.get("id", b""))),
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
                    [
                        layout.meta_key(namespace, partition),
                        log,
                        layout.lock_key(namespace, partition),
                    ],
                    [max(COMPACT_FLOOR, 2 * live)],
                )
            ]
        )


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
            entry_tags = loads_untrusted(fields.get("tags") or b"{}")
        except ValueError:
            continue
        if not isinstance(entry_tags, dict) or not all(
            isinstance(v, str) for v in entry_tags.values()
        ):
            continue
        seqs.append(seq)
        ids.append(as_text(fields["id"]))
        vectors.append(bytes(raw))
        tags.append(entry_tags if isinstance(entry_tags, dict) else {})
    if seqs:
        matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(-1, dim)
        # Expiry is left to Redis (TTLs can be refreshed by other clients): every candidate
        # is verified against its hash, which Redis expires.
        mirror.append(seqs, ids, matrix, [None] * len(seqs), tags)
    mirror.last_seq = max(mirror.last_seq, seen)
