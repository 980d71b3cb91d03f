"""Padding normalization and the verifier, through the cache: padded repeats are exact hits, the
verifier is the last candidate stage (a Verify step, so sync and async share one flow), fails
closed and is counted in the stats."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.outputs import Generation
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from langchain_semcache import ExactCache, SemanticCache
from llamaindex_semcache import CachedLLM
from semcache_core import Backend, Prompt, ResponseCache, SemcacheInputError, keys, persisted_stats
from semcache_core.codecs import decode_entry
from semcache_core.flow import run
from semcache_core.stages import Candidate, Query, Verify, decide, pipeline
from semcache_core.testing import FedTransport, HashingEmbedder
from semcache_core.verifier import VerifierVerdict, make_verifier
from tests.fakes import CountingChatModel, WordHashEmbeddings
from tests.llama_fakes import CountingLLM, WordHashEmbedding

SCOPE = "fake-llm"
STORED = "What is the capital of France?"
PARAPHRASE = "what's the capital city of france"  # distance 0 with the hashing embedder
ANSWER = {"text": "Paris"}


def semantic(backend: Backend | None = None, **options: Any) -> ResponseCache:
    options.setdefault("embedder", HashingEmbedder())
    return ResponseCache(backend, **options)


# -- padding ------------------------------------------------------------------------------------
async def test_padded_repeat_is_an_exact_hit_without_embedding(
    backend: Backend, namespace: str
) -> None:
    embedder = HashingEmbedder()
    cache = semantic(backend, namespace=namespace, embedder=embedder)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    calls = embedder.calls
    for padded in (
        "hi! What is the capital of France? thanks",
        "hey there, quick q: What is the capital of France?? thanks so much!! 🙏",
    ):
        result = cache.lookup(SCOPE, Prompt.plain(padded))
        assert (result.outcome, result.body and result.body["value"]) == ("exact", ANSWER)
        assert (await cache.alookup(SCOPE, Prompt.plain(padded))).outcome == "exact"
    assert embedder.calls == calls  # the exact fast path: no embedding
    assert cache.stats_snapshot()["exact_hits"] == 4


async def test_padded_store_keeps_the_query_as_asked(backend: Backend, namespace: str) -> None:
    embedder = HashingEmbedder()
    cache = semantic(backend, namespace=namespace, embedder=embedder)
    padded = "Hello! How do I reset my router?? Thanks a lot!"
    assert cache.lookup(SCOPE, Prompt.plain(padded)).outcome == "miss"
    await cache.aupdate(SCOPE, Prompt.plain(padded), ANSWER)
    assert embedder.calls == 1  # the update reused the vector of the padded miss
    plain = cache.lookup(SCOPE, Prompt.plain("How do I reset my router?"))
    assert plain.outcome == "exact" and plain.body is not None
    assert plain.body["query"] == padded  # for auditing and for the guard
    # The entry id is the one of the query without padding.
    partition = cache.partition(SCOPE, Prompt.plain(padded))
    entry = keys.semantic_entry_id(namespace, partition, "How do I reset my router?")
    raw = backend.get_many(namespace, [keys.vector_key(entry)])
    assert decode_entry(raw[0], "response") == plain.body


def test_padded_repeat_through_langchain_chat(backend: Backend, namespace: str) -> None:
    embeddings = WordHashEmbeddings()
    set_llm_cache(SemanticCache(backend, embeddings=embeddings, namespace=namespace))
    try:
        model = CountingChatModel()
        first = model.invoke(STORED)
        again = model.invoke("Hi there! " + STORED + " Many thanks!!")
        assert model.calls == 1 and again.content == first.content
        assert embeddings.calls == 1  # the padded repeat was an exact hit: no embedding
    finally:
        set_llm_cache(None)


def test_padding_never_merges_different_questions() -> None:
    cache = semantic()
    cache.update(SCOPE, Prompt.plain("How do I say thank you in Japanese?"), ANSWER)
    # "thank you" is what is asked here, not padding: not the entry of "How do I say in Japanese?"
    assert cache.lookup(SCOPE, Prompt.plain("How do I say in Japanese?")).outcome != "exact"
    # A prompt that is nothing but padding is its own query.
    cache.update(SCOPE, Prompt.plain("thanks!"), {"text": "you're welcome"})
    assert cache.lookup(SCOPE, Prompt.plain("thanks!")).outcome == "exact"


def test_exact_cache_keeps_the_exact_text_key() -> None:
    cache = ExactCache()
    cache.update(STORED, "llm", [Generation(text="Paris")])
    assert cache.lookup("hi! " + STORED + " thanks", "llm") is None
    assert cache.lookup(STORED, "llm") == [Generation(text="Paris")]


def test_a_conversation_without_a_user_turn_is_not_stripped() -> None:
    from semcache_core.stages import compared_query

    own = Prompt(text="hi! [system only]", query="hi! [system only]", context="hi! [system only]")
    assert compared_query(own) == own.query
    assert compared_query(Prompt.plain("hi! what is 2+2?")) == "what is 2+2?"


# -- the verifier in the engine -----------------------------------------------------------------
class FakeChatModel:
    """LangChain-shaped judge: invoke/ainvoke(str) -> a message with .content."""

    def __init__(self, reply: str = "Yes.", *, delay: float = 0.0, error: bool = False) -> None:
        self.reply, self.delay, self.error = reply, delay, error
        self.calls = 0

    def _answer(self) -> SimpleNamespace:
        self.calls += 1
        if self.error:
            raise ConnectionError("judge provider down")
        return SimpleNamespace(content=self.reply)

    def invoke(self, prompt: str) -> SimpleNamespace:
        time.sleep(self.delay)
        return self._answer()

    async def ainvoke(self, prompt: str) -> SimpleNamespace:
        await asyncio.sleep(self.delay)
        return self._answer()


class FakeLlamaLLM:
    """LlamaIndex-shaped judge: complete/acomplete(str) -> a response with .text."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def complete(self, prompt: str) -> SimpleNamespace:
        self.prompts.append(prompt)
        return SimpleNamespace(text=self.reply)

    async def acomplete(self, prompt: str) -> SimpleNamespace:
        return self.complete(prompt)


