"""LlamaIndex embeddings: a batched embedding cache, and a model as the core's Embedder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr, SerializeAsAny

from llamaindex_semcache import _identity
from llamaindex_semcache._identity import model_slug
from semcache_core import Backend, KeyValueCache, keys
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


#: How ``CachedEmbedding`` stores vectors: ``float64`` keeps every float the model returned,
#: bit for bit (a hit is indistinguishable from the miss that stored it); ``float32`` halves
#: the storage and rounds each value to float32 (about 7 significant digits), fresh or cached.
PRECISIONS = {"float64": "<f8", "float32": "<f4"}
Precision = Literal["float64", "float32"]


def _encode_vector(vector: Sequence[float], dtype: str = "<f8") -> bytes | None:
    """``dtype`` bytes of ``vector``, or ``None`` for something not worth caching."""
    try:
        array = np.asarray(vector, dtype=dtype)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        return None
    return array.tobytes()


def _decode_vector(raw: bytes | None, dtype: str = "<f8") -> Embedding | None:
    if raw is None:
        return None
    width = np.dtype(dtype).itemsize
    if not isinstance(raw, bytes) or not raw or len(raw) % width:
        logger.warning("semcache: ignoring a corrupt cached embedding (not %s bytes)", dtype)
        return None
    array = np.frombuffer(raw, dtype=dtype)
    if not np.all(np.isfinite(array)):
        logger.warning("semcache: ignoring a corrupt cached embedding (not finite)")
        return None
    return [float(x) for x in array]


class CachedEmbedding(BaseEmbedding):
    """Any LlamaIndex embedding model with a cache in front, on any semcache backend.

    Entries are keyed by the model's identity (class, ``model_name``, dimension fields, or
    ``name=``), by whether the text was embedded as a query or a document (some models embed
    them differently), and by the text. A batch costs one backend read (``mget``) for all
    its texts, one call of the wrapped model's ``get_text_embedding_batch`` for the missing
    ones only (it batches them by its own ``embed_batch_size``), and one write (``mset``).
    Vectors are stored losslessly by default (``precision="float64"``: a hit returns exactly the
    floats the model returned on the miss); ``precision="float32"`` halves the storage and
    returns float32-rounded values, fresh or cached, so results never depend on whether the
    cache was warm. The two precisions use different keys: switching never misreads entries.

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
    _core: KeyValueCache = PrivateAttr()
    _model_key: str = PrivateAttr()
    _identity: str = PrivateAttr()
    _dtype: str = PrivateAttr(default="<f8")
    _key_identity: str = PrivateAttr()

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
        if precision not in PRECISIONS:
            raise SemcacheInputError(
                f"precision must be 'float64' (lossless) or 'float32', got {precision!r}"
            )
        kwargs.setdefault("model_name", embed_model.model_name)
        super().__init__(embed_model=embed_model, **kwargs)  # type: ignore[call-arg]
        self._identity = name or embedding_identity(embed_model)
        self._model_key = model_slug(self._identity, embed_model.model_name)
        self._dtype = PRECISIONS[precision]
        # float32 entries keep the keys of earlier versions (which stored float32 only).
        suffix = "" if precision == "float32" else "\x00precision=float64"
        self._key_identity = self._identity + suffix
        self._core = KeyValueCache(
            backend,
            namespace=namespace or "semcache-embeddings",
            ttl=ttl,
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

    def _keys(self, kind: str, texts: Sequence[str]) -> list[str]:
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
        identity = self._key_identity
        return [keys.embedding_key(self._model_key, identity, kind, text) for text in texts]

    @staticmethod
    def _missing(texts: Sequence[str], cached: list[Embedding | None]) -> list[str]:
        return list(dict.fromkeys(t for t, hit in zip(texts, cached, strict=True) if hit is None))

    def _encode_fresh(
        self, kind: str, missing: list[str], fresh: Sequence[Embedding]
    ) -> tuple[list[tuple[str, bytes]], dict[str, Embedding]]:
        """Items to store, and the fresh vectors at the stored precision (as a hit returns them,
        so results never depend on whether the cache was warm)."""
        items: list[tuple[str, bytes]] = []
        by_text: dict[str, Embedding] = {}
        for text, key, vector in zip(missing, self._keys(kind, missing), fresh, strict=True):
            raw = _encode_vector(vector, self._dtype)
            if raw is None:
                by_text[text] = list(vector)
                continue
            items.append((key, raw))
            by_text[text] = _decode_vector(raw, self._dtype) or list(vector)
        return items, by_text

    @staticmethod
    def _merge(
        texts: Sequence[str], cached: list[Embedding | None], by_text: dict[str, Embedding]
    ) -> list[Embedding]:
        return [
            hit if hit is not None else by_text[text]
            for text, hit in zip(texts, cached, strict=True)
        ]

    # -- sync ----------------------------------------------------------------------------------
    def _lookup(self, kind: str, texts: Sequence[str]) -> list[Embedding | None]:
        raws = self._core.mget(self._keys(kind, texts))
        return [_decode_vector(raw, self._dtype) for raw in raws]

    def _get_query_embedding(self, query: str) -> Embedding:
        hit = self._lookup("query", [query])[0]
        if hit is not None:
            return hit
        vector = self.embed_model.get_query_embedding(query)
        items, by_text = self._encode_fresh("query", [query], [vector])
        self._core.mset(items)
        return by_text[query]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        cached = self._lookup("text", texts)
        missing = self._missing(texts, cached)
        if not missing:
            return [hit for hit in cached if hit is not None]
        fresh = self.embed_model.get_text_embedding_batch(missing)
        items, by_text = self._encode_fresh("text", missing, fresh)
        self._core.mset(items)
        return self._merge(texts, cached, by_text)

    # -- async ---------------------------------------------------------------------------------
    async def _alookup(self, kind: str, texts: Sequence[str]) -> list[Embedding | None]:
        raws = await self._core.amget(self._keys(kind, texts))
        return [_decode_vector(raw, self._dtype) for raw in raws]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        hit = (await self._alookup("query", [query]))[0]
        if hit is not None:
            return hit
        vector = await self.embed_model.aget_query_embedding(query)
        items, by_text = self._encode_fresh("query", [query], [vector])
        await self._core.amset(items)
        return by_text[query]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        cached = await self._alookup("text", texts)
        missing = self._missing(texts, cached)
        if not missing:
            return [hit for hit in cached if hit is not None]
        fresh = await self.embed_model.aget_text_embedding_batch(missing)
        items, by_text = self._encode_fresh("text", missing, fresh)
        await self._core.amset(items)
        return self._merge(texts, cached, by_text)

    # -- cache management ----------------------------------------------------------------------

    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._core.set_ttl(ttl)

    def clear(self) -> None:
        """Delete every vector of this cache's namespace (every model using it)."""
        self._core.clear()

    async def aclear(self) -> None:
        await self._core.aclear()

    def stats(self) -> dict[str, Any]:
        """Hits (``kv_hits``), misses and writes of this cache (this process)."""
        return self._core.stats_snapshot()

    def flush_stats(self) -> None:
        self._core.flush_stats()

    @property
    def backend(self) -> Backend:
        return self._core.backend

    @property
    def namespace(self) -> str:
        return self._core.namespace
