"""Embeddings by (text, model name), framework-neutral: :class:`EmbeddingsCache`.

Two layouts, each a key rule from :mod:`semcache_core.keys` and a value codec from
:mod:`semcache_core.codecs`, so the entries are those other semcache parts read and write:

* :class:`SemcacheLayout` (the default): the layout of LlamaIndex ``CachedEmbedding``. Keys
  ``kv:<model segment>/<hash of model name and text>`` (:func:`~semcache_core.keys.
  embedding_entry_key`); values carry their precision (float64 by default: bit for bit) and
  optional metadata (:func:`~semcache_core.codecs.encode_embedding`). A ``CachedEmbedding``'s
  ``cache_model_name`` is the model name its document vectors are stored under.
* :class:`LangChainLayout` (:meth:`EmbeddingsCache.for_langchain`): what LangChain's
  ``CacheBackedEmbeddings.from_bytes_store(embeddings, BackendByteStore(...), namespace=...,
  key_encoder=...)`` writes: keys ``<namespace><digest of the text>`` (the model name here is
  that ``namespace``), values JSON lists of floats. It has no room for metadata.

Cached data is untrusted: a value that does not decode (corrupt, foreign, truncated, of
another dimension than ``dim``) is a miss with a warning, never an exception. Every operation
is a flow over :class:`~semcache_core.kv.KeyValueCache`'s, so ``get``/``aget`` and the rest
share one source; a failing backend means misses and skipped writes (``on_backend_error``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from semcache_core import keys
from semcache_core.backends import Backend
from semcache_core.codecs import (
    EMBEDDING_PRECISIONS,
    decode_embedding,
    decode_float_list,
    embedding_array,
    encode_embedding,
    encode_float_list,
)
from semcache_core.errors import SemcacheInputError, VectorDimensionError
from semcache_core.flow import Flow, arun, run
from semcache_core.kv import KeyValueCache
from semcache_core.resilience import ErrorPolicy

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger("semcache")

__all__ = ["EmbeddingEntry", "EmbeddingsCache", "LangChainLayout", "SemcacheLayout"]

#: Namespace of ``EmbeddingsCache`` and of LlamaIndex ``CachedEmbedding`` unless given.
DEFAULT_NAMESPACE = "semcache-embeddings"
#: Namespace of LangChain ``BackendByteStore`` unless given (the LangChain layout's default).
LANGCHAIN_DEFAULT_NAMESPACE = "semcache-store"


@dataclass(frozen=True, slots=True)
class EmbeddingEntry:
    """A cached embedding: its text, model name, vector and user metadata (``None``: none)."""

    text: str
    model_name: str
    embedding: list[float]
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    embedding: list[float]
    metadata: dict[str, Any] | None


class EmbeddingLayout(Protocol):
    """How entries are keyed and encoded (see the module docstring)."""

    def key(self, model_name: str, text: str) -> str: ...

    def encode(self, array: npt.NDArray[Any], metadata: Mapping[str, Any] | None) -> bytes: ...

    def decode(self, raw: bytes | None) -> Decoded | None: ...


@dataclass(frozen=True, slots=True)
class SemcacheLayout:
    """semcache's layout (LlamaIndex ``CachedEmbedding``'s); ``precision`` of new entries."""

    precision: str = "float64"

    def __post_init__(self) -> None:
        if self.precision not in EMBEDDING_PRECISIONS:
            raise SemcacheInputError(
                f"precision must be 'float64' (lossless) or 'float32', got {self.precision!r}"
            )

    def key(self, model_name: str, text: str) -> str:
        return keys.embedding_entry_key(model_name, text)

    def encode(self, array: npt.NDArray[Any], metadata: Mapping[str, Any] | None) -> bytes:
        return encode_embedding(array, metadata, self.precision)

    def decode(self, raw: bytes | None) -> Decoded | None:
        stored = decode_embedding(raw)
        return None if stored is None else Decoded(stored.vector, stored.metadata)


@dataclass(frozen=True, slots=True)
class LangChainLayout:
    """LangChain ``CacheBackedEmbeddings.from_bytes_store``'s layout (``key_encoder`` as
    there: LangChain's default is ``"sha1"``, it recommends ``"sha256"`` or ``"blake2b"``)."""

    key_encoder: str = "sha1"

    def __post_init__(self) -> None:
        keys.langchain_embedding_key("", "", self.key_encoder)  # the one check of the name

    def key(self, model_name: str, text: str) -> str:
        return keys.langchain_embedding_key(model_name, text, self.key_encoder)

    def encode(self, array: npt.NDArray[Any], metadata: Mapping[str, Any] | None) -> bytes:
        if metadata is not None:
            raise SemcacheInputError(
                "the LangChain layout stores vectors only (JSON lists, as CacheBackedEmbeddings "
                "reads them); metadata=... needs the semcache layout"
            )
        return encode_float_list(array)

    def decode(self, raw: bytes | None) -> Decoded | None:
        vector = decode_float_list(raw)
        return None if vector is None else Decoded(vector, None)


