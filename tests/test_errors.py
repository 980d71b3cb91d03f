"""Bad input gets a clear error and loses nothing; a failing backend never fails the app."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from langchain_core.outputs import Generation

from langchain_semcache import BackendByteStore, ExactCache, SemanticCache
from semcache_core import Backend, BackendError, SemcacheInputError, UnknownBackendError, connect
from semcache_core.backends.embedded import EmbeddedBackend
from semcache_core.codecs import as_vector
from semcache_core.errors import VectorDimensionError
from tests.fakes import CountingChatModel, WordHashEmbeddings


def test_bytestore_rejects_bad_types_and_keeps_existing(backend: Backend, namespace: str) -> None:
    store = BackendByteStore(backend, namespace=namespace)
    store.mset([("kept", b"old")])
    with pytest.raises(TypeError, match="values must be bytes, got str for key 'a'"):
        store.mset([("kept", b"new"), ("a", "text")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="keys must be str, got int"):
        store.mset([(1, b"x")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="keys must be str"):
        store.mget([b"kept"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a single str"):
        store.mget("kept")
    assert store.mget(["kept", "a"]) == [b"old", None]  # the bad batch wrote nothing


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, math.nan], "NaN"),
        ([1.0, math.inf], "NaN or infinite"),
        ([0.0, 0.0], "zero vector"),
        ([], "non-empty"),
        ([[1.0, 2.0]], "1-D"),
        (["a", "b"], "sequence of numbers"),
    ],
)
def test_bad_vectors_are_clear_errors(values: Any, message: str) -> None:
    with pytest.raises(SemcacheInputError, match=message):
        as_vector(values)


def test_vector_of_wrong_dimension_from_embeddings(backend: Backend, namespace: str) -> None:
    SemanticCache(backend, embeddings=WordHashEmbeddings(dim=16), namespace=namespace).update(
        "What is up?", "llm", [Generation(text="x")]
    )
    other = SemanticCache(
        backend,
        embeddings=WordHashEmbeddings(dim=32),
        namespace=namespace,
        on_backend_error="raise",
    )
    with pytest.raises(VectorDimensionError, match=r"dimension 32.*dimension 16"):
        other.lookup("What is down?", "llm")


@pytest.mark.parametrize("threshold", [-0.1, 2.5, math.nan])
def test_threshold_out_of_range(threshold: float) -> None:
    with pytest.raises(SemcacheInputError, match=r"between 0 .* and 2"):
        SemanticCache(embeddings=WordHashEmbeddings(), distance_threshold=threshold)


def test_threshold_wrong_type() -> None:
    with pytest.raises(TypeError, match="distance_threshold must be a number"):
        SemanticCache(embeddings=WordHashEmbeddings(), distance_threshold="0.2")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("mongodb://localhost", UnknownBackendError, "known schemes: elasticsearch"),
        ("localhost:6379", SemcacheInputError, "expected 'scheme://"),
        ("memory://somewhere", SemcacheInputError, "takes no path"),
        ("sqlite://", SemcacheInputError, "sqlite:///relative"),
        ("sqlite:///no/such/dir/x.db", SemcacheInputError, "does not exist"),
    ],
)
def test_malformed_or_unknown_urls(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        connect(url)


def test_unsupported_backend_object() -> None:
    with pytest.raises(TypeError, match="backend must be None, a URL string"):
        ExactCache(backend=42)


@pytest.mark.parametrize("namespace", ["", "a:b", "with space", "glob*", 7])
def test_invalid_namespace(namespace: Any) -> None:
    with pytest.raises((SemcacheInputError, TypeError), match="namespace"):
        ExactCache(namespace=namespace)


@pytest.mark.parametrize("ttl", [0, -1, math.inf])
def test_invalid_ttl(ttl: float) -> None:
    with pytest.raises(SemcacheInputError, match="ttl must be a positive number"):
        ExactCache(ttl=ttl)


def test_update_rejects_non_generations() -> None:
    cache = ExactCache()
    with pytest.raises(TypeError, match="sequence of Generation"):
        cache.update("p", "llm", Generation(text="x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generation objects, got str"):
        cache.update("p", "llm", ["x"])  # type: ignore[list-item]


class BrokenBackend(EmbeddedBackend):
    """Fault injection: an embedded backend whose storage stops answering on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def execute(self, step: Any) -> Any:
        self.calls += 1
        if self.down:
            raise BackendError("storage unreachable (injected)")
        return super().execute(step)


def test_backend_down_means_misses_not_failures(caplog: pytest.LogCaptureFixture) -> None:
    from langchain_core.globals import set_llm_cache

    backend = BrokenBackend()
    cache = ExactCache(backend, namespace="app")
    set_llm_cache(cache)
    try:
        model = CountingChatModel()
        model.invoke("hello")
        backend.down = True
        with caplog.at_level(logging.WARNING, logger="semcache"):
            assert model.invoke("hello").content.endswith("hello")  # served by the model
            calls_after_first_failure = backend.calls
            model.invoke("hello again")
        assert model.calls == 3
        assert "continuing without the cache" in caplog.text
        # The circuit breaker: no further backend calls while it is open.
        assert backend.calls == calls_after_first_failure
        assert cache.stats()["backend_errors"] == 1
    finally:
        set_llm_cache(None)


def test_backend_down_store_reads_missing_and_skips_writes() -> None:
    backend = BrokenBackend()
    store = BackendByteStore(backend, namespace="app")
    backend.down = True
    assert store.mget(["a", "b"]) == [None, None]
    store.mset([("a", b"x")])  # skipped, no exception
    assert list(store.yield_keys()) == []


def test_backend_down_raises_when_asked() -> None:
    backend = BrokenBackend()
    backend.down = True
    with pytest.raises(BackendError, match="unreachable"):
        ExactCache(backend, on_backend_error="raise").lookup("p", "llm")


async def test_backend_down_async_is_a_miss() -> None:
    backend = BrokenBackend()
    backend.down = True
    assert await ExactCache(backend).alookup("p", "llm") is None


def test_embedding_failure_is_a_miss(namespace: str) -> None:
    class FailingEmbeddings(WordHashEmbeddings):
        def embed_query(self, text: str) -> list[float]:
            raise ConnectionError("embedding API down")

    cache = SemanticCache(embeddings=FailingEmbeddings(), namespace=namespace)
    assert cache.lookup("What is up?", "llm") is None
    cache.update("What is up?", "llm", [Generation(text="x")])  # skipped, no exception
    assert cache.stats()["backend_errors"] == 2
