"""LlamaIndex embeddings: a batched embedding cache, and a model as the core's Embedder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny

from llamaindex_semcache import _identity
from semcache_core import Backend, EmbeddingEntry, EmbeddingsCache
from semcache_core.codecs import EMBEDDING_PRECISIONS, embedding_array
from semcache_core.embeddings_cache import DEFAULT_NAMESPACE
from semcache_core.errors import SemcacheInputError
from semcache_core.resilience import ErrorPolicy

logger = logging.getLogger("semcache")

__all__ = ["CachedEmbedding", "LlamaIndexEmbedder", "embedding_identity"]


def _check_model(embed_model: object) -> BaseEmbedding:
    if not isinstance(embed_model, BaseEmbedding):
        raise TypeError(
            "embed_model must be a llama_index.core.base.embeddings.base.BaseEmbedding, "
            f"got {type(embed_model).__name__}"
        )
    return embed_model


def embedding_identity(embed_model: Any) -> str:
    """What names an embedding model's vectors: ``package.Class:model_name`` plus any dimension
    field (e.g. ``...OpenAIEmbedding:text-embedding-3-small:dimensions=256``). A
    :class:`CachedEmbedding` has the identity of the model it wraps (or its ``name=``).

    Two models with the same identity are assumed to produce the same vectors for the same
    text; where that is not so (a re-trained local model, instructions that change the
    vectors), pass an explicit name.
    """
    if isinstance(embed_model, CachedEmbedding):
        return embed_model.identity
    return _identity.embedding_identity(embed_model)


class LlamaIndexEmbedder:
    """A LlamaIndex ``BaseEmbedding`` as the core's :class:`~semcache_core.embedder.Embedder`:
    ``embed`` -> ``get_query_embedding``, ``aembed`` -> ``aget_query_embedding``; ``name`` is
    the model's class and ``model_name`` (see :func:`embedding_identity`) unless given."""

    def __init__(self, embed_model: BaseEmbedding, *, name: str | None = None) -> None:
        self.embed_model = _check_model(embed_model)
        self.name = name or embedding_identity(embed_model)

    def embed(self, text: str) -> Sequence[float]:
        return self.embed_model.get_query_embedding(text)

    async def aembed(self, text: str) -> Sequence[float]:
        return await self.embed_model.aget_query_embedding(text)


#: How ``CachedEmbedding`` stores vectors (:data:`semcache_core.codecs.EMBEDDING_PRECISIONS`):
#: ``float64`` keeps every float the model returned, bit for bit (a hit is indistinguishable
#: from the miss that stored it); ``float32`` halves the storage and rounds each value to
#: float32 (about 7 significant digits), fresh or cached.
Precision = Literal["float64", "float32"]
#: Appended to the model name of query embeddings (some models embed queries differently).
QUERY_SUFFIX = "|query"


def _storable(vector: Sequence[float], precision: str) -> np.ndarray[Any, Any] | None:
    """``vector`` at the stored precision, or ``None`` for something not worth caching."""
    try:
        return embedding_array(vector, precision)
    except (TypeError, ValueError):
        return None


