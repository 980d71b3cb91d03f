"""The backend protocol: storage mechanics only, native sync and async.

A backend stores two things, both scoped by a namespace:

* **values**: bytes by key, each with an optional TTL (get many, set many, delete many, keys by
  prefix);
* **vectors**: records of (id, unit vector, payload bytes, tag fields) grouped in *partitions*;
  search returns the nearest records of one partition within a cosine distance, optionally
  restricted to records whose tags equal given values. The partition and tags restrict the
  candidates *before* the nearest-neighbour search, never after.

Plus ``clear(namespace)`` (everything of that namespace, nothing else) and small counters used
for persisted stats.

What a backend does **not** know: key hashing, thresholds, TTL defaults, guards, stats,
serialization, error policy. Those live once in :mod:`semcache_core.engine`.

Distances are cosine distances ``1 - cos`` in ``[0, 2]`` on every backend, so one threshold
means the same thing everywhere. Vectors handed to a backend are already validated,
float32 and unit length (see :func:`semcache_core.codecs.as_vector`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from semcache_core.codecs import Vector


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


class Backend(ABC):
    """Base class of every backend. Sync and async methods have the same meaning.

    Implementations raise :class:`semcache_core.errors.BackendError` when the storage does
    not answer, and ``SemcacheInputError``/``TypeError`` for input they cannot store.
    """

    #: URL schemes this backend is registered for (``memory``, ``redis``, ...).
    schemes: ClassVar[tuple[str, ...]] = ()

    # -- values ---------------------------------------------------------------------------
    @abstractmethod
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` in order; ``None`` for missing or expired ones."""

    @abstractmethod
    def set_many(
        self,
        namespace: str,
        items: Sequence[tuple[str, bytes]],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store all ``items``, each expiring after ``ttl`` seconds (``None`` = never)."""

    @abstractmethod
    def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        """Delete ``keys``; missing keys are not an error."""

    @abstractmethod
    def iter_keys(self, namespace: str, prefix: str = "") -> Iterator[str]:
        """Every live key of ``namespace`` that starts with ``prefix`` (taken literally)."""

    @abstractmethod
    def expire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None:
        """Reset the TTL of existing value keys and vector ids (refresh on hit)."""

    # -- vectors --------------------------------------------------------------------------
    @abstractmethod
    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None:
        """Insert or replace ``records`` (by id) in ``partition``."""

    @abstractmethod
    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        """Up to ``k`` live records of ``partition`` within ``max_distance``, nearest first."""

    @abstractmethod
    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        """Payloads of the vector records ``ids`` (``None`` for missing or expired ones)."""

    @abstractmethod
    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        """Delete vector records by id; missing ids are not an error."""

    # -- namespace-wide -------------------------------------------------------------------
    @abstractmethod
    def clear(self, namespace: str) -> None:
        """Delete every value, vector and counter of ``namespace`` and nothing else."""

    @abstractmethod
    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        """Atomically add ``deltas`` to the counters of the group ``name``."""

    @abstractmethod
    def get_counters(self, namespace: str, name: str) -> dict[str, float]:
        """All counters of the group ``name`` (empty when none)."""

    def close(self) -> None:  # noqa: B027 - optional: most backends own no connection
        """Release connections the backend opened itself (never a client the user passed)."""

    # -- atomic values (used by semcache_core.context_cache) ------------------------------
    # Optional: a backend without them cannot host a ContextCacheRegistry. Both work on the
    # value keys of get_many/set_many; ``expected=None`` means "absent or expired".
    def set_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        """Store ``value`` only if ``key`` has no live value; True if this call stored it."""
        raise NotImplementedError(f"{type(self).__name__} has no atomic set_if_absent")

    def compare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        """Replace the value of ``key`` by ``new`` only if it is ``expected``; True if done."""
        raise NotImplementedError(f"{type(self).__name__} has no atomic compare_and_set")

    async def aset_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        raise NotImplementedError(f"{type(self).__name__} has no atomic set_if_absent")

    async def acompare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        raise NotImplementedError(f"{type(self).__name__} has no atomic compare_and_set")

    # -- async: same meaning, native implementations in network backends ------------------
    @abstractmethod
    async def aget_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]: ...

    @abstractmethod
    async def aset_many(
        self,
        namespace: str,
        items: Sequence[tuple[str, bytes]],
        *,
        ttl: float | None = None,
    ) -> None: ...

    @abstractmethod
    async def adelete_many(self, namespace: str, keys: Sequence[str]) -> None: ...

    @abstractmethod
    def aiter_keys(self, namespace: str, prefix: str = "") -> AsyncIterator[str]: ...

    @abstractmethod
    async def aexpire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None: ...

    @abstractmethod
    async def aadd_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None: ...

    @abstractmethod
    async def asearch_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]: ...

    @abstractmethod
    async def aget_vector_payloads(
        self, namespace: str, ids: Sequence[str]
    ) -> list[bytes | None]: ...

    @abstractmethod
    async def adelete_vectors(self, namespace: str, ids: Sequence[str]) -> None: ...

    @abstractmethod
    async def aclear(self, namespace: str) -> None: ...

    @abstractmethod
    async def aincr_counters(
        self, namespace: str, name: str, deltas: Mapping[str, float]
    ) -> None: ...

    @abstractmethod
    async def aget_counters(self, namespace: str, name: str) -> dict[str, float]: ...

    async def aclose(self) -> None:
        """Async counterpart of :meth:`close`."""
        self.close()


class InProcessAsyncMixin:
    """Async methods for a backend whose storage is in-process (no network I/O).

    Running them inline is faster than a thread hop and is what the embedded backend wants:
    its operations take microseconds. Network backends implement the async side natively.
    """

    async def aget_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        return self.get_many(namespace, keys)  # type: ignore[attr-defined,no-any-return]

    async def aset_many(
        self,
        namespace: str,
        items: Sequence[tuple[str, bytes]],
        *,
        ttl: float | None = None,
    ) -> None:
        self.set_many(namespace, items, ttl=ttl)  # type: ignore[attr-defined]

    async def adelete_many(self, namespace: str, keys: Sequence[str]) -> None:
        self.delete_many(namespace, keys)  # type: ignore[attr-defined]

    async def aiter_keys(self, namespace: str, prefix: str = "") -> AsyncIterator[str]:
        for key in self.iter_keys(namespace, prefix):  # type: ignore[attr-defined]
            yield key

    async def aexpire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None:
        self.expire_many(namespace, keys, ttl=ttl)  # type: ignore[attr-defined]

    async def aadd_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None:
        self.add_vectors(namespace, partition, records, ttl=ttl)  # type: ignore[attr-defined]

    async def asearch_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        return self.search_vectors(  # type: ignore[attr-defined,no-any-return]
            namespace, partition, vector, k=k, max_distance=max_distance, tags=tags
        )

    async def aget_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        return self.get_vector_payloads(namespace, ids)  # type: ignore[attr-defined,no-any-return]

    async def adelete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        self.delete_vectors(namespace, ids)  # type: ignore[attr-defined]

    async def aclear(self, namespace: str) -> None:
        self.clear(namespace)  # type: ignore[attr-defined]

    async def aincr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        self.incr_counters(namespace, name, deltas)  # type: ignore[attr-defined]

    async def aget_counters(self, namespace: str, name: str) -> dict[str, float]:
        return self.get_counters(namespace, name)  # type: ignore[attr-defined,no-any-return]

    # -- atomic values (used by semcache_core.context_cache) ------------------------------
    async def aset_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return self.set_if_absent(namespace, key, value, ttl=ttl)  # type: ignore[attr-defined,no-any-return]

    async def acompare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        return self.compare_and_set(namespace, key, expected, new, ttl=ttl)  # type: ignore[attr-defined,no-any-return]


class OperationBackend(Backend):
    """A network backend whose operations are each written once, as generators.

    ``self._ops`` builds, for every protocol method, a generator that yields the storage calls
    it needs as plain data and receives their replies (sans I/O). ``_run`` drives one with the
    sync client and ``_arun`` with the async client, so the sync and async sides cannot drift
    apart; this class maps the protocol onto those generators once for every such backend.
    ``iter_keys``/``aiter_keys`` stream pages and stay with each backend.
    """

    _ops: Any

    @abstractmethod
    def _run(self, operation: Any) -> Any:
        """Drive ``operation`` to completion with the sync client."""

    @abstractmethod
    async def _arun(self, operation: Any) -> Any:
        """Drive ``operation`` to completion with the async client."""

    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        return self._run(self._ops.get_many(namespace, keys))  # type: ignore[no-any-return]

    async def aget_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        return await self._arun(self._ops.get_many(namespace, keys))  # type: ignore[no-any-return]

    def set_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        self._run(self._ops.set_many(namespace, items, ttl))

    async def aset_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        await self._arun(self._ops.set_many(namespace, items, ttl))

    def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        self._run(self._ops.delete_many(namespace, keys))

    async def adelete_many(self, namespace: str, keys: Sequence[str]) -> None:
        await self._arun(self._ops.delete_many(namespace, keys))

    def expire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None:
        self._run(self._ops.expire_many(namespace, keys, ttl))

    async def aexpire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None:
        await self._arun(self._ops.expire_many(namespace, keys, ttl))

    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None:
        self._run(self._ops.add_vectors(namespace, partition, records, ttl))

    async def aadd_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None:
        await self._arun(self._ops.add_vectors(namespace, partition, records, ttl))

    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        operation = self._ops.search_vectors(namespace, partition, vector, k, max_distance, tags)
        return self._run(operation)  # type: ignore[no-any-return]

    async def asearch_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        operation = self._ops.search_vectors(namespace, partition, vector, k, max_distance, tags)
        return await self._arun(operation)  # type: ignore[no-any-return]

    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        return self._run(self._ops.get_vector_payloads(namespace, ids))  # type: ignore[no-any-return]

    async def aget_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        operation = self._ops.get_vector_payloads(namespace, ids)
        return await self._arun(operation)  # type: ignore[no-any-return]

    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        self._run(self._ops.delete_vectors(namespace, ids))

    async def adelete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        await self._arun(self._ops.delete_vectors(namespace, ids))

    def clear(self, namespace: str) -> None:
        self._run(self._ops.clear(namespace))

    async def aclear(self, namespace: str) -> None:
        await self._arun(self._ops.clear(namespace))

    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        self._run(self._ops.incr_counters(namespace, name, deltas))

    async def aincr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        await self._arun(self._ops.incr_counters(namespace, name, deltas))

    def get_counters(self, namespace: str, name: str) -> dict[str, float]:
        return self._run(self._ops.get_counters(namespace, name))  # type: ignore[no-any-return]

    async def aget_counters(self, namespace: str, name: str) -> dict[str, float]:
        return await self._arun(self._ops.get_counters(namespace, name))  # type: ignore[no-any-return]

    # -- atomic values (used by semcache_core.context_cache) ------------------------------
    def set_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return self._run(self._ops.set_if_absent(namespace, key, value, ttl))  # type: ignore[no-any-return]

    async def aset_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return await self._arun(self._ops.set_if_absent(namespace, key, value, ttl))  # type: ignore[no-any-return]

    def compare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        operation = self._ops.compare_and_set(namespace, key, expected, new, ttl)
        return self._run(operation)  # type: ignore[no-any-return]

    async def acompare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        operation = self._ops.compare_and_set(namespace, key, expected, new, ttl)
        return await self._arun(operation)  # type: ignore[no-any-return]