def verifier_stats(cache: ResponseCache) -> tuple[int, int, int, int]:
    stats = cache.stats_snapshot()
    return (
        stats["verifier_calls"],
        stats["verifier_cache_hits"],
        stats["verifier_rejections"],
        stats["verifier_failures"],
    )


async def test_verifier_accepts_then_serves_from_its_verdict_cache(
    backend: Backend, namespace: str
) -> None:
    seen: list[tuple[str, str]] = []

    def same(new: str, cached: str) -> bool:
        seen.append((new, cached))
        return True

    cache = semantic(backend, namespace=namespace, verifier=same)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    hit = cache.lookup(SCOPE, Prompt.plain("hey! " + PARAPHRASE))
    assert hit.outcome == "semantic" and hit.body is not None and hit.body["value"] == ANSWER
    assert seen == [(PARAPHRASE, STORED)]  # the judge sees both queries without padding
    assert (await cache.alookup(SCOPE, Prompt.plain(PARAPHRASE))).outcome == "semantic"
    assert verifier_stats(cache) == (1, 1, 0, 0)
    stats = cache.stats_snapshot()
    assert stats["semantic_hits"] == 2 and stats["verifier_latency_ms"]["mean"] >= 0
    assert cache.lookup(SCOPE, Prompt.plain(STORED)).outcome == "exact"
    assert len(seen) == 1  # an exact hit asks no judge


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("judge", "failed"),
    [
        (lambda: lambda new, cached: False, False),
        (lambda: FakeChatModel("No, different."), False),
        (lambda: FakeLlamaLLM("no"), False),
        (lambda: FakeChatModel(error=True), True),
        (lambda: FakeChatModel("It depends on the context."), True),  # garbage: neither yes nor no
        (lambda: FakeLlamaLLM("maybe?"), True),
        (lambda: lambda new, cached: 42, True),
    ],
    ids=["callable-no", "chat-no", "llama-no", "error", "garbage", "llama-garbage", "not-bool"],
)
async def test_verifier_fails_closed(judge: Any, failed: bool, asynchronous: bool) -> None:
    cache = semantic(verifier=judge())
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    prompt = Prompt.plain(PARAPHRASE)
    result = await cache.alookup(SCOPE, prompt) if asynchronous else cache.lookup(SCOPE, prompt)
    assert (result.outcome, result.body) == ("miss", None)
    assert verifier_stats(cache) == (1, 0, 1, int(failed))
    assert cache.stats_snapshot()["misses"] == 1


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_verifier_timeout_is_a_miss(asynchronous: bool) -> None:
    slow = FakeChatModel("yes", delay=1.0)
    cache = semantic(verifier=make_verifier(slow, timeout=0.05))
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    started = time.perf_counter()
    prompt = Prompt.plain(PARAPHRASE)
    result = await cache.alookup(SCOPE, prompt) if asynchronous else cache.lookup(SCOPE, prompt)
    assert result.outcome == "miss" and time.perf_counter() - started < 0.8
    assert verifier_stats(cache) == (1, 0, 1, 1)
    assert cache.verifier is not None and cache.verifier.stats.timeouts == 1
    cache.verifier.close()


def test_failures_are_not_cached_a_later_yes_serves() -> None:
    replies = iter([RuntimeError("blip"), True])

    def flaky(new: str, cached: str) -> bool:
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    cache = semantic(verifier=flaky)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    assert cache.lookup(SCOPE, Prompt.plain(PARAPHRASE)).outcome == "miss"
    assert cache.lookup(SCOPE, Prompt.plain(PARAPHRASE)).outcome == "semantic"
    assert verifier_stats(cache) == (2, 0, 1, 1)


