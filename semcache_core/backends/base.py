"""The backend protocol: operations (sans-I/O flows) plus a transport.

A backend stores two things, both scoped by a namespace:

* **values**: bytes by key, each with an optional TTL;
* **vector records**: (id, unit vector, payload bytes, tags) grouped in *partitions*; search
  returns the nearest records of one partition within a cosine distance, optionally
  restricted to records whose tags hold given values. The partition and the tags restrict the
  candidates *before* the nearest-neighbour search, never after. A vector record is also
  addressed by its key :func:`semcache_core.keys.vector_key` (``vec:<id>``): ``get_many``,
  ``delete_many``, ``expire_many`` and ``get_expiries`` read, delete, refresh and date values
  and records alike, and ``scan_keys`` with a ``vec:`` prefix pages the records' keys.

:class:`Operations` is what the engine uses, thirteen operations, each a :data:`~semcache_core.flow.
Flow` that yields backend-specific steps. Its public methods check the invariants once
(namespace, key types, reserved kinds, one dimension per batch, TTL rounded to whole
milliseconds) and then call the backend-specific ``_``-method. Two more are optional
capabilities, no-ops unless a backend sets ``counts_hits``: ``note_hits`` (the engine served
these entries) and ``get_hits`` (their counts, for ``entries()``). :class:`Backend` is the
transport that performs those steps with the backend's clients (``execute``/``aexecute``), plus
thin sync and async convenience methods for code that calls a backend directly.

Tags are the basis of per-entry filter fields (tenant or user scopes inside the vector
search): every backend already filters on them before ranking, and the contract suite
(:mod:`semcache_core.testing`) checks it.

What a backend does **not** know: key hashing, thresholds, TTL defaults, guards, stats,
serialization, error policy. Those live once in :mod:`semcache_core.engine`.

Distances are cosine distances ``1 - cos`` in ``[0, 2]`` on every backend, so one threshold
means the same thing everywhere. Vectors handed to a backend are already validated, float32
and unit length (see :func:`semcache_core.codecs.as_vector`).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from semcache_core import keys as keyspace
from semcache_core.codecs import Vector
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow, Step, arun, done, run

logger = logging.getLogger("semcache")


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One semantic entry as the backend stores it."""

    id: str
    vector: Vector
    payload: bytes
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VectorHit:
    """A search result: the record's id, its cosine distance to the query, and its payload."""

    id: str
    distance: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class VectorWrite:
    """A checked ``add_vectors``: ``records`` share dimension ``dim``; TTL in milliseconds."""

    partition: str
    records: Sequence[VectorRecord]
    dim: int
    ttl_ms: int | None


