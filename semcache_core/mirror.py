"""An in-process numpy mirror of one vector partition, with bounded memory.

Used where the storage cannot search vectors itself (the embedded SQLite backend, plain Redis
without the Query Engine). The storage stays the source of truth; the mirror only *proposes*
candidates. Each candidate is verified against the storage before it is served (the record
must still exist and be unexpired), so a deleted or expired entry is never served even if the
mirror has not heard about it yet.

Appends are amortised O(1) (capacity doubling); a search is one matrix-vector product over the
partition's live rows, or, in a partition of :data:`SKETCH_MIN_ROWS` rows or more, over the rows
that their sign sketches (:mod:`semcache_core.sketch`) cannot rule out. :class:`MirrorSet` bounds the total number of mirrored rows across
partitions and drops the least recently searched partitions first; a dropped partition is
rebuilt from storage on its next search.

Rows may also be adopted by their sketches alone (:meth:`PartitionMirror.append_sketched`: a
plain-Redis snapshot read without its vectors): searches skip a row until it has its vector,
so the caller first asks which rows a search would score (:meth:`PartitionMirror.missing`)
and gives them their vectors (:meth:`PartitionMirror.fill`), while the rest arrive in bulk
(:meth:`PartitionMirror.fill_range`). Every change happens under the :class:`MirrorSet` lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from semcache_core import sketch
from semcache_core.codecs import Vector
from semcache_core.flow import Flow

if TYPE_CHECKING:
    from semcache_core.backends.base import VectorHit

_Array = TypeVar("_Array", bound=npt.NDArray[Any])

#: Extra nearest candidates fetched beyond ``k``: some may fail verification.
EXTRA_CANDIDATES = 4
#: Re-searches allowed after candidates failed verification, before settling for fewer hits.
MAX_VERIFY_ROUNDS = 8
#: Partitions this large are searched through sign sketches: at 10k rows of dimension 384 a
#: full scan takes ~1 ms, the sketch scan and the exact scoring of what it admits ~0.15 ms.
SKETCH_MIN_ROWS = 8192


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row the mirror proposes: its storage sequence number, id and cosine distance."""

    seq: int
    id: str
    distance: float


