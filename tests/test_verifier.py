"""The optional verifier: callables and duck-typed LangChain / LlamaIndex models as judges,
fail-closed on errors, timeouts and unparseable replies, a verdict cache, and its stats."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from semcache_core.verifier import JUDGE_PROMPT, Verifier, make_verifier, parse_yes_no


class FakeChatModel:
    """LangChain-shaped: invoke/ainvoke(str) -> message with .content."""

    def __init__(self, reply: str = "Yes.") -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def invoke(self, prompt: str) -> SimpleNamespace:
        self.prompts.append(prompt)
        return SimpleNamespace(content=self.reply)

    async def ainvoke(self, prompt: str) -> SimpleNamespace:
        self.prompts.append(prompt)
        return SimpleNamespace(content=self.reply)


class FakeLLM:
    """LlamaIndex-shaped: complete/acomplete(str) -> response with .text."""

    def __init__(self, reply: str = "no") -> None:
        self.reply = reply
        self.calls = 0

    def complete(self, prompt: str) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(text=self.reply)

    async def acomplete(self, prompt: str) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(text=self.reply)


class SlowModel:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def invoke(self, prompt: str) -> SimpleNamespace:
        time.sleep(self.seconds)
        return SimpleNamespace(content="yes")

    async def ainvoke(self, prompt: str) -> SimpleNamespace:
        await asyncio.sleep(self.seconds)
        return SimpleNamespace(content="yes")


class BrokenModel:
    def invoke(self, prompt: str) -> SimpleNamespace:
        raise RuntimeError("provider down")

    async def ainvoke(self, prompt: str) -> SimpleNamespace:
        raise RuntimeError("provider down")


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("yes", True),
        ("Yes.", True),
        ("  YES, they are the same", True),
        ("No", False),
        ("no - different", False),
        ("**No**", False),
        ("maybe", None),
        ("", None),
        ("I think yes", None),
        ("yesterday", None),
    ],
)
def test_parse_yes_no(reply: str, verdict: bool | None) -> None:
    assert parse_yes_no(reply) is verdict


def test_callable_judge_and_its_stats() -> None:
    seen: list[tuple[str, str]] = []

    def same(new: str, cached: str) -> bool:
        seen.append((new, cached))
        return new.lower() == cached.lower()

    verifier = make_verifier(same)
    assert isinstance(verifier, Verifier)
    assert verifier.verify("Hello", "hello") is True
    assert verifier.verify("a", "b") is False
    stats = verifier.stats.as_dict()
    assert stats["verifier_calls"] == 2
    assert stats["verifier_accepted"] == 1
    assert stats["verifier_rejections"] == 1
    assert stats["verifier_failures"] == 0
    assert seen == [("Hello", "hello"), ("a", "b")]


def test_langchain_chat_model_as_judge() -> None:
    model = FakeChatModel("Yes, same answer.")
    verifier = make_verifier(model)
    assert verifier.verify("How do I reset my router?", "Router reset steps?") is True
    prompt = model.prompts[0]
    assert "How do I reset my router?" in prompt and "Router reset steps?" in prompt
    assert "yes or no" in prompt
    assert prompt == JUDGE_PROMPT.format(
        new="How do I reset my router?", cached="Router reset steps?"
    )


def test_llamaindex_llm_as_judge() -> None:
    llm = FakeLLM("No.")
    verifier = make_verifier(llm)
    assert verifier.verify("Can I borrow money?", "Can I lend money?") is False
    assert llm.calls == 1


async def test_async_paths() -> None:
    assert await make_verifier(FakeChatModel("yes")).averify("a", "b") is True
    assert await make_verifier(FakeLLM("no")).averify("a", "b") is False

    async def judge(new: str, cached: str) -> bool:
        return new == cached

    verifier = make_verifier(judge)
    assert await verifier.averify("x", "x") is True
    assert verifier.verify("x", "y") is False  # the sync path runs the coroutine too

    def sync_judge(new: str, cached: str) -> bool:
        return True

    assert await make_verifier(sync_judge).averify("x", "y") is True  # in a worker thread


def test_fails_closed_on_error_and_unparseable_reply() -> None:
    broken = make_verifier(BrokenModel())
    assert broken.verify("a", "b") is False
    assert broken.stats.failures == 1 and broken.stats.rejections == 1
    vague = make_verifier(FakeChatModel("It depends on the context."))
    assert vague.verify("a", "b") is False
    assert vague.stats.failures == 1

    def not_a_bool(new: str, cached: str) -> object:
        return 1

    assert make_verifier(not_a_bool).verify("a", "b") is False


async def test_fails_closed_on_error_async() -> None:
    broken = make_verifier(BrokenModel())
    assert await broken.averify("a", "b") is False
    assert broken.stats.failures == 1


def test_times_out_closed() -> None:
    verifier = make_verifier(SlowModel(1.0), timeout=0.05)
    started = time.perf_counter()
    assert verifier.verify("a", "b") is False
    assert time.perf_counter() - started < 0.8
    assert verifier.stats.timeouts == 1 and verifier.stats.failures == 1
    verifier.close()


async def test_times_out_closed_async() -> None:
    verifier = make_verifier(SlowModel(1.0), timeout=0.05)
    assert await verifier.averify("a", "b") is False
    assert verifier.stats.timeouts == 1


def test_verdicts_are_cached_in_a_bounded_lru() -> None:
    llm = FakeLLM("yes")
    verifier = make_verifier(llm, cache_size=2)
    assert verifier.verify("a", "b") is True
    assert verifier.verify("a", "b") is True
    assert llm.calls == 1 and verifier.stats.cache_hits == 1
    verifier.verify("c", "d")
    verifier.verify("e", "f")  # evicts ("a", "b"), the least recently used
    verifier.verify("a", "b")
    assert llm.calls == 4
    # order matters: (new, cached) is not (cached, new)
    verifier.verify("b", "a")
    assert llm.calls == 5


def test_failures_are_not_cached() -> None:
    calls = 0

    def flaky(new: str, cached: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("blip")
        return True

    verifier = make_verifier(flaky)
    assert verifier.verify("a", "b") is False
    assert verifier.verify("a", "b") is True
    assert calls == 2


def test_thread_safe_counting() -> None:
    verifier = make_verifier(lambda new, cached: True, timeout=None)
    threads = [
        threading.Thread(target=lambda i=i: [verifier.verify(str(i), str(j)) for j in range(50)])
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verifier.stats.calls == 200


def test_rejects_what_is_not_a_judge() -> None:
    with pytest.raises(TypeError, match="verifier must be"):
        make_verifier(42)
    existing = make_verifier(lambda a, b: True)
    assert make_verifier(existing) is existing
