"""LangChain: ``GeminiContextCache(...).bind(ChatGoogleGenerativeAI(...))`` against the fake API."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_google_genai import ChatGoogleGenerativeAI

from langchain_semcache import ExactCache
from langchain_semcache.gemini import GeminiContextCache
from tests.fake_gemini import DOCUMENT, MODEL, FakeGemini

pytest_plugins = ["tests.gemini_fixtures"]

SYSTEM = "You answer questions about the document."


@tool
def lookup(term: str) -> str:
    """Look a term up in the glossary."""
    return term


def chat_model(fake: FakeGemini, **options: Any) -> ChatGoogleGenerativeAI:
    return ChatGoogleGenerativeAI(
        model=MODEL, google_api_key="fake-key", base_url=fake.url, max_retries=1, **options
    )


def bound_model(fake: FakeGemini, client: Any, url: str, namespace: str, **options: Any) -> Any:
    cache = GeminiContextCache(url, client=client, namespace=namespace, **options)
    return cache.bind(chat_model(fake), system=SYSTEM, documents=[DOCUMENT], tools=[lookup])


def assert_all_cached(fake: FakeGemini) -> None:
    bodies = fake.generate_bodies()
    assert bodies
    for body in bodies:
        assert body.get("cachedContent")
        assert not {"systemInstruction", "tools", "toolConfig"} & set(body)


def test_threads_one_create_and_requests_carry_only_the_cache(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    fake.create_latency = 0.3
    model = bound_model(fake, client, registry_url, context_namespace)
    barrier = threading.Barrier(8, timeout=60)
    answers: list[str] = []

    def worker(i: int) -> None:
        barrier.wait()
        answers.append(str(model.invoke([HumanMessage(content=f"question {i}")]).content))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and all(a.startswith("answer from") for a in answers)
    assert fake.counts["create"] == 1
    assert_all_cached(fake)
    created = next(body for kind, body in fake.requests if kind == "create")
    assert "systemInstruction" in created and "tools" in created and created["contents"]
    assert created["displayName"].startswith("semcache:" + model.context_key)


def test_inline_when_too_small_sends_system_documents_and_tools(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    fake.min_tokens_default = 10_000
    model = bound_model(fake, client, registry_url, context_namespace)
    model.invoke("first")
    model.invoke([SystemMessage(content=SYSTEM), HumanMessage(content="second")])
    assert fake.counts["create"] == 1
    for body in fake.generate_bodies():
        assert "cachedContent" not in body
        assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM
        assert body["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
        assert DOCUMENT in body["contents"][0]["parts"][0]["text"]


def test_deleted_cache_recreated_and_response_cache_keeps_hitting(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    response_cache = ExactCache("memory://", namespace=context_namespace + "-responses")
    cache = GeminiContextCache(registry_url, client=client, namespace=context_namespace)
    model = cache.bind(chat_model(fake), system=SYSTEM, documents=[DOCUMENT])
    model.cache = response_cache
    first = model.invoke("what is in the document?")
    fake.delete_all()
    assert model.invoke("what is in the document?").content == first.content  # exact hit
    assert fake.counts["generate"] == 1
    model.invoke("another question")  # the cache is gone: recreated once, retried once
    assert fake.counts["create"] == 2 and fake.counts["generate"] == 3
    assert model.invoke("what is in the document?").content == first.content
    assert fake.counts["generate"] == 3
    llm_string = model._get_llm_string()
    assert model.context_key in llm_string and "cachedContents/" not in llm_string
    assert model.stats()["recreations"] == 1


def test_stream_and_async(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    model = bound_model(fake, client, registry_url, context_namespace)
    text = "".join(str(chunk.content) for chunk in model.stream("q"))
    assert text.startswith("answer from")
    fake.delete_all()

    async def run() -> list[str]:
        streamed = "".join([str(c.content) async for c in model.astream("q")])
        answers = await asyncio.gather(*(model.ainvoke(f"q{i}") for i in range(3)))
        return [streamed, *(str(a.content) for a in answers)]

    results = asyncio.run(run())
    assert all(r.startswith("answer from") for r in results)
    assert fake.counts["create"] == 2
    assert_all_cached(fake)
    assert model.stats()["cached_tokens"] > 0


def test_release_and_sweep(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    model = bound_model(fake, client, registry_url, context_namespace)
    model.invoke("q")
    assert model.sweep().live == 1
    assert model.release() is True
    assert fake.live_caches() == []
    assert model.sweep().records == 0


def test_response_cache_via_global_cache(
    fake: FakeGemini, client: Any, context_namespace: str, tmp_path: Any
) -> None:
    from langchain_core.globals import set_llm_cache

    model = bound_model(fake, client, f"sqlite:///{tmp_path / 'r.db'}", context_namespace)
    set_llm_cache(InMemoryCache())
    try:
        model.invoke("same")
        model.invoke("same")
    finally:
        set_llm_cache(None)
    assert fake.counts["generate"] == 1


def test_bind_refuses_other_models(client: Any) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    cache = GeminiContextCache(None, client=client)
    with pytest.raises(TypeError, match="ChatGoogleGenerativeAI"):
        cache.bind(FakeListChatModel(responses=["x"]), system="s")
