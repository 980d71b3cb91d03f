"""Explain: why a prompt hits or misses, candidate by candidate, without writing or counting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.outputs import Generation
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from langchain_semcache import ExactCache, SemanticCache
from llamaindex_semcache import CachedLLM
from semcache_core import Backend, Prompt, ResponseCache, SemcacheInputError
from semcache_core.cli import main
from semcache_core.engine import SEMANTIC_CANDIDATES
from semcache_core.explain import CandidateReport, Explanation
from semcache_core.testing import HashingEmbedder
from tests.fakes import WordHashEmbeddings
from tests.llama_fakes import CountingLLM, WordHashEmbedding

SCOPE = "fake-llm"
ANSWER = {"text": "an answer"}
STORED = [
    "What is the capital of France?",
    "Can I lend money to a friend?",
    "How do I reset my router?",
]


def filled(backend: Backend | str | None = None, **options: Any) -> ResponseCache:
    options.setdefault("embedder", HashingEmbedder())
    options.setdefault("distance_threshold", 0.2)
    cache = ResponseCache(backend, **options)
    for query in STORED:
        cache.update(SCOPE, Prompt.plain(query), ANSWER)
    return cache


def by_query(explanation: Explanation) -> dict[str, CandidateReport]:
    return {c.stored_query: c for c in explanation.candidates}


async def test_explain_reports_candidates_stages_and_the_outcome(
    backend: Backend, namespace: str
) -> None:
    cache = filled(backend, namespace=namespace)
    stats_before = cache.stats_snapshot()

    hit = cache.explain(SCOPE, Prompt.plain("hi! what's the capital city of france? thanks"))
    assert (hit.outcome, hit.mode, hit.threshold) == ("semantic", "semantic", 0.2)
    assert hit.query == "what's the capital city of france?"  # as compared: padding removed
    assert hit.asked.startswith("hi!")
    assert hit.stages == ("threshold", "guard")
    assert len(hit.candidates) == len(STORED)  # searched within any distance
    assert [c.distance for c in hit.candidates] == sorted(c.distance for c in hit.candidates)
    served = hit.candidates[0]
    assert served.decision == "served" and served.within_threshold
    assert served.stored_query == STORED[0] and hit.served == served.entry_id
    assert served.guard is not None and all(v.ok for v in served.guard.values())
    for other in hit.candidates[1:]:
        assert other.decision == "not reached" and not other.within_threshold

    trap = await cache.aexplain(SCOPE, Prompt.plain("Can I borrow money from a friend?"))
    assert trap.outcome == "miss" and trap.served is None
    lend = by_query(trap)["Can I lend money to a friend?"]
    # 0.33 away: the threshold rejects it first; the guard's checks still show what differs
    assert (lend.decision, lend.rejected_by) == ("rejected", "threshold")
    assert lend.guard is not None and not lend.guard["antonym"].ok
    assert "borrow" in lend.guard["antonym"].detail
    assert lend.guard["negation"].ok

    # Nothing was written or counted: a lookup still sees the same cache.
    assert cache.stats_snapshot() == stats_before
    assert cache.lookup(SCOPE, Prompt.plain("Can I borrow money from a friend?")).outcome == "miss"
    assert cache.lookup(SCOPE, Prompt.plain("what's the capital city of france")).outcome == (
        "semantic"
    )


def test_guard_rejection_names_the_stage_and_every_failing_check() -> None:
    cache = filled(distance_threshold=0.5)
    explanation = cache.explain(SCOPE, Prompt.plain("Can I borrow money from a friend?"))
    lend = by_query(explanation)["Can I lend money to a friend?"]
    assert lend.within_threshold
    assert (lend.decision, lend.rejected_by) == ("rejected", "guard")
    assert lend.detail.startswith("antonym:")
    assert lend.guard is not None and [n for n, v in lend.guard.items() if not v.ok] == ["antonym"]
    assert explanation.outcome == "miss"
    assert cache.stats_snapshot()["guard_rejections"] == 0  # explain counts nothing
    text = str(explanation)
    assert "outcome: miss" in text and "guard check antonym" in text
    assert "Can I lend money to a friend?" in text


def test_exact_fast_path_and_padding_in_explain() -> None:
    cache = filled()
    explanation = cache.explain(SCOPE, Prompt.plain("Hey! How do I reset my router?? Thanks!"))
    assert explanation.outcome == "exact" and explanation.distance == 0.0
    assert explanation.query == "How do I reset my router?"
    served = [c for c in explanation.candidates if c.decision == "served"]
    assert [c.stored_query for c in served] == ["How do I reset my router?"]
    assert served[0].entry_id == explanation.served == explanation.key
    assert "exact hit" in str(explanation)


def test_verifier_verdict_is_shown_and_asked_only_when_reached() -> None:
    asked: list[tuple[str, str]] = []

    def judge(new: str, cached: str) -> bool:
        asked.append((new, cached))
        return False

    cache = filled(verifier=judge, distance_threshold=0.5)
    explanation = cache.explain(SCOPE, Prompt.plain("what's the capital city of france"))
    france = by_query(explanation)[STORED[0]]
    assert (france.decision, france.rejected_by) == ("rejected", "verifier")
    assert france.verifier is not None and france.verifier.outcome == "rejected"
    assert asked == [("what's the capital city of france", STORED[0])]
    # The guard rejects borrow/lend first: the verifier is not called for it.
    trap = cache.explain(SCOPE, Prompt.plain("Can I borrow money from a friend?"))
    lend = by_query(trap)["Can I lend money to a friend?"]
    assert lend.rejected_by == "guard" and lend.verifier is None
    assert len(asked) == 1
    assert "verifier: rejected" in str(explanation)
    assert cache.stats_snapshot()["verifier_calls"] == 0  # the cache's stats are untouched


def test_explain_agrees_with_lookup() -> None:
    cache = filled(distance_threshold=0.4)
    prompts = [
        "What is the capital of France?",
        "hello! what's the capital city of france",
        "Can I borrow money from a friend?",
        "Can I lend cash to a friend?",
        "how do I reset my modem?",
        "Which port does ssh use?",
    ]
    for text in prompts:
        explanation = cache.explain(SCOPE, Prompt.plain(text))
        result = cache.lookup(SCOPE, Prompt.plain(text))
        assert explanation.outcome == result.outcome, text
        if result.outcome == "semantic":
            assert explanation.distance == pytest.approx(result.distance)


def test_candidates_past_those_a_lookup_considers_are_not_reached() -> None:
    cache = ResponseCache(embedder=HashingEmbedder(), distance_threshold=1.5, trap_guard=False)
    cache.update(SCOPE, Prompt.plain("alpha beta"), ANSWER)
    explanation = cache.explain(SCOPE, Prompt.plain("alpha gamma"), k=1)
    assert len(explanation.candidates) == 1 and explanation.outcome == "semantic"
    words = [f"w{i} x{i}" for i in range(SEMANTIC_CANDIDATES + 2)]
    for text in words:
        cache.update(SCOPE, Prompt.plain(text), ANSWER)
    # Without guard and with a huge threshold the nearest is served, the rest are not reached.
    many = cache.explain(SCOPE, Prompt.plain("alpha gamma"), k=10)
    assert [c.decision for c in many.candidates].count("served") == 1
    assert many.candidates[0].decision == "served"
    assert {c.decision for c in many.candidates[1:]} == {"not reached"}
    with pytest.raises(SemcacheInputError, match="k must be"):
        cache.explain(SCOPE, Prompt.plain("x"), k=0)


def test_threshold_override_and_as_dict() -> None:
    cache = filled()
    wide = cache.explain(SCOPE, Prompt.plain("Can I lend cash to a friend?"), threshold=0.5)
    assert wide.threshold == 0.5 and cache.distance_threshold == 0.2
    data = json.loads(json.dumps(wide.as_dict()))
    assert data["outcome"] == wide.outcome and len(data["candidates"]) == len(wide.candidates)
    assert data["candidates"][0]["guard"]["lexical"]["ok"] is False  # cash / money


def test_exact_cache_explain(backend: Backend, namespace: str) -> None:
    cache = ExactCache(backend, namespace=namespace)
    cache.update("What is 2+2?", "llm", [Generation(text="4")])
    hit = cache.explain("What is 2+2?", "llm")
    assert (hit.outcome, hit.mode, hit.served) == ("exact", "exact", hit.key)
    assert hit.key.startswith("llm:")
    miss = cache.explain("hi! What is 2+2?", "llm")  # an exact cache keeps the exact text
    assert (miss.outcome, miss.served, miss.candidates) == ("miss", None, ())
    assert "outcome: miss" in str(miss) and miss.key in str(miss)
    assert cache.stats()["lookups"] == 0


async def test_langchain_semantic_cache_explain(backend: Backend, namespace: str) -> None:
    cache = SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace)
    cache.update(STORED[0], "llm", [Generation(text="Paris")])
    explanation = cache.explain("what's the capital city of france", "llm")
    assert explanation.outcome == "semantic"
    assert explanation.candidates[0].stored_query == STORED[0]
    other_model = await cache.aexplain("what's the capital city of france", "another-llm")
    assert (other_model.outcome, other_model.candidates) == ("miss", ())
    assert "no stored query in this partition" in str(other_model)
    assert cache.stats()["lookups"] == 0


def test_cached_llm_explain_for_complete_and_chat() -> None:
    llm = CachedLLM(CountingLLM(), embeddings=WordHashEmbedding())
    llm.complete(STORED[0])
    assert llm.explain("what's the capital city of france").outcome == "semantic"
    assert llm.explain(STORED[0]).outcome == "exact"
    chat = [ChatMessage(role=MessageRole.USER, content=STORED[0])]
    assert llm.explain(chat).outcome == "miss"  # chat and complete are different scopes
    llm.chat(chat)
    follow = [ChatMessage(role=MessageRole.USER, content="whats the capital city of france")]
    explanation = llm.explain(follow)
    assert explanation.outcome == "semantic" and explanation.candidates[0].decision == "served"
    assert llm.stats()["lookups"] == 2  # the two real calls only
    exact_only = CachedLLM(CountingLLM())
    exact_only.complete("hello")
    assert exact_only.explain("hello").outcome == "exact"


# -- the command line ---------------------------------------------------------------------------
def test_cli_explain_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    cache = filled(url, namespace="app")
    cache.backend.close()
    args = ["explain", url, "--namespace", "app", "--llm-string", SCOPE, "--embedder", "hash"]
    assert main([*args, "--threshold", "0.5", "Can I borrow money from a friend?"]) == 0
    out = capsys.readouterr().out
    assert "outcome: miss" in out and "threshold 0.500" in out
    assert "Can I lend money to a friend?" in out and "guard check antonym" in out
    assert "distance" in out and "decision" in out

    assert main([*args, "--json", "hey! what's the capital city of france"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "semantic" and data["query"] == "what's the capital city of france"

    # The partition includes the embedder's name: another name finds nothing.
    assert main([*args, "--embedder-name", "other", "--json", STORED[0]]) == 0
    assert json.loads(capsys.readouterr().out)["candidates"] == []


def test_cli_explain_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    ExactCache(url, namespace="app").update("What is 2+2?", "llm", [Generation(text="4")])
    assert main(["explain", url, "--namespace", "app", "--llm-string", "llm", "What is 2+2?"]) == 0
    out = capsys.readouterr().out
    assert "exact lookup" in out and "outcome: exact hit" in out
