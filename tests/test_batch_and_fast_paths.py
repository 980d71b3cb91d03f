"""Batch writes (``update_many``), lookups given the query's vector, and the direct rebuild of
plain LangChain generations: each against the path it shortcuts, on every backend kind."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

from langchain_semcache import ExactCache, SemanticCache, _serialization
from semcache_core import Backend, Prompt, ResponseCache
from semcache_core.errors import SemcacheInputError
from semcache_core.prompt import Turn
from semcache_core.testing import HashingEmbedder
from tests.backends import BACKEND_KINDS, ServerPool, make_backend
from tests.fakes import WordHashEmbeddings

KINDS = list(BACKEND_KINDS)


@pytest.fixture(params=KINDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, server_pool: ServerPool
) -> AsyncIterator[Backend]:
    instance = make_backend(str(request.param), tmp_path, server_pool)
    yield instance
    await instance.aclose()


class BatchEmbedder(HashingEmbedder):
    """Counts single and batch calls."""

    def __init__(self) -> None:
        super().__init__(64)
        self.single = 0
        self.batches: list[int] = []

    def embed(self, text: str) -> Sequence[float]:
        self.single += 1
        return self.vector(text)

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        return [self.vector(text) for text in texts]


class FailingEmbedder(BatchEmbedder):
    def embed_many(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("the embedding service is down")


def body(i: int) -> dict[str, Any]:
    return {"answer": f"answer {i}"}


QUESTIONS = [f"how do I reset router model {i} to factory settings" for i in range(30)]


# -- update_many ---------------------------------------------------------------------------------


def test_update_many_embeds_once_and_stores_every_entry(backend: Backend, namespace: str) -> None:
    embedder = BatchEmbedder()
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder, trap_guard=False)
    cache.update_many([("llm", Prompt.plain(q), body(i), 7) for i, q in enumerate(QUESTIONS)])
    assert embedder.batches == [len(QUESTIONS)] and embedder.single == 0
    assert cache.stats_snapshot()["writes"] == len(QUESTIONS)
    for i, question in enumerate(QUESTIONS):
        found = cache.lookup("llm", Prompt.plain(question))
        assert found.outcome == "exact" and found.body is not None
        assert found.body["value"] == body(i) and found.body["tokens"] == 7
    near = cache.lookup("llm", Prompt.plain("how do I reset router model 3 to factory settings?"))
    assert near.body is not None and near.body["value"] == body(3)
    assert cache.lookup("other-llm", Prompt.plain(QUESTIONS[0])).outcome == "miss"
    cache.clear()


def test_update_many_on_an_exact_cache(backend: Backend, namespace: str) -> None:
    cache = ResponseCache(backend, namespace=namespace)
    cache.update_many([("llm", Prompt.plain(q), body(i)) for i, q in enumerate(QUESTIONS)])
    assert [cache.lookup("llm", Prompt.plain(q)).body["value"] for q in QUESTIONS] == [  # type: ignore[index]
        body(i) for i in range(len(QUESTIONS))
    ]
    cache.clear()


def test_update_many_the_last_entry_of_a_query_wins(backend: Backend, namespace: str) -> None:
    cache = ResponseCache(backend, namespace=namespace, embedder=BatchEmbedder(), trap_guard=False)
    cache.update_many(
        [("llm", Prompt.plain("q one"), body(1)), ("llm", Prompt.plain("q one"), body(2))]
    )
    found = cache.lookup("llm", Prompt.plain("q one"))
    assert found.body is not None and found.body["value"] == body(2)
    cache.clear()


def test_update_many_refuses_bad_entries_before_writing(backend: Backend, namespace: str) -> None:
    cache = ResponseCache(backend, namespace=namespace, embedder=BatchEmbedder())
    good = ("llm", Prompt.plain("fine"), body(0))
    for bad, match in [
        (("llm", "not a Prompt", body(1)), "semcache_core.Prompt"),
        (("llm", Prompt.plain("x")), "tuple"),
        ((1, Prompt.plain("x"), body(1)), "scope must be a str"),
        (("llm", Prompt.plain("x"), "not a dict"), "value must be a dict"),
        (("llm", Prompt.plain("x"), body(1), "many"), "tokens must be a number"),
    ]:
        with pytest.raises(TypeError, match=match):
            cache.update_many([good, bad])  # type: ignore[list-item]
    assert cache.lookup("llm", Prompt.plain("fine")).outcome == "miss"  # nothing was written


def test_update_many_with_a_failing_embedder_skips_the_batch(
    backend: Backend, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ResponseCache(backend, namespace=namespace, embedder=FailingEmbedder())
    with caplog.at_level(logging.WARNING, logger="semcache"):
        cache.update_many([("llm", Prompt.plain(q), body(0)) for q in QUESTIONS[:3]])
    assert "not stored" in caplog.text
    assert cache.stats_snapshot()["writes"] == 0


def test_update_many_stores_conversation_turns_one_by_one(namespace: str) -> None:
    cache = ResponseCache("memory://", namespace=namespace, embedder=BatchEmbedder())
    turn = Prompt.from_turns(
        "chat-key",
        [
            Turn("user", "show me red shoes"),
            Turn("assistant", "here are red shoes"),
            Turn("user", "what about the blue one?"),
        ],
    )
    assert cache.conversational(turn)
    cache.update_many([("llm", turn, body(1)), ("llm", Prompt.plain("plain"), body(2))])
    found = cache.lookup("llm", turn)
    assert found.body is not None and found.body["value"] == body(1)


async def test_langchain_update_many_uses_one_embed_documents_call(
    backend: Backend, namespace: str
) -> None:
    embeddings = WordHashEmbeddings()
    counted: list[int] = []
    original = embeddings.embed_documents

    def embed_documents(texts: list[str]) -> list[list[float]]:
        counted.append(len(texts))
        return original(texts)

    embeddings.embed_documents = embed_documents  # type: ignore[method-assign]
    cache = SemanticCache(backend, embeddings=embeddings, namespace=namespace)
    entries = [(q, "llm", [Generation(text=f"answer {i}")]) for i, q in enumerate(QUESTIONS)]
    cache.update_many(entries[:20])
    await cache.aupdate_many(entries[20:])
    assert counted == [20, 10]
    for i, question in enumerate(QUESTIONS):
        assert cache.lookup(question, "llm") == [Generation(text=f"answer {i}")]
    exact = ExactCache(backend, namespace=namespace + "x")
    exact.update_many([("p", "llm", [Generation(text="x")])])
    assert exact.lookup("p", "llm") == [Generation(text="x")]
    with pytest.raises(TypeError, match="prompt, llm_string, generations"):
        cache.update_many([("p", "llm")])  # type: ignore[list-item]
    cache.clear()
    exact.clear()


# -- lookup(vector=) -------------------------------------------------------------------------------


def test_a_given_vector_finds_exact_and_semantic_entries(backend: Backend, namespace: str) -> None:
    embedder = BatchEmbedder()
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder, trap_guard=False)
    cache.update_many([("llm", Prompt.plain(q), body(i)) for i, q in enumerate(QUESTIONS)])
    calls = embedder.single
    exact = cache.lookup("llm", Prompt.plain(QUESTIONS[4]), vector=embedder.vector(QUESTIONS[4]))
    assert exact.outcome == "exact" and exact.body is not None and exact.body["value"] == body(4)
    paraphrase = "how do I reset router model 4 to factory settings please"
    near = cache.lookup("llm", Prompt.plain(paraphrase), vector=embedder.vector(paraphrase))
    assert near.outcome == "semantic" and near.body is not None and near.body["value"] == body(4)
    far = "what is the weather in Paris"
    assert cache.lookup("llm", Prompt.plain(far), vector=embedder.vector(far)).outcome == "miss"
    other_scope = cache.lookup(
        "other", Prompt.plain(QUESTIONS[4]), vector=embedder.vector(QUESTIONS[4])
    )
    assert other_scope.outcome == "miss"
    assert embedder.single == calls  # no embedding call
    with pytest.raises(SemcacheInputError):
        cache.lookup("llm", Prompt.plain("x"), vector=[0.0] * 64)
    with pytest.raises(SemcacheInputError, match="no embedder"):
        ResponseCache(backend, namespace=namespace).lookup("llm", Prompt.plain("x"), vector=[1.0])
    cache.clear()


# -- the direct rebuild of generations -------------------------------------------------------------

REALISTIC = [
    [Generation(text="plain", generation_info={"finish_reason": "stop", "logprobs": None})],
    [
        ChatGeneration(
            message=AIMessage(
                content="text",
                tool_calls=[{"name": "f", "args": {"a": [1, {"b": 2}]}, "id": "1"}],
                usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
                response_metadata={"model_name": "m", "finish_reason": "stop"},
                id="run-1",
            ),
            generation_info={"finish_reason": "stop"},
        ),
        ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "blocks"}])),
    ],
    # Dicts with an "lc" key are escaped by dumpd: the general path unescapes them.
    [Generation(text="x", generation_info={"lc": 1, "type": "constructor", "id": ["x"]})],
]


@pytest.mark.parametrize(
    ("generations", "direct"),
    list(zip(REALISTIC, [True, True, False], strict=True)),
    ids=["llm", "chat", "escaped"],
)
def test_the_direct_rebuild_equals_langchains(generations: list[Generation], direct: bool) -> None:
    stored = _serialization.generations_to_json(generations)
    assert _serialization.generations_from_json(stored) == generations
    for item, generation in zip(stored["generations"], generations, strict=True):
        fast = _serialization._fast_generation(item)
        assert (fast == generation) if direct else fast is None
        assert _serialization._REVIVE is not None
        assert _serialization._REVIVE(item) == generation


def _chat_item() -> dict[str, Any]:
    return dumpd(ChatGeneration(message=AIMessage(content="fine")))  # type: ignore[no-any-return]


def _hostile(change: str) -> dict[str, Any]:
    item = _chat_item()
    message = item["kwargs"]["message"]
    if change == "other message class":
        message["id"] = ["langchain_openai", "chat_models", "ChatOpenAI"]
    elif change == "constructor in metadata":
        message["kwargs"]["response_metadata"] = {
            "x": {"lc": 1, "type": "constructor", "id": ["langchain", "llms", "openai", "OpenAI"]}
        }
    elif change == "secret in metadata":
        message["kwargs"]["response_metadata"] = {"k": {"lc": 1, "type": "secret", "id": ["K"]}}
    elif change == "wrong field type":
        message["kwargs"]["content"] = 12
    elif change == "unknown field":
        item["kwargs"]["unexpected"] = {"nested": True}
        message["kwargs"]["tool_calls"] = "not a list"
    elif change == "message not an object":
        item["kwargs"]["message"] = "hello"
    elif change == "generation class":
        item["id"] = ["langchain", "schema", "output", "Other"]
    return {"generations": [item]}


@pytest.mark.parametrize(
    "change",
    [
        "other message class",
        "constructor in metadata",
        "secret in metadata",
        "wrong field type",
        "unknown field",
        "message not an object",
        "generation class",
    ],
)
def test_hostile_generations_are_misses(change: str, caplog: pytest.LogCaptureFixture) -> None:
    body = _hostile(change)
    with caplog.at_level(logging.WARNING, logger="semcache"):
        rebuilt = _serialization.generations_from_json(body)
    if change == "secret in metadata":
        # load() resolves an unknown secret to None (never from the environment here): the
        # general path rebuilds it so, the direct one must not take it.
        assert _serialization._fast_generation(body["generations"][0]) is None
        assert rebuilt is None or rebuilt[0].message.response_metadata == {"k": None}  # type: ignore[attr-defined]
        return
    assert rebuilt is None
    assert "ignoring" in caplog.text


# -- validated once per distinct stored entry (semcache_core.memo) -----------------------------


def _mutable_parts(value: Any) -> list[Any]:
    """Every dict, list and model reachable from ``value`` (the objects a caller may change)."""
    from pydantic import BaseModel

    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseModel):
            found.append(item)
            stack.extend(item.__dict__.values())
        elif isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


@pytest.mark.parametrize("generations", REALISTIC, ids=["llm", "chat", "escaped"])
async def test_memoized_hits_equal_the_validated_generations_and_share_nothing(
    backend: Backend, namespace: str, generations: list[Generation]
) -> None:
    cache = ExactCache(backend, namespace=namespace)
    await cache.aupdate("prompt", "llm", generations)
    expected = _serialization.generations_from_json(_serialization.generations_to_json(generations))
    first = cache.lookup("prompt", "llm")
    assert len(cache._core.memo) == 1  # validated once, then memoized with its bytes
    hits = [first, cache.lookup("prompt", "llm"), await cache.alookup("prompt", "llm")]
    for hit in hits:
        assert hit == expected == generations
        assert _serialization._fields_sets(hit) == _serialization._fields_sets(expected)
    # No dict, list or model is shared between two callers (or with the memo, which the
    # next hit would show): a caller changing its result changes nothing for the others.
    seen = [set(map(id, _mutable_parts(hit))) for hit in hits]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    assert first is not None
    for part in _mutable_parts(first):
        if isinstance(part, dict):
            part["changed by a caller"] = True
        elif isinstance(part, list):
            part.append("changed by a caller")
    first[0].text = "changed by a caller"
    assert cache.lookup("prompt", "llm") == generations
    await cache.aclear()


def test_a_changed_or_hostile_entry_is_validated_afresh(backend: Backend, namespace: str) -> None:
    from semcache_core import keys

    cache = ExactCache(backend, namespace=namespace)
    cache.update("prompt", "llm", [Generation(text="first")])
    assert cache.lookup("prompt", "llm") == [Generation(text="first")]
    cache.update("prompt", "llm", [Generation(text="second")])  # new bytes under the same key
    assert cache.lookup("prompt", "llm") == [Generation(text="second")]
    assert len(cache._core.memo) == 1  # the new version replaced the old one
    key = keys.exact_entry_key(namespace, "llm", "prompt")
    (raw,) = backend.get_many(namespace, [key])
    assert raw is not None
    # The memoized entry with one byte changed, and with a class outside the allowlist.
    planted = [raw[:-1], raw.replace(b'"Generation"]', b'"OtherClass"]')]
    for hostile in planted:
        assert hostile != raw
        backend.set_many(namespace, [(key, hostile)])
        assert cache.lookup("prompt", "llm") is None
    stats = cache.stats()
    assert (stats["exact_hits"], stats["misses"]) == (2, 2)
    backend.set_many(namespace, [(key, raw)])  # the memoized bytes again
    assert cache.lookup("prompt", "llm") == [Generation(text="second")]
    cache.clear()
    assert len(cache._core.memo) == 0


def test_the_memo_is_bounded_and_per_cache(namespace: str) -> None:
    from semcache_core.memo import EntryMemo

    first, second = ExactCache(namespace=namespace), ExactCache(namespace=namespace)
    assert first._core.memo is not second._core.memo
    first._core.memo = EntryMemo(max_entries=8, max_bytes=6_000)
    for i in range(40):
        first.update(f"prompt {i}", "llm", [Generation(text=f"answer {i}")])
        assert first.lookup(f"prompt {i}", "llm") == [Generation(text=f"answer {i}")]
        assert len(first._core.memo) <= 8 and first._core.memo.size <= 6_000
    assert len(first._core.memo) >= 2
    # Entries over the per-entry bound are validated on every hit, never kept.
    first._core.memo = EntryMemo(max_entry_bytes=100)
    assert first.lookup("prompt 3", "llm") == [Generation(text="answer 3")]
    assert len(first._core.memo) == 0


def test_exact_fast_path_keeps_the_error_policy(namespace: str) -> None:
    from semcache_core.backends.memory import MemoryBackend
    from semcache_core.errors import BackendError

    class Down(MemoryBackend):
        down = False
        calls = 0

        def execute(self, step: Any) -> Any:
            if self.down:
                Down.calls += 1
                raise BackendError("down (injected)")
            return super().execute(step)

    backend = Down()
    warn = ExactCache(backend, namespace=namespace)
    strict = ExactCache(backend, namespace=namespace, on_backend_error="raise")
    warn.update("p", "llm", [Generation(text="x")])
    assert warn.lookup("p", "llm") == [Generation(text="x")]
    backend.down = True
    with pytest.raises(BackendError):
        strict.lookup("p", "llm")
    with pytest.raises(BackendError):
        strict._core.lookup("llm", Prompt.plain("p"))
    assert warn.lookup("p", "llm") is None  # a miss, and the breaker opens
    assert warn.lookup("p", "llm") is None  # no backend call while it is open
    assert warn._core.lookup("llm", Prompt.plain("p")).outcome == "miss"
    assert Down.calls == 3
    assert warn.stats()["backend_errors"] == 1


def test_a_value_the_template_cannot_copy_is_validated_on_every_hit(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def untemplatable(value: Any) -> Any:
        raise _serialization._Untemplatable("as if a field held an object JSON cannot")

    monkeypatch.setattr(_serialization, "_model", untemplatable)
    cache = ExactCache(namespace=namespace)
    generations = REALISTIC[1]
    cache.update("prompt", "llm", generations)
    first, second = cache.lookup("prompt", "llm"), cache.lookup("prompt", "llm")
    assert first == second == generations
    assert first is not None and second is not None
    assert first[0] is not second[0] and first[0].message is not second[0].message  # type: ignore[attr-defined]
