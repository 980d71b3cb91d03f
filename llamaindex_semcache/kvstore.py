"""A LlamaIndex ``BaseKVStore`` on any semcache backend.

It is what LlamaIndex's own caches take:

* ``IngestionCache(cache=BackendKVStore(url))`` so an ``IngestionPipeline`` never re-runs a
  transformation on nodes it has already seen;
* ``embeddings_cache=BackendKVStore.for_embedding_model(embed_model, url)`` on any
  ``BaseEmbedding``;
* and any other KV-backed LlamaIndex store (document store, index store).

Key layout (inside the store's namespace, after the core's ``kv:`` prefix):
``<collection>/<key>``, where ``%`` and ``/`` in the collection are percent-escaped, so the
first unescaped ``/`` always ends the collection: collection ``"a/b"`` + key ``"c"`` is
``a%2Fb/c`` and collection ``"a"`` + key ``"b/c"`` is ``a/b/c``. Values are the JSON dicts
LlamaIndex passes, stored with the core's safe JSON codec (never pickle).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llama_index.core.storage.kvstore.types import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COLLECTION,
    BaseKVStore,
)

from llamaindex_semcache._identity import model_slug
from llamaindex_semcache.embedding import embedding_identity
from semcache_core import Backend, KeyValueCache
from semcache_core.codecs import decode_entry, encode_entry
from semcache_core.keys import collection_prefix
from semcache_core.resilience import ErrorPolicy

ENTRY_KIND = "llamaindex-kv"
#: Keys fetched per ``mget`` while ``get_all`` walks a collection.
GET_ALL_BATCH_SIZE = 500


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"keys must be str, got {type(key).__name__}: {key!r}")
    return key


def _encode(key: str, val: object) -> bytes:
    if not isinstance(val, dict):
        raise TypeError(f"values must be dicts, got {type(val).__name__} for key {key!r}")
    try:
        return encode_entry(ENTRY_KIND, val)
    except TypeError as exc:
        raise TypeError(f"value for key {key!r} is not JSON-serializable: {exc}") from exc


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


class BackendKVStore(BaseKVStore):
    """LlamaIndex ``BaseKVStore`` on the embedded store, Redis or Elasticsearch.

    Args:
        backend: ``None`` (in-process), a URL (``"sqlite:///cache.db"``, ``"redis://..."``,
            ``"elasticsearch+https://..."``), a redis/Elasticsearch client, or a semcache
            ``Backend`` shared with other caches.
        namespace: isolates this store; :meth:`clear` without a collection removes only it.
        ttl: seconds an entry lives (``None`` = forever).
        on_backend_error: ``"warn"`` (default: a failing backend reads as missing keys and
            skips writes, so a cache that is down only means recomputing) or ``"raise"``.

    ``put_all`` writes each ``batch_size`` slice in one round trip; ``get_all`` walks a
    collection of any size by key prefix, fetching ``get_all_batch_size`` keys per round trip.
    Every method has a native async form. A value that is not a JSON-serializable dict is a
    ``TypeError`` raised before anything is written.

    **Embedding caches**: LlamaIndex keys ``BaseEmbedding.embeddings_cache`` by the raw text
    only (collection ``"embeddings"``), without the model. Two models sharing one store would
    serve each other's vectors; give each model its own store with
    :meth:`for_embedding_model`.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = "semcache-kv",
        ttl: float | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> None:
        self._core = KeyValueCache(
            backend, namespace=namespace, ttl=ttl, on_backend_error=on_backend_error
        )
        self.get_all_batch_size = GET_ALL_BATCH_SIZE

    @classmethod
    def for_embedding_model(
        cls,
        embed_model: Any,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = "semcache-embeddings-kv",
        ttl: float | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> BackendKVStore:
        """A store for ``embed_model.embeddings_cache``, in a namespace of that model alone.

        ``embed_model`` is a LlamaIndex ``BaseEmbedding`` (its class, ``model_name`` and any
        dimension field name it) or a string naming the model. The namespace is
        ``<namespace>/<model_name>-<hash of the identity>``::

            embed_model = OpenAIEmbedding(model="text-embedding-3-small")
            embed_model.embeddings_cache = BackendKVStore.for_embedding_model(
                embed_model, "redis://localhost:6379"
            )
        """
        if isinstance(embed_model, str):
            identity, readable = embed_model, embed_model
        else:
            identity = embedding_identity(embed_model)
            readable = str(getattr(embed_model, "model_name", "") or type(embed_model).__name__)
        return cls(
            backend,
            namespace=f"{namespace}/{model_slug(identity, readable)}",
            ttl=ttl,
            on_backend_error=on_backend_error,
        )

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _key(key: str, collection: str) -> str:
        return collection_prefix(collection) + _check_key(key)

    def _items(
        self, kv_pairs: Sequence[tuple[str, dict[str, Any]]], collection: str
    ) -> list[tuple[str, bytes]]:
        prefix = collection_prefix(collection)
        items: list[tuple[str, bytes]] = []
        for pair in kv_pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"kv_pairs must hold (key, value) pairs, got {pair!r}")
            key, val = pair
            items.append((prefix + _check_key(key), _encode(key, val)))
        return items

    @staticmethod
    def _decode(raw: bytes | None) -> dict[str, Any] | None:
        return decode_entry(raw, ENTRY_KIND)

    def _batches(self, keys: Iterator[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= self.get_all_batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- sync ----------------------------------------------------------------------------------
    def put(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        self._core.mset(self._items([(key, val)], collection))

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """Store all pairs, ``batch_size`` per round trip; all are validated first."""
        batch_size = _check_batch_size(batch_size)
        items = self._items(kv_pairs, collection)
        for start in range(0, len(items), batch_size):
            self._core.mset(items[start : start + batch_size])

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        return self._decode(self._core.mget([self._key(key, collection)])[0])

    def iter_items(self, collection: str = DEFAULT_COLLECTION) -> Iterator[tuple[str, dict]]:
        """Stream the ``(key, value)`` pairs of ``collection`` (one ``mget`` per batch)."""
        prefix = collection_prefix(collection)
        strip = len(prefix)
        for batch in self._batches(self._core.yield_keys(prefix)):
            for full_key, raw in zip(batch, self._core.mget(batch), strict=True):
                value = self._decode(raw)
                if value is not None:  # expired or deleted since it was listed
                    yield full_key[strip:], value

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        return dict(self.iter_items(collection))

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        """Delete ``key``; ``True`` if it existed."""
        return self._core.mpop([self._key(key, collection)])[0] is not None

    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._core.set_ttl(ttl)

    def clear(self, collection: str | None = None) -> None:
        """Delete one collection (in batches), or with ``None`` this store's whole namespace."""
        if collection is None:
            self._core.clear()
            return
        for batch in self._batches(self._core.yield_keys(collection_prefix(collection))):
            self._core.mdelete(batch)

    # -- async ---------------------------------------------------------------------------------
    async def aput(self, key: str, val: dict, collection: str = DEFAULT_COLLECTION) -> None:
        await self._core.amset(self._items([(key, val)], collection))

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        batch_size = _check_batch_size(batch_size)
        items = self._items(kv_pairs, collection)
        for start in range(0, len(items), batch_size):
            await self._core.amset(items[start : start + batch_size])

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict | None:
        return self._decode((await self._core.amget([self._key(key, collection)]))[0])

    async def _abatches(self, prefix: str) -> AsyncIterator[list[str]]:
        batch: list[str] = []
        async for key in self._core.ayield_keys(prefix):
            batch.append(key)
            if len(batch) >= self.get_all_batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def aiter_items(
        self, collection: str = DEFAULT_COLLECTION
    ) -> AsyncIterator[tuple[str, dict]]:
        prefix = collection_prefix(collection)
        strip = len(prefix)
        async for batch in self._abatches(prefix):
            values = await self._core.amget(batch)
            for full_key, raw in zip(batch, values, strict=True):
                value = self._decode(raw)
                if value is not None:
                    yield full_key[strip:], value

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict]:
        return {key: value async for key, value in self.aiter_items(collection)}

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return (await self._core.ampop([self._key(key, collection)]))[0] is not None

    async def aclear(self, collection: str | None = None) -> None:
        if collection is None:
            await self._core.aclear()
            return
        async for batch in self._abatches(collection_prefix(collection)):
            await self._core.amdelete(batch)

    # -- introspection -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Hits, misses and writes of this store (this process)."""
        return self._core.stats_snapshot()

    def flush_stats(self) -> None:
        self._core.flush_stats()

    @property
    def backend(self) -> Backend:
        return self._core.backend

    @property
    def namespace(self) -> str:
        return self._core.namespace