class PartitionMirror:
    """Rows of one partition: unit vectors, ids, storage sequence numbers and expiry times."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._vectors: npt.NDArray[np.float32] = np.empty((16, dim), dtype=np.float32)
        self._expires = np.empty(16, dtype=np.float64)  # +inf = never
        self._alive = np.zeros(16, dtype=bool)
        self._seqs = _Seqs()
        self._ids: list[str] = []
        self._tags: list[Mapping[str, str]] = []
        self._row_of_id: dict[str, int] = {}
        self._sketches: sketch.Sketches | None = None
        #: Which rows hold their vector; ``None``: all of them (the usual case). Rows adopted
        #: from a snapshot by their sketches alone get theirs later (:meth:`fill`).
        self._ready: npt.NDArray[np.bool_] | None = None
        self.size = 0
        #: Highest storage sequence number seen; catch-up reads only what is newer.
        self.last_seq = 0

    def append(
        self,
        seqs: Sequence[int],
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        expires: Sequence[float | None],
        tags: Sequence[Mapping[str, str]] | None = None,
        *,
        adopt: bool = False,
    ) -> None:
        """Add rows read from storage (in storage order). A re-added id hides its old row.

        ``adopt``: ``vectors`` is a float32 array the caller gives away (a snapshot just
        read); an empty mirror keeps it as its storage instead of copying it."""
        count = len(ids)
        if count == 0:
            return
        if len(seqs) != count or (tags is not None and len(tags) != count):
            raise ValueError("append: seqs, ids and tags must have one item per row")
        needed = self.size + count
        rows = slice(self.size, needed)
        if adopt and self.size == 0 and _adoptable(vectors, count, self.dim):
            self._vectors = vectors
            self._expires = np.empty(count, dtype=np.float64)
            self._alive = np.zeros(count, dtype=bool)
        else:
            self._reserve(needed)
            self._vectors[rows] = vectors
            if self._ready is not None:
                self._ready[rows] = True
        self._record(seqs, ids, expires, tags, rows)

    def append_sketched(
        self,
        seqs: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]],
        ids: Sequence[str],
        sketches: sketch.Sketches,
        expires: Sequence[float | None],
        tags: Sequence[Mapping[str, str]] | None = None,
        *,
        capacity: int = 0,
    ) -> None:
        """Adopt rows whose vectors are not at hand yet, only their sketches (a snapshot
        read without its vectors): an empty mirror only. ``seqs``: the high and low 64 bits
        of the rows' sequence numbers, in increasing order (made into ints when read).
        Searches skip these rows until :meth:`fill` or :meth:`fill_range` gives them their
        vectors; :meth:`missing` says which of them a search would score. ``capacity``: room
        for the rows expected to follow (catch-up from the log), so appending them does not
        copy the vectors."""
        count = len(ids)
        high, low = seqs
        if self.size or count == 0 or sketches.size != count or not len(high) == len(low) == count:
            raise ValueError("append_sketched: an empty mirror and one sketch per row")
        capacity = max(capacity, count)
        # Not touched until filled: the memory is committed as vectors arrive.
        self._vectors = np.empty((capacity, self.dim), dtype=np.float32)
        self._expires = np.empty(capacity, dtype=np.float64)
        self._alive = np.zeros(capacity, dtype=bool)
        self._ready = np.zeros(capacity, dtype=bool)
        self._sketches = sketches
        self._seqs.adopt(high, low)
        self._record(None, ids, expires, tags, slice(0, count))

    @property
    def vectors_complete(self) -> bool:
        """Whether every row holds its vector (not waiting for :meth:`fill`)."""
        return self._ready is None

    def missing(self, query: Vector, max_distance: float) -> npt.NDArray[np.intp] | None:
        """The live rows without a vector that a search for ``query`` within
        ``max_distance`` would score (``None``: none); every such row when the sketches
        cannot rule rows out at that distance."""
        if self._ready is None:
            return None
        scanned = self._prefilter(query, max_distance)
        if scanned is None:
            scanned = np.arange(self.size)
        wanted = scanned[self._alive[scanned] & ~self._ready[scanned]]
        return wanted if wanted.size else None

    def fill(self, rows: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Give rows their vectors (read from storage for the same sequence numbers)."""
        if self._ready is None or not len(rows):
            return
        self._vectors[rows] = vectors
        self._ready[rows] = True
        self._settle()

    def fill_range(self, start: int, vectors: npt.NDArray[np.float32]) -> None:
        """Give the rows from ``start`` on their vectors (a chunk of a snapshot)."""
        if self._ready is None:
            return
        stop = start + len(vectors)
        if not 0 <= start <= stop <= self.size:
            raise ValueError("fill_range: rows out of range")
        self._vectors[start:stop] = vectors
        self._ready[start:stop] = True
        self._settle()

    def _settle(self) -> None:
        # Dead rows never come back to life: they need no vector.
        size = self.size
        if self._ready is not None and (self._ready[:size] | ~self._alive[:size]).all():
            self._ready = None

    def _reserve(self, needed: int) -> None:
        if needed > len(self._vectors):
            capacity = max(needed, 2 * len(self._vectors))
            self._vectors = _grow(self._vectors, capacity)
            self._expires = _grow(self._expires, capacity)
            self._alive = _grow(self._alive, capacity)
            if self._ready is not None:
                self._ready = _grow(self._ready, capacity)

    def _record(
        self,
        seqs: Sequence[int] | None,
        ids: Sequence[str],
        expires: Sequence[float | None],
        tags: Sequence[Mapping[str, str]] | None,
        rows: slice,
    ) -> None:
        count = len(ids)
        needed = rows.stop
        if isinstance(expires, list) and expires.count(None) == count:
            self._expires[rows] = np.inf  # the usual case (Redis expires records itself)
        else:
            self._expires[rows] = [np.inf if e is None else e for e in expires]
        # Bulk bookkeeping (a snapshot appends 100k rows at once): a re-added id hides its
        # earlier row, in the mirror or earlier in this batch; the last row of an id wins.
        row_of_id = self._row_of_id
        first = not row_of_id
        replaced = [] if first else [row_of_id[i] for i in ids if i in row_of_id]
        if replaced:
            self._alive[replaced] = False
        row_of_id.update(zip(ids, range(self.size, needed), strict=True))
        if len(row_of_id) == count if first else len(set(ids)) == count:
            self._alive[rows] = True
        else:
            self._alive[rows] = False
            self._alive[[row_of_id[entry_id] for entry_id in dict.fromkeys(ids)]] = True
        if seqs is not None:  # None: adopted as columns already
            self._seqs.extend(seqs)
        self._ids.extend(ids)
        self._tags.extend(tags if tags is not None else [{}] * count)
        self.size = needed
        self.last_seq = max(self.last_seq, max(seqs) if seqs is not None else self._seqs[-1])

    def keys_of(self, rows: Sequence[int]) -> list[tuple[int, str]]:
        """The storage sequence number and id of each of ``rows``."""
        return [(self._seqs[row], self._ids[row]) for row in rows]

    def forget_rows(self, rows: Sequence[int]) -> None:
        """Take rows out of every search (their vector could not be read: gone from storage)."""
        for row in rows:
            self._alive[row] = False
            if self._row_of_id.get(self._ids[row]) == row:
                del self._row_of_id[self._ids[row]]

    def discard(self, entry_id: str) -> None:
        """Forget ``entry_id`` (deleted, or found expired or replaced on verification)."""
        row = self._row_of_id.pop(entry_id, None)
        if row is not None:
            self._alive[row] = False

    def discard_seq(self, seq: int, entry_id: str) -> None:
        """Forget one specific row: the storage no longer has this version of ``entry_id``."""
        row = self._row_of_id.get(entry_id)
        if row is not None and self._seqs[row] == seq:
            self.discard(entry_id)

    def search(
        self,
        query: Vector,
        *,
        k: int,
        max_distance: float,
        now: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[Candidate]:
        """Up to ``k`` live rows within ``max_distance`` of the unit vector ``query``.

        ``tags`` restricts the rows before ranking: only rows whose tags hold every given
        value are candidates.
        """
        if self.size == 0:
            return []
        scanned = self._prefilter(query, max_distance)  # None: every row
        if scanned is None:
            distances = 1.0 - self._vectors[: self.size] @ query
            usable = self._alive[: self.size] & (self._expires[: self.size] > now)
            if self._ready is not None:  # rows without their vector yet are not scored
                usable &= self._ready[: self.size]
        else:
            distances = 1.0 - self._vectors[scanned] @ query
            usable = self._alive[scanned] & (self._expires[scanned] > now)
            if self._ready is not None:
                usable &= self._ready[scanned]
        usable &= distances <= max_distance
        if tags:
            wanted = tags.items()
            tags_of = self._tags if scanned is None else [self._tags[row] for row in scanned]
            usable &= np.fromiter(
                (wanted <= row_tags.items() for row_tags in tags_of),
                dtype=bool,
                count=len(distances),
            )
        found = np.flatnonzero(usable)
        if found.size == 0:
            return []
        if found.size > k:
            found = found[np.argpartition(distances[found], k - 1)[:k]]
        found = found[np.argsort(distances[found], kind="stable")]
        rows = found if scanned is None else scanned[found]
        return [
            Candidate(self._seqs[row], self._ids[row], max(0.0, float(distances[position])))
            for row, position in zip(rows.tolist(), found.tolist(), strict=True)
        ]

    def _prefilter(self, query: Vector, max_distance: float) -> npt.NDArray[np.intp] | None:
        """The rows a large partition's sketches cannot rule out; ``None``: scan every row."""
        # Rows adopted by their sketches alone are always searched through them.
        if self._ready is None and (self.size < SKETCH_MIN_ROWS or not sketch.available()):
            return None
        return self.sketches().within(query, max_distance)

    def sketches(self) -> sketch.Sketches:
        """The sketches of every row, made (or extended with the rows appended) now."""
        if self._sketches is None:
            self._sketches = sketch.Sketches(self.dim)
        if self._sketches.size < self.size:  # catch up with the rows appended since
            # Rows appended after sketched-only ones come from the log, with their vectors.
            self._sketches.extend(self._vectors[self._sketches.size : self.size])
        return self._sketches

    @property
    def live_count(self) -> int:
        return len(self._row_of_id)

    def live_rows(
        self,
    ) -> tuple[list[int], list[str], npt.NDArray[np.float32], list[Mapping[str, str]]]:
        """The live rows in storage order: sequence numbers, ids, vectors, tags. When every
        row is live the vectors are a view of the mirror's storage: use them while holding
        the lock that guards the mirror. Only for a mirror whose vectors are complete."""
        if self._ready is not None:
            raise ValueError("live_rows: some rows have no vector yet")
        alive = self._alive[: self.size]
        if alive.all():
            return (
                list(self._seqs),
                list(self._ids),
                self._vectors[: self.size],
                list(self._tags),
            )
        rows = np.flatnonzero(alive)
        return (
            [self._seqs[row] for row in rows.tolist()],
            [self._ids[row] for row in rows],
            self._vectors[rows],
            [self._tags[row] for row in rows],
        )

    def live_sketches(self) -> npt.NDArray[np.uint64]:
        """The sketches of :meth:`live_rows`, in the same order, as ``(WORDS, rows)`` (made
        now if need be)."""
        alive = self._alive[: self.size]
        sketches = self.sketches()
        return sketches.words(None if alive.all() else np.flatnonzero(alive))


class _Seqs:
    """The storage sequence numbers of a mirror's rows. Rows adopted in bulk from a snapshot
    keep theirs as two 64-bit columns (high and low bits): a Python int is made only for
    a row that is read (100k of them would be ~20 ms of a new process's first lookup)."""

    __slots__ = ("_high", "_low", "_tail")

    def __init__(self) -> None:
        self._high: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._low: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self._tail: list[int] = []

    def adopt(self, high: npt.NDArray[np.uint64], low: npt.NDArray[np.uint64]) -> None:
        if len(self):
            raise ValueError("_Seqs.adopt: only before any other row")
        self._high, self._low = high, low

    def __len__(self) -> int:
        return len(self._high) + len(self._tail)

    def __getitem__(self, row: int) -> int:
        base = len(self._high)
        if row < 0:
            row += len(self)
        if 0 <= row < base:
            return (int(self._high[row]) << 64) | int(self._low[row])
        return self._tail[row - base]

    def extend(self, seqs: Sequence[int]) -> None:
        self._tail.extend(seqs)

    def __iter__(self) -> Iterator[int]:
        high, low = self._high.tolist(), self._low.tolist()
        yield from ((h << 64) | lo for h, lo in zip(high, low, strict=True))
        yield from self._tail


def _adoptable(vectors: npt.NDArray[np.float32], count: int, dim: int) -> bool:
    """Whether ``vectors`` can become a mirror's storage without a copy (an array of its
    own, writable, of exactly these rows)."""
    return bool(
        vectors.dtype == np.float32
        and vectors.shape == (count, dim)
        and vectors.flags.c_contiguous
        and vectors.flags.owndata
        and vectors.flags.writeable
    )


def _grow(array: _Array, capacity: int) -> _Array:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return cast(_Array, grown)


class MirrorSet:
    """Partition mirrors of one client, at most ``max_rows`` rows in all (LRU by partition).

    Memory is about ``max_rows * (4 * dim + ~100)`` bytes: the default 200,000 rows of
    dimension 384 is ~330 MB at the very most, and only partitions that are searched are held.
    """

    def __init__(self, *, max_rows: int = 200_000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.max_rows = max_rows
        self._mirrors: OrderedDict[tuple[str, str], PartitionMirror] = OrderedDict()
        self.lock = threading.RLock()

    def get(self, namespace: str, partition: str, dim: int) -> PartitionMirror:
        """The mirror of a partition (new and empty if unknown or of another dimension)."""
        key = (namespace, partition)
        mirror = self._mirrors.get(key)
        if mirror is None or mirror.dim != dim:
            mirror = PartitionMirror(dim)
            self._mirrors[key] = mirror
        self._mirrors.move_to_end(key)
        return mirror

    def peek(self, namespace: str, partition: str) -> PartitionMirror | None:
        return self._mirrors.get((namespace, partition))

    def enforce_bound(self) -> None:
        """Drop least recently used partitions until the row budget holds (keep the newest)."""
        total = sum(m.size for m in self._mirrors.values())
        while total > self.max_rows and len(self._mirrors) > 1:
            _, dropped = self._mirrors.popitem(last=False)
            total -= dropped.size

    def drop(self, namespace: str, partition: str) -> None:
        """Forget one partition's mirror (it is rebuilt from storage on its next search)."""
        self._mirrors.pop((namespace, partition), None)

    def drop_namespace(self, namespace: str) -> None:
        for key in [k for k in self._mirrors if k[0] == namespace]:
            del self._mirrors[key]

    def drop_all(self) -> None:
        self._mirrors.clear()


def verified_search(
    mirrors: MirrorSet,
    mirror: PartitionMirror,
    vector: Vector,
    k: int,
    max_distance: float,
    tags: Mapping[str, str],
    verify: Callable[[list[Candidate]], Flow[list[bytes | None]]],
) -> Flow[list[VectorHit]]:
    """The mirror proposes, the store verifies: written once for every mirrored store.

    ``verify`` reads each candidate's record from the source of truth and returns its
    payload, or ``None`` when that very version is gone (deleted, replaced, expired); such
    rows leave the mirror and, if they may have crowded out live ones, the search repeats.
    """
    from semcache_core.backends.base import VectorHit

    wanted = k + EXTRA_CANDIDATES
    hits: list[VectorHit] = []
    for _ in range(MAX_VERIFY_ROUNDS):
        with mirrors.lock:
            candidates = mirror.search(
                vector, k=wanted, max_distance=max_distance, now=time.time(), tags=tags
            )
        if not candidates:
            return []
        payloads = yield from verify(candidates)
        hits = []
        stale = False
        for candidate, payload in zip(candidates, payloads, strict=True):
            if payload is None:
                with mirrors.lock:
                    mirror.discard_seq(candidate.seq, candidate.id)
                stale = True
                continue
            hits.append(VectorHit(candidate.id, candidate.distance, payload))
            if len(hits) == k:
                return hits
        if not stale or len(candidates) < wanted:
            return hits
    return hits