@dataclass(frozen=True, slots=True)
class VectorSearch:
    """A checked ``search_vectors``: ``k >= 1``; ``tags`` restrict before ranking."""

    partition: str
    vector: Vector
    k: int
    max_distance: float
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class EntryHits:
    """How often an entry was served since it was written, and when last (epoch seconds)."""

    hits: int
    last_hit: float | None


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of a key scan; ``cursor`` continues it, ``None`` when the scan is complete."""

    keys: list[str]
    cursor: str | None


#: A read of one value in one step (:meth:`Operations.one_step_get`): the step, and what
#: turns its reply into the value (``None`` when the reply is the value itself; a value of
#: ``None``: missing).
OneStepRead = tuple[Step, Callable[[Any], "bytes | None"] | None]


def checked_keys(keys: Sequence[str]) -> list[str]:
    if isinstance(keys, (str, bytes)):
        raise TypeError("keys must be a sequence of str, not a single str/bytes")
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(f"keys must be str, got {type(key).__name__}: {key!r}")
        keyspace.require_text(key, "key")
    return list(keys)


def counters_of(pairs: Iterable[tuple[Any, Any]]) -> dict[str, float]:
    """Stored counters as numbers: a field that is not a finite number (planted, or written by
    another program) is skipped with a warning; stats must never take lookups down."""
    counters: dict[str, float] = {}
    for name, value in pairs:
        try:
            field_name = name.decode() if isinstance(name, bytes) else str(name)
            number = float(value)
        except (TypeError, ValueError, UnicodeDecodeError):
            number = math.nan
            field_name = repr(name)
        if math.isfinite(number):
            counters[field_name] = number
        else:
            logger.warning("semcache: ignoring a counter that is not a number: %s", field_name)
    return counters


def _checked_value(value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"values must be bytes, got {type(value).__name__}")
    return bytes(value)


def _checked_tags(tags: Mapping[str, str]) -> dict[str, str]:
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"vector tags must map str to str, got {name!r}: {value!r}")
        keyspace.require_text(name, "tag name")
        keyspace.require_text(value, "tag value")
    return dict(tags)


class Operations(ABC):
    """The thirteen operations the engine uses; invariants here, storage in the ``_`` methods."""

    #: Name used in messages ("the Redis backend").
    label: ClassVar[str] = "this"
    #: Whether :meth:`note_hits` and :meth:`get_hits` count served hits per entry: only where
    #: a hit costs no write of its own (the embedded backends batch them with their uses).
    counts_hits: bool = False

    # -- values --------------------------------------------------------------------------
    def one_step_get(self, namespace: str, key: str) -> OneStepRead | None:
        """``get_many(namespace, [key])`` as its single step and the function that reads the
        value out of that step's reply, where this backend reads one value in one step;
        ``None`` where it needs a flow (then ``get_many``). For the engine's exact read, of a
        key it made in a namespace it checked: neither is checked again here."""
        return None

    def get_many(self, namespace: str, keys: Sequence[str]) -> Flow[list[bytes | None]]:
        """Values (or vector payloads, for ``vec:`` keys) in order; ``None`` when missing."""
        namespace, keys = keyspace.validate_namespace(namespace), checked_keys(keys)
        return self._get_many(namespace, keys) if keys else done([])

    def set_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> Flow[None]:
        """Store every ``(key, value)``, each expiring after ``ttl`` seconds (None = never)."""
        namespace = keyspace.validate_namespace(namespace)
        checked = [(self._value_key(key), _checked_value(value)) for key, value in items]
        return self._set_many(namespace, checked, keyspace.ttl_ms(ttl)) if checked else done(None)

    def delete_many(self, namespace: str, keys: Sequence[str]) -> Flow[None]:
        """Delete values and vector records by key; missing keys are not an error."""
        namespace, keys = keyspace.validate_namespace(namespace), checked_keys(keys)
        return self._delete_many(namespace, list(dict.fromkeys(keys))) if keys else done(None)

    def expire_many(self, namespace: str, keys: Sequence[str], *, ttl: float | None) -> Flow[None]:
        """Reset the TTL of existing live values and vector records (refresh on hit, an
        operator's ``expire``); ``ttl=None`` removes their expiry. Missing keys are skipped."""
        namespace, keys = keyspace.validate_namespace(namespace), checked_keys(keys)
        ms = keyspace.ttl_ms(ttl)
        return self._expire_many(namespace, list(dict.fromkeys(keys)), ms) if keys else done(None)

    def get_expiries(self, namespace: str, keys: Sequence[str]) -> Flow[dict[str, float | None]]:
        """When each live key expires (epoch seconds; ``None``: never); a missing or expired
        key is absent from the result. TTLs change after a write (refresh on hit, ``expire``),
        so the backend, not the entry, knows them."""
        namespace, keys = keyspace.validate_namespace(namespace), checked_keys(keys)
        return self._get_expiries(namespace, list(dict.fromkeys(keys))) if keys else done({})

    def note_hits(self, namespace: str, keys: Sequence[str]) -> Flow[None]:
        """The entries under ``keys`` (keys the engine just read) were served: an exact hit, or
        a semantic hit that passed every stage (a candidate a search only proposed is not a
        hit). Counted where :attr:`counts_hits`; an optional capability, a no-op elsewhere."""
        return self._note_hits(namespace, list(keys)) if self.counts_hits and keys else done(None)

    def get_hits(self, namespace: str, keys: Sequence[str]) -> Flow[dict[str, EntryHits]]:
        """The hits counted for each live key (absent: never served, or not counted at all,
        see :attr:`counts_hits`)."""
        namespace, keys = keyspace.validate_namespace(namespace), checked_keys(keys)
        if not self.counts_hits or not keys:
            return done({})
        return self._get_hits(namespace, list(dict.fromkeys(keys)))

    def _note_hits(self, namespace: str, keys: list[str]) -> Flow[None]:
        return done(None)

    def _get_hits(self, namespace: str, keys: list[str]) -> Flow[dict[str, EntryHits]]:
        return done({})

    # -- atomic values (used by semcache_core.context_cache) ------------------------------
    def set_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> Flow[bool]:
        """Store ``value`` only if ``key`` has no live value; True if this call stored it."""
        namespace, key = keyspace.validate_namespace(namespace), self._value_key(key)
        return self._set_if_absent(namespace, key, _checked_value(value), keyspace.ttl_ms(ttl))

    def compare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> Flow[bool]:
        """Replace the value of ``key`` by ``new`` only if it is ``expected`` (``None``: absent
        or expired), atomically; True if this call wrote it."""
        namespace, key = keyspace.validate_namespace(namespace), self._value_key(key)
        current = None if expected is None else _checked_value(expected)
        ms = keyspace.ttl_ms(ttl)
        return self._compare_and_set(namespace, key, current, _checked_value(new), ms)

    def _value_key(self, key: str) -> str:
        """``key`` if a value may be written under it (a str outside the reserved kinds)."""
        checked_keys([key])
        if keyspace.is_reserved(key):
            raise SemcacheInputError(
                f"value key {key!r} uses a kind {self.label} backend reserves for its own "
                f"records ({', '.join(sorted(keyspace.RESERVED_KINDS))})"
            )
        return key

    def scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]:
        """One page of the live value keys starting with ``prefix`` (taken literally); a
        prefix that starts with ``vec:`` pages the vector records' keys (``vec:<id>``)."""
        namespace = keyspace.validate_namespace(namespace)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        keyspace.require_text(prefix, "prefix")
        return self._scan_keys(namespace, prefix, cursor)

    # -- vectors -------------------------------------------------------------------------
    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> Flow[None]:
        """Insert or replace ``records`` (by id) in ``partition``."""
        namespace = keyspace.validate_namespace(namespace)
        if not records:
            return done(None)
        dim = keyspace.single_dimension(records)
        for record in records:
            checked_keys([record.id])
            _checked_tags(record.tags)
        return self._add_vectors(
            namespace, VectorWrite(partition, records, dim, keyspace.ttl_ms(ttl))
        )

    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> Flow[list[VectorHit]]:
        """Up to ``k`` live records of ``partition`` within ``max_distance``, nearest first."""
        namespace = keyspace.validate_namespace(namespace)
        if k < 1:
            return done([])
        search = VectorSearch(partition, vector, k, max_distance, _checked_tags(tags or {}))
        return self._search_vectors(namespace, search)

    # -- namespace-wide ------------------------------------------------------------------
    def clear(self, namespace: str) -> Flow[None]:
        """Delete every value, vector and counter of ``namespace`` and nothing else."""
        return self._clear(keyspace.validate_namespace(namespace))

    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> Flow[None]:
        """Atomically add ``deltas`` to the counters of the group ``name``."""
        namespace = keyspace.validate_namespace(namespace)
        clean = {str(k): float(v) for k, v in deltas.items()}
        return self._incr_counters(namespace, name, clean) if clean else done(None)

    def get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        """All counters of the group ``name`` (empty when none)."""
        return self._get_counters(keyspace.validate_namespace(namespace), name)

    # -- the backend-specific part (arguments already checked) ---------------------------
    @abstractmethod
    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]: ...

    @abstractmethod
    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]: ...

    @abstractmethod
    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]: ...

    @abstractmethod
    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int | None) -> Flow[None]: ...

    @abstractmethod
    def _get_expiries(self, namespace: str, keys: list[str]) -> Flow[dict[str, float | None]]: ...

    @abstractmethod
    def _scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]: ...

    @abstractmethod
    def _add_vectors(self, namespace: str, write: VectorWrite) -> Flow[None]: ...

    @abstractmethod
    def _search_vectors(self, namespace: str, search: VectorSearch) -> Flow[list[VectorHit]]: ...

    @abstractmethod
    def _clear(self, namespace: str) -> Flow[None]: ...

    @abstractmethod
    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]: ...

    @abstractmethod
    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]: ...

    @abstractmethod
    def _set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl_ms: int | None
    ) -> Flow[bool]: ...

    @abstractmethod
    def _compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl_ms: int | None
    ) -> Flow[bool]: ...


