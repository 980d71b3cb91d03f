"""``EmbeddingsCache``: embeddings by (text, model name) on every backend, sync and async, and
the entries LlamaIndex ``CachedEmbedding`` and LangChain ``CacheBackedEmbeddings`` read and
write."""

from __future__ import annotations

import asyncio
import time
import warnings

import numpy as np
import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings

from langchain_semcache import BackendByteStore
from llamaindex_semcache import CachedEmbedding
from semcache_core import (
    Backend,
    EmbeddingsCache,
    SemcacheInputError,
    VectorDimensionError,
    keys,
)
from semcache_core.codecs import EMBEDDING_MAGIC
from tests.fakes import WordHashEmbeddings
from tests.llama_fakes import WordHashEmbedding

MODEL = "text-embedding-3-small"
# Floats that float32 cannot hold exactly: a float64 round trip must keep every bit.
PRECISE = [0.1, -0.2, 1 / 3, 2.0**-30, 123456.789]


def test_set_get_and_metadata(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace)
    assert cache.get("hello", MODEL) is None
    cache.set("hello", MODEL, PRECISE, metadata={"source": "doc-1", "page": 3})
    entry = cache.get("hello", MODEL)
    assert entry is not None
    assert entry.embedding == PRECISE  # bit for bit
    assert entry.metadata == {"source": "doc-1", "page": 3}
    assert (entry.text, entry.model_name) == ("hello", MODEL)
    # Another model, another text, another namespace: nothing.
    assert cache.get("hello", "other-model") is None
    assert cache.get("Hello", MODEL) is None
    assert EmbeddingsCache(backend, namespace=namespace + "-x").get("hello", MODEL) is None
    cache.set("plain", MODEL, np.array([1.0, 2.0]))
    plain = cache.get("plain", MODEL)
    assert plain is not None and plain.metadata is None and plain.embedding == [1.0, 2.0]


def test_batches_exists_and_drop(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace)
    texts = ["a", "b", "c"]
    cache.mset(texts, MODEL, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], metadata=[{"n": 1}, None, {}])
    entries = cache.mget([*texts, "missing"], MODEL)
    assert [e.embedding if e else None for e in entries] == [
        [1.0, 0.0],
        [0.0, 1.0],
        [1.0, 1.0],
        None,
    ]
    assert [e.metadata if e else None for e in entries[:3]] == [{"n": 1}, None, {}]
    assert cache.mexists([*texts, "missing"], MODEL) == [True, True, True, False]
    cache.set("a", "other-model", [5.0])
    cache.drop("a", MODEL)
    assert cache.mexists(texts, MODEL) == [False, True, True]
    assert cache.exists("a", "other-model")  # another model's entry of the same text stays
    cache.mdrop(["b", "c"], MODEL)
    assert not any(cache.mexists(texts, MODEL))
    cache.mset(["x", "y"], MODEL, [[1.0], [2.0]], metadata={"batch": 7})
    assert [e.metadata for e in cache.mget(["x", "y"], MODEL) if e] == [{"batch": 7}] * 2


async def test_async_forms(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace)
    await cache.aset("hello", MODEL, PRECISE, metadata={"k": "v"})
    entry = await cache.aget("hello", MODEL)
    assert entry is not None and entry.embedding == PRECISE and entry.metadata == {"k": "v"}
    await cache.amset(["a", "b"], MODEL, [[1.0], [2.0]])
    assert [e.embedding if e else None for e in await cache.amget(["a", "b", "c"], MODEL)] == [
        [1.0],
        [2.0],
        None,
    ]
    assert await cache.aexists("a", MODEL)
    assert await cache.amexists(["a", "b", "c"], MODEL) == [True, True, False]
    await cache.adrop("a", MODEL)
    await cache.amdrop(["b"], MODEL)
    assert await cache.amexists(["a", "b", "hello"], MODEL) == [False, False, True]


def test_ttl(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace, ttl=3600)
    cache.set("short", MODEL, [1.0], ttl=0.05)
    cache.set("long", MODEL, [2.0])
    time.sleep(0.3)
    assert cache.mexists(["short", "long"], MODEL) == [False, True]


def test_set_ttl_applies_to_later_writes(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace)
    cache.set("before", MODEL, [1.0])
    cache.set_ttl(0.05)
    cache.set("after", MODEL, [2.0])
    with pytest.raises(SemcacheInputError, match="positive"):
        cache.set_ttl(-1)
    time.sleep(0.3)
    assert cache.mexists(["before", "after"], MODEL) == [True, False]


def test_float32_precision(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace, precision="float32")
    cache.set("t", MODEL, PRECISE)
    entry = cache.get("t", MODEL)
    assert entry is not None
    assert entry.embedding == [float(x) for x in np.asarray(PRECISE, dtype=np.float32)]
    # A float64 cache reads float32 entries as they are.
    assert EmbeddingsCache(backend, namespace=namespace).get("t", MODEL) == entry


