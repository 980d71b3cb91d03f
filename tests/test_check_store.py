"""The framework-neutral API (issue 14, item 6): ``ResponseCache.check`` / ``store`` and their
async forms, on every backend kind."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from semcache_core import (
    Backend,
    Match,
    Prompt,
    ResponseCache,
    SemcacheInputError,
    cache_scope,
    keys,
)
from semcache_core.testing import HashingEmbedder

QUESTION = "What is the capital of France?"
#: Stored near QUESTION, nearest first (HashingEmbedder(32) distances 0.0, 0.18, 0.23, 0.33);
#: the last two are traps the guard rejects (a clause added; another name).
NEAR = [
    "what's the capital city of france",
    "tell me the capital of france",
    "what is the capital of france in europe",
    "What is the capital of Germany?",
]
FAR = "Who painted the Mona Lisa?"


def _semantic(backend: Backend, namespace: str, **options: Any) -> ResponseCache:
    return ResponseCache(
        backend,
        namespace=namespace,
        embedder=HashingEmbedder(32),
        filterable_fields=["tenant"],
        **options,
    )


def _exact(backend: Backend, namespace: str) -> ResponseCache:
    return ResponseCache(backend, namespace=namespace, filterable_fields=["tenant"])


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_round_trip_with_metadata(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = (_semantic if semantic else _exact)(backend, namespace)
    assert cache.check(QUESTION) == []
    stored = cache.store(QUESTION, "Paris", metadata={"source": "faq", "rank": [1, 2.5, None]})
    (match,) = cache.check(QUESTION)
    assert match == Match(stored, QUESTION, "Paris", 0.0, {"source": "faq", "rank": [1, 2.5, None]})
    # The id is the entry's backend key (what drop(ids) takes).
    key = keys.vector_key(stored) if semantic else stored
    assert stored.startswith("llm:") != semantic
    assert backend.get_many(namespace, [key])[0] is not None
    # JSON values other than str come back equal; an overwrite replaces the entry.
    for response in ({"answer": "Paris", "sources": ["a", "b"]}, [1, 2], 3.5, True, None, ""):
        assert cache.store(QUESTION, response) == stored
        (again,) = cache.check(QUESTION)
        assert again.response == response and again.metadata == {}
    # Another scope string (model and parameters) never matches.
    assert cache.check(QUESTION, scope="model=other") == []
    cache.store(QUESTION, "Paris (other)", scope="model=other")
    assert cache.check(QUESTION, scope="model=other")[0].response == "Paris (other)"
    stats = cache.stats_snapshot()
    assert stats["lookups"] == 10 and stats["misses"] == 2 and stats["writes"] == 8


def test_semantic_matches_best_first_through_the_stages(backend: Backend, namespace: str) -> None:
    cache = _semantic(backend, namespace)
    ids = [
        cache.store(prompt, f"answer to {prompt}", metadata={"n": n})
        for n, prompt in enumerate([*NEAR, FAR])
    ]
    (best,) = cache.check(QUESTION)
    assert (best.id, best.prompt, best.metadata) == (ids[0], NEAR[0], {"n": 0})
    # Several candidates, best first; the trap guard still rejects the traps.
    guarded = cache.check(QUESTION, num_results=5, distance_threshold=0.5)
    assert [m.id for m in guarded] == ids[:2]
    assert guarded[1].response == f"answer to {NEAR[1]}" and 0 < guarded[1].distance < 0.3
    unguarded = _semantic(backend, namespace, trap_guard=False)
    every = unguarded.check(QUESTION, num_results=5, distance_threshold=0.5)
    assert [m.id for m in every] == ids[:4]
    distances = [m.distance for m in every]
    assert distances == sorted(distances) and distances[-1] <= 0.5
    # The threshold bounds them; the cache's default (0.16) keeps only the paraphrase.
    assert [m.id for m in unguarded.check(QUESTION, num_results=5)] == ids[:1]
    assert [m.id for m in unguarded.check(QUESTION, num_results=2, distance_threshold=0.2)] == (
        ids[:2]
    )
    # The exact entry of the query comes first, at distance 0, and is not repeated.
    exact_id = cache.store(QUESTION, "Paris")
    both = unguarded.check(QUESTION, num_results=3, distance_threshold=0.2)
    assert [m.id for m in both] == [exact_id, *ids[:2]] and both[0].distance == 0.0
    assert unguarded.check("Who wrote Hamlet?") == []


async def test_async_forms(backend: Backend, namespace: str) -> None:
    cache = _semantic(backend, namespace)
    stored = await cache.astore(QUESTION, {"text": "Paris"}, metadata={"by": "astore"})
    (match,) = await cache.acheck(NEAR[0])
    assert (match.id, match.response, match.metadata) == (
        stored,
        {"text": "Paris"},
        {"by": "astore"},
    )
    async with cache_scope(tenant="acme"):
        assert await cache.acheck(NEAR[0]) == []
        scoped = await cache.astore(QUESTION, "Paris (acme)")
        assert scoped != stored
        (mine,) = await cache.acheck(NEAR[0], num_results=3)
        assert (mine.id, mine.scope) == (scoped, {"tenant": "acme"})


def test_filters_and_the_context_scope(backend: Backend, namespace: str) -> None:
    for cache in (_semantic(backend, namespace), _exact(backend, namespace + "-x")):
        prompt = NEAR[0] if cache.semantic else QUESTION
        acme = cache.store(QUESTION, "acme's", filters={"tenant": "acme"})
        cache.store(QUESTION, "unscoped")
        assert [m.response for m in cache.check(prompt)] == ["unscoped"]
        assert cache.check(prompt, filters={"tenant": "globex"}) == []
        (match,) = cache.check(prompt, filters={"tenant": "acme"})
        assert (match.id, match.scope) == (acme, {"tenant": "acme"})
        with cache_scope(tenant="acme"):
            assert cache.check(prompt)[0].id == acme  # the context scope applies
            assert cache.check(prompt, filters={"tenant": None})[0].response == "unscoped"
        with cache_scope(tenant="globex"):
            assert cache.check(prompt) == []
            assert cache.check(prompt, filters={"tenant": "acme"})[0].id == acme  # overrides
            assert cache.store(QUESTION, "again", filters={"tenant": "acme"}) == acme
        with pytest.raises(SemcacheInputError, match="'user' not declared"):
            cache.check(prompt, filters={"user": "u1"})
        with pytest.raises(SemcacheInputError, match="'user' not declared"):
            cache.store(QUESTION, "x", filters={"user": "u1"})
        with pytest.raises(TypeError, match="'tenant' must be a str"):
            cache.check(prompt, filters={"tenant": 7})


def test_callers_vectors(backend: Backend, namespace: str) -> None:
    cache = _semantic(backend, namespace, trap_guard=False)  # the texts differ on purpose
    rng = np.random.default_rng(14)
    mine, other = rng.normal(size=32), rng.normal(size=32)
    stored = cache.store("my own text", "mine", vector=mine.tolist())
    near = mine + rng.normal(scale=0.01, size=32)
    (match,) = cache.check("no words in common", vector=near, distance_threshold=0.05)
    assert match.id == stored and match.response == "mine" and match.distance < 0.01
    assert cache.check("no words in common", vector=other) == []
    assert cache.check("my own text")[0].id == stored  # its exact entry, without the vector
    for bad in (np.ones(8), [1.0] * 31):
        with pytest.raises(SemcacheInputError, match="vector= does not fit"):
            cache.check("no words in common", vector=bad)
        with pytest.raises(SemcacheInputError, match="vector= does not fit"):
            cache.store("another text", "x", vector=bad)
    for bad_vector in ([0.0] * 32, [math.nan] * 32, "abc", [[1.0, 2.0]]):
        with pytest.raises(SemcacheInputError):
            cache.check("x", vector=bad_vector)
    assert [m.id for m in cache.check("no words in common", vector=near, num_results=5)] == [stored]


def test_bad_inputs_are_clear_errors(backend: Backend, namespace: str) -> None:
    semantic, exact = _semantic(backend, namespace), _exact(backend, namespace + "-x")
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
        ("check", (42,), {}, TypeError, "prompt must be a str"),
        ("store", (b"q", "a"), {}, TypeError, "prompt must be a str"),
        ("check", ("q",), {"scope": None}, TypeError, "scope must be a str"),
        ("check", ("bad \ud800",), {}, SemcacheInputError, "prompt is not valid"),
        ("check", ("q",), {"num_results": 0}, SemcacheInputError, "between 1 and 100"),
        ("check", ("q",), {"num_results": 101}, SemcacheInputError, "between 1 and 100"),
        ("check", ("q",), {"num_results": True}, TypeError, "num_results must be an int"),
        ("check", ("q",), {"num_results": "2"}, TypeError, "num_results must be an int"),
        ("store", ("q", {1, 2}), {}, TypeError, "response is a set"),
        ("store", ("q", {1: "a"}), {}, TypeError, "key 1 that is not a str"),
        ("store", ("q", [math.inf]), {}, TypeError, r"response\[0\] is inf"),
        ("store", ("q", object()), {}, TypeError, "JSON-safe"),
        ("store", ("q", "a"), {"metadata": [1]}, TypeError, "metadata must be a dict"),
        ("store", ("q", "a"), {"metadata": {"d": b"x"}}, TypeError, "'d'] is a bytes"),
        ("store", ("q", "a"), {"ttl": -1}, SemcacheInputError, "positive number"),
        ("store", ("q", "a"), {"filters": ["tenant"]}, TypeError, "filters must be a dict"),
    ]
    for cache in (semantic, exact):
        for method, args, kwargs, error, words in calls:
            with pytest.raises(error, match=words):
                getattr(cache, method)(*args, **kwargs)
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    with pytest.raises(TypeError, match="nested deeper than 100"):
        semantic.store("q", deep)
    with pytest.raises(SemcacheInputError, match="no embedder"):
        exact.check("q", vector=[1.0, 0.0])
    with pytest.raises(SemcacheInputError, match="no embedder"):
        exact.store("q", "a", vector=[1.0, 0.0])
    with pytest.raises(SemcacheInputError, match="semantic caches"):
        exact.check("q", distance_threshold=0.2)
    with pytest.raises(SemcacheInputError, match="between 0"):
        semantic.check("q", distance_threshold=2.5)
    # Nothing was stored by a refused call.
    assert semantic.check("q") == [] and exact.check("q") == []


def test_adapter_entries_come_back_as_their_json(backend: Backend, namespace: str) -> None:
    cache = _exact(backend, namespace)
    cache.update("", Prompt.plain(QUESTION), {"generations": [{"text": "Paris"}]})
    (match,) = cache.check(QUESTION)
    assert match.response == {"generations": [{"text": "Paris"}]}
    # And a LangChain lookup of a check/store entry is a miss, never a wrong object.
    pytest.importorskip("langchain_core")
    from langchain_semcache import ExactCache

    langchain = ExactCache(backend, namespace=namespace + "-lc")
    langchain._core.store("Who?", "plain text", scope="llm")
    assert langchain.lookup("Who?", "llm") is None


def test_a_corrupt_entry_is_no_match(backend: Backend, namespace: str) -> None:
    from semcache_core import VectorRecord
    from semcache_core.codecs import encode_entry, normalize

    semantic, exact = _semantic(backend, namespace), _exact(backend, namespace + "-x")
    for cache in (semantic, exact):
        entry_id = cache.store(QUESTION, "Paris", metadata={"ok": True})
        assert len(cache.check(QUESTION)) == 1
        for bad in ({"metadata": ["not", "a", "dict"]}, {"scope": {"tenant": 1}}):
            raw = encode_entry(
                "response", {"value": {"response": "Paris"}, "query": QUESTION, **bad}
            )
            if cache.semantic:
                partition = cache.partition("", Prompt.plain(QUESTION), {})
                vector = normalize(np.asarray(HashingEmbedder(32).vector(QUESTION), np.float32))
                backend.add_vectors(
                    cache.namespace, partition, [VectorRecord(entry_id, vector, raw)]
                )
            else:
                backend.set_many(cache.namespace, [(entry_id, raw)])
            assert cache.check(QUESTION) == []
            assert cache.check(NEAR[0], num_results=3) == []


def test_a_dead_backend_is_a_miss_and_a_skipped_write() -> None:
    pytest.importorskip("redis")
    cache = ResponseCache("redis://127.0.0.1:1/0", embedder=HashingEmbedder(32), retry_after=60)
    entry_id = cache.store(QUESTION, "Paris")
    assert cache.check(QUESTION) == [] and cache.check(NEAR[0], num_results=3) == []
    prompt = Prompt.plain(QUESTION)  # the id it would have been stored under
    assert entry_id == cache.entry_id(cache.partition("", prompt), cache.query(prompt))
    assert cache.stats_snapshot()["backend_errors"] >= 1
