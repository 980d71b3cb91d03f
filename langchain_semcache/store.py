"""A LangChain ``ByteStore`` on any semcache backend.

Typical use: ``CacheBackedEmbeddings.from_bytes_store(embeddings, BackendByteStore(url),
namespace=embeddings.model)``, so documents already embedded are never embedded again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.stores import ByteStore

from semcache_core import Backend, KeyValueCache
from semcache_core.resilience import ErrorPolicy


class BackendByteStore(ByteStore):
    """``mget``/``mset``/``mdelete``/``yield_keys`` (and async forms), one round trip per batch.

    Keys must be ``str`` and values ``bytes`` (a ``TypeError`` otherwise, before anything is
    written). ``ttl`` is the default lifetime of entries; ``mset(..., ttl=)`` overrides it.
    A failing backend reads as missing keys and skips writes (``on_backend_error="warn"``),
    so an embedding cache that is down only means recomputing; ``"raise"`` propagates.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = "semcache-store",
        ttl: float | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> None:
        self._core = KeyValueCache(
            backend, namespace=namespace, ttl=ttl, on_backend_error=on_backend_error
        )

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return self._core.mget(keys)

    async def amget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._core.amget(keys)

    def mset(
        self, key_value_pairs: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        self._core.mset(key_value_pairs, ttl=ttl)

    async def amset(
        self, key_value_pairs: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> None:
        await self._core.amset(key_value_pairs, ttl=ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        self._core.mdelete(keys)

    async def amdelete(self, keys: Sequence[str]) -> None:
        await self._core.amdelete(keys)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Keys starting with ``prefix`` (taken literally, glob characters included)."""
        return self._core.yield_keys(prefix)

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        async for key in self._core.ayield_keys(prefix):
            yield key

    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._core.set_ttl(ttl)

    def clear(self) -> None:
        """Delete every key of this store's namespace, and nothing else."""
        self._core.clear()

    async def aclear(self) -> None:
        await self._core.aclear()

    def stats(self) -> dict[str, Any]:
        return self._core.stats_snapshot()

    @property
    def backend(self) -> Backend:
        return self._core.backend

    @property
    def namespace(self) -> str:
        return self._core.namespace
