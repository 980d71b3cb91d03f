"""Multi-turn chats through the cache (``context_match``), on every backend kind.

A reworded conversation, or one with greetings and "ok thanks" turns added, is served; one
about another thing with the same last message, or with one earlier detail changed, is not;
``context_match="exact"`` keeps the rule from before (every earlier turn identical). The
conversations are written for these tests, not taken from the evaluation sets.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from semcache_core import Backend, ResponseCache
from semcache_core.conversation import prompt_from_messages
from semcache_core.conversation.stage import conversation_of, decode_vector, encode_vector
from semcache_core.prompt import Prompt
from semcache_core.testing import HashingEmbedder
from tests.fakes import CountingChatModel, WordHashEmbeddings

SYSTEM = "You are the assistant of an electronics store."


def chat(*lines: str, system: str = SYSTEM) -> Prompt:
    """``"u: ..."`` / ``"a: ..."`` lines as the core's prompt (OpenAI-style messages)."""
    messages = [{"role": "system", "content": system}]
    for line in lines:
        role, text = line.split(": ", 1)
        messages.append({"role": {"u": "user", "a": "assistant"}[role], "content": text})
    return prompt_from_messages(messages)


CACHED = chat(
    "u: I bought a laptop from you 10 days ago.",
    "a: Thanks for shopping with us!",
    "u: Can I still return it?",
)
SHOULD_HIT = {
    "acknowledgements": chat(
        "u: hi there",
        "a: Hello! How can I help?",
        "u: I bought a laptop from you 10 days ago.",
        "a: Thanks for shopping with us!",
        "u: ok thanks",
        "u: Can I still return it?",
    ),
    "reworded": chat(
        "u: 10 days ago I bought a laptop from you.",
        "a: Thank you for shopping with us!",
        "u: Can I still return it?",
    ),
}
TRAPS = {
    "other_referent": chat(
        "u: I bought opera tickets from you 10 days ago.",
        "a: Thanks for shopping with us!",
        "u: Can I still return it?",
    ),
    "changed_detail": chat(
        "u: I bought a laptop from you 40 days ago.",
        "a: Thanks for shopping with us!",
        "u: Can I still return it?",
    ),
    "different_request": chat(
        "u: I bought a laptop from you 10 days ago.",
        "a: Thanks for shopping with us!",
        "u: Does it have a warranty?",
    ),
    "other_system_prompt": chat(
        "u: I bought a laptop from you 10 days ago.",
        "a: Thanks for shopping with us!",
        "u: Can I still return it?",
        system="You are the assistant of a bookshop.",
    ),
}


def make_cache(backend: Backend, namespace: str, **options: Any) -> ResponseCache:
    return ResponseCache(backend, namespace=namespace, embedder=HashingEmbedder(), **options)


def test_semantic_context_serves_rewordings_not_traps(backend: Backend, namespace: str) -> None:
    cache = make_cache(backend, namespace)
    assert cache.context_match == "semantic"  # the default
    cache.update("model", CACHED, {"text": "Yes, within 30 days."})
    assert cache.lookup("model", CACHED).outcome == "exact"
    for name, prompt in SHOULD_HIT.items():
        result = cache.lookup("model", prompt)
        assert result.outcome == "semantic", name
        assert result.body is not None and result.body["value"] == {"text": "Yes, within 30 days."}
    for name, prompt in TRAPS.items():
        assert cache.lookup("model", prompt).outcome == "miss", name
    stats = cache.stats_snapshot()
    assert stats["context_rejections"] == 3  # the other system prompt is another partition
    assert (stats["exact_hits"], stats["semantic_hits"], stats["misses"]) == (1, 2, 4)


async def test_semantic_context_async(backend: Backend, namespace: str) -> None:
    cache = make_cache(backend, namespace)
    await cache.aupdate("model", CACHED, {"text": "yes"})
    assert (await cache.alookup("model", SHOULD_HIT["reworded"])).outcome == "semantic"
    assert (await cache.alookup("model", TRAPS["changed_detail"])).outcome == "miss"


def test_exact_context_keeps_the_rule_before(backend: Backend, namespace: str) -> None:
    cache = make_cache(backend, namespace, context_match="exact")
    cache.update("model", CACHED, {"text": "yes"})
    assert cache.lookup("model", CACHED).outcome == "exact"
    for name, prompt in {**SHOULD_HIT, **TRAPS}.items():
        assert cache.lookup("model", prompt).outcome == "miss", name
    # The same earlier turns: the last message is compared as a single prompt, as before.
    reworded_question = chat(
        "u: I bought a laptop from you 10 days ago.",
        "a: Thanks for shopping with us!",
        "u: Can I still return it, please?",
    )
    assert cache.lookup("model", reworded_question).outcome == "semantic"
    assert cache.stats_snapshot()["context_rejections"] == 0


def test_explain_says_which_earlier_fact_differed(backend: Backend, namespace: str) -> None:
    cache = make_cache(backend, namespace)
    cache.update("model", CACHED, {"text": "yes"})
    explanation = cache.explain("model", TRAPS["changed_detail"])
    assert explanation.outcome == "miss" and explanation.context_match == "semantic"
    assert explanation.stages == ("threshold", "context")
    (candidate,) = explanation.candidates
    assert candidate.rejected_by == "context"
    assert "'40'" in candidate.detail and "'10'" in candidate.detail
    assert "40" in str(explanation)
    served = cache.explain("model", SHOULD_HIT["reworded"])
    assert served.outcome == "semantic" and served.candidates[0].decision == "served"
    request = cache.explain("model", TRAPS["different_request"]).candidates[0]
    assert request.rejected_by == "context" and "question distance" in request.detail


