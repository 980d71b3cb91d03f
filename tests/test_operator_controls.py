"""The operator's controls (issue 14, items 1, 3 and 4): list, show, drop and expire single
entries, tune a running cache; on every backend, sync and async, and through the CLI."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.outputs import Generation

from langchain_semcache import ExactCache, SemanticCache
from semcache_core import Backend, CacheEntry, Prompt, ResponseCache, SemcacheInputError, keys
from semcache_core.backends import VectorRecord
from semcache_core.cli import main
from semcache_core.codecs import encode_entry
from semcache_core.testing import HashingEmbedder, fresh_namespace
from semcache_core.testing.contract import unit
from tests.backends import ServerPool
from tests.fakes import WordHashEmbeddings

LLM = '{"model_name": "gpt-test", "temperature": 0}'
ROUTER = "how do I reset my router"
ROUTER_PARAPHRASE = "how can I reset my router"  # 0.167 from ROUTER with the hashing embedder
PROMPTS = [ROUTER, "what is the capital of france", "how long do I boil an egg"]


def _cache(backend: Backend, namespace: str, *, semantic: bool, **options: Any) -> ResponseCache:
    if semantic:
        options.setdefault("distance_threshold", 0.3)
        return ResponseCache(backend, namespace=namespace, embedder=HashingEmbedder(), **options)
    return ResponseCache(backend, namespace=namespace, **options)


def _fill(cache: ResponseCache, prompts: list[str] = PROMPTS) -> dict[str, str]:
    """Store one answer per prompt; the id each prompt's entry is listed under."""
    for number, prompt in enumerate(prompts):
        cache.update(LLM, Prompt.plain(prompt), {"answer": number})
    return {entry.prompt or "": entry.id for entry in cache.entries()}


def _answer(cache: ResponseCache, prompt: str) -> Any:
    result = cache.lookup(LLM, Prompt.plain(prompt))
    return None if result.body is None else result.body["value"]["answer"]


