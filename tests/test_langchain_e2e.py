"""End to end through LangChain's own entry points, on every backend kind."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_core.caches import BaseCache
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from langchain_semcache import BackendByteStore, ExactCache, SemanticCache
from semcache_core import Backend, keys
from tests.fakes import CountingChatModel, WordHashEmbeddings


@pytest.fixture
def global_cache() -> Iterator[None]:
    yield
    set_llm_cache(None)


def test_exact_cache_serves_second_identical_invoke(
    backend: Backend, namespace: str, global_cache: None
) -> None:
    set_llm_cache(ExactCache(backend, namespace=namespace))
    model = CountingChatModel()
    first = model.invoke("What is the capital of France?")
    second = model.invoke("What is the capital of France?")
    assert model.calls == 1
    assert second.content == first.content
    model.invoke("What is the capital of Spain?")
    assert model.calls == 2


async def test_exact_cache_async_invoke(
    backend: Backend, namespace: str, global_cache: None
) -> None:
    set_llm_cache(ExactCache(backend, namespace=namespace))
    model = CountingChatModel()
    first = await model.ainvoke("Hello there")
    second = await model.ainvoke("Hello there")
    assert model.calls == 1 and second.content == first.content


def test_other_model_or_parameters_is_a_miss(
    backend: Backend, namespace: str, global_cache: None
) -> None:
    set_llm_cache(SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace))
    base = CountingChatModel(model="model-a")
    base.invoke("What is the capital of France?")
    other_model = CountingChatModel(model="model-b")
    other_model.invoke("What is the capital of France?")
    hotter = CountingChatModel(model="model-a", temperature=0.9)
    hotter.invoke("What is the capital of France?")
    assert (base.calls, other_model.calls, hotter.calls) == (1, 1, 1)


def test_semantic_cache_serves_paraphrase(
    backend: Backend, namespace: str, global_cache: None
) -> None:
    embeddings = WordHashEmbeddings()
    cache = SemanticCache(backend, embeddings=embeddings, namespace=namespace)
    set_llm_cache(cache)
    model = CountingChatModel()
    first = model.invoke("What is the capital of France?")
    assert embeddings.calls == 1  # the miss embedded once; the update reused that vector
    paraphrase = model.invoke("what's the capital city of france")
    assert model.calls == 1
    assert paraphrase.content == first.content
    exact = model.invoke("What is the capital of France?")
    assert exact.content == first.content
    assert embeddings.calls == 2  # the exact repeat needed no embedding
    stats = cache.stats()
    assert (stats["exact_hits"], stats["semantic_hits"], stats["misses"]) == (1, 1, 1)
    assert stats["tokens_saved"] == 2 * model.usage_tokens


def test_semantic_cache_compares_last_turn_only_within_same_context(
    backend: Backend, namespace: str, global_cache: None
) -> None:
    set_llm_cache(SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace))
    model = CountingChatModel()
    pirate = [
        SystemMessage("Answer like a pirate."),
        HumanMessage("What is the capital of France?"),
    ]
    model.invoke(pirate)
    model.invoke(
        [SystemMessage("Answer like a pirate."), HumanMessage("what's the capital city of France?")]
    )
    assert model.calls == 1
    model.invoke(
        [SystemMessage("Answer formally."), HumanMessage("What is the capital of France?")]
    )
    assert model.calls == 2
    history = [HumanMessage("I live in Spain."), AIMessage("Nice."), pirate[1]]
    model.invoke(history)
    assert model.calls == 3


def test_embedding_cache_makes_no_call_for_seen_texts(backend: Backend, namespace: str) -> None:
    underlying = WordHashEmbeddings()
    store = BackendByteStore(backend, namespace=namespace)
    embedder = CacheBackedEmbeddings.from_bytes_store(
        underlying, store, namespace=underlying.model, key_encoder="sha256"
    )
    texts = [f"document number {i}" for i in range(20)]
    first = embedder.embed_documents(texts)
    assert underlying.calls == 20
    again = embedder.embed_documents([*texts[:10], "a new text"])
    assert underlying.calls == 21
    assert again[:10] == first[:10]
    assert sum(1 for _ in store.yield_keys(prefix=underlying.model)) == 21


async def test_embedding_cache_async(backend: Backend, namespace: str) -> None:
    underlying = WordHashEmbeddings()
    store = BackendByteStore(backend, namespace=namespace)
    embedder = CacheBackedEmbeddings.from_bytes_store(
        underlying, store, namespace=underlying.model, key_encoder="sha256"
    )
    await embedder.aembed_documents(["one", "two"])
    await embedder.aembed_documents(["one", "two", "three"])
    assert underlying.calls == 3


def test_every_generation_and_tool_calls_survive(backend: Backend, namespace: str) -> None:
    cache = ExactCache(backend, namespace=namespace)
    message = AIMessage(
        content="",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
        response_metadata={"finish_reason": "tool_calls"},
    )
    generations = [
        ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"}),
        ChatGeneration(message=AIMessage(content="second choice")),
        ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "blocks"}])),
    ]
    cache.update("prompt", "llm", generations)
    restored = cache.lookup("prompt", "llm")
    assert restored == generations
    assert isinstance(restored[0], ChatGeneration)
    assert restored[0].message.tool_calls[0]["args"] == {"city": "Paris"}


def test_ttl_override_per_entry(backend: Backend, namespace: str) -> None:
    import time

    cache = ExactCache(backend, namespace=namespace, ttl=60)
    cache.update("short", "llm", [Generation(text="s")], ttl=0.3)
    cache.update("long", "llm", [Generation(text="l")])
    time.sleep(0.6)
    assert cache.lookup("short", "llm") is None
    assert cache.lookup("long", "llm") == [Generation(text="l")]


def test_clear_removes_only_own_namespace(backend: Backend, namespace: str) -> None:
    mine = ExactCache(backend, namespace=namespace)
    theirs = ExactCache(backend, namespace=namespace + "-other")
    store = BackendByteStore(backend, namespace=namespace + "-store")
    for cache in (mine, theirs):
        cache.update("p", "llm", [Generation(text="x")])
    store.mset([("k", b"v")])
    mine.clear()
    assert mine.lookup("p", "llm") is None
    assert theirs.lookup("p", "llm") == [Generation(text="x")]
    assert store.mget(["k"]) == [b"v"]
    theirs.clear()
    store.clear()


def test_keys_are_unambiguous() -> None:
    assert keys.exact_entry_key("ns", "ab", "c") != keys.exact_entry_key("ns", "a", "bc")
    assert keys.exact_entry_key("ns", "llm", "p") != keys.exact_entry_key("ns2", "llm", "p")
    assert keys.stable_hash("a", "") != keys.stable_hash("", "a")
    # The exact key hashes (namespace, scope) once per process: still the hash of all parts.
    for fields in (None, {"user": "a"}):
        for prompt in ("p", "another prompt"):
            parts = ("exact", "ns", "llm", prompt)
            if fields:
                parts = (*parts, "scope fields", keys.scope_text(fields))
            expected = "llm:" + keys.stable_hash(*parts)
            assert keys.exact_entry_key("ns", "llm", prompt, fields) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b'{"_": "semcache", "v": 1, "kind": "other", "body": {}}',
        b'{"_": "semcache", "v": 99, "kind": "response", "body": {}}',
        json.dumps(
            {
                "_": "semcache",
                "v": 1,
                "kind": "response",
                "body": {
                    "value": {
                        "generations": [
                            {
                                "lc": 1,
                                "type": "constructor",
                                "id": ["langchain", "llms", "openai", "OpenAI"],
                                "kwargs": {"openai_api_base": "http://attacker.example"},
                            }
                        ]
                    }
                },
            }
        ).encode(),
    ],
    ids=["garbage", "foreign-kind", "future-version", "arbitrary-class"],
)
def test_corrupt_or_hostile_entry_is_a_miss_with_warning(
    backend: Backend, namespace: str, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ExactCache(backend, namespace=namespace)
    key = keys.exact_entry_key(namespace, "llm", "prompt")
    backend.set_many(namespace, [(key, raw)])
    with caplog.at_level(logging.WARNING, logger="semcache"):
        assert cache.lookup("prompt", "llm") is None
    assert "ignoring" in caplog.text


def test_async_methods_are_native() -> None:
    for cls in (ExactCache, SemanticCache):
        for name in ("alookup", "aupdate", "aclear"):
            assert getattr(cls, name) is not getattr(BaseCache, name), (cls, name)


SQLITE_CHILD = """
import sys
from langchain_core.outputs import Generation
from langchain_semcache import ExactCache
cache = ExactCache(sys.argv[1], namespace="shared")
if sys.argv[2] == "write":
    cache.update("prompt", "llm", [Generation(text="from process one")])
else:
    print(cache.lookup("prompt", "llm")[0].text)
"""


def test_sqlite_entries_survive_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    for mode in ("write", "read"):
        done = subprocess.run(
            [sys.executable, "-c", SQLITE_CHILD, url, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    assert done.stdout.strip() == "from process one"


@pytest.mark.parametrize("walk", ["cached-reviver", "public-load"])
def test_both_deserialization_paths_agree_and_refuse_other_classes(
    walk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_semcache import _serialization

    if walk == "public-load":
        monkeypatch.setattr(_serialization, "_REVIVE", None)
    generations = [
        ChatGeneration(
            message=AIMessage(content="x", tool_calls=[{"name": "f", "args": {}, "id": "1"}])
        ),
        Generation(text="plain", generation_info={"lc": "a user dict with an lc key"}),
    ]
    body = _serialization.generations_to_json(generations)
    assert _serialization.generations_from_json(body) == generations
    hostile = {
        "generations": [
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain", "llms", "openai", "OpenAI"],
                "kwargs": {},
            }
        ]
    }
    assert _serialization.generations_from_json(hostile) is None
