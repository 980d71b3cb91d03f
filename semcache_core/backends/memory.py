"""The in-process backend of ``memory://``: dictionaries behind one lock, gone with the process.

The default backend (``None`` or ``"memory://"``) is for one process: tests, notebooks, a
single worker. It keeps what every backend keeps (values with a TTL, vector records in
partitions, counters) in plain dictionaries, so an exact hit is a dictionary read instead of
a SQL statement (SQLite in memory, which ``memory://`` used to be, cost ~40 µs a hit). Values
are stored and returned as ``bytes`` (immutable): a caller never shares a mutable object with
the cache, and the engine decodes every entry as untrusted input, as on any backend.

Vector records are indexed per partition by a :class:`~semcache_core.mirror.PartitionMirror`
(numpy, imported on the first vector write), the same exact search the mirrored backends use;
here the index and the records change together under one lock, so a candidate is checked
against its record in the same step. Rows left behind by replaced, deleted, refreshed or
expired records are dropped when they outnumber the live ones.

``max_entries`` (``connect("memory://", max_entries=N)`` or ``memory://?max_entries=N``) bounds
each namespace: the write that goes over it evicts the least recently used entries (a value or
a vector record; a write, a read and a search hit count as use), counted as ``evictions`` in
the namespace's stats. Without a limit reads record nothing (the hit path stays a dictionary
read), and :meth:`MemoryBackend.trim` evicts in write order. With ``track_hits=True`` (or
``?track_hits=1``) served hits are counted beside the recency (``hits``, ``last_hit`` of
``entries()``): one more step per hit, +2-3 µs on a ~10 µs hit, so it is opt-in.

Each operation is one :class:`Call` step (a :class:`MemoryStore` method and its arguments):
the backend is the transport that performs it, so the circuit breaker, fault injection and
``FedTransport`` see steps as on every other backend. ``aexecute`` runs the step inline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from semcache_core import keys as keyspace
from semcache_core.backends.base import (
    Backend,
    EntryHits,
    KeyPage,
    OneStepRead,
    Operations,
    VectorHit,
    VectorSearch,
    VectorWrite,
)
from semcache_core.backends.lru import validate_max_entries, validate_track_hits
from semcache_core.codecs import Vector
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow, Step, arun, run
from semcache_core.stats import COUNTER_GROUP

if TYPE_CHECKING:
    from semcache_core.mirror import PartitionMirror

#: Expired values and records are swept on one write out of this many.
_SWEEP_EVERY = 256
#: An index is rebuilt from its records once its dead rows exceed its live ones plus this.
_SLACK_ROWS = 1024


#: Options a ``memory://`` URL or ``connect`` keyword may carry.
_URL_OPTIONS = ("max_entries", "track_hits")


@dataclass(frozen=True, slots=True)
class Call(Step):
    """One operation on the store: ``MemoryStore.<method>(*args)``, under its lock."""

    method: str
    args: tuple[Any, ...]


@dataclass(slots=True)
class _Record:
    seq: int
    partition: str
    vector: Vector
    payload: bytes
    tags: Mapping[str, str]
    expires_at: float | None


def _live(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


def _expiry(ttl_ms: int | None) -> float | None:
    return None if ttl_ms is None else time.time() + ttl_ms / 1000


class MemoryStore:
    """The data of one ``memory://`` backend. Every method runs under :attr:`lock`."""

    def __init__(self, max_entries: int | None = None) -> None:
        self.lock = threading.Lock()
        self.max_entries = max_entries
        self._values: dict[str, dict[str, tuple[bytes, float | None]]] = {}
        self._records: dict[str, dict[str, _Record]] = {}
        self._indexes: dict[tuple[str, str], PartitionMirror] = {}
        self._counters: dict[tuple[str, str], dict[str, float]] = {}
        #: Per namespace, the keys of its entries (values, and ``vec:<id>`` of records) from
        #: least to most recently used: a dict keeps insertion order, a use moves a key last.
        self._recency: dict[str, dict[str, None]] = {}
        #: Per namespace, the served hits of its entries by key: (count, last hit). A key
        #: leaves with its entry, and a rewritten entry starts again from none.
        self._hits: dict[str, dict[str, tuple[int, float]]] = {}
        self.evictions: dict[str, int] = {}
        self._seq = 0
        self._writes = 0

    # -- recency (max_entries) -----------------------------------------------------------
    def _used(self, namespace: str, keys: list[str]) -> None:
        order = self._recency.setdefault(namespace, {})
        for key in keys:
            order.pop(key, None)
            order[key] = None

    def _forget(self, namespace: str, key: str) -> None:
        order = self._recency.get(namespace)
        if order is not None:
            order.pop(key, None)
        hits = self._hits.get(namespace)
        if hits:
            hits.pop(key, None)

    def _wrote_entries(self, namespace: str, keys: list[str]) -> None:
        """Written entries are used (and new: no hits yet); a namespace over its limit evicts
        now."""
        hits = self._hits.get(namespace)
        if hits:
            for key in keys:
                hits.pop(key, None)
        self._used(namespace, keys)
        if self.max_entries is not None:
            self.trim(namespace, self.max_entries)
        self._wrote()

    def trim(self, namespace: str, limit: int) -> int:
        """Evict the least recently used entries of ``namespace`` beyond ``limit``; how many
        live ones that evicted (expired entries taken on the way were gone already)."""
        values = self._values.get(namespace, {})
        records = self._records.get(namespace, {})
        order = self._recency.get(namespace, {})
        excess = len(values) + len(records) - limit
        now, evicted = time.time(), 0
        while excess > 0 and order:
            key = next(iter(order))
            self._forget(namespace, key)
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                value = values.pop(key, None)
                present, live = value is not None, value is not None and _live(value[1], now)
            else:
                record = records.get(entry_id)
                present = record is not None
                live = record is not None and _live(record.expires_at, now)
                self._drop_record(namespace, entry_id)
            excess -= present
            evicted += live
        if evicted:
            self.evictions[namespace] = self.evictions.get(namespace, 0) + evicted
            self.incr_counters(namespace, COUNTER_GROUP, {"evictions": float(evicted)})
        return evicted

    # -- served hits -----------------------------------------------------------------------
    def note_hits(self, namespace: str, keys: list[str]) -> None:
        """One hit for each present entry of ``keys``."""
        values = self._values.get(namespace, {})
        records = self._records.get(namespace, {})
        counted = self._hits.setdefault(namespace, {})
        now = time.time()
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if key in values if entry_id is None else entry_id in records:
                count, _ = counted.get(key, (0, now))
                counted[key] = (count + 1, now)

    def get_hits(self, namespace: str, keys: list[str]) -> dict[str, EntryHits]:
        """The hits of each live entry of ``keys`` that was served."""
        live = self.get_expiries(namespace, keys)
        counted = self._hits.get(namespace, {})
        return {key: EntryHits(*counted[key]) for key in keys if key in live and key in counted}

    # -- values ----------------------------------------------------------------------------
    def get_many(self, namespace: str, keys: list[str]) -> list[bytes | None]:
        now = time.time()
        values = self._values.get(namespace, {})
        records = self._records.get(namespace, {})
        found: list[bytes | None] = []
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                value = values.get(key)
                found.append(value[0] if value is not None and _live(value[1], now) else None)
            else:
                record = records.get(entry_id)
                live = record is not None and _live(record.expires_at, now)
                found.append(record.payload if record is not None and live else None)
        if self.max_entries is not None:  # reads are uses only where there is a limit
            self._used(namespace, [key for key, got in zip(keys, found, strict=True) if got])
        return found

    def get_one(self, namespace: str, key: str) -> bytes | None:
        """``get_many(namespace, [key])[0]`` (an exact lookup's read), a value key without a
        limit read directly."""
        if self.max_entries is not None or key.startswith(keyspace.VECTOR_PREFIX):
            return self.get_many(namespace, [key])[0]
        values = self._values.get(namespace)
        value = None if values is None else values.get(key)
        if value is None or (value[1] is not None and value[1] <= time.time()):  # _live
            return None
        return value[0]

    def set_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None
    ) -> None:
        values = self._values.setdefault(namespace, {})
        for key, value in items:
            values[key] = (value, expires_at)
        self._wrote_entries(namespace, [key for key, _value in items])

    def delete_many(self, namespace: str, keys: list[str]) -> None:
        values = self._values.get(namespace, {})
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                values.pop(key, None)
                self._forget(namespace, key)
            else:
                self._drop_record(namespace, entry_id)

    def expire_many(self, namespace: str, keys: list[str], expires_at: float | None) -> None:
        """New expiry times for the live ``keys`` (``None``: never expire)."""
        now = time.time()
        values = self._values.get(namespace, {})
        records = self._records.get(namespace, {})
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                value = values.get(key)
                if value is not None and _live(value[1], now):
                    values[key] = (value[0], expires_at)
                continue
            record = records.get(entry_id)
            if record is not None and _live(record.expires_at, now):
                record.expires_at = expires_at
                self._index_row(namespace, entry_id, record)  # the index's expiry too

    def get_expiries(self, namespace: str, keys: list[str]) -> dict[str, float | None]:
        """When each live key expires (``None``: never); missing and expired keys are absent."""
        now = time.time()
        values = self._values.get(namespace, {})
        records = self._records.get(namespace, {})
        expiries: dict[str, float | None] = {}
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                value = values.get(key)
                expires_at = value[1] if value is not None else 0.0
                present = value is not None
            else:
                record = records.get(entry_id)
                expires_at = record.expires_at if record is not None else 0.0
                present = record is not None
            if present and _live(expires_at, now):
                expiries[key] = expires_at
        return expiries

    def scan_keys(self, namespace: str, prefix: str) -> KeyPage:
        """The live keys starting with ``prefix``, in one page (the namespace is in memory
        already, a copy of its keys is cheap); a ``vec:`` prefix lists vector records."""
        now = time.time()
        if prefix.startswith(keyspace.VECTOR_PREFIX):
            records = self._records.get(namespace, {})
            live = [
                keyspace.vector_key(i)
                for i, record in records.items()
                if keyspace.vector_key(i).startswith(prefix) and _live(record.expires_at, now)
            ]
        else:
            values = self._values.get(namespace, {})
            live = [
                k for k, (_v, exp) in values.items() if k.startswith(prefix) and _live(exp, now)
            ]
        return KeyPage(sorted(live), None)

    def swap(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        expires_at: float | None,
    ) -> bool:
        """Write ``new`` if the live value of ``key`` is ``expected`` (``None``: absent)."""
        values = self._values.setdefault(namespace, {})
        current = values.get(key)
        live = current[0] if current is not None and _live(current[1], time.time()) else None
        if live != expected:
            return False
        values[key] = (new, expires_at)
        self._wrote_entries(namespace, [key])
        return True

    # -- vectors ---------------------------------------------------------------------------
    def _partition_dim(self, namespace: str, partition: str) -> int | None:
        index = self._indexes.get((namespace, partition))
        return index.dim if index is not None and index.live_count else None

    def check_dim(self, namespace: str, partition: str, dim: int) -> None:
        stored = self._partition_dim(namespace, partition)
        if stored is not None and stored != dim:
            raise keyspace.dimension_error(namespace, dim, stored)

    def add_vectors(self, namespace: str, write: VectorWrite) -> None:
        self.check_dim(namespace, write.partition, write.dim)
        expires_at = _expiry(write.ttl_ms)
        records = self._records.setdefault(namespace, {})
        written: list[tuple[str, _Record]] = []
        for record in write.records:
            previous = records.get(record.id)
            if previous is not None and previous.partition != write.partition:
                self._drop_record(namespace, record.id)
            self._seq += 1
            stored = _Record(
                self._seq,
                write.partition,
                record.vector.copy(),  # the caller's array stays the caller's
                bytes(record.payload),
                dict(record.tags),
                expires_at,
            )
            records[record.id] = stored
            written.append((record.id, stored))
        self._index_rows(namespace, write.partition, written)
        self._wrote_entries(namespace, [keyspace.vector_key(r.id) for r in write.records])

    def _index_row(self, namespace: str, entry_id: str, record: _Record) -> None:
        self._index_rows(namespace, record.partition, [(entry_id, record)])

    def _index_rows(self, namespace: str, partition: str, rows: list[tuple[str, _Record]]) -> None:
        """Add the rows of ``partition``'s records to its index in one append (a re-added id
        hides its older row, also within the batch)."""
        import numpy as np

        from semcache_core.mirror import PartitionMirror

        key = (namespace, partition)
        index = self._indexes.get(key)
        dim = int(rows[0][1].vector.shape[0])
        if index is None or index.dim != dim:
            index = self._indexes[key] = PartitionMirror(dim)
        index.append(
            [record.seq for _id, record in rows],
            [entry_id for entry_id, _record in rows],
            np.stack([record.vector for _id, record in rows]),
            [record.expires_at for _id, record in rows],
            [record.tags for _id, record in rows],
        )
        if index.size > 2 * index.live_count + _SLACK_ROWS:
            self._rebuild_index(namespace, partition, dim)

    def _rebuild_index(self, namespace: str, partition: str, dim: int) -> None:
        import numpy as np

        from semcache_core.mirror import PartitionMirror

        now = time.time()
        rows = [
            (entry_id, record)
            for entry_id, record in self._records.get(namespace, {}).items()
            if record.partition == partition and _live(record.expires_at, now)
        ]
        index = self._indexes[(namespace, partition)] = PartitionMirror(dim)
        if rows:
            index.append(
                [record.seq for _id, record in rows],
                [entry_id for entry_id, _record in rows],
                np.stack([record.vector for _id, record in rows]),
                [record.expires_at for _id, record in rows],
                [record.tags for _id, record in rows],
            )

    def _drop_record(self, namespace: str, entry_id: str) -> None:
        record = self._records.get(namespace, {}).pop(entry_id, None)
        self._forget(namespace, keyspace.vector_key(entry_id))
        if record is not None:
            index = self._indexes.get((namespace, record.partition))
            if index is not None:
                index.discard(entry_id)

    def search_vectors(self, namespace: str, search: VectorSearch) -> list[VectorHit]:
        from semcache_core.mirror import EXTRA_CANDIDATES, MAX_VERIFY_ROUNDS

        dim = int(search.vector.shape[0])
        self.check_dim(namespace, search.partition, dim)
        index = self._indexes.get((namespace, search.partition))
        if index is None or index.dim != dim:
            return []
        records = self._records.get(namespace, {})
        wanted = search.k + EXTRA_CANDIDATES
        hits: list[VectorHit] = []
        for _ in range(MAX_VERIFY_ROUNDS):
            now = time.time()
            candidates = index.search(
                search.vector,
                k=wanted,
                max_distance=search.max_distance,
                now=now,
                tags=search.tags,
            )
            hits, stale = [], False
            for candidate in candidates:
                record = records.get(candidate.id)
                if (
                    record is None
                    or record.seq != candidate.seq
                    or not _live(record.expires_at, now)
                ):
                    index.discard_seq(candidate.seq, candidate.id)  # expired since
                    stale = True
                    continue
                hits.append(VectorHit(candidate.id, candidate.distance, record.payload))
                if len(hits) == search.k:
                    break
            if len(hits) == search.k or not stale or len(candidates) < wanted:
                break
        if self.max_entries is not None:  # a proposed record still there counts as used
            self._used(namespace, [keyspace.vector_key(hit.id) for hit in hits])
        return hits

    # -- namespace-wide --------------------------------------------------------------------
    def clear(self, namespace: str) -> None:
        self._values.pop(namespace, None)
        self._records.pop(namespace, None)
        self._recency.pop(namespace, None)
        self._hits.pop(namespace, None)
        for key in [key for key in self._indexes if key[0] == namespace]:
            del self._indexes[key]
        for key in [key for key in self._counters if key[0] == namespace]:
            del self._counters[key]

    def incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> None:
        counters = self._counters.setdefault((namespace, name), {})
        for field, delta in deltas.items():
            counters[field] = counters.get(field, 0.0) + delta

    def get_counters(self, namespace: str, name: str) -> dict[str, float]:
        return dict(self._counters.get((namespace, name), {}))

    # -- housekeeping ----------------------------------------------------------------------
    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        """Delete expired values and records (reads never serve them; this frees memory)."""
        now = time.time()
        for namespace, values in self._values.items():
            for key in [k for k, (_v, exp) in values.items() if not _live(exp, now)]:
                del values[key]
                self._forget(namespace, key)
        for namespace, records in self._records.items():
            for entry_id in [i for i, r in records.items() if not _live(r.expires_at, now)]:
                self._drop_record(namespace, entry_id)