def corrupt(backend: Backend, namespace: str, key: str, raw: bytes) -> None:
    backend.set_many(namespace, [(keys.kv_key(key), raw)])


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        EMBEDDING_MAGIC,  # truncated header
        EMBEDDING_MAGIC + b"8" + (0).to_bytes(4, "big") + b"\x00" * 7,  # not whole floats
        EMBEDDING_MAGIC + b"8" + (0).to_bytes(4, "big"),  # no vector
        EMBEDDING_MAGIC + b"2" + (0).to_bytes(4, "big") + b"\x00" * 8,  # unknown precision
        EMBEDDING_MAGIC + b"8" + (0).to_bytes(4, "big") + np.array([np.nan]).tobytes(),
        EMBEDDING_MAGIC + b"8" + (99).to_bytes(4, "big") + b"{}",  # metadata beyond the end
        EMBEDDING_MAGIC + b"8" + (2).to_bytes(4, "big") + b"[]" + np.ones(2).tobytes(),
        EMBEDDING_MAGIC + b"8" + (2).to_bytes(4, "big") + b"{x" + np.ones(2).tobytes(),
    ],
)
def test_corrupt_values_are_misses(backend: Backend, namespace: str, raw: bytes) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace)
    corrupt(backend, namespace, keys.embedding_entry_key(MODEL, "t"), raw)
    assert cache.get("t", MODEL) is None
    assert cache.mexists(["t"], MODEL) == [False]


def test_a_stored_vector_of_another_dimension_is_a_miss(backend: Backend, namespace: str) -> None:
    EmbeddingsCache(backend, namespace=namespace).set("t", MODEL, [1.0, 2.0, 3.0])
    assert EmbeddingsCache(backend, namespace=namespace, dim=2).get("t", MODEL) is None