def _model_name(model_name: object) -> str:
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a str, got {type(model_name).__name__}")
    return keys.require_text(model_name, "model_name")


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single str/bytes")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str, got {type(text).__name__}: {text!r}")
        keys.require_text(text, "text")
    return list(texts)


class EmbeddingsCache:
    """Embeddings by (text, model name) on any backend, sync and async.

    >>> cache = EmbeddingsCache("redis://localhost:6379", namespace="embeddings")
    >>> cache.set("hello", "text-embedding-3-small", [0.1, 0.2], metadata={"source": "a"})
    >>> cache.get("hello", "text-embedding-3-small").embedding
    [0.1, 0.2]

    Args:
        backend: ``None`` (in-process), a URL, a redis/Elasticsearch client or a ``Backend``.
        namespace: the backend namespace (``CachedEmbedding``'s default is the same).
        ttl: default lifetime of entries in seconds (``None``: forever); ``set(..., ttl=)``
            overrides it.
        dim: if given, every embedding written must have this many values
            (``VectorDimensionError`` otherwise) and a stored one of another length is a miss.
        precision: ``"float64"`` (bit for bit) or ``"float32"`` (half the storage) for new
            entries of the semcache layout; reads decode either.
        layout: :class:`SemcacheLayout` (default) or :class:`LangChainLayout` (see
            :meth:`for_langchain`).
        on_backend_error: ``"warn"`` (misses and skipped writes) or ``"raise"``.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        ttl: float | None = None,
        dim: int | None = None,
        precision: str = "float64",
        layout: EmbeddingLayout | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> None:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise SemcacheInputError(f"dim must be a positive int or None, got {dim!r}")
        self.dim = dim
        self.layout: EmbeddingLayout = layout or SemcacheLayout(precision)
        self._store = KeyValueCache(
            backend, namespace=namespace, ttl=ttl, on_backend_error=on_backend_error
        )

    @classmethod
    def for_langchain(
        cls,
        store: Backend | str | Any | None = None,
        *,
        namespace: str | None = None,
        key_encoder: str = "sha1",
        ttl: float | None = None,
        dim: int | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> EmbeddingsCache:
        """The entries of ``CacheBackedEmbeddings.from_bytes_store(embeddings, byte_store,
        namespace=<model name>, key_encoder=key_encoder)``. ``store`` is that
        ``BackendByteStore`` (its backend and namespace are used) or a backend; ``model_name``
        in every call is the ``namespace`` given to ``CacheBackedEmbeddings``."""
        backend = store
        inner = getattr(store, "backend", None)
        if isinstance(inner, Backend) and isinstance(getattr(store, "namespace", None), str):
            backend, namespace = inner, namespace or store.namespace  # type: ignore[union-attr]
        return cls(
            backend,
            namespace=namespace or LANGCHAIN_DEFAULT_NAMESPACE,
            ttl=ttl,
            dim=dim,
            layout=LangChainLayout(key_encoder),
            on_backend_error=on_backend_error,
        )

    # -- checks ------------------------------------------------------------------------------
    def _array(self, embedding: object) -> npt.NDArray[Any]:
        precision = getattr(self.layout, "precision", "float64")
        array = embedding_array(embedding, precision)
        if self.dim is not None and array.size != self.dim:
            raise VectorDimensionError(
                f"embedding has {array.size} values, this cache stores embeddings of "
                f"dimension {self.dim}"
            )
        return array

    def _metadata_list(self, metadata: Any, count: int) -> list[Mapping[str, Any] | None]:
        if metadata is None or isinstance(metadata, Mapping):
            return [metadata] * count
        if isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence):
            raise TypeError(
                "metadata must be a dict (the same for every text), a list of dicts (one per "
                f"text) or None, got {type(metadata).__name__}"
            )
        if len(metadata) != count:
            raise SemcacheInputError(
                f"metadata has {len(metadata)} items for {count} texts; give one per text"
            )
        return list(metadata)

    def _entry(self, text: str, model_name: str, raw: bytes | None) -> EmbeddingEntry | None:
        decoded = self.layout.decode(raw)
        if decoded is None:
            return None
        if self.dim is not None and len(decoded.embedding) != self.dim:
            logger.warning(
                "semcache: ignoring a cached embedding of dimension %d (expected %d)",
                len(decoded.embedding),
                self.dim,
            )
            return None
        return EmbeddingEntry(text, model_name, decoded.embedding, decoded.metadata)

    # -- flows -------------------------------------------------------------------------------
    def _mget_flow(
        self, texts: Sequence[str], model_name: str
    ) -> Flow[list[EmbeddingEntry | None]]:
        name, checked = _model_name(model_name), _texts(texts)
        raws = yield from self._store._mget_flow([self.layout.key(name, t) for t in checked])
        return [self._entry(text, name, raw) for text, raw in zip(checked, raws, strict=True)]

    def _mset_flow(
        self,
        texts: Sequence[str],
        model_name: str,
        embeddings: Sequence[Any],
        metadata: Any,
        ttl: float | None,
    ) -> Flow[list[str]]:
        name, checked = _model_name(model_name), _texts(texts)
        if isinstance(embeddings, (str, bytes)) or not hasattr(embeddings, "__len__"):
            raise TypeError(
                f"embeddings must be a sequence of embeddings, got {type(embeddings).__name__}"
            )
        if len(embeddings) != len(checked):
            raise SemcacheInputError(f"{len(embeddings)} embeddings for {len(checked)} texts")
        arrays = [self._array(embedding) for embedding in embeddings]
        if len({array.size for array in arrays}) > 1:
            raise VectorDimensionError(
                f"one batch holds embeddings of dimensions {sorted({a.size for a in arrays})}"
            )
        metadatas = self._metadata_list(metadata, len(checked))
        # Everything is encoded (and checked) before anything is written.
        items = [
            (self.layout.key(name, text), self.layout.encode(array, meta))
            for text, array, meta in zip(checked, arrays, metadatas, strict=True)
        ]
        yield from self._store._mset_flow(items, ttl)
        return [key for key, _ in items]

    def _mdrop_flow(self, texts: Sequence[str], model_name: str) -> Flow[None]:
        name, checked = _model_name(model_name), _texts(texts)
        yield from self._store._mdelete_flow([self.layout.key(name, t) for t in checked])

    def _one(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return [text]

    def _set_flow(
        self,
        text: str,
        model_name: str,
        embedding: Any,
        metadata: Mapping[str, Any] | None,
        ttl: float | None,
    ) -> Flow[list[str]]:
        # One text, one metadata: wrapped, so a list given here is refused as a list (not
        # taken for mset's one-dict-per-text form).
        return self._mset_flow(self._one(text), model_name, [embedding], [metadata], ttl)

    # -- sync --------------------------------------------------------------------------------
    def get(self, text: str, model_name: str) -> EmbeddingEntry | None:
        """The entry of ``text`` by ``model_name``, or ``None``."""
        return run(self._mget_flow(self._one(text), model_name), self._store.transport)[0]

    def mget(self, texts: Sequence[str], model_name: str) -> list[EmbeddingEntry | None]:
        """The entries of ``texts`` (``None`` where missing), one backend round trip."""
        return run(self._mget_flow(texts, model_name), self._store.transport)

    def set(
        self,
        text: str,
        model_name: str,
        embedding: Sequence[float] | Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> str:
        """Store ``embedding`` for ``text`` by ``model_name``; returns the entry's key."""
        flow = self._set_flow(text, model_name, embedding, metadata, ttl)
        return run(flow, self._store.transport)[0]

    def mset(
        self,
        texts: Sequence[str],
        model_name: str,
        embeddings: Sequence[Any],
        *,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        ttl: float | None = None,
    ) -> list[str]:
        """Store one embedding per text (one round trip); ``metadata`` is one dict for all or
        one per text. Nothing is written when any of them is invalid."""
        flow = self._mset_flow(texts, model_name, embeddings, metadata, ttl)
        return run(flow, self._store.transport)

    def exists(self, text: str, model_name: str) -> bool:
        return self.get(text, model_name) is not None

    def mexists(self, texts: Sequence[str], model_name: str) -> list[bool]:
        return [entry is not None for entry in self.mget(texts, model_name)]

    def drop(self, text: str, model_name: str) -> None:
        run(self._mdrop_flow(self._one(text), model_name), self._store.transport)

    def mdrop(self, texts: Sequence[str], model_name: str) -> None:
        run(self._mdrop_flow(texts, model_name), self._store.transport)

    # -- async -------------------------------------------------------------------------------
    async def aget(self, text: str, model_name: str) -> EmbeddingEntry | None:
        flow = self._mget_flow(self._one(text), model_name)
        return (await arun(flow, self._store.transport))[0]

    async def amget(self, texts: Sequence[str], model_name: str) -> list[EmbeddingEntry | None]:
        return await arun(self._mget_flow(texts, model_name), self._store.transport)

    async def aset(
        self,
        text: str,
        model_name: str,
        embedding: Sequence[float] | Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> str:
        flow = self._set_flow(text, model_name, embedding, metadata, ttl)
        return (await arun(flow, self._store.transport))[0]

    async def amset(
        self,
        texts: Sequence[str],
        model_name: str,
        embeddings: Sequence[Any],
        *,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        ttl: float | None = None,
    ) -> list[str]:
        flow = self._mset_flow(texts, model_name, embeddings, metadata, ttl)
        return await arun(flow, self._store.transport)

    async def aexists(self, text: str, model_name: str) -> bool:
        return (await self.aget(text, model_name)) is not None

    async def amexists(self, texts: Sequence[str], model_name: str) -> list[bool]:
        return [entry is not None for entry in await self.amget(texts, model_name)]

    async def adrop(self, text: str, model_name: str) -> None:
        await arun(self._mdrop_flow(self._one(text), model_name), self._store.transport)

    async def amdrop(self, texts: Sequence[str], model_name: str) -> None:
        await arun(self._mdrop_flow(texts, model_name), self._store.transport)

    # -- management --------------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every entry of this cache's namespace (every model's)."""
        self._store.clear()

    async def aclear(self) -> None:
        await self._store.aclear()

    def set_ttl(self, ttl: float | None) -> None:
        """The default lifetime of entries written from now on (``None``: forever)."""
        self._store.set_ttl(ttl)

    def stats(self) -> dict[str, Any]:
        return self._store.stats_snapshot()

    @property
    def backend(self) -> Backend:
        return self._store.backend

    @property
    def namespace(self) -> str:
        return self._store.namespace