class KeyScan:
    """A key scan in progress: the next page's flow, and each page's keys seen once."""

    def __init__(self, ops: Operations, namespace: str, prefix: str) -> None:
        self._ops, self._namespace, self._prefix = ops, namespace, prefix
        self._cursor: str | None = None
        self._seen: set[str] = set()  # Redis SCAN may return a key twice
        self.finished = False

    def next_page(self) -> Flow[KeyPage]:
        return self._ops.scan_keys(self._namespace, self._prefix, self._cursor)

    def take(self, page: KeyPage | None) -> list[str]:
        """The new keys of ``page``; ``None`` (a failed page) ends the scan."""
        if page is None or page.cursor is None:
            self.finished = True
        else:
            self._cursor = page.cursor
        fresh = [key for key in (page.keys if page else ()) if key not in self._seen]
        self._seen.update(fresh)
        return fresh


class Backend(ABC):
    """A backend: its :class:`Operations` (``ops``) and the transport that performs them.

    Implementations raise :class:`semcache_core.errors.BackendError` when the storage does
    not answer, and ``SemcacheInputError``/``TypeError`` for input they cannot store.
    """

    #: URL schemes this backend is registered for (``memory``, ``redis``, ...).
    schemes: ClassVar[tuple[str, ...]] = ()
    ops: Operations

    @abstractmethod
    def execute(self, step: Step) -> Any:
        """Perform one step of this backend's operations with the blocking client."""

    @abstractmethod
    async def aexecute(self, step: Step) -> Any:
        """Perform one step of this backend's operations with the asyncio client."""

    def describe(self) -> dict[str, str]:
        """What the backend chose at connect time, for ``stats()`` (e.g. ``vector_search``)."""
        return {}

    def namespace_counts(self, namespace: str) -> dict[str, int]:
        """Counts this backend object keeps itself about ``namespace`` for ``stats()`` (the
        embedded backend: ``evictions``); persisted totals are in the counters."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional: most backends own no connection
        """Release connections the backend opened itself (never a client the user passed)."""

    async def aclose(self) -> None:
        """Async counterpart of :meth:`close`."""
        self.close()

    # -- direct use: each is run(ops.<operation>) or arun(ops.<operation>) -----------------
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        return run(self.ops.get_many(namespace, keys), self)

    async def aget_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        return await arun(self.ops.get_many(namespace, keys), self)

    def set_many(self, namespace: str, items: Any, *, ttl: float | None = None) -> None:
        run(self.ops.set_many(namespace, items, ttl=ttl), self)

    async def aset_many(self, namespace: str, items: Any, *, ttl: float | None = None) -> None:
        await arun(self.ops.set_many(namespace, items, ttl=ttl), self)

    def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        run(self.ops.delete_many(namespace, keys), self)

    async def adelete_many(self, namespace: str, keys: Sequence[str]) -> None:
        await arun(self.ops.delete_many(namespace, keys), self)

    def expire_many(self, namespace: str, keys: Sequence[str], *, ttl: float | None) -> None:
        run(self.ops.expire_many(namespace, keys, ttl=ttl), self)

    async def aexpire_many(self, namespace: str, keys: Sequence[str], *, ttl: float | None) -> None:
        await arun(self.ops.expire_many(namespace, keys, ttl=ttl), self)

    def get_expiries(self, namespace: str, keys: Sequence[str]) -> dict[str, float | None]:
        return run(self.ops.get_expiries(namespace, keys), self)

    async def aget_expiries(self, namespace: str, keys: Sequence[str]) -> dict[str, float | None]:
        return await arun(self.ops.get_expiries(namespace, keys), self)

    def note_hits(self, namespace: str, keys: Sequence[str]) -> None:
        run(self.ops.note_hits(namespace, keys), self)

    def get_hits(self, namespace: str, keys: Sequence[str]) -> dict[str, EntryHits]:
        return run(self.ops.get_hits(namespace, keys), self)

    def set_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return run(self.ops.set_if_absent(namespace, key, value, ttl=ttl), self)

    async def aset_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return await arun(self.ops.set_if_absent(namespace, key, value, ttl=ttl), self)

    def compare_and_set(
        self, ns: str, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        return run(self.ops.compare_and_set(ns, key, expected, new, ttl=ttl), self)

    async def acompare_and_set(
        self, ns: str, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        return await arun(self.ops.compare_and_set(ns, key, expected, new, ttl=ttl), self)

    def iter_keys(self, namespace: str, prefix: str = "") -> Iterator[str]:
        scan = KeyScan(self.ops, namespace, prefix)
        while not scan.finished:
            yield from scan.take(run(scan.next_page(), self))

    async def aiter_keys(self, namespace: str, prefix: str = "") -> AsyncIterator[str]:
        scan = KeyScan(self.ops, namespace, prefix)
        while not scan.finished:
            for key in scan.take(await arun(scan.next_page(), self)):
                yield key

    def add_vectors(self, namespace: str, partition: str, records: Any, **ttl: Any) -> None:
        run(self.ops.add_vectors(namespace, partition, records, **ttl), self)

    async def aadd_vectors(self, namespace: str, partition: str, records: Any, **ttl: Any) -> None:
        await arun(self.ops.add_vectors(namespace, partition, records, **ttl), self)

    def search_vectors(self, namespace: str, partition: str, vector: Vector, **query: Any) -> Any:
        return run(self.ops.search_vectors(namespace, partition, vector, **query), self)

    async def asearch_vectors(self, ns: str, partition: str, vector: Vector, **query: Any) -> Any:
        return await arun(self.ops.search_vectors(ns, partition, vector, **query), self)

    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        return self.get_many(namespace, [keyspace.vector_key(i) for i in ids])

    async def aget_vector_payloads(self, namespace: str, ids: Sequence[str]) -> Any:
        return await self.aget_many(namespace, [keyspace.vector_key(i) for i in ids])

    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        self.delete_many(namespace, [keyspace.vector_key(i) for i in ids])

    async def adelete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        await self.adelete_many(namespace, [keyspace.vector_key(i) for i in ids])

    def clear(self, namespace: str) -> None:
        run(self.ops.clear(namespace), self)

    async def aclear(self, namespace: str) -> None:
        await arun(self.ops.clear(namespace), self)

    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        run(self.ops.incr_counters(namespace, name, deltas), self)

    async def aincr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        await arun(self.ops.incr_counters(namespace, name, deltas), self)

    def get_counters(self, namespace: str, name: str) -> dict[str, float]:
        return run(self.ops.get_counters(namespace, name), self)

    async def aget_counters(self, namespace: str, name: str) -> dict[str, float]:
        return await arun(self.ops.get_counters(namespace, name), self)