def test_bad_input_is_a_clear_error_and_writes_nothing(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache(backend, namespace=namespace, dim=2)
    with pytest.raises(VectorDimensionError, match="dimension 2"):
        cache.set("t", MODEL, [1.0, 2.0, 3.0])
    with pytest.raises(SemcacheInputError, match="NaN"):
        cache.mset(["a", "b"], MODEL, [[1.0, 2.0], [float("nan"), 1.0]])
    with pytest.raises(SemcacheInputError, match="2 embeddings for 3 texts"):
        cache.mset(["a", "b", "c"], MODEL, [[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(SemcacheInputError, match="1 items for 2 texts"):
        cache.mset(["a", "b"], MODEL, [[1.0, 2.0], [1.0, 2.0]], metadata=[{}])
    with pytest.raises(TypeError, match="JSON"):
        cache.set("a", MODEL, [1.0, 2.0], metadata={"when": object()})
    # set() takes one dict: a list (mset's one-per-text form) is refused, and named as a list
    with pytest.raises(TypeError, match="dict or None, got list"):
        cache.set("a", MODEL, [1.0, 2.0], metadata=[{"doc": "x"}])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict or None, got list"):
        asyncio.run(cache.aset("a", MODEL, [1.0, 2.0], metadata=[1]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of numbers"):
        cache.set("a", MODEL, "1.0, 2.0")
    with pytest.raises(SemcacheInputError, match="sequence of numbers"):
        cache.set("a", MODEL, ["one", "two"])
    with pytest.raises(SemcacheInputError, match="non-empty 1-D"):
        EmbeddingsCache(backend, namespace=namespace).set("a", MODEL, [])
    with pytest.raises(VectorDimensionError, match=r"dimensions \[1, 2\]"):
        EmbeddingsCache(backend, namespace=namespace).mset(["a", "b"], MODEL, [[1.0], [1.0, 2.0]])
    with pytest.raises(TypeError, match="texts must be str"):
        cache.mset(["a", 3], MODEL, [[1.0, 2.0], [1.0, 2.0]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="model_name must be a str"):
        cache.get("a", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single str"):
        cache.mget("abc", MODEL)
    with pytest.raises(SemcacheInputError, match="dim must be a positive int"):
        EmbeddingsCache(backend, namespace=namespace, dim=0)
    with pytest.raises(SemcacheInputError, match="precision"):
        EmbeddingsCache(backend, namespace=namespace, precision="float16")
    assert not any(cache.mexists(["a", "b", "c", "t"], MODEL))


# -- LlamaIndex CachedEmbedding ---------------------------------------------------------------
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_cached_embedding_entries_are_embeddings_cache_entries(
    backend: Backend, namespace: str, precision: str
) -> None:
    inner = WordHashEmbedding()
    embedding = CachedEmbedding(inner, backend, namespace=namespace, precision=precision)  # type: ignore[arg-type]
    cache = EmbeddingsCache(backend, namespace=namespace)
    vectors = embedding.get_text_embedding_batch(["alpha beta", "gamma delta"])
    query = embedding.get_query_embedding("what is alpha")
    for text, vector in zip(["alpha beta", "gamma delta"], vectors, strict=True):
        entry = cache.get(text, embedding.cache_model_name)
        assert entry is not None and entry.embedding == vector
    entry = cache.get("what is alpha", embedding.query_cache_model_name)
    assert entry is not None and entry.embedding == query
    assert cache.get("what is alpha", embedding.cache_model_name) is None  # kinds stay apart

    # And the other way: what the cache writes under that name, the model serves.
    cache.set("written elsewhere", embedding.cache_model_name, [0.5, 0.25])
    before = inner.texts
    assert embedding.get_text_embedding("written elsewhere") == [0.5, 0.25]
    assert inner.texts == before


async def test_cached_embedding_interop_async(backend: Backend, namespace: str) -> None:
    inner = WordHashEmbedding()
    embedding = CachedEmbedding(inner, backend, namespace=namespace)
    cache = EmbeddingsCache(backend, namespace=namespace)
    vector = await embedding.aget_text_embedding("alpha beta")
    entry = await cache.aget("alpha beta", embedding.cache_model_name)
    assert entry is not None and entry.embedding == vector
    await cache.aset("from the cache", embedding.query_cache_model_name, [1.0, 2.0])
    before = inner.texts
    assert await embedding.aget_query_embedding("from the cache") == [1.0, 2.0]
    assert inner.texts == before


def test_cached_embedding_names_differ_by_model_and_precision(backend: Backend) -> None:
    a = CachedEmbedding(WordHashEmbedding(model_name="a"), backend)
    b = CachedEmbedding(WordHashEmbedding(model_name="b"), backend)
    a32 = CachedEmbedding(WordHashEmbedding(model_name="a"), backend, precision="float32")
    names = {a.cache_model_name, b.cache_model_name, a32.cache_model_name, a.query_cache_model_name}
    assert len(names) == 4
    assert a.model_name == "a"  # LlamaIndex's model_name stays the wrapped model's


# -- LangChain CacheBackedEmbeddings ----------------------------------------------------------
@pytest.fixture(params=["sha1", "sha256", "blake2b", "sha512"])
def key_encoder(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backed(
    underlying: WordHashEmbeddings, store: BackendByteStore, key_encoder: str
) -> CacheBackedEmbeddings:
    with warnings.catch_warnings():  # LangChain warns once about its sha1 default
        warnings.simplefilter("ignore")
        return CacheBackedEmbeddings.from_bytes_store(
            underlying,
            store,
            namespace=underlying.model,
            key_encoder=key_encoder,  # type: ignore[arg-type]
        )


def test_reads_what_cache_backed_embeddings_wrote_and_back(
    backend: Backend, namespace: str, key_encoder: str
) -> None:
    underlying = WordHashEmbeddings()
    store = BackendByteStore(backend, namespace=namespace)
    embedder = backed(underlying, store, key_encoder)
    texts = ["first document", "second document"]
    vectors = embedder.embed_documents(texts)

    cache = EmbeddingsCache.for_langchain(store, key_encoder=key_encoder)
    assert cache.namespace == namespace
    for text, vector in zip(texts, vectors, strict=True):
        entry = cache.get(text, underlying.model)
        assert entry is not None and entry.embedding == vector and entry.metadata is None

    # Vice versa: written here, served by CacheBackedEmbeddings without an embedding call.
    cache.mset(["third document", "fourth"], underlying.model, [[0.1, 0.2], [0.3, 0.4]])
    calls = underlying.calls
    assert embedder.embed_documents(["third document", "fourth"]) == [[0.1, 0.2], [0.3, 0.4]]
    assert underlying.calls == calls
    cache.drop("first document", underlying.model)
    embedder.embed_documents(["first document"])
    assert underlying.calls == calls + 1


async def test_cache_backed_embeddings_interop_async(backend: Backend, namespace: str) -> None:
    underlying = WordHashEmbeddings()
    store = BackendByteStore(backend, namespace=namespace)
    embedder = backed(underlying, store, "sha256")
    [vector] = await embedder.aembed_documents(["async document"])
    cache = EmbeddingsCache.for_langchain(backend, namespace=namespace, key_encoder="sha256")
    entry = await cache.aget("async document", underlying.model)
    assert entry is not None and entry.embedding == vector
    await cache.aset("from the cache", underlying.model, [9.0, 8.0])
    calls = underlying.calls
    assert await embedder.aembed_documents(["from the cache"]) == [[9.0, 8.0]]
    assert underlying.calls == calls


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"a": 1}', b"[]", b'["x", 1]', b"[true]", b"[1e999]"]
)
def test_corrupt_langchain_values_are_misses(backend: Backend, namespace: str, raw: bytes) -> None:
    cache = EmbeddingsCache.for_langchain(backend, namespace=namespace, key_encoder="sha256")
    corrupt(backend, namespace, keys.langchain_embedding_key(MODEL, "t", "sha256"), raw)
    assert cache.get("t", MODEL) is None


def test_langchain_layout_errors(backend: Backend, namespace: str) -> None:
    cache = EmbeddingsCache.for_langchain(backend, namespace=namespace)
    with pytest.raises(SemcacheInputError, match="metadata"):
        cache.set("t", MODEL, [1.0], metadata={"a": 1})
    with pytest.raises(SemcacheInputError, match="key_encoder must be one of"):
        EmbeddingsCache.for_langchain(backend, key_encoder="md5")
    assert not cache.exists("t", MODEL)