class MemoryOperations(Operations):
    """The protocol over a :class:`MemoryStore`: one :class:`Call` per operation."""

    label = "the in-memory"

    def one_step_get(self, namespace: str, key: str) -> OneStepRead:
        return Call("get_one", (namespace, key)), None

    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]:
        found: list[bytes | None] = yield Call("get_many", (namespace, keys))
        return found

    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]:
        yield Call("set_many", (namespace, items, _expiry(ttl_ms)))

    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]:
        yield Call("delete_many", (namespace, keys))

    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int | None) -> Flow[None]:
        yield Call("expire_many", (namespace, keys, _expiry(ttl_ms)))

    def _get_expiries(self, namespace: str, keys: list[str]) -> Flow[dict[str, float | None]]:
        expiries: dict[str, float | None] = yield Call("get_expiries", (namespace, keys))
        return expiries

    def _scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]:
        page: KeyPage = yield Call("scan_keys", (namespace, prefix))
        return page

    def _set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        stored: bool = yield Call("swap", (namespace, key, None, value, _expiry(ttl_ms)))
        return stored

    def _compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        written: bool = yield Call("swap", (namespace, key, expected, new, _expiry(ttl_ms)))
        return written

    def _add_vectors(self, namespace: str, write: VectorWrite) -> Flow[None]:
        yield Call("add_vectors", (namespace, write))

    def _search_vectors(self, namespace: str, search: VectorSearch) -> Flow[list[VectorHit]]:
        hits: list[VectorHit] = yield Call("search_vectors", (namespace, search))
        return hits

    def _note_hits(self, namespace: str, keys: list[str]) -> Flow[None]:
        yield Call("note_hits", (namespace, keys))

    def _get_hits(self, namespace: str, keys: list[str]) -> Flow[dict[str, EntryHits]]:
        hits: dict[str, EntryHits] = yield Call("get_hits", (namespace, keys))
        return hits

    def _clear(self, namespace: str) -> Flow[None]:
        yield Call("clear", (namespace,))

    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]:
        yield Call("incr_counters", (namespace, name, deltas))

    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        counters: dict[str, float] = yield Call("get_counters", (namespace, name))
        return counters

    def trim(self, namespace: str, max_entries: int) -> Flow[int]:
        """Evict beyond ``max_entries`` now; how many were evicted."""
        namespace = keyspace.validate_namespace(namespace)
        limit = validate_max_entries(max_entries)
        if limit is None:
            raise TypeError("max_entries must be an int of at least 1, got None")
        evicted: int = yield Call("trim", (namespace, limit))
        return evicted


