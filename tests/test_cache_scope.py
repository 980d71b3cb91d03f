"""Cache scopes (issue 14, item 2): per-tenant and per-user entries that never cross.

Every test that touches storage runs on every backend kind (the ``backend`` fixture); the same
prompt is stored with a different answer in each scope, so any crossing would show as a wrong
answer, not only as a hit count.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.outputs import Generation

from langchain_semcache import ExactCache, SemanticCache
from langchain_semcache import cache_scope as langchain_cache_scope
from semcache_core import (
    Backend,
    Prompt,
    ResponseCache,
    SemcacheInputError,
    cache_scope,
    current_scope,
    keys,
)
from semcache_core.codecs import decode_entry, encode_entry
from semcache_core.testing import HashingEmbedder
from tests.fakes import CountingChatModel, WordHashEmbeddings

LLM = "model=test"
QUESTION = "What is the capital of France?"
PARAPHRASE = "what's the capital city of france"
FIELDS = ["tenant", "user"]
#: The scopes every crossing test writes to: unscoped, a tenant alone, a tenant and a user,
#: the same user name in another tenant, another tenant.
SCOPES: list[dict[str, str]] = [
    {},
    {"tenant": "acme"},
    {"tenant": "acme", "user": "u42"},
    {"tenant": "globex", "user": "u42"},
    {"tenant": "globex"},
]


def _label(fields: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(fields.items())) or "unscoped"


def _cache(backend: Backend, namespace: str, *, semantic: bool, **options: Any) -> ResponseCache:
    return ResponseCache(
        backend,
        namespace=namespace,
        embedder=HashingEmbedder(32) if semantic else None,
        trap_guard=False,
        filterable_fields=options.pop("filterable_fields", FIELDS),
        **options,
    )


def _answer(cache: ResponseCache, prompt: str) -> str | None:
    result = cache.lookup(LLM, Prompt.plain(prompt))
    return None if result.body is None else str(result.body["value"]["who"])


# -- the context variable ----------------------------------------------------------------------
def test_nested_scopes_merge_and_the_inner_value_wins() -> None:
    assert current_scope() == {}
    with cache_scope(tenant="acme", user="u1") as outer:
        assert dict(outer) == {"tenant": "acme", "user": "u1"}
        with cache_scope(user="u2", region="eu"):
            assert current_scope() == {"tenant": "acme", "user": "u2", "region": "eu"}
            with cache_scope(user=None):  # None removes a field for the inner block
                assert current_scope() == {"tenant": "acme", "region": "eu"}
            assert current_scope()["user"] == "u2"
        assert current_scope() == {"tenant": "acme", "user": "u1"}
    assert current_scope() == {}
    with pytest.raises(RuntimeError), cache_scope(tenant="acme"):
        raise RuntimeError("an error leaves the scope too")
    assert current_scope() == {}
    assert langchain_cache_scope is cache_scope


async def test_async_with_and_tasks_see_their_own_scope() -> None:
    async with cache_scope(tenant="acme"):
        assert current_scope() == {"tenant": "acme"}

        async def child() -> dict[str, str]:
            with cache_scope(user="u9"):
                await asyncio.sleep(0)
                return dict(current_scope())

        assert await asyncio.create_task(child()) == {"tenant": "acme", "user": "u9"}
        assert current_scope() == {"tenant": "acme"}  # the task's scope stayed in the task
    assert current_scope() == {}


def test_scope_values_are_checked() -> None:
    with pytest.raises(TypeError, match="'tenant' must be a str"):
        cache_scope(tenant=42)  # type: ignore[arg-type]
    with pytest.raises(SemcacheInputError, match="not valid Unicode"):
        cache_scope(tenant="bad \ud800")
    with pytest.raises(SemcacheInputError, match="at most 256"):
        cache_scope(tenant="x" * 257)
    with pytest.raises(SemcacheInputError, match="invalid cache_scope name"):
        cache_scope(**{"not a name": "x"})
    for bad, error in (
        ("tenant", TypeError),
        ([1], TypeError),
        (["tenant", "tenant"], SemcacheInputError),
        (["2fast"], SemcacheInputError),
        (["ténant"], SemcacheInputError),
    ):
        with pytest.raises(error, match="filterable_fields"):
            ResponseCache(filterable_fields=bad)  # type: ignore[arg-type]


# -- storage: scopes never cross -----------------------------------------------------------------
@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_scopes_never_cross(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    for fields in SCOPES:
        with cache_scope(**fields):
            assert _answer(cache, QUESTION) is None  # nobody else's entry, before its own
            cache.update(LLM, Prompt.plain(QUESTION), {"who": _label(fields)})
    for fields in SCOPES:
        with cache_scope(**fields):
            assert _answer(cache, QUESTION) == _label(fields)
            if semantic:
                assert _answer(cache, PARAPHRASE) == _label(fields)
    for fields in ({"tenant": "initech"}, {"user": "u42"}, {"tenant": "acme", "user": "u7"}):
        with cache_scope(**fields):
            assert _answer(cache, QUESTION) is None
            assert _answer(cache, PARAPHRASE) is None
    stats = cache.stats_snapshot()
    assert stats["exact_hits"] == len(SCOPES)
    assert stats["semantic_hits"] == (len(SCOPES) if semantic else 0)


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
async def test_scopes_never_cross_async(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    for fields in SCOPES:
        async with cache_scope(**fields):
            await cache.aupdate(LLM, Prompt.plain(QUESTION), {"who": _label(fields)})
    for fields in SCOPES:
        async with cache_scope(**fields):
            for prompt in (QUESTION, PARAPHRASE) if semantic else (QUESTION,):
                result = await cache.alookup(LLM, Prompt.plain(prompt))
                assert result.body is not None and result.body["value"]["who"] == _label(fields)
    with cache_scope(tenant="initech"):
        assert (await cache.alookup(LLM, Prompt.plain(QUESTION))).body is None


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
async def test_concurrent_tasks_each_in_their_own_scope(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    tenants = [f"t{i}" for i in range(6)]
    written = asyncio.Event()
    done: list[str] = []

    async def tenant_app(tenant: str) -> str | None:
        with cache_scope(tenant=tenant):
            await cache.aupdate(LLM, Prompt.plain(QUESTION), {"who": tenant})
            done.append(tenant)
            if len(done) == len(tenants):
                written.set()
            await written.wait()  # every tenant has written before any reads
            result = await cache.alookup(LLM, Prompt.plain(PARAPHRASE if semantic else QUESTION))
            return None if result.body is None else str(result.body["value"]["who"])

    answers = await asyncio.gather(*(tenant_app(tenant) for tenant in tenants))
    assert answers == tenants


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_threads_each_in_their_own_scope(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    users = [f"user-{i}" for i in range(4)]
    barrier = threading.Barrier(len(users), timeout=60)

    def user_app(user: str) -> str | None:
        with cache_scope(tenant="acme", user=user):
            cache.update(LLM, Prompt.plain(QUESTION), {"who": user})
            barrier.wait()
            return _answer(cache, PARAPHRASE if semantic else QUESTION)

    with ThreadPoolExecutor(len(users)) as pool:
        assert list(pool.map(user_app, users)) == users
    assert _answer(cache, QUESTION) is None  # this thread is outside any scope


# -- declared fields -----------------------------------------------------------------------------
@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_an_undeclared_field_is_an_error_at_lookup_and_update(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    tenant_only = _cache(backend, namespace, semantic=semantic, filterable_fields=["tenant"])
    undeclared = _cache(backend, namespace + "-plain", semantic=semantic, filterable_fields=None)
    calls = []
    for cache in (tenant_only, undeclared):
        calls += [
            lambda cache=cache: cache.lookup(LLM, Prompt.plain(QUESTION)),
            lambda cache=cache: cache.update(LLM, Prompt.plain(QUESTION), {"who": "x"}),
            lambda cache=cache: cache.explain(LLM, Prompt.plain(QUESTION)),
            lambda cache=cache: cache.check(QUESTION),
            lambda cache=cache: cache.store(QUESTION, "x"),
        ]
    with cache_scope(tenant="acme", user="u42"):
        for call in calls:
            with pytest.raises(SemcacheInputError, match="'user' not declared"):
                call()
    with cache_scope(tenant="acme", user="u42"), cache_scope(user=None):
        tenant_only.update(LLM, Prompt.plain(QUESTION), {"who": "acme"})  # user removed: fine
    with cache_scope(tenant="acme"):
        assert _answer(tenant_only, QUESTION) == "acme"
        with pytest.raises(SemcacheInputError, match="'tenant' not declared"):
            undeclared.lookup(LLM, Prompt.plain(QUESTION))
    # Nothing was stored by a refused update.
    assert _answer(undeclared, QUESTION) is None and _answer(tenant_only, QUESTION) is None


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_caches_without_fields_keep_their_keys(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    before = _cache(backend, namespace, semantic=semantic, filterable_fields=None)
    before.update(LLM, Prompt.plain(QUESTION), {"who": "stored before scopes"})
    if not semantic:  # the exact key of before scopes existed, byte for byte
        old_key = "llm:" + keys.stable_hash("exact", namespace, LLM, QUESTION)
        assert keys.exact_entry_key(namespace, LLM, QUESTION) == old_key
        assert backend.get_many(namespace, [old_key])[0] is not None
    else:
        assert keys.partition_key(namespace, "s", "c") == keys.stable_hash(
            "partition", namespace, "s", "c"
        )
    # The same namespace, now declaring fields: the old entry is an unscoped one.
    after = _cache(backend, namespace, semantic=semantic)
    assert _answer(after, QUESTION) == "stored before scopes"
    with cache_scope(tenant="acme"):
        assert _answer(after, QUESTION) is None
    assert _answer(before, QUESTION) == "stored before scopes"


@pytest.mark.parametrize("context_match", ["exact", "semantic"])
def test_conversations_stay_in_their_scope(
    backend: Backend, namespace: str, context_match: str
) -> None:
    from semcache_core.conversation import prompt_from_messages

    def chat(*turns: str) -> Prompt:
        roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
        messages = [{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)]
        return prompt_from_messages(messages)

    cache = _cache(backend, namespace, semantic=True, context_match=context_match)
    stored = chat("I bought a laptop 10 days ago.", "Thanks!", "Can I still return it?")
    asked = chat("I bought a laptop 10 days ago.", "Thanks!", "can i still return it")
    for tenant in ("acme", "globex"):
        with cache_scope(tenant=tenant):
            assert cache.lookup(LLM, asked).body is None
            cache.update(LLM, stored, {"who": tenant})
    for tenant in ("acme", "globex"):
        with cache_scope(tenant=tenant):
            for prompt in (stored, asked):
                result = cache.lookup(LLM, prompt)
                assert result.body is not None and result.body["value"]["who"] == tenant
    assert cache.lookup(LLM, asked).body is None


def test_explain_looks_in_the_scope(backend: Backend, namespace: str) -> None:
    cache = _cache(backend, namespace, semantic=True)
    with cache_scope(tenant="acme"):
        cache.update(LLM, Prompt.plain(QUESTION), {"who": "acme"})
        inside = cache.explain(LLM, Prompt.plain(PARAPHRASE))
    assert inside.outcome == "semantic" and inside.fields == {"tenant": "acme"}
    assert "(scope tenant='acme')" in str(inside)
    outside = cache.explain(LLM, Prompt.plain(PARAPHRASE))
    assert outside.outcome == "miss" and not outside.candidates
    explicit = cache.explain(LLM, Prompt.plain(QUESTION), fields={"tenant": "acme"})
    assert explicit.outcome == "exact"


def test_a_corrupt_scope_or_metadata_is_a_miss() -> None:
    good = {"value": {"who": "x"}, "scope": {"tenant": "acme"}, "metadata": {"k": [1]}}
    assert decode_entry(encode_entry("response", good), "response") == good
    for bad in (
        {"scope": "acme"},
        {"scope": {"tenant": 1}},
        {"scope": None},
        {"scope": ["tenant"]},
        {"metadata": [1, 2]},
        {"metadata": "x"},
    ):
        assert decode_entry(encode_entry("response", {**good, **bad}), "response") is None


# -- the adapters ---------------------------------------------------------------------------------
def test_langchain_caches_in_scopes(backend: Backend, namespace: str) -> None:
    semantic = SemanticCache(
        backend,
        embeddings=WordHashEmbeddings(32),
        namespace=namespace,
        trap_guard=False,
        filterable_fields=["tenant"],
    )
    exact = ExactCache(backend, namespace=namespace + "-exact", filterable_fields=["tenant"])
    for cache in (semantic, exact):
        model = CountingChatModel(cache=cache)
        with cache_scope(tenant="acme"):
            acme = model.invoke(QUESTION).content
        with cache_scope(tenant="globex"):
            globex = model.invoke(QUESTION).content
            assert model.invoke(QUESTION).content == globex
        with cache_scope(tenant="acme"):
            assert model.invoke(QUESTION).content == acme
        assert acme != globex and model.calls == 2
        assert model.invoke(QUESTION).content not in (acme, globex)  # unscoped: its own
        with cache_scope(tenant="acme"):
            assert cache.lookup(QUESTION, "other llm_string") is None
            cache.update(QUESTION, "llm", [Generation(text="acme's")])
            assert cache.lookup(QUESTION, "llm") == [Generation(text="acme's")]
        assert cache.lookup(QUESTION, "llm") is None
        with cache_scope(user="u1"), pytest.raises(SemcacheInputError, match="not declared"):
            cache.lookup(QUESTION, "llm")


def test_langchain_batch_threads_carry_the_scope(backend: Backend, namespace: str) -> None:
    # LangChain runs a batch in its thread pool, which copies the caller's context.
    cache = ExactCache(backend, namespace=namespace, filterable_fields=["tenant"])
    model = CountingChatModel(cache=cache)
    with cache_scope(tenant="acme"):
        answers = [m.content for m in model.batch(["q1", "q2", "q3"])]
        assert [m.content for m in model.batch(["q1", "q2", "q3"])] == answers
    assert model.calls == 3
    assert model.invoke("q1").content not in answers and model.calls == 4  # unscoped
    with cache_scope(tenant="globex"):
        assert model.invoke("q1").content not in answers and model.calls == 5


async def test_langchain_async_in_scopes(backend: Backend, namespace: str) -> None:
    cache = SemanticCache(
        backend,
        embeddings=WordHashEmbeddings(32),
        namespace=namespace,
        trap_guard=False,
        filterable_fields=["tenant"],
    )
    model = CountingChatModel(cache=cache)

    async def ask(tenant: str) -> str:
        async with cache_scope(tenant=tenant):
            return str((await model.ainvoke(QUESTION)).content)

    first = await asyncio.gather(ask("a"), ask("b"))
    again = await asyncio.gather(ask("a"), ask("b"))
    assert first == again and first[0] != first[1] and model.calls == 2


def test_llamaindex_llm_in_scopes_and_a_stream_consumed_outside(
    backend: Backend, namespace: str
) -> None:
    pytest.importorskip("llama_index.core")
    from llamaindex_semcache import CachedLLM
    from llamaindex_semcache import cache_scope as llamaindex_cache_scope
    from tests.llama_fakes import CountingLLM, WordHashEmbedding

    assert llamaindex_cache_scope is cache_scope
    inner = CountingLLM()
    llm = CachedLLM(
        inner,
        backend,
        namespace=namespace,
        embeddings=WordHashEmbedding(),
        trap_guard=False,
        filterable_fields=["tenant"],
    )
    with cache_scope(tenant="acme"):
        acme = llm.complete(QUESTION).text
    with cache_scope(tenant="globex"):
        globex = llm.complete(PARAPHRASE).text
        stream = llm.stream_complete("Stream me an answer")
    # Consumed outside the scope it was asked in: stored under globex all the same.
    streamed = list(stream)[-1].text
    assert inner.calls == 3 and acme != globex
    with cache_scope(tenant="acme"):
        assert llm.complete(PARAPHRASE).text == acme
    with cache_scope(tenant="globex"):
        assert llm.complete("Stream me an answer").text == streamed
    assert inner.calls == 3
    assert llm.complete("Stream me an answer").text != streamed  # unscoped: a miss
    with cache_scope(region="eu"), pytest.raises(SemcacheInputError, match="not declared"):
        llm.complete(QUESTION)
