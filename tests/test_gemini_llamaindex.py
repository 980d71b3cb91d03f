"""LlamaIndex: ``GeminiContextCachedLLM(GoogleGenAI(...))`` against the fake API."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from google.genai import types
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool
from llama_index.llms.google_genai import GoogleGenAI

from llamaindex_semcache.gemini import GeminiContextCachedLLM
from tests.fake_gemini import DOCUMENT, MODEL, FakeGemini

pytest_plugins = ["tests.gemini_fixtures"]

SYSTEM = "You answer questions about the document."


def lookup(term: str) -> str:
    """Look a term up in the glossary."""
    return term


def wrapped(fake: FakeGemini, url: str, namespace: str, **options: Any) -> GeminiContextCachedLLM:
    llm = GoogleGenAI(
        model=MODEL,
        api_key="fake-key",
        max_retries=0,
        http_options=types.HttpOptions(
            base_url=fake.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    return GeminiContextCachedLLM(
        llm,
        url,
        system_prompt=SYSTEM,
        documents=[DOCUMENT],
        tools=[FunctionTool.from_defaults(fn=lookup)],
        namespace=namespace,
        **options,
    )


def assert_all_cached(fake: FakeGemini) -> None:
    bodies = fake.generate_bodies()
    assert bodies
    for body in bodies:
        assert body.get("cachedContent")
        assert not {"systemInstruction", "tools", "toolConfig"} & set(body)


def test_every_entry_point_uses_one_cache(
    fake: FakeGemini, registry_url: str, context_namespace: str
) -> None:
    fake.create_latency = 0.3
    llm = wrapped(fake, registry_url, context_namespace)
    barrier = threading.Barrier(4, timeout=60)
    answers: list[str] = []

    def worker() -> None:
        barrier.wait()
        answers.append(llm.complete("what is in it?").text)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content="hello")])
    streamed = "".join(c.delta or "" for c in llm.stream_complete("q"))
    streamed_chat = "".join(
        c.delta or "" for c in llm.stream_chat([ChatMessage(role=MessageRole.USER, content="q")])
    )

    async def run() -> list[str]:
        a = await llm.acomplete("q")
        b = await llm.achat([ChatMessage(role=MessageRole.USER, content="q")])
        s = "".join([c.delta or "" async for c in await llm.astream_complete("q")])
        return [a.text, str(b.message.content), s]

    more = asyncio.run(run())
    for text in [*answers, str(chat.message.content), streamed, streamed_chat, *more]:
        assert text.startswith("answer from")
    assert fake.counts["create"] == 1
    assert_all_cached(fake)
    created = next(body for kind, body in fake.requests if kind == "create")
    assert created["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
    stats = llm.stats()
    assert stats["creates"] == 1 and stats["cached_tokens"] > 0


def test_settings_llm_and_recreate(
    fake: FakeGemini, registry_url: str, context_namespace: str
) -> None:
    llm = wrapped(fake, registry_url, context_namespace)
    previous = Settings._llm
    Settings.llm = llm
    try:
        assert Settings.llm.complete("q").text.startswith("answer from")
        fake.delete_all()
        assert Settings.llm.complete("q").text.startswith("answer from")
    finally:
        Settings._llm = previous
    assert fake.counts["create"] == 2 and fake.counts["generate"] == 3
    assert llm.stats()["recreations"] == 1
    assert llm.release() is True and fake.live_caches() == []


def test_inline_when_too_small(fake: FakeGemini, registry_url: str, context_namespace: str) -> None:
    fake.min_tokens_default = 10_000
    llm = wrapped(fake, registry_url, context_namespace)
    llm.complete("first")
    llm.chat(
        [
            ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM),
            ChatMessage(role=MessageRole.USER, content="second"),
        ]
    )
    assert fake.counts["create"] == 1
    for body in fake.generate_bodies():
        assert "cachedContent" not in body
        assert body["systemInstruction"]["parts"][0]["text"] == SYSTEM
        assert body["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
        assert DOCUMENT in str(body["contents"])
