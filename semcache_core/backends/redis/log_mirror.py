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

*Snapshots:* rebuilding a mirror reads the whole log (100k entries: 100 pages of stream
entries, parsed one by one). A client that built the complete mirror of a partition of at
least :data:`SNAPSHOT_MIN_ROWS` entries stores its live rows as one compact blob,
``<ns>:vsnap:{<ns>:<tag>}<partition>``, and rewrites it when a quarter more rows arrived
since. It is a hash: the header (field ``h``, written last: format, dimension, row count,
the log's epoch, the last sequence number covered, the snapshot's random id), ids (``i``, one
per line), tags (``m``), sequence numbers (``q``), the rows' sign sketches with the
fingerprint of their hyperplanes (``s``) and chunks of :data:`SNAPSHOT_CHUNK_ROWS` vectors
(``0``, ``1``...); every part starts with the snapshot's id, so a reader never mixes two
snapshots, and no reply is large enough to outlast the socket timeout. A new client reads
the header with its first catch-up round and ``i``, ``m``, ``q`` and ``s`` in the next one
(~10 MB at 100k rows), catches up from the log after the snapshot's last sequence number,
as any mirror does, and searches at once: the vectors of the rows the sketches cannot rule
out are read from the log (one ``XRANGE`` each, one round trip) and scored exactly, while
the backend reads the vector chunks in the background (:meth:`LogMirrorSearch._load_vectors`,
each chunk applied under the mirrors lock). Without usable sketches (other hyperplanes, or a
snapshot of format 1: chunks of sequence numbers and vectors, ids in ``m``) the vectors are
read at once, and a format-1 snapshot is rewritten in the current format. The snapshot only
saves reading the log: it is used only at the log's current epoch (a compaction makes it
stale) and when it fits the client's row budget, and it is untrusted like every stored byte
(any inconsistency: ignored, the log is read; a damaged vector chunk: those rows keep being
read from the log). Its rows are proposals like the log's: every candidate is still verified
against its record, so a snapshot that lags deletions or replacements never serves them. It
costs about one more vector per entry of Redis memory, for large partitions only.