class MemoryBackend(Backend):
    """In-process storage for values and vectors (see the module docstring)."""

    schemes = ("memory",)

    ops: MemoryOperations

    def __init__(
        self, *, max_entries: int | str | None = None, track_hits: bool | str = False
    ) -> None:
        self.store = MemoryStore(validate_max_entries(max_entries))
        self.ops = MemoryOperations()
        self.ops.counts_hits = validate_track_hits(track_hits)
        self._methods = {
            name: getattr(self.store, name)
            for name in (
                "get_many",
                "get_one",
                "set_many",
                "delete_many",
                "expire_many",
                "scan_keys",
                "swap",
                "add_vectors",
                "search_vectors",
                "clear",
                "incr_counters",
                "get_counters",
                "get_expiries",
                "note_hits",
                "get_hits",
                "trim",
            )
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryBackend:
        parts = urlsplit(url)
        if parts.netloc or parts.path.strip("/"):
            raise SemcacheInputError(
                f"malformed URL {url!r}: the in-memory backend takes no path, use 'memory://'"
            )
        merged = dict(options)
        for name, values in parse_qs(parts.query, keep_blank_values=True).items():
            if name not in _URL_OPTIONS:
                raise SemcacheInputError(
                    f"unknown option {name!r} in URL {url!r}; the in-memory backend takes "
                    f"{', '.join(_URL_OPTIONS)}"
                )
            if len(values) > 1 or name in options:
                raise SemcacheInputError(f"option {name!r} is given twice (URL {url!r})")
            merged[name] = values[0]
        unknown = sorted(set(merged) - set(_URL_OPTIONS))
        if unknown:
            raise SemcacheInputError(
                f"the in-memory backend takes only {', '.join(_URL_OPTIONS)}, got {unknown}"
            )
        return cls(**merged)

    def trim(self, namespace: str, max_entries: int) -> int:
        """Evict the least recently used entries of ``namespace`` beyond ``max_entries`` now
        (whatever the backend's own limit); returns how many."""
        return run(self.ops.trim(namespace, max_entries), self)

    async def atrim(self, namespace: str, max_entries: int) -> int:
        return await arun(self.ops.trim(namespace, max_entries), self)

    def namespace_counts(self, namespace: str) -> dict[str, int]:
        """Entries this backend evicted from ``namespace`` (``max_entries``)."""
        with self.store.lock:
            return {"evictions": self.store.evictions.get(namespace, 0)}

    def execute(self, step: Step) -> Any:
        if not isinstance(step, Call):
            raise TypeError(f"the in-memory backend cannot execute {step!r}")
        with self.store.lock:
            return self._methods[step.method](*step.args)

    async def aexecute(self, step: Step) -> Any:
        return self.execute(step)

    def __repr__(self) -> str:
        return "MemoryBackend()"