def test_embedding_calls(backend: Backend, namespace: str) -> None:
    """A multi-turn miss and its write embed the search text and the question (two calls); a
    single-message chat one (the two texts are the same); an identical repeat none."""
    embedder = HashingEmbedder()
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder)
    assert cache.lookup("model", CACHED).outcome == "miss"
    cache.update("model", CACHED, {"text": "yes"})
    assert embedder.calls == 2
    assert cache.lookup("model", CACHED).outcome == "exact"
    assert embedder.calls == 2
    # Same question as the candidate's: only the search text is embedded.
    assert cache.lookup("model", SHOULD_HIT["reworded"]).outcome == "semantic"
    assert embedder.calls == 3
    single = chat("u: What is your opening time on Sunday?")
    before = embedder.calls
    assert cache.lookup("model", single).outcome == "miss"
    cache.update("model", single, {"text": "10am"})
    assert embedder.calls == before + 1


def test_untrusted_conversation_bodies_are_not_conversations() -> None:
    assert conversation_of({"conversation": {"history": [["user", 3]], "query": "q"}}, "") is None
    assert conversation_of({"conversation": "x"}, "") is None
    rebuilt = conversation_of({"conversation": {"history": [["user", "hi"]], "query": "q"}}, "c")
    assert rebuilt is not None and rebuilt.history[0].text == "hi"
    assert decode_vector("not base64!") is None and decode_vector(3) is None
    vector = decode_vector(encode_vector(HashingEmbedder().embed("hello")))  # type: ignore[arg-type]
    assert vector is not None and vector.shape == (64,)


def test_context_match_is_validated() -> None:
    from semcache_core.errors import SemcacheInputError

    with pytest.raises(SemcacheInputError, match="context_match"):
        ResponseCache(None, embedder=HashingEmbedder(), context_match="fuzzy")  # type: ignore[arg-type]


# -- the adapters ----------------------------------------------------------------------------------
def _messages(prompt: Prompt) -> list[BaseMessage]:
    """The same conversation as LangChain messages."""
    assert prompt.conversation is not None
    kinds = {"user": HumanMessage, "assistant": AIMessage}
    return [
        SystemMessage(SYSTEM),
        *(kinds[t.role](t.text) for t in prompt.conversation.history),
        HumanMessage(prompt.conversation.query),
    ]


@pytest.mark.parametrize("context_match", ["semantic", "exact"])
def test_langchain_chat(backend: Backend, namespace: str, context_match: str) -> None:
    from langchain_semcache import SemanticCache

    cache = SemanticCache(
        backend,
        embeddings=WordHashEmbeddings(),
        namespace=namespace,
        context_match=context_match,  # type: ignore[arg-type]
    )
    set_llm_cache(cache)
    try:
        model = CountingChatModel()
        first = model.invoke(_messages(CACHED))
        for prompt in SHOULD_HIT.values():
            again = model.invoke(_messages(prompt))
            if context_match == "semantic":
                assert again.content == first.content
        assert model.calls == (1 if context_match == "semantic" else 1 + len(SHOULD_HIT))
        calls = model.calls
        for name in ("other_referent", "changed_detail", "different_request"):
            model.invoke(_messages(TRAPS[name]))
        assert model.calls == calls + 3
        model.invoke(_messages(CACHED))
        assert model.calls == calls + 3  # identical: an exact hit in both settings
    finally:
        set_llm_cache(None)


@pytest.mark.parametrize("context_match", ["semantic", "exact"])
def test_llamaindex_chat(backend: Backend, namespace: str, context_match: str) -> None:
    from llama_index.core.base.llms.types import ChatMessage

    from llamaindex_semcache import CachedLLM
    from tests.llama_fakes import CountingLLM, WordHashEmbedding

    def messages(prompt: Prompt) -> list[ChatMessage]:
        return [ChatMessage(role=m.type.replace("human", "user").replace("ai", "assistant"),
                            content=m.content) for m in _messages(prompt)]  # fmt: skip

    inner = CountingLLM()
    llm = CachedLLM(
        inner,
        backend,
        namespace=namespace,
        embeddings=WordHashEmbedding(),
        context_match=context_match,  # type: ignore[arg-type]
    )
    first = llm.chat(messages(CACHED))
    for prompt in SHOULD_HIT.values():
        again = llm.chat(messages(prompt))
        if context_match == "semantic":
            assert again.message.content == first.message.content
    assert inner.calls == (1 if context_match == "semantic" else 1 + len(SHOULD_HIT))
    calls = inner.calls
    for name in ("other_referent", "changed_detail", "different_request"):
        llm.chat(messages(TRAPS[name]))
    assert inner.calls == calls + 3


def test_the_verifier_judges_the_questions_in_their_context(
    backend: Backend, namespace: str
) -> None:
    asked: list[tuple[str, str]] = []

    def judge(new: str, cached: str) -> bool:
        asked.append((new, cached))
        return "40 days" not in new

    cache = make_cache(backend, namespace, verifier=judge)
    assert cache.stages_for(cache.query(CACHED)) == cache.conversations.stages
    assert [s.name for s in cache.conversations.stages] == ["threshold", "context", "verifier"]
    cache.update("model", CACHED, {"text": "yes"})
    assert cache.lookup("model", SHOULD_HIT["reworded"]).outcome == "semantic"
    ((new, cached),) = asked
    assert new.startswith("Can I still return it? | ") and "laptop" in new and "laptop" in cached