*Memory bound:* at most ``max_mirror_rows`` rows per client (see the backend's docstring).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from semcache_core import keys as keyspace
from semcache_core import sketch
from semcache_core.backends.base import VectorHit, VectorSearch, VectorWrite
from semcache_core.backends.redis.commands import (
    Command,
    Round,
    as_text,
    is_error,
    one,
    refused,
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
from semcache_core.mirror import (
    EXTRA_CANDIDATES,
    Candidate,
    MirrorSet,
    PartitionMirror,
    verified_search,
)

logger = logging.getLogger("semcache")

#: Log entries read per round trip when a mirror catches up or the log is compacted.
LOG_PAGE = 1000
#: A partition log is not compacted before it holds this many entries.
COMPACT_FLOOR = 1024
#: Mirrors of at least this many rows are snapshotted (smaller ones rebuild fast enough).
SNAPSHOT_MIN_ROWS = 5000
#: A snapshot is rewritten once this share of its rows arrived after it.
SNAPSHOT_REFRESH = 0.25
#: Rows per snapshot chunk (a hash field of ~12 MB at dimension 384).
SNAPSHOT_CHUNK_ROWS = 8192
#: Snapshot header: magic, format version, dimension, row count, rows per chunk, log epoch,
#: the high and low 64 bits of the last sequence number covered, the snapshot's random id.
SNAPSHOT_HEADER = struct.Struct("<4sIIIIQQQQ")
SNAPSHOT_MAGIC = b"SCMS"
#: 2: seqs (``q``) and sketches (``s``) in parts of their own, chunks of vectors only;
#: 1 (still read): chunks of seqs and vectors, no sketches.
SNAPSHOT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: At most this many rows without their vector are read from the log for one search of a
#: mirror loaded from a snapshot's sketches; more (a very wide threshold): every vector is
#: read first.
FILL_LIMIT = 512
_SNAPSHOT_ID = struct.Struct("<Q")
_LOW64 = (1 << 64) - 1
#: The tags of the (many) rows without tags, shared and read-only.
_NO_TAGS: Mapping[str, str] = MappingProxyType({})


class LogMirrorSearch(VectorStrategy):
    """Vector records mirrored from their partition logs and searched in the client.

    ``background`` runs a flow outside the caller's lookup (the backend: a daemon thread with
    its sync client); without it the vectors a snapshot's sketches stand for are only read
    when searches need them."""

    def __init__(
        self, mirrors: MirrorSet, background: Callable[[Flow[object]], None] | None = None
    ) -> None:
        self.mirrors = mirrors
        self._background = background
        # Mirrors adopted from a snapshot by their sketches, whose vectors are still to be
        # read from it; the value says whether a background load was started.
        self._pending: weakref.WeakKeyDictionary[PartitionMirror, _PendingVectors] = (
            weakref.WeakKeyDictionary()
        )
        self.max_mirror_rows = mirrors.max_rows
        # The log epoch each mirror was built at (a compaction bumps it: the mirror rebuilds).
        self._epochs: weakref.WeakKeyDictionary[PartitionMirror, int] = weakref.WeakKeyDictionary()
        # Complete mirrors (every live entry of the log, none left out by the row budget):
        # the row count of the snapshot they were loaded from or last wrote (0: none yet).
        self._snapshotted: weakref.WeakKeyDictionary[PartitionMirror, int] = (
            weakref.WeakKeyDictionary()
        )

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
        dim = int(vector.shape[0])

        def verify(candidates: list[Candidate]) -> Flow[list[bytes | None]]:
            replies = yield Round([_check_command(layout, namespace, c) for c in candidates])
            return _verified(candidates, replies, partition)

        with self.mirrors.lock:
            known = self.mirrors.peek(namespace, partition)
            ready = known is not None and known.dim == dim and known in self._epochs
            partial = known is not None and not known.vectors_complete
        if ready and not partial:
            hits = yield from self._search_then_catch_up(namespace, search, layout, verify)
            if hits is not None:
                return hits
        for _attempt in range(2):
            mirror = yield from self._catch_up(namespace, partition, dim, layout)
            if mirror is None:
                return []
            if (yield from self._fill(namespace, partition, mirror, search, layout)):
                break
        else:
            return []  # the snapshot kept changing under this client: a miss, safe
        hits = yield from verified_search(
            self.mirrors, mirror, vector, k, max_distance, tags, verify
        )
        self._load_in_background(namespace, partition, mirror)
        return hits

    def _fill(
        self,
        namespace: str,
        partition: str,
        mirror: PartitionMirror,
        search: VectorSearch,
        layout: KeyLayout,
    ) -> Flow[bool]:
        """Read, from the log, the vectors of the rows a search of ``mirror`` would score
        but that it only knows by their sketches (one round trip; every vector of the
        snapshot instead when there are more than :data:`FILL_LIMIT`). ``False``: they could
        not be read (the snapshot was replaced meanwhile); the mirror was dropped."""
        dim = mirror.dim
        with self.mirrors.lock:
            rows = mirror.missing(search.vector, search.max_distance)
            if rows is None:
                return True
            keys = mirror.keys_of(rows.tolist()) if len(rows) <= FILL_LIMIT else None
        if keys is None:
            if (yield from self._load_vectors(namespace, partition, mirror)):
                return True
            with self.mirrors.lock:
                if self.mirrors.peek(namespace, partition) is mirror:
                    self.mirrors.drop(namespace, partition)
            return False
        log = layout.log_key(namespace, partition)
        replies = yield Round(
            [("XRANGE", log, entry_id_of(seq), entry_id_of(seq)) for seq, _ in keys]
        )
        filled: list[int] = []
        gone: list[int] = []
        vectors: list[bytes] = []
        for row, (seq, entry_id), reply in zip(rows.tolist(), keys, replies, strict=True):
            entries = stream_entries(reply)
            fields = entries[0][1] if len(entries) == 1 and seq_of(entries[0][0]) == seq else {}
            raw = fields.get("vector")
            if raw is None or len(raw) != 4 * dim or as_text(fields.get("id", b"")) != entry_id:
                gone.append(row)  # compaction removed it: that version is gone (or foreign)
                continue
            filled.append(row)
            vectors.append(bytes(raw))
        with self.mirrors.lock:
            mirror.forget_rows(gone)
            if filled:
                mirror.fill(filled, np.frombuffer(b"".join(vectors), dtype="<f4").reshape(-1, dim))
        return True

    def _load_in_background(self, namespace: str, partition: str, mirror: PartitionMirror) -> None:
        """Start reading the vectors of a mirror adopted by its sketches, off the lookup."""
        with self.mirrors.lock:
            pending = self._pending.get(mirror)
            if pending is None or pending.started or self._background is None:
                return
            pending.started = True
        self._background(self._load_vectors(namespace, partition, mirror, background=True))

    def _load_vectors(
        self, namespace: str, partition: str, mirror: PartitionMirror, *, background: bool = False
    ) -> Flow[bool]:
        """Read the vector chunks of the snapshot ``mirror`` was adopted from, one per round
        trip, each applied under the lock as it arrives; ``True`` once every row has its
        vector. A chunk of another snapshot (rewritten meanwhile) or a failed round stops it:
        the mirror goes on reading candidates' vectors from the log."""
        with self.mirrors.lock:
            pending = self._pending.get(mirror)
            if pending is None:
                return mirror.vectors_complete
        header = pending.header
        try:
            for index in range(header.chunks):
                with self.mirrors.lock:
                    if mirror.vectors_complete:
                        break
                    if self.mirrors.peek(namespace, partition) is not mirror:
                        return False  # dropped (budget, compaction, clear): nobody needs it
                (raw,) = yield Round((("HGET", pending.key, str(index)),), tolerate=True)
                block = _snapshot_vectors(raw, header, index, mirror.dim)
                if block is None:
                    return False
                with self.mirrors.lock:
                    mirror.fill_range(index * header.chunk_rows, block)
        except BackendError as exc:
            logger.debug("semcache: reading the snapshot %s failed: %s", pending.key, exc)
            return False
        except Exception:  # never take the application down from a background thread
            if not background:
                raise
            logger.exception("semcache: reading the snapshot %s failed", pending.key)
            return False
        with self.mirrors.lock:
            self._pending.pop(mirror, None)
            return mirror.vectors_complete

    def _search_then_catch_up(
        self,
        namespace: str,
        search: VectorSearch,
        layout: KeyLayout,
        verify: Callable[[list[Candidate]], Flow[list[bytes | None]]],
    ) -> Flow[list[VectorHit] | None]:
        """The steady state in one round trip: search the mirror as it is, then verify its
        candidates *and* catch up with the log in the same round. Nothing new in the log: the
        verified candidates are the answer. New entries: they are applied and the mirror,
        now current, is searched again (verified in one more round). ``None``: the standard
        path must run (the log was compacted, or verification needs another search)."""
        partition, vector, k = search.partition, search.vector, search.k
        dim = int(vector.shape[0])
        wanted = k + EXTRA_CANDIDATES
        with self.mirrors.lock:
            mirror = self.mirrors.get(namespace, partition, dim)
            epoch = self._epochs.get(mirror)
            start = mirror.last_seq
            candidates = mirror.search(
                vector, k=wanted, max_distance=search.max_distance, now=time.time(),
                tags=search.tags,
            )  # fmt: skip
        if epoch is None:
            return None
        log = layout.log_key(namespace, partition)
        commands: list[Command] = [
            ("GET", layout.partition_dim_key(namespace, partition)),
            ("HGET", layout.meta_key(namespace, partition), "epoch"),
            ("XRANGE", log, entry_id_of(start + 1) if start else "-", "+", "COUNT", LOG_PAGE),
            *(_check_command(layout, namespace, c) for c in candidates),
        ]
        stored_dim, server_epoch, entries, *checks = yield Round(commands)
        if stored_dim is None:
            with self.mirrors.lock:
                self.mirrors.drop(namespace, partition)
            return []  # no vector is stored in this partition (or it was cleared)
        marked = dimension_of(stored_dim)
        if marked is not None and marked != dim:
            raise keyspace.dimension_error(namespace, dim, marked)
        if int(server_epoch or 0) != epoch:
            with self.mirrors.lock:  # compacted: the standard path rebuilds the mirror
                self.mirrors.drop(namespace, partition)
            return None
        batch = stream_entries(entries)
        if batch:  # written meanwhile: the candidates may not be the nearest any more
            current = yield from self._apply_pages(namespace, partition, mirror, log, batch, dim)
            if current is None:
                return None
            yield from self._maybe_snapshot(
                mirror, log, layout.snapshot_key(namespace, partition), epoch
            )
            return (
                yield from verified_search(
                    self.mirrors, mirror, vector, k, search.max_distance, search.tags, verify
                )
            )
        hits: list[VectorHit] = []
        stale = False
        for candidate, payload in zip(
            candidates, _verified(candidates, checks, partition), strict=True
        ):
            if payload is None:
                with self.mirrors.lock:
                    mirror.discard_seq(candidate.seq, candidate.id)
                stale = True
                continue
            hits.append(VectorHit(candidate.id, candidate.distance, payload))
            if len(hits) == k:
                return hits
        if stale and len(candidates) == wanted:
            return None  # stale rows may have crowded out live ones: search again
        return hits

    def _apply_pages(
        self,
        namespace: str,
        partition: str,
        mirror: PartitionMirror,
        log: str,
        batch: list[tuple[bytes, dict[str, Any]]],
        dim: int,
    ) -> Flow[PartitionMirror | None]:
        """Apply ``batch`` and the log pages after it; ``None`` when the mirror outgrew its
        row budget (dropped: the next search rebuilds it from the newest entries)."""
        while True:
            with self.mirrors.lock:
                _apply(mirror, batch, dim)
            if len(batch) < LOG_PAGE:
                break
            after = entry_id_of(seq_of(batch[-1][0]) + 1)
            batch = stream_entries((yield from one(("XRANGE", log, after, "+", "COUNT", LOG_PAGE))))
        with self.mirrors.lock:
            if mirror.size > self.max_mirror_rows:
                self.mirrors.drop(namespace, partition)
                return None
            self.mirrors.enforce_bound()
        return mirror

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
        snapshot = layout.snapshot_key(namespace, partition)
        cap = self.max_mirror_rows
        while True:
            with self.mirrors.lock:
                mirror = self.mirrors.get(namespace, partition, dim)
                start = mirror.last_seq
                epoch = self._epochs.get(mirror)
            fresh = epoch is None
            page = (
                ("HGET", snapshot, "h")
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
            # Tolerant: a snapshot key of another type (planted, or another program's) is
            # no snapshot; the other replies must not be errors.
            stored_dim, server_epoch, length, entries = yield Round(
                (
                    ("GET", layout.partition_dim_key(namespace, partition)),
                    ("HGET", layout.meta_key(namespace, partition), "epoch"),
                    ("XLEN", log),
                    page,
                ),
                tolerate=True,
            )
            for what, reply in (("GET", stored_dim), ("HGET", server_epoch), ("XLEN", length)):
                if is_error(reply):
                    raise refused(what, reply)
            if is_error(entries):
                if not fresh:
                    raise refused("XRANGE", entries)
                entries = None
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
                header = _snapshot_header(entries, dim, current_epoch, cap)
                if header is not None and (
                    yield from self._read_snapshot(mirror, snapshot, header, current_epoch)
                ):
                    continue  # catch up from the log after the snapshot
                newest = stream_entries(
                    (yield from one(("XREVRANGE", log, "+", "-", "COUNT", LOG_PAGE)))
                )
                complete = int(length) <= cap
                entries = yield from self._read_newest(
                    log, newest, cap if complete else max(1, cap // 2)
                )
                with self.mirrors.lock:
                    _apply(mirror, entries, dim)
                    self._epochs[mirror] = current_epoch
                    if complete:
                        self._snapshotted[mirror] = 0
                    self.mirrors.enforce_bound()
                yield from self._maybe_snapshot(mirror, log, snapshot, current_epoch)
                return mirror
            current = yield from self._apply_pages(
                namespace, partition, mirror, log, stream_entries(entries), dim
            )
            if current is not None:
                yield from self._maybe_snapshot(mirror, log, snapshot, current_epoch)
            return mirror

    def _read_snapshot(
        self, mirror: PartitionMirror, snapshot: str, header: SnapshotHeader, epoch: int
    ) -> Flow[bool]:
        """Load a fresh mirror from a snapshot; ``False`` if it is unusable (read the log).

        A version 2 snapshot with sketches this client can use (same hyperplanes) is read
        without its vectors in one round trip (ids, sequence numbers and sketches, ~10 MB at
        100k rows instead of ~160 MB): searches read the vectors of the rows they score from
        the log until the snapshot's vector chunks have been read in the background."""
        dim = mirror.dim
        if header.version == 1:
            parts = []
            for part in ("m", *map(str, range(header.chunks))):
                (raw,) = yield Round((("HGET", snapshot, part),), tolerate=True)
                parts.append(None if is_error(raw) else raw)
            rows = _snapshot_rows_v1(parts, header, dim)
            if rows is None:
                return False
            self._adopt(mirror, header, epoch, rows)
            return True
        ids_raw, meta_raw, seqs_raw, sketches_raw = yield Round(
            tuple(("HGET", snapshot, part) for part in ("i", "m", "q", "s")), tolerate=True
        )
        meta = _snapshot_meta(meta_raw, header, _snapshot_ids(ids_raw, header))
        seqs = _snapshot_seqs(seqs_raw, header)
        if meta is None or seqs is None:
            return False
        ids, tags = meta
        n = header.count
        sketches = _snapshot_sketches(sketches_raw, header, dim)
        if sketches is None:  # other hyperplanes, or none stored: read the vectors now
            vectors = np.empty((n, dim), dtype=np.float32)  # the mirror adopts it
            for index in range(header.chunks):
                (raw,) = yield Round((("HGET", snapshot, str(index)),), tolerate=True)
                block = _snapshot_vectors(raw, header, index, dim)
                if block is None:
                    return False
                start = index * header.chunk_rows
                vectors[start : start + len(block)] = block
            self._adopt(mirror, header, epoch, (_as_ints(seqs), ids, vectors, [None] * n, tags))
            return True
        with self.mirrors.lock:
            if mirror.size:  # a concurrent catch-up filled it meanwhile
                return True
            # Room for the entries written after the snapshot, appended without a copy.
            mirror.append_sketched(
                seqs, ids, sketches, [None] * n, tags, capacity=n + n // 4 + LOG_PAGE
            )
            self._pending[mirror] = _PendingVectors(snapshot, header)
            self._finish_adoption(mirror, header, epoch)
        return True

    def _adopt(
        self,
        mirror: PartitionMirror,
        header: SnapshotHeader,
        epoch: int,
        rows: tuple[list[int], list[str], Any, list[None], list[Mapping[str, str]]],
    ) -> None:
        with self.mirrors.lock:
            if mirror.size:  # a concurrent catch-up filled it meanwhile
                return
            mirror.append(*rows, adopt=True)
            self._finish_adoption(mirror, header, epoch)

    def _finish_adoption(self, mirror: PartitionMirror, header: SnapshotHeader, epoch: int) -> None:
        mirror.last_seq = max(mirror.last_seq, header.last_seq)
        self._epochs[mirror] = epoch
        # A snapshot of an older format is rewritten in the current one (0: none yet), so
        # the next new process can adopt its sketches.
        self._snapshotted[mirror] = header.count if header.version == SNAPSHOT_VERSION else 0
        self.mirrors.enforce_bound()

    def _maybe_snapshot(
        self, mirror: PartitionMirror, log: str, snapshot: str, epoch: int
    ) -> Flow[None]:
        """Store a snapshot of a complete, large mirror when there is none or it lags by more
        than :data:`SNAPSHOT_REFRESH`; a failure only means the next client reads the log."""
        with self.mirrors.lock:
            previous = self._snapshotted.get(mirror)
            live = mirror.live_count
            if (
                previous is None
                or not mirror.vectors_complete  # still reading them from a snapshot
                or live < SNAPSHOT_MIN_ROWS
                or (previous and live - previous <= SNAPSHOT_REFRESH * previous)
            ):
                return None
            snapshot_parts = _snapshot_parts(mirror, epoch)
            self._snapshotted[mirror] = live
            if snapshot_parts is None:
                return None
            header, parts = snapshot_parts
        try:
            # The header goes last: a reader that sees it finds every part (or, with a
            # concurrent writer, parts of another id: it then reads the log).
            ttl, _deleted = yield Round((("PTTL", log), ("DEL", snapshot)))
            for name, part in parts:
                yield Round((("HSET", snapshot, name, part),))
            expiry = [("PEXPIRE", snapshot, int(ttl))] if int(ttl) > 0 else []
            yield Round((("HSET", snapshot, "h", header), *expiry))
        except BackendError as exc:
            logger.debug("semcache: storing the mirror snapshot %s failed: %s", snapshot, exc)
        return None

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


def _check_command(layout: KeyLayout, namespace: str, candidate: Candidate) -> Command:
    """What verification reads of a candidate's record."""
    return ("HMGET", layout.vector_key(namespace, candidate.id), "ver", "partition", "payload")


def _verified(
    candidates: list[Candidate], replies: Iterable[Any], partition: str
) -> list[bytes | None]:
    """Each candidate's payload if its record exists (Redis expires it) and is the very
    version the mirror matched (same log entry, same partition); else ``None``."""
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
        raw_tags = fields.get("tags")
        if not raw_tags or raw_tags == b"{}":
            entry_tags: Any = _NO_TAGS  # the common case: no parse (100k entries on a rebuild)
        else:
            try:
                entry_tags = loads_untrusted(raw_tags)
            except ValueError:
                continue
            if not isinstance(entry_tags, dict) or not all(
                isinstance(v, str) for v in entry_tags.values()
            ):
                continue
        seqs.append(seq)
        ids.append(as_text(fields["id"]))
        vectors.append(raw if isinstance(raw, bytes) else bytes(raw))
        tags.append(entry_tags)
    if seqs:
        matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(-1, dim)
        # Expiry is left to Redis (TTLs can be refreshed by other clients): every candidate
        # is verified against its hash, which Redis expires.
        mirror.append(seqs, ids, matrix, [None] * len(seqs), tags)
    mirror.last_seq = max(mirror.last_seq, seen)


class SnapshotHeader:
    """The fixed-size header of a mirror snapshot, checked against what the reader expects."""

    __slots__ = ("chunk_rows", "count", "epoch", "ident", "last_seq", "version")

    def __init__(
        self, count: int, chunk_rows: int, epoch: int, last_seq: int, ident: int, version: int
    ) -> None:
        self.count, self.chunk_rows, self.epoch = count, chunk_rows, epoch
        self.last_seq, self.ident, self.version = last_seq, ident, version

    @property
    def chunks(self) -> int:
        return -(-self.count // self.chunk_rows)

    @property
    def prefix(self) -> bytes:
        """What every other part of this snapshot starts with."""
        return _SNAPSHOT_ID.pack(self.ident)

    def rows_of(self, index: int) -> int:
        """Rows in chunk ``index``."""
        return min(self.chunk_rows, self.count - index * self.chunk_rows)


class _PendingVectors:
    """Where the vectors of a mirror adopted by its sketches are read from."""

    __slots__ = ("header", "key", "started")

    def __init__(self, key: str, header: SnapshotHeader) -> None:
        self.key, self.header = key, header
        self.started = False


def _snapshot_header(raw: Any, dim: int, epoch: int, cap: int) -> SnapshotHeader | None:
    """The header of a usable snapshot: a readable format, this dimension and log epoch,
    within the row budget; ``None`` otherwise (absent, stale, foreign or corrupt)."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != SNAPSHOT_HEADER.size:
        return None
    magic, version, snap_dim, count, chunk_rows, snap_epoch, high, low, ident = (
        SNAPSHOT_HEADER.unpack(bytes(raw))
    )
    if (
        magic != SNAPSHOT_MAGIC
        or version not in _READABLE_VERSIONS
        or snap_dim != dim
        or snap_epoch != epoch
        or not 0 < count <= cap
        or not 0 < chunk_rows <= 1 << 20
    ):
        return None
    return SnapshotHeader(count, chunk_rows, snap_epoch, (high << 64) | low, ident, version)


def _part_body(raw: Any, header: SnapshotHeader) -> memoryview | None:
    """A part's bytes after the snapshot id, if it is a part of this very snapshot."""
    if not isinstance(raw, (bytes, bytearray)) or bytes(raw[:8]) != header.prefix:
        return None
    return memoryview(raw)[8:]


def _snapshot_ids(raw: Any, header: SnapshotHeader) -> list[str] | None:
    """The ids of a version 2 snapshot's rows (its ``i`` part: UTF-8, one per line; a
    split is ~4× faster than parsing them as JSON)."""
    body = _part_body(raw, header)
    if body is None:
        return None
    try:
        return bytes(body).decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None


def _snapshot_meta(
    raw: Any, header: SnapshotHeader, ids: list[str] | None = None
) -> tuple[list[str], list[Mapping[str, str]]] | None:
    """The ids and tags of a snapshot's rows (its ``m`` part: tags, and the ids in format
    1; format 2 passes ``ids``, read from its ``i`` part); ``None`` if unusable."""
    body = _part_body(raw, header)
    if body is None or (ids is None and header.version != 1):
        return None
    n = header.count
    try:
        meta = loads_untrusted(bytes(body))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if header.version == 1:
        ids = meta.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None
    tags = meta.get("tags")
    if (
        not isinstance(ids, list)
        or len(ids) != n
        or "" in ids
        or len(set(ids)) != n
        or not isinstance(tags, dict)
    ):
        return None
    row_tags: list[Mapping[str, str]] = [_NO_TAGS] * n
    for row, entry_tags in tags.items():
        if not (isinstance(row, str) and row.isdigit() and int(row) < n):
            return None
        if not isinstance(entry_tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entry_tags.items()
        ):
            return None
        row_tags[int(row)] = entry_tags
    return ids, row_tags


_SeqColumns = tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]


def _seqs_in_order(high: np.ndarray[Any, Any], low: np.ndarray[Any, Any], last: int) -> bool:
    """Whether sequence numbers (their high and low 64 bits) are in log order (strictly
    increasing), none after ``last`` (the snapshot's last sequence number)."""
    if not len(high):
        return False
    if len(high) > 1:
        later = high[1:] > high[:-1]
        same = high[1:] == high[:-1]
        if not bool(np.all(later | (same & (low[1:] > low[:-1])))):
            return False
    return (int(high[-1]) << 64) | int(low[-1]) <= last


def _snapshot_seqs(raw: Any, header: SnapshotHeader) -> _SeqColumns | None:
    """The sequence numbers of a version 2 snapshot's rows (its ``q`` part) as their high
    and low 64-bit columns (native integers, as the mirror keeps them)."""
    body = _part_body(raw, header)
    n = header.count
    if body is None or len(body) != 16 * n:
        return None
    high = np.frombuffer(body, dtype="<u8", count=n).astype(np.uint64)
    low = np.frombuffer(body, dtype="<u8", count=n, offset=8 * n).astype(np.uint64)
    return (high, low) if _seqs_in_order(high, low, header.last_seq) else None


def _as_ints(columns: _SeqColumns) -> list[int]:
    high, low = columns
    return [(h << 64) | lo for h, lo in zip(high.tolist(), low.tolist(), strict=True)]


def _snapshot_sketches(raw: Any, header: SnapshotHeader, dim: int) -> sketch.Sketches | None:
    """The sketches of a version 2 snapshot's rows (its ``s`` part), if this client can use
    them: numpy can count bits, and the writer drew the same hyperplanes."""
    body = _part_body(raw, header)
    n = header.count
    if body is None or not sketch.available() or len(body) != 8 + n * sketch.ROW_BYTES:
        return None
    if bytes(body[:8]) != sketch.fingerprint(dim):
        return None
    # The words as the writer's numpy laid them out (word by word, each over every row):
    # the bytes of packed sign bits, read back as the same words whatever the byte order,
    # as the reader's own query sketches are.
    words = np.frombuffer(body, dtype=np.uint64, offset=8).reshape(sketch.WORDS, n)
    return sketch.Sketches.from_words(dim, words, n + n // 4 + LOG_PAGE)


def _snapshot_vectors(
    raw: Any, header: SnapshotHeader, index: int, dim: int
) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    """The vectors of chunk ``index`` of a version 2 snapshot; ``None`` if unusable. Like
    vectors read from the log they are not checked further: a NaN row has no distance within
    any threshold, and every candidate is verified against its record."""
    body = _part_body(raw, header)
    rows = header.rows_of(index)
    if body is None or len(body) != rows * 4 * dim:
        return None
    return np.frombuffer(body, dtype="<f4").reshape(rows, dim)


def _snapshot_rows_v1(
    parts: list[Any], header: SnapshotHeader, dim: int
) -> tuple[list[int], list[str], Any, list[None], list[Mapping[str, str]]] | None:
    """The rows of a version 1 snapshot (its ``m`` part, then its chunks of sequence numbers
    and vectors) as :meth:`PartitionMirror.append` takes them; ``None`` when a part is
    missing, belongs to another snapshot (a concurrent rewrite) or is inconsistent in any way
    (untrusted input: then the log is read instead)."""
    if len(parts) != 1 + header.chunks:
        return None
    n = header.count
    high = np.empty(n, dtype=np.uint64)
    low = np.empty(n, dtype=np.uint64)
    vectors = np.empty((n, dim), dtype=np.float32)  # the mirror adopts it: one copy in all
    for index, part in enumerate(parts[1:]):
        body = _part_body(part, header)
        start = index * header.chunk_rows
        rows = header.rows_of(index)
        if body is None or len(body) != rows * (16 + 4 * dim):
            return None
        high[start : start + rows] = np.frombuffer(body, dtype="<u8", count=rows)
        low[start : start + rows] = np.frombuffer(body, dtype="<u8", count=rows, offset=8 * rows)
        block = np.frombuffer(body, dtype="<f4", offset=16 * rows)
        vectors[start : start + rows] = block.reshape(rows, dim)
    meta = _snapshot_meta(parts[0], header)
    if meta is None or not _seqs_in_order(high, low, header.last_seq):
        return None
    ids, tags = meta
    return _as_ints((high, low)), ids, vectors, [None] * n, tags


def _snapshot_parts(
    mirror: PartitionMirror, epoch: int
) -> tuple[bytes, list[tuple[str, bytes]]] | None:
    """The header and the other parts (``i``, ``m``, ``q``, ``s``, chunks) of a snapshot of
    ``mirror``'s live rows (callers hold the mirrors lock); ``None``: it cannot have one."""
    seqs, ids, vectors, tags = mirror.live_rows()
    ident = int.from_bytes(os.urandom(8), "little")
    prefix = _SNAPSHOT_ID.pack(ident)
    joined = "\n".join(ids)
    if joined.count("\n") != len(ids) - 1:
        return None  # an id with a line break (not one semcache makes): no snapshot
    meta = json.dumps(
        {"tags": {str(row): dict(t) for row, t in enumerate(tags) if t}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    high = np.array([seq >> 64 for seq in seqs], dtype="<u8")
    low = np.array([seq & _LOW64 for seq in seqs], dtype="<u8")
    parts = [
        ("i", prefix + joined.encode("utf-8")),
        ("m", prefix + meta),
        ("q", b"".join((prefix, high.tobytes(), low.tobytes()))),
        ("s", b"".join((prefix, sketch.fingerprint(mirror.dim), mirror.live_sketches().tobytes()))),
    ]
    matrix = np.ascontiguousarray(vectors, dtype="<f4")
    for index, start in enumerate(range(0, len(seqs), SNAPSHOT_CHUNK_ROWS)):
        block = matrix[start : start + SNAPSHOT_CHUNK_ROWS]
        parts.append((str(index), prefix + block.tobytes()))
    last = mirror.last_seq
    header = SNAPSHOT_HEADER.pack(
        SNAPSHOT_MAGIC,
        SNAPSHOT_VERSION,
        mirror.dim,
        len(seqs),
        SNAPSHOT_CHUNK_ROWS,
        epoch,
        last >> 64,
        last & _LOW64,
        ident,
    )
    return header, parts
