"""LlamaIndex adapters end to end, through LlamaIndex's own entry points, on every backend."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, MessageRole
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.ingestion import IngestionCache, IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.tools import FunctionTool

from llamaindex_semcache import BackendKVStore, CachedEmbedding, CachedLLM, embedding_identity
from llamaindex_semcache.kvstore import collection_prefix
from semcache_core import Backend, BackendError
from tests.llama_fakes import (
    CountingLLM,
    CountingTransform,
    ToolCallingLLM,
    WordHashEmbedding,
)


def spy(monkeypatch: pytest.MonkeyPatch, backend: Backend, method: str) -> list[int]:
    """Count calls of the backend operation behind ``backend.<method>``, recording each
    call's batch size. The sync and async paths run the same operation (``backend.ops``):
    ``"aget_many"`` counts ``ops.get_many`` like ``"get_many"`` does."""
    operation = method[1:] if method.startswith("a") and method != "add_vectors" else method
    original = getattr(backend.ops, operation)
    calls: list[int] = []

    def wrapper(namespace: str, items: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(items))
        return original(namespace, items, *args, **kwargs)

    monkeypatch.setattr(backend.ops, operation, wrapper)
    return calls


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def system(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.SYSTEM, content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, content=text)


# -- BackendKVStore ----------------------------------------------------------------------------
def test_kv_put_get_delete(backend: Backend, namespace: str) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    store.put("k1", {"a": 1, "nested": {"b": [1, 2, "x"]}})
    assert store.get("k1") == {"a": 1, "nested": {"b": [1, 2, "x"]}}
    assert store.get("missing") is None
    assert store.delete("k1") is True
    assert store.delete("k1") is False
    assert store.get("k1") is None


async def test_kv_async_forms(backend: Backend, namespace: str) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    await store.aput("k1", {"a": 1})
    await store.aput_all([("k2", {"b": 2}), ("k3", {"c": 3})], batch_size=2)
    assert await store.aget("k1") == {"a": 1}
    assert await store.aget_all() == {"k1": {"a": 1}, "k2": {"b": 2}, "k3": {"c": 3}}
    assert await store.adelete("k2") is True
    assert await store.adelete("k2") is False
    assert await store.aget("k2") is None
    assert store.get_all() == {"k1": {"a": 1}, "k3": {"c": 3}}


def test_kv_collections_are_apart(backend: Backend, namespace: str) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    store.put("c", {"v": "collection a/b, key c"}, collection="a/b")
    store.put("b/c", {"v": "collection a, key b/c"}, collection="a")
    store.put("x", {"v": "collection a%2Fb"}, collection="a%2Fb")
    store.put("x", {"v": "default"})
    assert store.get("c", collection="a/b") == {"v": "collection a/b, key c"}
    assert store.get("b/c", collection="a") == {"v": "collection a, key b/c"}
    assert store.get("c", collection="a") is None
    assert store.get_all(collection="a") == {"b/c": {"v": "collection a, key b/c"}}
    assert store.get_all(collection="a/b") == {"c": {"v": "collection a/b, key c"}}
    assert store.get_all(collection="a%2Fb") == {"x": {"v": "collection a%2Fb"}}
    assert store.get_all() == {"x": {"v": "default"}}
    assert collection_prefix("a/b") != collection_prefix("a") + "b/"
    store.clear(collection="a")
    assert store.get_all(collection="a") == {}
    assert store.get("c", collection="a/b") is not None


def test_kv_long_unicode_keys(backend: Backend, namespace: str) -> None:
    """embeddings_cache keys are whole chunks of text."""
    store = BackendKVStore(backend, namespace=namespace)
    key = "Ünïcode chunk of a document, with / slashes and : colons. " * 100
    store.put(key, {"v": 1}, collection="embeddings")
    assert store.get(key, collection="embeddings") == {"v": 1}
    assert store.get_all(collection="embeddings") == {key: {"v": 1}}
    assert store.delete(key, collection="embeddings") is True


def test_kv_non_json_value_is_type_error_and_stores_nothing(
    backend: Backend, namespace: str
) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    with pytest.raises(TypeError, match="not JSON-serializable"):
        store.put("k", {"obj": object()})
    with pytest.raises(TypeError, match="not JSON-serializable"):
        store.put_all([("good", {"a": 1}), ("bad", {"x": {1, 2}})], batch_size=1)
    with pytest.raises(TypeError, match="must be dicts"):
        store.put("k", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys must be str"):
        store.put(1, {"a": 1})  # type: ignore[arg-type]
    assert store.get_all() == {}
    assert store.get("good") is None


def test_kv_put_all_one_round_trip_per_batch(
    backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    writes = spy(monkeypatch, store.backend, "set_many")
    store.put_all([(f"k{i}", {"i": i}) for i in range(25)], batch_size=10)
    assert writes == [10, 10, 5]
    assert len(store.get_all()) == 25
    with pytest.raises(ValueError):
        store.put_all([("k", {})], batch_size=0)


async def test_kv_get_all_streams_in_batches(
    backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BackendKVStore(backend, namespace=namespace)
    store.get_all_batch_size = 7
    expected = {f"key-{i:03d}": {"i": i} for i in range(30)}
    store.put_all(list(expected.items()), collection="big", batch_size=100)
    store.put("other", {"i": -1}, collection="small")
    reads = spy(monkeypatch, store.backend, "get_many")
    assert store.get_all(collection="big") == expected
    assert sorted(reads) == [2, 7, 7, 7, 7]  # one mget per batch
    areads = spy(monkeypatch, store.backend, "aget_many")
    assert await store.aget_all(collection="big") == expected
    assert len(areads) == math.ceil(30 / 7)
    assert dict(store.iter_items("small")) == {"other": {"i": -1}}


def test_kv_ingestion_pipeline_second_run_calls_no_transformation(
    backend: Backend, namespace: str
) -> None:
    documents = [
        Document(text=f"Document {i}. " + "Some sentence about semantic caching. " * 20)
        for i in range(3)
    ]

    def run() -> tuple[int, list[str]]:
        counting = CountingTransform()
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), counting],
            cache=IngestionCache(cache=BackendKVStore(backend, namespace=namespace)),
        )
        nodes = pipeline.run(documents=documents)
        return counting.calls, [node.get_content() for node in nodes]

    first_calls, first_nodes = run()
    second_calls, second_nodes = run()  # a new pipeline and store: as another process would
    assert first_calls == 1
    assert second_calls == 0
    assert second_nodes == first_nodes
    assert all(text == text.upper() for text in second_nodes)


def test_kv_backs_a_llamaindex_document_store(backend: Backend, namespace: str) -> None:
    docstore = KVDocumentStore(BackendKVStore(backend, namespace=namespace), batch_size=10)
    docstore.add_documents([TextNode(text=f"node {i}", id_=f"id-{i}") for i in range(25)])
    assert len(docstore.docs) == 25
    node = docstore.get_document("id-3")
    assert node is not None and node.get_content() == "node 3"
    docstore.delete_document("id-3")
    assert not docstore.document_exists("id-3") and len(docstore.docs) == 24


# -- embeddings_cache isolation ----------------------------------------------------------------
def test_embeddings_cache_per_model_namespaces_keep_models_apart(
    backend: Backend, namespace: str
) -> None:
    model_a = WordHashEmbedding(model_name="model-a")
    model_b = WordHashEmbedding(model_name="model-b")
    model_a.embeddings_cache = BackendKVStore.for_embedding_model(
        model_a, backend, namespace=namespace
    )
    model_b.embeddings_cache = BackendKVStore.for_embedding_model(
        model_b, backend, namespace=namespace
    )
    assert model_a.embeddings_cache.namespace != model_b.embeddings_cache.namespace

    vector_a = model_a.get_text_embedding("semantic caching")
    vector_b = model_b.get_text_embedding("semantic caching")
    assert vector_a != vector_b  # model b computed its own
    assert model_b.texts == 1
    assert model_a.get_text_embedding("semantic caching") == vector_a
    assert model_a.get_text_embedding_batch(["semantic caching", "other"])[0] == vector_a
    assert model_a.texts == 2  # only "other" was new


def test_embeddings_cache_without_isolation_collides(backend: Backend, namespace: str) -> None:
    """Why ``for_embedding_model`` exists: LlamaIndex keys embeddings_cache by text alone."""
    shared = BackendKVStore(backend, namespace=namespace)
    model_a = WordHashEmbedding(model_name="model-a", embeddings_cache=shared)
    model_b = WordHashEmbedding(model_name="model-b", embeddings_cache=shared)
    vector_a = model_a.get_text_embedding("semantic caching")
    assert model_b.get_text_embedding("semantic caching") == vector_a  # model a's vector!
    assert model_b.texts == 0


# -- CachedEmbedding ---------------------------------------------------------------------------
def test_cached_embedding_batch_reads_once_and_embeds_only_missing(
    backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = WordHashEmbedding(embed_batch_size=100)
    cached = CachedEmbedding(inner, backend, namespace=namespace)
    texts = [f"text number {i}" for i in range(100)]
    first_half = cached.get_text_embedding_batch(texts[:50])
    assert (inner.texts, inner.batches) == (50, 1)

    reads = spy(monkeypatch, cached.backend, "get_many")
    writes = spy(monkeypatch, cached.backend, "set_many")
    vectors = cached.get_text_embedding_batch(texts)
    assert reads == [100]  # one mget for the whole batch
    assert writes == [50]  # one mset for the new ones
    assert (inner.texts, inner.batches) == (100, 2)  # the model saw only the 50 new texts
    assert vectors[:50] == first_half  # float32 precision whether fresh or cached
    direct = WordHashEmbedding().get_text_embedding_batch(texts)
    np.testing.assert_allclose(vectors, direct, rtol=1e-6, atol=1e-7)

    again = cached.get_text_embedding_batch(texts)
    assert inner.texts == 100
    np.testing.assert_allclose(again, direct, rtol=1e-6, atol=1e-7)
    assert cached.stats()["kv_hits"] == 150


async def test_cached_embedding_async_batch(
    backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = WordHashEmbedding(embed_batch_size=100)
    cached = CachedEmbedding(inner, backend, namespace=namespace)
    texts = [f"async text {i}" for i in range(20)]
    await cached.aget_text_embedding_batch(texts[:10])
    reads = spy(monkeypatch, cached.backend, "aget_many")
    vectors = await cached.aget_text_embedding_batch(texts + texts[:3])  # duplicates too
    assert reads == [23]
    assert inner.texts == 20
    assert len(vectors) == 23 and vectors[20:] == vectors[:3]
    assert await cached.aget_text_embedding(texts[5]) == vectors[5]
    query = await cached.aget_query_embedding("a question")
    assert await cached.aget_query_embedding("a question") == query
    assert inner.texts == 21


def test_cached_embedding_query_and_single_text(backend: Backend, namespace: str) -> None:
    inner = WordHashEmbedding()
    cached = CachedEmbedding(inner, backend, namespace=namespace)
    query = cached.get_query_embedding("what is semantic caching")
    assert cached.get_query_embedding("what is semantic caching") == query
    assert inner.texts == 1
    text = cached.get_text_embedding("what is semantic caching")  # queries and texts apart
    assert inner.texts == 2
    assert cached.get_text_embedding("what is semantic caching") == text
    assert inner.texts == 2
    assert cached.model_name == inner.model_name


def test_cached_embedding_models_sharing_a_namespace_stay_apart(
    backend: Backend, namespace: str
) -> None:
    model_a = CachedEmbedding(WordHashEmbedding(model_name="a"), backend, namespace=namespace)
    model_b = CachedEmbedding(WordHashEmbedding(model_name="b"), backend, namespace=namespace)
    assert model_a.get_text_embedding("hello") != model_b.get_text_embedding("hello")
    small = CachedEmbedding(MockEmbedding(embed_dim=4), backend, namespace=namespace)
    large = CachedEmbedding(MockEmbedding(embed_dim=8), backend, namespace=namespace)
    assert len(small.get_text_embedding("hello")) == 4
    assert len(large.get_text_embedding("hello")) == 8


def test_cached_embedding_has_the_identity_of_the_wrapped_model(
    backend: Backend, namespace: str
) -> None:
    inner = WordHashEmbedding(model_name="m1")
    cached = CachedEmbedding(inner, backend, namespace=namespace)
    assert embedding_identity(cached) == embedding_identity(inner)
    assert embedding_identity(inner).endswith("WordHashEmbedding:m1")
    assert cached.dim == 64  # type: ignore[attr-defined]  # delegated
    named = CachedEmbedding(inner, backend, namespace=namespace, name="my-model-v2")
    assert named.identity == "my-model-v2"


# -- CachedLLM ---------------------------------------------------------------------------------
def test_llm_exact_hit_on_complete_and_chat(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    first = llm.complete("What is the capital of France?")
    second = llm.complete("What is the capital of France?")
    assert inner.calls == 1
    assert second.text == first.text and second.additional_kwargs == {"total_tokens": 42}
    llm.complete("What is the capital of Spain?")
    assert inner.calls == 2
    llm.complete("What is the capital of France?", formatted=True)  # another prompt format
    assert inner.calls == 3

    messages = [system("Be brief."), user("What is the capital of France?")]
    chat_first = llm.chat(messages)
    chat_second = llm.chat(list(messages))
    assert inner.calls == 4
    assert chat_second.message.content == chat_first.message.content
    assert chat_second.message.role == MessageRole.ASSISTANT
    stats = llm.stats()
    assert (stats["exact_hits"], stats["misses"]) == (2, 4)
    assert stats["tokens_saved"] == 84


def test_llm_semantic_hit_on_paraphrase(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    embed = WordHashEmbedding()
    llm = CachedLLM(inner, backend, namespace=namespace, embeddings=embed, trap_guard=False)
    history = [system("You are a geography tutor.")]
    first = llm.chat([*history, user("What is the capital of France?")])
    paraphrase = llm.chat([*history, user("what's the capital city of france")])
    assert inner.calls == 1
    assert paraphrase.message.content == first.message.content
    assert llm.stats()["semantic_hits"] == 1
    llm.chat([*history, user("Who painted the Mona Lisa?")])
    assert inner.calls == 2
    completion = llm.complete("What is the capital of France?")
    assert llm.complete("what's the capital city of france").text == completion.text
    assert inner.calls == 3


def test_llm_semantic_with_default_trap_guard(backend: Backend, namespace: str) -> None:
    pytest.importorskip("semcache_core.guard")
    inner = CountingLLM()
    embed = CachedEmbedding(WordHashEmbedding(), backend, namespace=namespace + "-emb")
    llm = CachedLLM(inner, backend, namespace=namespace, embeddings=embed)
    llm.chat([user("What is the capital of France?")])
    llm.chat([user("what's the capital city of france")])
    assert inner.calls == 1
    llm.chat([user("What is the capital of Germany?")])  # a trap: another name
    assert inner.calls == 2


def test_llm_other_parameters_are_a_miss(backend: Backend, namespace: str) -> None:
    embed = WordHashEmbedding()
    cold = CountingLLM(temperature=0.0)
    hot = CountingLLM(temperature=0.9)
    other_model = CountingLLM(model_name="other-model")
    for inner in (cold, hot, other_model):
        llm = CachedLLM(inner, backend, namespace=namespace, embeddings=embed, trap_guard=False)
        llm.complete("What is the capital of France?")
        llm.complete("What is the capital of France?")
    assert (cold.calls, hot.calls, other_model.calls) == (1, 1, 1)
    llm = CachedLLM(cold, backend, namespace=namespace)
    llm.complete("What is the capital of France?", max_tokens=5)  # call kwargs are scope too
    llm.complete("What is the capital of France?", max_tokens=5)
    assert cold.calls == 2
    cold.temperature = 0.5  # a parameter changed after wrapping
    llm.complete("What is the capital of France?", max_tokens=5)
    assert cold.calls == 3


@pytest.mark.parametrize("context_match", ["exact", "semantic"])
def test_llm_other_system_prompt_or_history_is_a_miss(
    backend: Backend, namespace: str, context_match: str
) -> None:
    inner = CountingLLM()
    llm = CachedLLM(
        inner,
        backend,
        namespace=namespace,
        embeddings=WordHashEmbedding(),
        trap_guard=False,
        context_match=context_match,  # type: ignore[arg-type]
    )
    question = user("What is the capital of France?")
    llm.chat([system("Answer in French."), question])
    llm.chat([system("Answer in English."), question])
    llm.chat([user("Hi"), assistant("Hello! Ask me anything."), question])
    llm.chat([question])
    # With context_match="exact" (the rule before issue 11) every earlier turn must be
    # identical; with "semantic" a greeting exchange carries no fact the answer depends on, so
    # the bare question is served the answer given after "Hi" / "Hello! Ask me anything.".
    assert inner.calls == (4 if context_match == "exact" else 3)
    llm.chat([user("I live in Spain."), assistant("Nice."), question])
    assert inner.calls == (5 if context_match == "exact" else 4)  # a fact: a miss in both
    llm.chat([system("Answer in French."), user("what's the capital city of france")])
    assert inner.calls == (5 if context_match == "exact" else 4)  # same context: a hit


def test_llm_streaming_replays_a_cached_response(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    answer = llm.complete("Tell me a joke").text
    chunks = list(llm.stream_complete("Tell me a joke"))
    assert inner.calls == 1
    assert "".join(chunk.delta or "" for chunk in chunks) == answer
    assert chunks[-1].text == answer

    messages = [user("Tell me a story")]
    reply = llm.chat(messages).message.content
    chat_chunks = list(llm.stream_chat(messages))
    assert inner.calls == 2
    assert "".join(chunk.delta or "" for chunk in chat_chunks) == reply
    assert chat_chunks[-1].message.content == reply


def test_llm_caches_a_streamed_response_once_finished(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    chunks = list(llm.stream_complete("Stream me an answer"))
    assert len(chunks) > 1 and inner.calls == 1
    assert llm.complete("Stream me an answer").text == chunks[-1].text
    assert inner.calls == 1

    chat_chunks = list(llm.stream_chat([user("Stream a chat answer")]))
    assert llm.chat([user("Stream a chat answer")]).message.content == (
        chat_chunks[-1].message.content
    )
    assert inner.calls == 2


def test_llm_does_not_cache_a_failed_or_abandoned_stream(backend: Backend, namespace: str) -> None:
    inner = CountingLLM(fail_stream_at=2)
    llm = CachedLLM(inner, backend, namespace=namespace)
    with pytest.raises(RuntimeError, match="the stream broke"):
        list(llm.stream_complete("Stream me an answer"))
    inner.fail_stream_at = None
    abandoned = llm.stream_complete("Stream me an answer")
    next(abandoned)
    abandoned.close()
    llm.complete("Stream me an answer")
    assert inner.calls == 3  # neither stream was stored


async def test_llm_async_forms(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    llm = CachedLLM(
        inner, backend, namespace=namespace, embeddings=WordHashEmbedding(), trap_guard=False
    )
    first = await llm.acomplete("What is the capital of France?")
    assert (await llm.acomplete("what's the capital city of france")).text == first.text
    chat = await llm.achat([user("Name a prime number")])
    assert (await llm.achat([user("Name a prime number")])).message.content == (
        chat.message.content
    )
    assert inner.calls == 2

    replay = [chunk async for chunk in await llm.astream_complete("What is the capital of France?")]
    assert replay[-1].text == first.text and replay[-1].delta == first.text
    streamed = [chunk async for chunk in await llm.astream_chat([user("Count to three")])]
    assert inner.calls == 3
    again = [chunk async for chunk in await llm.astream_chat([user("Count to three")])]
    assert inner.calls == 3
    assert again[-1].message.content == streamed[-1].message.content
    assert llm.stats()["semantic_hits"] == 1


def test_llm_in_a_query_engine(backend: Backend, namespace: str) -> None:
    embed = CachedEmbedding(MockEmbedding(embed_dim=8), backend, namespace=namespace + "-emb")
    documents = [
        Document(text="semcache caches LLM responses."),
        Document(text="Paris is in France."),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    llm = CachedLLM(MockLLM(max_tokens=8), backend, namespace=namespace)
    engine = index.as_query_engine(llm=llm)
    first = engine.query("What does semcache cache?")
    second = engine.query("What does semcache cache?")
    assert str(second) == str(first)
    assert llm.stats()["exact_hits"] >= 1
    streaming = index.as_query_engine(llm=llm, streaming=True)
    streamed = streaming.query("What does semcache cache?")
    assert isinstance(streamed, StreamingResponse)
    assert "".join(streamed.response_gen) == str(first)
    assert embed.stats()["kv_hits"] >= 2  # the question's embedding came from the cache


@pytest.fixture
def restore_settings() -> Iterator[None]:
    llm, embed = Settings._llm, Settings._embed_model
    yield
    Settings._llm, Settings._embed_model = llm, embed


def test_llm_drops_into_settings(backend: Backend, namespace: str, restore_settings: None) -> None:
    inner = CountingLLM()
    Settings.llm = CachedLLM(inner, backend, namespace=namespace)
    Settings.embed_model = MockEmbedding(embed_dim=8)
    index = VectorStoreIndex.from_documents([Document(text="Paris is the capital of France.")])
    engine = index.as_query_engine()
    first = engine.query("What is the capital of France?")
    second = engine.query("What is the capital of France?")
    assert str(second) == str(first)
    assert inner.calls == 1
    assert Settings.llm.metadata.model_name == "counting-llm"


def test_llm_delegates_to_the_wrapped_llm(backend: Backend, namespace: str) -> None:
    inner = CountingLLM(temperature=0.3, system_prompt="Be nice.")
    llm = CachedLLM(inner, backend, namespace=namespace)
    assert llm.metadata == inner.metadata
    assert llm.temperature == 0.3  # type: ignore[attr-defined]
    assert llm.system_prompt == "Be nice."
    from llama_index.core.callbacks import CallbackManager

    manager = CallbackManager([])
    llm.callback_manager = manager
    assert inner.callback_manager is manager
    from llama_index.core.prompts import PromptTemplate

    answer = llm.predict(PromptTemplate("Say {word}"), word="hello")
    assert answer == llm.predict(PromptTemplate("Say {word}"), word="hello")
    assert inner.calls == 1


def test_llm_function_calling_is_cached(backend: Backend, namespace: str) -> None:
    def lookup_capital(country: str) -> str:
        """Look up the capital of a country."""
        return "Paris"

    def lookup_population(country: str) -> str:
        """Look up the population of a country."""
        return "68 million"

    capital = FunctionTool.from_defaults(fn=lookup_capital)
    population = FunctionTool.from_defaults(fn=lookup_population)
    inner = ToolCallingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    first = llm.chat_with_tools([capital], user_msg="Capital of France?")
    second = llm.chat_with_tools([capital], user_msg="Capital of France?")
    assert inner.calls == 1
    calls = llm.get_tool_calls_from_response(second)
    assert [(c.tool_name, c.tool_id) for c in calls] == [("lookup_capital", "call-1-0")]
    assert calls == llm.get_tool_calls_from_response(first)
    llm.chat_with_tools([capital, population], user_msg="Capital of France?")
    assert inner.calls == 2  # other tools, other scope


def test_llm_passes_through_what_it_cannot_cache(backend: Backend, namespace: str) -> None:
    class OpaqueLLM(CountingLLM):
        @llm_completion_callback()
        def complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponse:
            return CompletionResponse(
                text=self._answer(prompt), additional_kwargs={"raw": object()}
            )

    inner = OpaqueLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    llm.complete("hello")
    llm.complete("hello")
    assert inner.calls == 2  # a response without JSON form is not stored
    plain = CountingLLM()
    llm = CachedLLM(plain, backend, namespace=namespace)
    llm.complete("hello", callback=object())  # a call kwarg without JSON form
    llm.complete("hello", callback=object())
    assert plain.calls == 2


def test_llm_survives_a_failing_backend(
    backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = CountingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise BackendError("connection refused")
        yield  # an operation is a flow: it fails when run

    monkeypatch.setattr(llm.backend.ops, "get_many", broken)
    assert llm.complete("hello").text.startswith("counting-llm: answer #1")
    assert llm.stats()["backend_errors"] >= 1


def test_llm_clear_removes_only_its_namespace(backend: Backend, namespace: str) -> None:
    inner = CountingLLM()
    llm = CachedLLM(inner, backend, namespace=namespace)
    other = CachedLLM(inner, backend, namespace=namespace + "-other")
    llm.complete("hello")
    other.complete("hello")
    llm.clear()
    llm.complete("hello")
    other.complete("hello")
    assert inner.calls == 3
