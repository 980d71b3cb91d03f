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
``<ns>:vsnap:{<ns>:<tag>}<partition>`` (sequence numbers, float32 vectors, ids and tags; the
log's epoch and the last sequence number it covers in a fixed header), and rewrites it when
a quarter more rows arrived since. It is a hash: the header (field ``h``, written last),
ids and tags (``m``) and chunks of :data:`SNAPSHOT_CHUNK_ROWS` rows (``0``, ``1``...), each
starting with the snapshot's random id, so a reader never mixes two snapshots and no reply
is large enough to outlast the socket timeout. A new client reads the header with its first
catch-up round, then the rest one field per round trip, and catches up from the log after
the snapshot's last sequence number, as any mirror does. The snapshot only saves reading the log: it is used
only at the log's current epoch (a compaction makes it stale) and when it fits the client's
row budget, and it is untrusted like every stored byte (any inconsistency: ignored, the log
is read). Its rows are proposals like the log's: every candidate is still verified against
its record, so a snapshot that lags deletions or replacements never serves them. It costs
about one more vector per entry of Redis memory, for large partitions only.

*Memory bound:* at most ``max_mirror_rows`` rows per client (see the backend's docstring).
"""

from __future__ import annotations

import itertools
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
SNAPSHOT_VERSION = 1
_SNAPSHOT_ID = struct.Struct("<Q")
_LOW64 = (1 << 64) - 1
#: The tags of the (many) rows without tags, shared and read-only.
_NO_TAGS: Mapping[str, str] = MappingProxyType({})


class LogMirrorSearch(VectorStrategy):
    """Vector records mirrored from their partition logs and searched in the client."""

    def __init__(self, mirrors: MirrorSet) -> None:
        self.mirrors = mirrors
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
        if ready:
            hits = yield from self._search_then_catch_up(namespace, search, layout, verify)
            if hits is not None:
                return hits
        mirror = yield from self._catch_up(namespace, partition, dim, layout)
        if mirror is None:
            return []
        return (
            yield from verified_search(self.mirrors, mirror, vector, k, max_distance, tags, verify)
        )

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
                if header is not None:
                    parts = []
                    for part in ("m", *map(str, range(header.chunks))):
                        (raw,) = yield Round((("HGET", snapshot, part),), tolerate=True)
                        parts.append(None if is_error(raw) else raw)
                    rows = _snapshot_rows(parts, header, dim)
                    if rows is not None:
                        with self.mirrors.lock:
                            mirror.append(*rows, adopt=True)
                            mirror.last_seq = max(mirror.last_seq, header.last_seq)
                            self._epochs[mirror] = current_epoch
                            self._snapshotted[mirror] = header.count
                            self.mirrors.enforce_bound()
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
                or live < SNAPSHOT_MIN_ROWS
                or (previous and live - previous <= SNAPSHOT_REFRESH * previous)
            ):
                return None
            header, parts = _snapshot_parts(mirror, epoch)
            self._snapshotted[mirror] = live
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

    __slots__ = ("chunk_rows", "count", "epoch", "ident", "last_seq")

    def __init__(self, count: int, chunk_rows: int, epoch: int, last_seq: int, ident: int) -> None:
        self.count, self.chunk_rows, self.epoch = count, chunk_rows, epoch
        self.last_seq, self.ident = last_seq, ident

    @property
    def chunks(self) -> int:
        return -(-self.count // self.chunk_rows)


def _snapshot_header(raw: Any, dim: int, epoch: int, cap: int) -> SnapshotHeader | None:
    """The header of a usable snapshot: this format, dimension and log epoch, within the
    row budget; ``None`` otherwise (absent, stale, foreign or corrupt)."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != SNAPSHOT_HEADER.size:
        return None
    magic, version, snap_dim, count, chunk_rows, snap_epoch, high, low, ident = (
        SNAPSHOT_HEADER.unpack(bytes(raw))
    )
    if (
        magic != SNAPSHOT_MAGIC
        or version != SNAPSHOT_VERSION
        or snap_dim != dim
        or snap_epoch != epoch
        or not 0 < count <= cap
        or not 0 < chunk_rows <= 1 << 20
    ):
        return None
    return SnapshotHeader(count, chunk_rows, snap_epoch, (high << 64) | low, ident)


def _snapshot_rows(
    parts: list[Any], header: SnapshotHeader, dim: int
) -> tuple[list[int], list[str], Any, list[None], list[Mapping[str, str]]] | None:
    """The rows of a snapshot (its ``m`` part, then its chunks) as
    :meth:`PartitionMirror.append` takes them; ``None`` when a part is missing, belongs to
    another snapshot (a concurrent rewrite) or is inconsistent in any way (untrusted input:
    then the log is read instead)."""
    prefix = _SNAPSHOT_ID.pack(header.ident)
    if len(parts) != 1 + header.chunks or not all(
        isinstance(part, (bytes, bytearray)) and bytes(part[:8]) == prefix for part in parts
    ):
        return None
    n = header.count
    seqs: list[int] = []
    vectors = np.empty((n, dim), dtype=np.float32)  # the mirror adopts it: one copy in all
    for index, part in enumerate(parts[1:]):
        start = index * header.chunk_rows
        rows = min(header.chunk_rows, n - start)
        if len(part) != 8 + rows * (16 + 4 * dim):
            return None
        high = np.frombuffer(part, dtype="<u8", count=rows, offset=8)
        low = np.frombuffer(part, dtype="<u8", count=rows, offset=8 + 8 * rows)
        seqs.extend((h << 64) | lo for h, lo in zip(high.tolist(), low.tolist(), strict=True))
        block = np.frombuffer(part, dtype="<f4", offset=8 + 16 * rows)
        vectors[start : start + rows] = block.reshape(rows, dim)
    try:
        meta = loads_untrusted(bytes(parts[0][8:]))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    ids, tags = meta.get("ids"), meta.get("tags")
    if (
        not isinstance(ids, list)
        or len(ids) != n
        or not all(isinstance(i, str) and i for i in ids)
        or len(set(ids)) != n
        or not isinstance(tags, dict)
    ):
        return None
    row_tags: list[Mapping[str, str]] = [{} for _ in range(n)]
    for row, entry_tags in tags.items():
        if not (isinstance(row, str) and row.isdigit() and int(row) < n):
            return None
        if not isinstance(entry_tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entry_tags.items()
        ):
            return None
        row_tags[int(row)] = entry_tags
    if any(b <= a for a, b in itertools.pairwise(seqs)) or seqs[-1] > header.last_seq:
        return None  # rows are in log order, none after the snapshot's last sequence number
    # Like vectors read from the log, these are not checked further: a NaN row has no
    # distance within any threshold, and every candidate is verified against its record.
    return seqs, ids, vectors, [None] * n, row_tags


def _snapshot_parts(mirror: PartitionMirror, epoch: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The header and the other parts (``m``, chunks) of a snapshot of ``mirror``'s live
    rows (callers hold the mirrors lock)."""
    seqs, ids, vectors, tags = mirror.live_rows()
    ident = int.from_bytes(os.urandom(8), "little")
    prefix = _SNAPSHOT_ID.pack(ident)
    meta = json.dumps(
        {"ids": ids, "tags": {str(row): dict(t) for row, t in enumerate(tags) if t}},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    parts = [("m", prefix + meta)]
    matrix = np.ascontiguousarray(vectors, dtype="<f4")
    for index, start in enumerate(range(0, len(seqs), SNAPSHOT_CHUNK_ROWS)):
        chunk = seqs[start : start + SNAPSHOT_CHUNK_ROWS]
        high = np.array([seq >> 64 for seq in chunk], dtype="<u8")
        low = np.array([seq & _LOW64 for seq in chunk], dtype="<u8")
        block = matrix[start : start + SNAPSHOT_CHUNK_ROWS]
        parts.append(
            (str(index), b"".join((prefix, high.tobytes(), low.tobytes(), block.tobytes())))
        )
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