# -- entries: what an entry holds -------------------------------------------------------------
@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_entries_list_what_was_stored(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    before = time.time()
    cache.update(LLM, Prompt.plain(ROUTER), {"answer": 1}, ttl=600)
    cache.update("other-model", Prompt.plain("hi! " + PROMPTS[1]), {"answer": 2})
    _cache(backend, fresh_namespace(), semantic=semantic).update(
        LLM, Prompt.plain("another namespace"), {"answer": 3}
    )
    listed = sorted(cache.entries(), key=lambda e: e.llm_string != LLM)
    assert [e.llm_string for e in listed] == [LLM, "other-model"]
    timed, forever = listed
    assert isinstance(timed, CacheEntry)
    assert timed.prompt == ROUTER and timed.query == ROUTER
    assert timed.kind == ("semantic" if semantic else "exact")
    assert timed.value == {"answer": 1}
    assert timed.created is not None and before <= timed.created <= time.time()
    assert timed.expires is not None and before + 599 <= timed.expires <= time.time() + 601
    # Not tracked by default (track_hits: tests/test_entry_hits.py).
    assert (timed.scope, timed.metadata, timed.hits, timed.last_hit) == ({}, {}, None, None)
    assert forever.prompt == "hi! " + PROMPTS[1] and forever.expires is None
    again = cache.entry(timed.id)
    assert again is not None and again.expires is not None
    assert abs(again.expires - timed.expires) < 1  # the backend's, read again
    assert replace(again, expires=timed.expires) == timed
    assert len(list(cache.entries(limit=1))) == 1


def _plant(backend: Backend, namespace: str, key: str, body: dict[str, Any]) -> None:
    backend.set_many(namespace, [(key, encode_entry("response", body))])


def test_entries_filter_on_the_stored_scope_and_read_metadata(
    backend: Backend, namespace: str
) -> None:
    # Bodies as the scope helper writes them (declared fields in "scope", user "metadata").
    body = {"value": {"answer": 1}, "prompt": "p", "llm_string": LLM, "created": time.time()}
    acme_u1 = "llm:" + "1" * 32
    acme = "llm:" + "2" * 32
    other = "llm:" + "3" * 32
    _plant(backend, namespace, acme_u1, {**body, "scope": {"tenant": "acme", "user": "u1"}})
    _plant(backend, namespace, acme, {**body, "scope": {"tenant": "acme"}, "metadata": {"n": 1}})
    _plant(backend, namespace, other, {**body, "scope": {"tenant": "other"}})
    cache = ResponseCache(backend, namespace=namespace)

    def ids(**filters: str) -> set[str]:
        return {entry.id for entry in cache.entries(filters=filters)}

    assert ids() == {acme_u1, acme, other}
    assert ids(tenant="acme") == {acme_u1, acme}
    assert ids(tenant="acme", user="u1") == {acme_u1}
    assert ids(tenant="nobody") == set()
    entry = cache.entry(acme)
    assert entry is not None and entry.metadata == {"n": 1}
    assert entry.scope == {"tenant": "acme"}
    with pytest.raises(TypeError, match="filters"):
        list(cache.entries(filters={"tenant": 1}))  # type: ignore[dict-item]
    with pytest.raises(SemcacheInputError, match="limit"):
        cache.entries(limit=0)


def test_corrupt_rows_are_skipped(backend: Backend, namespace: str) -> None:
    cache = _cache(backend, namespace, semantic=True)
    ids = _fill(cache, [ROUTER])
    good = {"value": {"answer": 1}, "prompt": "p", "llm_string": LLM}
    backend.set_many(namespace, [("llm:" + "a" * 32, b"not json {")])
    _plant(backend, namespace, "llm:" + "b" * 32, {**good, "value": "not an object"})
    _plant(backend, namespace, "llm:" + "c" * 32, {**good, "scope": {"tenant": 7}})
    _plant(backend, namespace, "llm:" + "d" * 32, {**good, "expires": "soon"})
    _plant(backend, namespace, "llm:" + "e" * 32, {**good, "metadata": ["a list"]})
    _plant(backend, namespace, "llm:not-an-entry-key", good)
    partition = keys.partition_key(namespace, "planted", "")
    bad_id = keys.semantic_entry_id(namespace, partition, "planted")
    backend.add_vectors(namespace, partition, [VectorRecord(bad_id, unit(1), b"\x00garbage")])
    assert [entry.id for entry in cache.entries()] == [ids[ROUTER]]
    assert cache.entry("llm:" + "a" * 32) is None


# -- drop ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_drop_by_id_removes_exactly_that_entry(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    neighbour = _cache(backend, fresh_namespace(), semantic=semantic)
    ids = _fill(cache)
    _fill(neighbour)
    cache.drop([ids[ROUTER]])
    assert {entry.prompt for entry in cache.entries()} == set(PROMPTS[1:])
    assert _answer(cache, ROUTER) is None
    if semantic:  # gone from the vector search too: a paraphrase finds nothing
        assert _answer(cache, ROUTER_PARAPHRASE) is None
        assert all(
            c.entry_id != ids[ROUTER] for c in cache.explain(LLM, Prompt.plain(ROUTER)).candidates
        )
    assert [_answer(cache, p) for p in PROMPTS[1:]] == [1, 2]
    assert [_answer(neighbour, p) for p in PROMPTS] == [0, 1, 2]
    cache.drop([ids[ROUTER]])  # already gone: not an error
    cache.drop([])


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
async def test_async_drop_and_listing(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    for number, prompt in enumerate(PROMPTS):
        await cache.aupdate(LLM, Prompt.plain(prompt), {"answer": number})
    ids = {entry.prompt: entry.id async for entry in cache.aentries()}
    assert set(ids) == set(PROMPTS)
    assert [e.id async for e in cache.aentries(limit=2)] != []
    await cache.adrop([ids[PROMPTS[1]]])
    assert await cache.aentry(ids[PROMPTS[1]]) is None
    dropped = await cache.adrop_prompt(LLM, Prompt.plain(ROUTER))
    assert dropped == ids[ROUTER]
    assert {e.prompt async for e in cache.aentries()} == {PROMPTS[2]}
    await cache.aexpire([ids[PROMPTS[2]]], 0.3)
    time.sleep(0.6)
    assert [e async for e in cache.aentries()] == []


def test_drop_prompt_removes_the_entry_a_lookup_would_serve(
    backend: Backend, namespace: str
) -> None:
    exact = _cache(backend, namespace, semantic=False)
    exact_ids = _fill(exact)
    assert exact.drop_prompt(LLM, Prompt.plain(ROUTER)) == exact_ids[ROUTER]
    assert exact.drop_prompt(LLM, Prompt.plain(ROUTER)) is None
    assert exact.drop_prompt("another-model", Prompt.plain(PROMPTS[1])) is None
    assert {e.prompt for e in exact.entries()} == set(PROMPTS[1:])

    semantic = _cache(backend, fresh_namespace(), semantic=True)
    ids = _fill(semantic)
    # A paraphrase: the entry its semantic hit would serve.
    assert semantic.drop_prompt(LLM, Prompt.plain(ROUTER_PARAPHRASE)) == ids[ROUTER]
    assert _answer(semantic, ROUTER) is None
    # The prompt itself, padded: its exact entry.
    assert semantic.drop_prompt(LLM, Prompt.plain("thanks! " + PROMPTS[1])) == ids[PROMPTS[1]]
    # A prompt that would miss drops nothing.
    assert semantic.drop_prompt(LLM, Prompt.plain("who wrote hamlet")) is None
    assert [e.prompt for e in semantic.entries()] == [PROMPTS[2]]


def test_bad_ids_are_clear_errors(backend: Backend, namespace: str) -> None:
    cache = _cache(backend, namespace, semantic=True)
    ids = _fill(cache, [ROUTER])
    with pytest.raises(TypeError, match="single str"):
        cache.drop(ids[ROUTER])  # type: ignore[arg-type]
    with pytest.raises(SemcacheInputError, match="not an entry id"):
        cache.drop(["kv:user-key"])
    with pytest.raises(SemcacheInputError, match="not an entry id"):
        cache.expire(["typo"], 10)
    with pytest.raises(TypeError, match="str"):
        cache.drop([7])  # type: ignore[list-item]
    assert [e.id for e in cache.entries()] == [ids[ROUTER]]


def test_explain_shows_the_ids_drop_takes(backend: Backend, namespace: str) -> None:
    cache = _cache(backend, namespace, semantic=True)
    ids = _fill(cache)
    explanation = cache.explain(LLM, Prompt.plain(ROUTER_PARAPHRASE))
    assert explanation.served == ids[ROUTER]
    assert set(explanation.candidate_ids) == set(ids.values())
    assert f"id {ids[ROUTER]}" in str(explanation)
    cache.drop([explanation.candidate_ids[0]])
    assert cache.explain(LLM, Prompt.plain(ROUTER_PARAPHRASE)).served is None


# -- runtime tuning ----------------------------------------------------------------------------
def test_set_threshold_takes_effect_and_is_validated(backend: Backend, namespace: str) -> None:
    cache = _cache(backend, namespace, semantic=True, distance_threshold=0.1)
    _fill(cache, [ROUTER])
    assert _answer(cache, ROUTER_PARAPHRASE) is None
    cache.set_threshold(0.3)
    assert cache.distance_threshold == 0.3
    assert _answer(cache, ROUTER_PARAPHRASE) == 0
    cache.set_threshold(0.05)
    assert _answer(cache, ROUTER_PARAPHRASE) is None
    for bad, error in ((-0.1, SemcacheInputError), (2.5, SemcacheInputError), ("0.2", TypeError)):
        with pytest.raises(error, match="distance_threshold"):
            cache.set_threshold(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cache.set_threshold(True)
    assert cache.distance_threshold == 0.05
    with pytest.raises(SemcacheInputError, match="exact cache"):
        _cache(backend, namespace, semantic=False).set_threshold(0.2)


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_set_ttl_applies_to_later_writes(backend: Backend, namespace: str, semantic: bool) -> None:
    cache = _cache(backend, namespace, semantic=semantic)
    cache.update(LLM, Prompt.plain(PROMPTS[0]), {"answer": 0})
    cache.set_ttl(0.3)
    cache.update(LLM, Prompt.plain(PROMPTS[1]), {"answer": 1})
    time.sleep(0.6)
    assert [_answer(cache, p) for p in PROMPTS[:2]] == [0, None]
    cache.set_ttl(None)
    cache.update(LLM, Prompt.plain(PROMPTS[2]), {"answer": 2})
    assert {e.prompt: e.expires for e in cache.entries()} == {PROMPTS[0]: None, PROMPTS[2]: None}
    for bad, error in (
        (0, SemcacheInputError),
        (-5, SemcacheInputError),
        (math.nan, SemcacheInputError),
        ("60", TypeError),
    ):
        with pytest.raises(error, match="ttl"):
            cache.set_ttl(bad)  # type: ignore[arg-type]
    refreshing = _cache(backend, namespace, semantic=semantic, ttl=60, refresh_ttl_on_hit=True)
    with pytest.raises(SemcacheInputError, match="refresh_ttl_on_hit"):
        refreshing.set_ttl(None)
    assert refreshing.ttl == 60


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_expire_sets_and_removes_an_entrys_expiry(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    cache = _cache(backend, namespace, semantic=semantic, ttl=0.4)
    ids = _fill(cache)
    cache.expire([ids[PROMPTS[0]]], None)  # kept forever
    cache.expire([ids[PROMPTS[1]]], 600)
    entry = cache.entry(ids[PROMPTS[1]])
    assert entry is not None and entry.expires is not None and entry.expires > time.time() + 590
    first = cache.entry(ids[PROMPTS[0]])
    assert first is not None and first.expires is None
    time.sleep(0.8)
    assert [_answer(cache, p) for p in PROMPTS] == [0, 1, None]
    cache.expire([ids[PROMPTS[2]]], None)  # expired already: stays gone
    assert cache.entry(ids[PROMPTS[2]]) is None
    with pytest.raises(SemcacheInputError, match="ttl"):
        cache.expire([ids[PROMPTS[0]]], 0)
    with pytest.raises(TypeError, match="ttl"):
        cache.expire([ids[PROMPTS[0]]], "10")  # type: ignore[arg-type]


# -- adapters ----------------------------------------------------------------------------------
def test_langchain_caches_forward_the_controls(backend: Backend, namespace: str) -> None:
    exact = ExactCache(backend, namespace=namespace)
    exact.update("p", LLM, [Generation(text="an answer")])
    (entry,) = exact.entries()
    assert (entry.prompt, entry.llm_string, entry.kind) == ("p", LLM, "exact")
    exact.expire([entry.id], 600)
    exact.set_ttl(60)
    assert exact.drop_prompt("p", LLM) == entry.id
    assert exact.lookup("p", LLM) is None

    semantic = SemanticCache(
        backend,
        embeddings=WordHashEmbeddings(),
        namespace=fresh_namespace(),
        distance_threshold=0.3,
    )
    semantic.update(ROUTER, LLM, [Generation(text="unplug it")])
    semantic.set_threshold(0.05)
    assert semantic.lookup(ROUTER_PARAPHRASE, LLM) is None
    semantic.set_threshold(0.3)
    assert semantic.drop_prompt(ROUTER_PARAPHRASE, LLM) is not None
    assert list(semantic.entries()) == []
    semantic.update(ROUTER, LLM, [Generation(text="unplug it")])
    (stored,) = semantic.entries()
    semantic.drop([stored.id])
    assert semantic.lookup(ROUTER, LLM) is None


async def test_llamaindex_cached_llm_forwards_the_controls(
    backend: Backend, namespace: str
) -> None:
    from llama_index.core.base.llms.types import ChatMessage

    from llamaindex_semcache import CachedLLM
    from tests.llama_fakes import CountingLLM

    llm = CachedLLM(CountingLLM(), backend, namespace=namespace)
    llm.complete("tell me a joke")
    llm.chat([ChatMessage(role="user", content="and another")])
    listed = {entry.query: entry for entry in llm.entries()}
    assert len(listed) == 2
    assert llm.drop_prompt("tell me a joke") is not None
    assert await llm.adrop_prompt([ChatMessage(role="user", content="and another")]) is not None
    assert [e async for e in llm.aentries()] == []
    llm.set_ttl(30)
    with pytest.raises(SemcacheInputError, match="exact cache"):
        llm.set_threshold(0.2)


# -- the CLI, in process, against real servers --------------------------------------------------
@pytest.fixture(params=["sqlite", "redis", "elasticsearch"])
def url(request: pytest.FixtureRequest, tmp_path: Path, server_pool: ServerPool) -> str:
    kind = str(request.param)
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    return server_pool.url(kind)


@pytest.fixture(params=[True, False], ids=["rich", "plain"])
def table_library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if not request.param:
        import semcache_core.cli_operator as cli_operator

        monkeypatch.setattr(cli_operator, "_rich", lambda: None)
    return bool(request.param)


def test_cli_entries_show_drop_expire_and_clear(
    url: str, namespace: str, table_library: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ResponseCache(url, namespace=namespace, ttl=3600)
    ids = _fill(cache)
    capsys.readouterr()
    assert main(["entries", url, "--namespace", namespace]) == 0
    table = capsys.readouterr().out
    assert "3 entries" in table and "first" not in table
    for prompt, entry_id in ids.items():
        assert prompt in table and entry_id in table
    assert "gpt-test" in table and "59m" in table  # the model, the TTL left

    assert main(["entries", url, "--namespace", namespace, "--limit", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    # a listing cut by --limit does not pass for the namespace's size
    assert main(["entries", url, "--namespace", namespace, "--limit", "2"]) == 0
    assert "first 2 entries" in capsys.readouterr().out

    assert main(["show", url, "--namespace", namespace, ids[ROUTER]]) == 0
    shown = capsys.readouterr().out
    assert ROUTER in shown and LLM in shown and "not tracked" in shown

    assert main(["expire", url, "--namespace", namespace, "--ttl", "none", ids[ROUTER]]) == 0
    entry = cache.entry(ids[ROUTER])
    assert entry is not None and entry.expires is None

    missing = "llm:" + "0" * 32
    assert main(["drop", url, "--namespace", namespace, ids[ROUTER], ids[PROMPTS[1]], missing]) == 0
    # three ids given, two stored: the message claims no count of dropped entries
    dropped = capsys.readouterr().out
    assert "3 given id(s)" in dropped and "not stored are skipped" in dropped
    assert [e.prompt for e in cache.entries()] == [PROMPTS[2]]
    assert main(["show", url, "--namespace", namespace, ids[ROUTER]]) == 1
    assert "no entry" in capsys.readouterr().err

    assert main(["clear", url, "--namespace", namespace]) == 2
    assert main(["clear", url, "--namespace", namespace, "--yes"]) == 0
    assert list(cache.entries()) == []
    cache.backend.close()


def test_cli_entries_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    cache = ResponseCache(url, namespace="app")
    body = {"value": {"answer": 1}, "prompt": "for acme", "llm_string": LLM}
    _plant(cache.backend, "app", "llm:" + "1" * 32, {**body, "scope": {"tenant": "acme"}})
    _plant(cache.backend, "app", "llm:" + "2" * 32, {**body, "prompt": "for others"})
    assert main(["entries", url, "--namespace", "app", "--filter", "tenant=acme", "--json"]) == 0
    assert [e["prompt"] for e in json.loads(capsys.readouterr().out)] == ["for acme"]
    with pytest.raises(SemcacheInputError, match="name=value"):
        main(["entries", url, "--namespace", "app", "--filter", "tenant"])


def test_entry_keys_are_the_key_layout() -> None:
    # The ids are the keys' own forms: an exact id is its key, a semantic id its record's id.
    ns = fresh_namespace()
    exact = keys.exact_entry_key(ns, LLM, "p")
    semantic = keys.semantic_entry_id(ns, keys.partition_key(ns, LLM, ""), "p")
    from semcache_core.entries import entry_id_of, entry_key

    assert entry_key(exact) == exact and entry_id_of(exact) == exact
    assert entry_key(semantic) == keys.vector_key(semantic)
    assert entry_id_of(keys.vector_key(semantic)) == semantic


def test_set_ttl_on_the_key_value_stores(backend: Backend, namespace: str) -> None:
    from langchain_semcache import BackendByteStore
    from llamaindex_semcache import BackendKVStore, CachedEmbedding
    from tests.llama_fakes import WordHashEmbedding

    store = BackendByteStore(backend, namespace=namespace)
    kv = BackendKVStore(backend, namespace=fresh_namespace())
    embeddings_namespace = fresh_namespace()
    embedding = CachedEmbedding(WordHashEmbedding(), backend, namespace=embeddings_namespace)
    store.mset([("kept", b"1")])
    kv.put("kept", {"v": 1})
    for each in (store, kv, embedding):
        each.set_ttl(0.3)
        with pytest.raises(SemcacheInputError, match="ttl"):
            each.set_ttl(-1)
    store.mset([("brief", b"2")])
    kv.put("brief", {"v": 2})
    embedding.get_text_embedding("a text embedded once")
    assert len(list(backend.iter_keys(embeddings_namespace))) == 1
    time.sleep(0.6)
    assert store.mget(["kept", "brief"]) == [b"1", None]
    assert (kv.get("kept"), kv.get("brief")) == ({"v": 1}, None)
    assert list(backend.iter_keys(embeddings_namespace)) == []


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_scoped_entries_list_filter_and_drop_within_their_scope(
    backend: Backend, namespace: str, semantic: bool
) -> None:
    from semcache_core import cache_scope

    cache = _cache(backend, namespace, semantic=semantic, filterable_fields=["tenant"])
    for tenant in ("acme", "other"):
        with cache_scope(tenant=tenant):
            cache.update(LLM, Prompt.plain(ROUTER), {"answer": tenant})
    cache.update(LLM, Prompt.plain(ROUTER), {"answer": "unscoped"})
    stored = cache.store("a stored prompt", "a response", scope=LLM, metadata={"source": "faq"})
    by_tenant = {entry.scope.get("tenant"): entry for entry in cache.entries()}
    assert set(by_tenant) == {"acme", "other", None}
    assert [e.value["answer"] for e in cache.entries(filters={"tenant": "acme"})] == ["acme"]
    listed = cache.entry(stored)
    assert listed is not None and listed.metadata == {"source": "faq"}

    # drop_prompt in a scope drops that scope's entry only; check() ids are drop's ids.
    with cache_scope(tenant="acme"):
        assert cache.drop_prompt(LLM, Prompt.plain(ROUTER)) == by_tenant["acme"].id
        assert cache.lookup(LLM, Prompt.plain(ROUTER)).body is None
    with cache_scope(tenant="other"):
        assert _answer(cache, ROUTER) == "other"
    assert _answer(cache, ROUTER) == "unscoped"
    (match,) = cache.check("a stored prompt", scope=LLM)
    assert match.id == stored
    cache.drop([match.id])
    assert cache.check("a stored prompt", scope=LLM) == []
    assert {e.scope.get("tenant") for e in cache.entries()} == {"other", None}