class CachedEmbedding(BaseEmbedding):
    """Any LlamaIndex embedding model with a cache in front, on any semcache backend.

    Entries are keyed by the model's identity (class, ``model_name``, dimension fields, or
    ``name=``), by whether the text was embedded as a query or a document (some models embed
    them differently), and by the text: they are :class:`semcache_core.EmbeddingsCache`
    entries under :attr:`cache_model_name` (documents) and :attr:`query_cache_model_name`. A batch costs one backend read (``mget``) for all
    its texts, one call of the wrapped model's ``get_text_embedding_batch`` for the missing
    ones only (it batches them by its own ``embed_batch_size``), and one write (``mset``).
    Vectors are stored losslessly by default (``precision="float64"``: a hit returns exactly the
    floats the model returned on the miss); ``precision="float32"`` halves the storage and
    returns float32-rounded values, fresh or cached, so results never depend on whether the
    cache was warm. The two precisions use different model names (``float32`` adds
    ``|float32``): switching never misreads entries.

    Instrumentation: this wrapper reports every request through the usual LlamaIndex events;
    the wrapped model reports only the texts it actually embedded.

    Args:
        embed_model: the LlamaIndex ``BaseEmbedding`` to cache.
        backend: ``None`` (in-process), a URL, a redis/Elasticsearch client or a ``Backend``.
        namespace: defaults to ``"semcache-embeddings"``; models share it safely (their keys
            differ), ``clear()`` removes every model's vectors in it.
        ttl: seconds an entry lives (``None`` = forever).
        name: the model identity to key by, instead of the derived one.
        on_backend_error: ``"warn"`` (a failing backend means recomputing) or ``"raise"``.
        precision: ``"float64"`` (default, lossless) or ``"float32"`` (half the storage).
    """

    embed_model: SerializeAsAny[BaseEmbedding] = Field(
        exclude=True, description="The wrapped embedding model."
    )
    embed_batch_size: int = Field(
        default=2048,
        gt=0,
        le=2048,
        description="Texts per cache round trip; the wrapped model keeps its own batch size.",
    )
    _cache: EmbeddingsCache = PrivateAttr()
    _identity: str = PrivateAttr()
    _precision: str = PrivateAttr(default="float64")
    _names: dict[str, str] = PrivateAttr()

    def __init__(
        self,
        embed_model: BaseEmbedding,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str | None = None,
        ttl: float | None = None,
        name: str | None = None,
        on_backend_error: ErrorPolicy = "warn",
        precision: Precision = "float64",
        **kwargs: Any,
    ) -> None:
        _check_model(embed_model)
        if precision not in EMBEDDING_PRECISIONS:
            raise SemcacheInputError(
                f"precision must be 'float64' (lossless) or 'float32', got {precision!r}"
            )
        kwargs.setdefault("model_name", embed_model.model_name)
        super().__init__(embed_model=embed_model, **kwargs)  # type: ignore[call-arg]
        self._identity = name or embedding_identity(embed_model)
        self._precision = precision
        documents = self._identity + ("|float32" if precision == "float32" else "")
        self._names = {"text": documents, "query": documents + QUERY_SUFFIX}
        self._cache = EmbeddingsCache(
            backend,
            namespace=namespace or DEFAULT_NAMESPACE,
            ttl=ttl,
            precision=precision,
            on_backend_error=on_backend_error,
        )

    @classmethod
    def class_name(cls) -> str:
        return "SemcacheCachedEmbedding"

    def __getattr__(self, name: str) -> Any:
        # Attributes this wrapper does not define are the wrapped model's (dimensions...).
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            inner = self.__dict__.get("embed_model")
            if inner is None or name.startswith("_"):
                raise
            return getattr(inner, name)

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def cache_model_name(self) -> str:
        """The model name document embeddings are keyed by: ``EmbeddingsCache(backend,
        namespace=<this namespace>).get(text, cached.cache_model_name)`` reads them, and what
        it writes there this model serves. The identity, plus ``|float32`` at that precision."""
        return self._names["text"]

    @property
    def query_cache_model_name(self) -> str:
        """The model name query embeddings are keyed by (``cache_model_name + "|query"``)."""
        return self._names["query"]

    @staticmethod
    def _missing(texts: Sequence[str], cached: list[Embedding | None]) -> list[str]:
        return list(dict.fromkeys(t for t, hit in zip(texts, cached, strict=True) if hit is None))

    def _encode_fresh(
        self, missing: list[str], fresh: Sequence[Embedding]
    ) -> tuple[list[tuple[str, np.ndarray[Any, Any]]], dict[str, Embedding]]:
        """Items to store, and the fresh vectors at the stored precision (as a hit returns them,
        so results never depend on whether the cache was warm)."""
        storable: list[tuple[str, np.ndarray[Any, Any]]] = []
        by_text: dict[str, Embedding] = {}
        for text, vector in zip(missing, fresh, strict=True):
            array = _storable(vector, self._precision)
            if array is None:
                by_text[text] = list(vector)
                continue
            storable.append((text, array))
            by_text[text] = [float(x) for x in array]
        return storable, by_text

    @staticmethod
    def _merge(
        texts: Sequence[str], cached: list[Embedding | None], by_text: dict[str, Embedding]
    ) -> list[Embedding]:
        return [
            hit if hit is not None else by_text[text]
            for text, hit in zip(texts, cached, strict=True)
        ]

    def _hits(self, entries: list[EmbeddingEntry | None]) -> list[Embedding | None]:
        """Cached vectors at this cache's precision (an entry another writer stored in float64
        is rounded like a fresh float32 vector would be)."""
        if self._precision == "float64":
            return [None if entry is None else entry.embedding for entry in entries]
        return [
            None if entry is None else [float(x) for x in np.asarray(entry.embedding, "<f4")]
            for entry in entries
        ]

    # -- sync ----------------------------------------------------------------------------------
    def _lookup(self, kind: str, texts: Sequence[str]) -> list[Embedding | None]:
        return self._hits(self._cache.mget(texts, self._names[kind]))

    def _store(self, kind: str, storable: list[tuple[str, np.ndarray[Any, Any]]]) -> None:
        if storable:
            self._cache.mset(*self._split(storable, kind))

    def _get_query_embedding(self, query: str) -> Embedding:
        hit = self._lookup("query", [query])[0]
        if hit is not None:
            return hit
        vector = self.embed_model.get_query_embedding(query)
        storable, by_text = self._encode_fresh([query], [vector])
        self._store("query", storable)
        return by_text[query]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        cached = self._lookup("text", texts)
        missing = self._missing(texts, cached)
        if not missing:
            return [hit for hit in cached if hit is not None]
        fresh = self.embed_model.get_text_embedding_batch(missing)
        storable, by_text = self._encode_fresh(missing, fresh)
        self._store("text", storable)
        return self._merge(texts, cached, by_text)

    # -- async ---------------------------------------------------------------------------------
    async def _alookup(self, kind: str, texts: Sequence[str]) -> list[Embedding | None]:
        return self._hits(await self._cache.amget(texts, self._names[kind]))

    async def _astore(self, kind: str, storable: list[tuple[str, np.ndarray[Any, Any]]]) -> None:
        if storable:
            await self._cache.amset(*self._split(storable, kind))

    async def _aget_query_embedding(self, query: str) -> Embedding:
        hit = (await self._alookup("query", [query]))[0]
        if hit is not None:
            return hit
        vector = await self.embed_model.aget_query_embedding(query)
        storable, by_text = self._encode_fresh([query], [vector])
        await self._astore("query", storable)
        return by_text[query]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        cached = await self._alookup("text", texts)
        missing = self._missing(texts, cached)
        if not missing:
            return [hit for hit in cached if hit is not None]
        fresh = await self.embed_model.aget_text_embedding_batch(missing)
        storable, by_text = self._encode_fresh(missing, fresh)
        await self._astore("text", storable)
        return self._merge(texts, cached, by_text)

    def _split(
        self, storable: list[tuple[str, np.ndarray[Any, Any]]], kind: str
    ) -> tuple[list[str], str, list[np.ndarray[Any, Any]]]:
        """``mset`` arguments: texts, model name, vectors. One batch of one model has one
        dimension; a model that returned vectors of several lengths gets only the first's."""
        size = storable[0][1].size
        kept = [(text, array) for text, array in storable if array.size == size]
        return [text for text, _ in kept], self._names[kind], [array for _, array in kept]

    # -- cache management ----------------------------------------------------------------------
    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._cache.set_ttl(ttl)

    def clear(self) -> None:
        """Delete every vector of this cache's namespace (every model using it)."""
        self._cache.clear()

    async def aclear(self) -> None:
        await self._cache.aclear()

    def stats(self) -> dict[str, Any]:
        """Hits (``kv_hits``), misses and writes of this cache (this process)."""
        return self._cache.stats()

    def flush_stats(self) -> None:
        self._cache._store.flush_stats()

    @property
    def backend(self) -> Backend:
        return self._cache.backend

    @property
    def namespace(self) -> str:
        return self._cache.namespace
