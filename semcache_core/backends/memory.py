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
from urllib.parse import urlsplit

from semcache_core import keys as keyspace
from semcache_core.backends.base import (
    Backend,
    KeyPage,
    Operations,
    VectorHit,
    VectorSearch,
    VectorWrite,
)
from semcache_core.codecs import Vector
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow, Step

if TYPE_CHECKING:
    from semcache_core.mirror import PartitionMirror

#: Expired values and records are swept on one write out of this many.
_SWEEP_EVERY = 256
#: An index is rebuilt from its records once its dead rows exceed its live ones plus this.
_SLACK_ROWS = 1024


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

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._values: dict[str, dict[str, tuple[bytes, float | None]]] = {}
        self._records: dict[str, dict[str, _Record]] = {}
        self._indexes: dict[tuple[str, str], PartitionMirror] = {}
        self._counters: dict[tuple[str, str], dict[str, float]] = {}
        self._seq = 0
        self._writes = 0

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
        return found

    def set_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None
    ) -> None:
        values = self._values.setdefault(namespace, {})
        for key, value in items:
            values[key] = (value, expires_at)
        self._wrote()

    def delete_many(self, namespace: str, keys: list[str]) -> None:
        values = self._values.get(namespace, {})
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                values.pop(key, None)
            else:
                self._drop_record(namespace, entry_id)

    def expire_many(self, namespace: str, keys: list[str], expires_at: float) -> None:
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

    def scan_keys(self, namespace: str, prefix: str) -> KeyPage:
        # One page: the namespace is in memory already, a copy of its keys is cheap.
        now = time.time()
        values = self._values.get(namespace, {})
        live = [k for k, (_v, exp) in values.items() if k.startswith(prefix) and _live(exp, now)]
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
        self._wrote()
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
            self._index_row(namespace, record.id, stored)
        self._wrote()

    def _index_row(self, namespace: str, entry_id: str, record: _Record) -> None:
        """Add ``record``'s row to its partition's index (hiding an older row of the id)."""
        key = (namespace, record.partition)
        index = self._indexes.get(key)
        dim = int(record.vector.shape[0])
        if index is None or index.dim != dim:
            from semcache_core.mirror import PartitionMirror

            index = self._indexes[key] = PartitionMirror(dim)
        index.append(
            [record.seq],
            [entry_id],
            record.vector[None, :],
            [record.expires_at],
            [record.tags],
        )
        if index.size > 2 * index.live_count + _SLACK_ROWS:
            self._rebuild_index(namespace, record.partition, dim)

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
                    return hits
            if not stale or len(candidates) < wanted:
                return hits
        return hits

    # -- namespace-wide --------------------------------------------------------------------
    def clear(self, namespace: str) -> None:
        self._values.pop(namespace, None)
        self._records.pop(namespace, None)
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
        for values in self._values.values():
            for key in [k for k, (_v, exp) in values.items() if not _live(exp, now)]:
                del values[key]
        for namespace, records in self._records.items():
            for entry_id in [i for i, r in records.items() if not _live(r.expires_at, now)]:
                self._drop_record(namespace, entry_id)


class MemoryOperations(Operations):
    """The protocol over a :class:`MemoryStore`: one :class:`Call` per operation."""

    label = "the in-memory"

    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]:
        found: list[bytes | None] = yield Call("get_many", (namespace, keys))
        return found

    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]:
        yield Call("set_many", (namespace, items, _expiry(ttl_ms)))

    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]:
        yield Call("delete_many", (namespace, keys))

    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int) -> Flow[None]:
        yield Call("expire_many", (namespace, keys, _expiry(ttl_ms)))

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

    def _clear(self, namespace: str) -> Flow[None]:
        yield Call("clear", (namespace,))

    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]:
        yield Call("incr_counters", (namespace, name, deltas))

    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        counters: dict[str, float] = yield Call("get_counters", (namespace, name))
        return counters


class MemoryBackend(Backend):
    """In-process storage for values and vectors (see the module docstring)."""

    schemes = ("memory",)

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.ops = MemoryOperations()
        self._methods = {
            name: getattr(self.store, name)
            for name in (
                "get_many",
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
            )
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryBackend:
        parts = urlsplit(url)
        if parts.netloc or parts.path.strip("/") or parts.query:
            raise SemcacheInputError(
                f"malformed URL {url!r}: the in-memory backend takes no path, use 'memory://'"
            )
        if options:
            raise SemcacheInputError(
                f"the in-memory backend takes no options, got {sorted(options)}"
            )
        return cls()

    def execute(self, step: Step) -> Any:
        if not isinstance(step, Call):
            raise TypeError(f"the in-memory backend cannot execute {step!r}")
        with self.store.lock:
            return self._methods[step.method](*step.args)

    async def aexecute(self, step: Step) -> Any:
        return self.execute(step)

    def __repr__(self) -> str:
        return "MemoryBackend()"