def test_verifier_is_asked_only_after_threshold_and_guard() -> None:
    asked: list[tuple[str, str]] = []

    def judge(new: str, cached: str) -> bool:
        asked.append((new, cached))
        return True

    cache = semantic(verifier=judge, distance_threshold=0.5)
    cache.update(SCOPE, Prompt.plain("Can I lend money to a friend?"), ANSWER)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    # 0.33 away, within 0.5: the guard rejects borrow/lend before any judge call
    assert cache.lookup(SCOPE, Prompt.plain("Can I borrow money from a friend?")).outcome == "miss"
    # Far from everything: outside the threshold
    assert cache.lookup(SCOPE, Prompt.plain("Which port does ssh use?")).outcome == "miss"
    assert asked == []
    assert cache.stats_snapshot()["guard_rejections"] == 1
    assert verifier_stats(cache) == (0, 0, 0, 0)


def test_async_callable_judge_on_the_sync_path() -> None:
    async def judge(new: str, cached: str) -> bool:
        await asyncio.sleep(0)
        return True

    cache = semantic(verifier=judge)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    assert cache.lookup(SCOPE, Prompt.plain(PARAPHRASE)).outcome == "semantic"


def test_verifier_needs_an_embedder_and_a_judge() -> None:
    with pytest.raises(SemcacheInputError, match="needs an embedder"):
        ResponseCache(verifier=lambda new, cached: True)
    with pytest.raises(TypeError, match="verifier must be"):
        semantic(verifier=42)
    existing = make_verifier(lambda new, cached: True)
    assert semantic(verifier=existing).verifier is existing
    assert [s.name for s in semantic(verifier=existing).stages] == [
        "threshold",
        "guard",
        "verifier",
    ]
    assert [s.name for s in semantic(trap_guard=False).stages] == ["threshold"]


def test_verifier_counters_are_flushed(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    cache = semantic(url, namespace="app", verifier=lambda new, cached: False)
    cache.update(SCOPE, Prompt.plain(STORED), ANSWER)
    cache.lookup(SCOPE, Prompt.plain(PARAPHRASE))
    cache.flush_stats()
    stats = persisted_stats(url, "app")
    assert (stats["verifier_calls"], stats["verifier_rejections"]) == (1, 1)
    assert stats["verifier_latency_ms"]["mean"] >= 0


def test_verify_is_a_step_the_transport_performs() -> None:
    """The verifier stage is sans-I/O: it yields a Verify step and reads the fed verdict."""
    query = Query(Prompt.plain("hi! " + PARAPHRASE), PARAPHRASE, 0.2)
    candidate = Candidate("id", 0.05, STORED, {"query": STORED})
    stages = pipeline(guard=None, verifier=True)
    fed = FedTransport(VerifierVerdict(False, "rejected", seconds=0.01))
    decision = run(decide(query, candidate, stages), fed)
    assert fed.steps == [Verify(PARAPHRASE, STORED)]
    assert decision.rejection is not None and decision.rejection.stage == "verifier"
    assert decision.rejection.counts == {
        "verifier_calls": 1,
        "verifier_seconds": 0.01,
        "verifier_rejections": 1,
    }
    # A step that raises fails closed too.
    failed = run(decide(query, candidate, stages), FedTransport(RuntimeError("gone")))
    assert not failed.ok and failed.verdicts[-1].counts["verifier_failures"] == 1
    # Outside the threshold: no step at all.
    far = Candidate("id", 0.5, STORED, {"query": STORED})
    assert not run(decide(query, far, stages), FedTransport()).ok


# -- the adapters -------------------------------------------------------------------------------
async def test_langchain_semantic_cache_with_a_chat_model_judge(
    backend: Backend, namespace: str
) -> None:
    judge = FakeChatModel("no")
    cache = SemanticCache(
        backend, embeddings=WordHashEmbeddings(), namespace=namespace, verifier=judge
    )
    set_llm_cache(cache)
    try:
        model = CountingChatModel()
        model.invoke(STORED)
        await model.ainvoke(PARAPHRASE)
        assert model.calls == 2 and judge.calls == 1  # the judge said no: a miss
        assert cache.stats()["verifier_rejections"] == 1
    finally:
        set_llm_cache(None)


def test_cached_llm_with_a_judge() -> None:
    judge = FakeLlamaLLM("Yes, the same.")
    llm = CachedLLM(CountingLLM(), embeddings=WordHashEmbedding(), verifier=judge)
    first = llm.complete(STORED)
    second = llm.complete(PARAPHRASE)
    assert second.text == first.text and len(judge.prompts) == 1
    assert PARAPHRASE in judge.prompts[0] and STORED in judge.prompts[0]
    chat = [ChatMessage(role=MessageRole.USER, content=STORED)]
    llm.chat(chat)
    llm.chat([ChatMessage(role=MessageRole.USER, content=PARAPHRASE)])
    assert llm.stats()["verifier_calls"] == 1 and llm.stats()["verifier_cache_hits"] == 1
    with pytest.raises(SemcacheInputError, match="needs an embedder"):
        CachedLLM(CountingLLM(), verifier=judge)
