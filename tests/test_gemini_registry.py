"""ContextCacheRegistry over the real google-genai client and a fake Gemini API (issue 12).

Every registry test runs on SQLite, plain Redis and Elasticsearch registries; the pure parts
(keys, error classification, stats arithmetic) run without a server.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from semcache_core.context_cache import (
    ContextCacheRegistry,
    ContextSpec,
    GeminiProvider,
    is_refused_cache,
    summarize,
    too_small,
)
from semcache_core.errors import SemcacheInputError
from tests.fake_gemini import DOCUMENT, MODEL, NOT_FOUND_MESSAGE, FakeClock, FakeGemini, make_client

pytest_plugins = ["tests.gemini_fixtures"]

SYSTEM = "You answer questions about the document."
PRICES = {MODEL: {"input": 0.30, "cached_input": 0.03, "storage_per_hour": 1.00}}


def spec_of(document: str = DOCUMENT, system: str = SYSTEM) -> ContextSpec:
    return ContextSpec(MODEL, system_instruction=system, contents=[document])


def registry_for(url: str, client: Any, namespace: str, **options: Any) -> ContextCacheRegistry:
    return ContextCacheRegistry(
        url, provider=GeminiProvider(client), namespace=namespace, **options
    )


def ask(registry: ContextCacheRegistry, client: Any, spec: ContextSpec, prompt: str = "q") -> str:
    """One generate call the way an app makes it: cached prefix, or everything inline."""

    def send(name: str | None) -> Any:
        if name:
            config = types.GenerateContentConfig(cached_content=name)
            contents: list[Any] = [prompt]
        else:
            config = types.GenerateContentConfig(system_instruction=spec.system_instruction)
            contents = [*spec.contents, prompt]
        return client.models.generate_content(model=spec.model, contents=contents, config=config)

    return str(registry.call(spec, send).text)


def assert_all_cached(fake: FakeGemini) -> None:
    bodies = fake.generate_bodies()
    assert bodies
    for body in bodies:
        assert body.get("cachedContent")
        assert "systemInstruction" not in body and "tools" not in body


def assert_all_inline(fake: FakeGemini) -> None:
    for body in fake.generate_bodies():
        assert "cachedContent" not in body and "systemInstruction" in body


# -- pure -------------------------------------------------------------------------------------
def test_spec_key_is_stable_and_scoped() -> None:
    a = ContextSpec(MODEL, system_instruction="s", contents=["d", types.Part.from_text(text="e")])
    b = ContextSpec(MODEL, system_instruction="s", contents=["d", {"text": "e"}])
    assert a.key("scope") == b.key("scope")
    assert a.key("scope") != a.key("other scope")
    assert a.key("scope") != ContextSpec("other-model", "s", ["d", {"text": "e"}]).key("scope")
    assert a.key("scope") != ContextSpec(MODEL, "s", ["de"]).key("scope")
    with pytest.raises(TypeError, match="google-genai objects"):
        ContextSpec(MODEL, contents=[object()])


def test_error_classification() -> None:
    from google.genai import errors

    gone = errors.ClientError(
        403, {"error": {"code": 403, "message": NOT_FOUND_MESSAGE, "status": "PERMISSION_DENIED"}}
    )
    small = errors.ClientError(
        400,
        {
            "error": {
                "code": 400,
                "message": "Cached content is too small. total_token_count=12, min_total_token_count=1024",
                "status": "INVALID_ARGUMENT",
            }
        },
    )
    vertex = errors.ClientError(
        400,
        {
            "error": {
                "code": 400,
                "message": "The cached content is of 1250 tokens. The minimum token count to start caching is 4096.",
                "status": "INVALID_ARGUMENT",
            }
        },
    )
    wrapped = RuntimeError("framework error")
    wrapped.__cause__ = gone
    assert is_refused_cache(gone) and is_refused_cache(wrapped)
    assert not is_refused_cache(small) and not is_refused_cache(ValueError("x"))
    assert too_small(small) == (12, 1024) and too_small(vertex) == (1250, 4096)
    assert too_small(gone) is None


def test_summarize_prices() -> None:
    counters = {
        "creates": 1,
        "reuses": 3,
        f"cached_tokens|{MODEL}": 4_000_000,
        f"storage_token_hours|{MODEL}": 1_000_000,
    }
    stats = summarize(counters, PRICES)
    # 4M cached tokens save 0.27 each million; 1M token-hours of storage cost 1.00.
    assert stats["estimated_savings"] == pytest.approx(4 * 0.27 - 1.0)
    assert summarize(counters, None)["estimated_savings"] is None
    with pytest.raises(SemcacheInputError, match="storage_per_hour"):
        summarize(counters, {MODEL: {"input": 1, "cached_input": 0.1}})


def test_registry_validates_options(client: Any) -> None:
    with pytest.raises(SemcacheInputError, match="refresh_margin"):
        ContextCacheRegistry(provider=GeminiProvider(client), ttl=60, refresh_margin=60)
    with pytest.raises(TypeError, match=r"google\.genai\.Client"):
        GeminiProvider(object())


# -- one create per context -------------------------------------------------------------------
def test_threads_share_one_create(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    fake.create_latency = 0.3
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()
    barrier = threading.Barrier(8, timeout=60)
    answers: list[str] = []

    def worker() -> None:
        barrier.wait()
        answers.append(ask(registry, client, spec))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8
    assert fake.counts["create"] == 1
    assert fake.counts["generate"] == 8
    assert_all_cached(fake)
    stats = registry.stats()
    assert (stats["creates"], stats["reuses"], stats["inline_calls"]) == (1, 7, 0)


def _process_worker(fake_url: str, url: str, namespace: str, start: Any, results: Any) -> None:
    # Every outcome reaches the queue, so the parent never waits on a worker that died.
    try:
        client = make_client(fake_url)
        registry = registry_for(url, client, namespace)
        start.wait(timeout=60)
        results.put(("ok", ask(registry, client, spec_of())))
    except BaseException as exc:  # reported to the parent, which fails
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_share_one_create(
    fake: FakeGemini, registry_url: str, context_namespace: str
) -> None:
    fake.create_latency = 0.5
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    results = spawn.Queue()
    processes = [
        spawn.Process(
            target=_process_worker,
            args=(fake.url, registry_url, context_namespace, start, results),
            daemon=True,
        )
        for _ in range(4)
    ]
    try:
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
    finally:
        # A worker stuck anywhere must not keep pytest (and CI) alive after a failure.
        for process in processes:
            if process.is_alive():
                process.kill()
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert all(process.exitcode == 0 for process in processes)
    assert fake.counts["create"] == 1
    assert fake.counts["generate"] == 4
    assert_all_cached(fake)


def test_waiter_times_out_inline_when_holder_crashed(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace, create_wait=0.3)
    spec = spec_of()
    key = registry.key(spec)
    # A worker took the lease and died (its lease lives create_wait seconds; here longer).
    registry.backend.set_if_absent(context_namespace, "lease:" + key, b"crashed", ttl=1.5)
    ask(registry, client, spec)
    assert fake.counts["create"] == 0
    assert_all_inline(fake)
    time.sleep(1.3)
    ask(registry, client, spec)  # the lease has expired: this call creates
    assert fake.counts["create"] == 1


# -- never a failed call ----------------------------------------------------------------------
def test_deleted_cache_is_recreated_once(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()
    ask(registry, client, spec)
    first = fake.live_caches()[0].name
    fake.delete_all()
    assert ask(registry, client, spec)
    assert fake.counts["create"] == 2
    assert fake.counts["generate"] == 3  # the refused call, then the retry
    assert fake.live_caches()[0].name != first
    assert_all_cached(fake)
    assert registry.stats()["recreations"] == 1
    ask(registry, client, spec)
    assert fake.counts["create"] == 2


def test_refused_twice_goes_inline(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()
    ask(registry, client, spec)
    fake.fail(
        "generate",
        400,
        "FAILED_PRECONDITION",
        "The cached content is in an invalid state.",
        times=2,
    )
    assert ask(registry, client, spec)
    bodies = fake.generate_bodies()
    assert [bool(b.get("cachedContent")) for b in bodies] == [True, True, True, False]
    assert fake.counts["create"] == 2


def test_other_errors_reach_the_app(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    from google.genai import errors

    registry = registry_for(registry_url, client, context_namespace)
    fake.fail("generate", 400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    with pytest.raises(errors.ClientError, match="invalid argument"):
        ask(registry, client, spec_of())
    assert fake.counts["generate"] == 1


def test_failed_create_goes_inline_with_backoff(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str, caplog: Any
) -> None:
    registry = registry_for(registry_url, client, context_namespace, failure_backoff=30)
    fake.fail("create", 500, "INTERNAL", "An internal error has occurred.")
    with caplog.at_level(logging.WARNING, logger="semcache"):
        ask(registry, client, spec_of())
        ask(registry, client, spec_of())
    assert fake.counts["create"] == 1
    assert_all_inline(fake)
    assert "could not create a Gemini context cache" in caplog.text


@pytest.fixture
def killable_redis() -> Any:
    from tests import servers

    server = servers.start_redis(query_engine=False)
    yield server
    server.stop()


def test_backend_killed_goes_inline(
    fake: FakeGemini, client: Any, killable_redis: Any, context_namespace: str, caplog: Any
) -> None:
    registry = registry_for(killable_redis.url, client, context_namespace)
    spec = spec_of()
    ask(registry, client, spec)
    killable_redis.stop()
    with caplog.at_level(logging.WARNING, logger="semcache"):
        for _ in range(3):
            assert ask(registry, client, spec)
    assert "semcache" in caplog.text and "failed" in caplog.text
    assert [bool(b.get("cachedContent")) for b in fake.generate_bodies()] == [True] + [False] * 3
    assert registry.stats()["inline_calls"] == 3  # this process's counters


def test_unreachable_backend_goes_inline(
    fake: FakeGemini, client: Any, context_namespace: str
) -> None:
    from tests.servers import _free_port

    registry = registry_for(
        f"elasticsearch+http://127.0.0.1:{_free_port()}", client, context_namespace
    )
    assert ask(registry, client, spec_of())
    assert_all_inline(fake)


def test_locked_sqlite_goes_inline(
    fake: FakeGemini, client: Any, context_namespace: str, tmp_path: Any, caplog: Any
) -> None:
    import sqlite3

    from semcache_core.backends.embedded import EmbeddedBackend

    path = tmp_path / "locked.db"
    registry = ContextCacheRegistry(
        EmbeddedBackend(str(path), busy_timeout=0.1),
        provider=GeminiProvider(client),
        namespace=context_namespace,
    )
    # Another process holds the write lock beyond busy_timeout: the registry cannot write.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="semcache"):
            assert ask(registry, client, spec_of())
            assert ask(registry, client, spec_of())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert fake.counts["create"] == 0
    assert_all_inline(fake)
    assert "database is locked" in caplog.text


# -- minimum size -----------------------------------------------------------------------------
def test_too_small_is_remembered(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace, min_size_memory=1.0)
    tiny = spec_of(document="a short document", system="be brief")
    for _ in range(3):
        ask(registry, client, tiny)
    assert fake.counts["create"] == 1
    assert_all_inline(fake)
    # Another worker (a new registry on the same backend) does not try either.
    other = registry_for(registry_url, client, context_namespace)
    ask(other, client, tiny)
    assert fake.counts["create"] == 1
    time.sleep(1.3)
    ask(registry, client, tiny)  # the memory expired: one more attempt
    assert fake.counts["create"] == 2


def test_first_guess_table_skips_clearly_small_contexts(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    spec = ContextSpec("gemini-2.5-pro", system_instruction="be brief", contents=["tiny"])
    registry.call(spec, lambda name: client.models.generate_content(model=spec.model, contents="q"))
    assert fake.counts["create"] == 0
    assert registry.stats()["inline_calls"] == 1


# -- TTL --------------------------------------------------------------------------------------
def test_refresh_once_per_window_idle_never(
    fake: FakeGemini, client: Any, clock: FakeClock, registry_url: str, context_namespace: str
) -> None:
    options = {"ttl": 600, "refresh_margin": 60, "clock": clock}
    registry = registry_for(registry_url, client, context_namespace, **options)
    worker2 = registry_for(registry_url, client, context_namespace, **options)
    used, idle = spec_of(), spec_of(document=DOCUMENT + " idle")
    ask(registry, client, used)
    ask(registry, client, idle)
    clock.advance(560)  # 40 s left < refresh_margin
    threads = [
        threading.Thread(target=ask, args=(r, client, used)) for r in (registry, worker2) * 3
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.counts["update"] == 1
    ask(registry, client, used)
    assert fake.counts["update"] == 1  # the next window is 540 s away
    clock.advance(560)
    ask(worker2, client, used)
    assert fake.counts["update"] == 2
    assert fake.counts["create"] == 2  # the used one stayed alive; nothing recreated
    live = {c.name for c in fake.live_caches()}
    assert len(live) == 1  # the idle one was left to expire
    assert registry.stats()["refreshes"] == 2


# -- release and sweep ------------------------------------------------------------------------
def test_release_deletes_cache_and_record(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()
    ask(registry, client, spec)
    assert registry.release(spec) is True
    assert fake.counts["delete"] == 1 and fake.live_caches() == []
    assert registry.release(spec) is False
    ask(registry, client, spec)
    assert fake.counts["create"] == 2


def test_sweep(fake: FakeGemini, client: Any, registry_url: str, context_namespace: str) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    a, b, c = spec_of(), spec_of(document=DOCUMENT + " b"), spec_of(document=DOCUMENT + " c")
    for spec in (a, b, c):
        ask(registry, client, spec)
    by_name = {cache.display_name: cache.name for cache in fake.live_caches()}
    # b's cache vanished at the provider; c's record was lost (an orphan at the provider).
    client.caches.delete(name=by_name[registry.display_name(registry.key(b))])
    registry.backend.delete_many(context_namespace, ["ctx:" + registry.key(c)])
    # A cache of another namespace is never touched.
    other = registry_for(registry_url, client, context_namespace + "-other")
    ask(other, client, spec_of(document=DOCUMENT + " other"))
    report = registry.sweep()
    assert report.records == 2 and report.live == 1
    assert report.stale_records_removed == [registry.key(b)]
    orphan = by_name[registry.display_name(registry.key(c))]
    assert report.orphans == [orphan] and report.orphans_deleted == []
    report = registry.sweep(delete_orphans=True)
    assert report.orphans_deleted == [orphan]
    assert len(fake.live_caches()) == 2  # a's, and the other namespace's


# -- usage and cost ---------------------------------------------------------------------------
def test_stats_with_prices(
    fake: FakeGemini, client: Any, clock: FakeClock, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(
        registry_url, client, context_namespace, prices=PRICES, ttl=3600, clock=clock
    )
    spec = spec_of()
    for _ in range(3):
        ask(registry, client, spec)
    tokens = fake.live_caches()[0].tokens
    stats = registry.stats()
    assert (stats["creates"], stats["reuses"], stats["inline_calls"]) == (1, 2, 0)
    assert stats["cached_tokens"] == 3 * tokens
    assert stats["storage_token_hours"] == pytest.approx(tokens * 1.0)
    expected = 3 * tokens * (0.30 - 0.03) / 1e6 - tokens * 1.0 * 1.00 / 1e6
    assert stats["estimated_savings"] == pytest.approx(expected)
    assert stats["by_model"][MODEL]["estimated_savings"] == pytest.approx(expected)


def test_cli_stats_shows_context_counters(
    fake: FakeGemini, client: Any, tmp_path: Any, context_namespace: str, capsys: Any
) -> None:
    import json

    from semcache_core.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    registry = registry_for(url, client, context_namespace)
    ask(registry, client, spec_of())
    ask(registry, client, spec_of())
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    assert (
        main(["stats", url, "--namespace", context_namespace, "--json", "--prices", str(prices)])
        == 0
    )
    context = json.loads(capsys.readouterr().out)["context_cache"]
    assert (context["creates"], context["reuses"]) == (1, 1)
    assert context["cached_tokens"] > 0 and context["estimated_savings"] is not None
    assert main(["stats", url, "--namespace", context_namespace]) == 0
    assert "context_cache" in capsys.readouterr().out


# -- async and streams ------------------------------------------------------------------------
async def test_async_tasks_share_one_create(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    fake.create_latency = 0.2
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()

    async def send(name: str | None) -> Any:
        config = types.GenerateContentConfig(cached_content=name) if name else None
        return await client.aio.models.generate_content(model=MODEL, contents="q", config=config)

    results = await asyncio.gather(*(registry.acall(spec, send) for _ in range(6)))
    assert all(r.text for r in results)
    assert fake.counts["create"] == 1
    assert_all_cached(fake)
    context = await registry.aacquire(spec)
    assert context is not None and context.name == fake.live_caches()[0].name
    fake.delete_all()
    chunks = [
        c.text
        async for c in registry.astream(
            spec,
            lambda name: client.aio.models.generate_content_stream(
                model=MODEL, contents="q", config=types.GenerateContentConfig(cached_content=name)
            ),
        )
    ]
    assert "".join(chunks).startswith("answer from")
    assert fake.counts["create"] == 2
    assert await registry.arelease(spec) is True
    report = await registry.asweep()
    assert report.records == 0
    assert (await registry.astats())["recreations"] == 1


def test_stream_retried_before_first_chunk(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str
) -> None:
    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()

    def open_stream(name: str | None) -> Any:
        config = (
            types.GenerateContentConfig(cached_content=name)
            if name
            else types.GenerateContentConfig(system_instruction=SYSTEM)
        )
        return client.models.generate_content_stream(model=MODEL, contents="q", config=config)

    assert "".join(c.text for c in registry.stream(spec, open_stream))
    fake.delete_all()
    assert "".join(c.text for c in registry.stream(spec, open_stream))
    assert fake.counts["create"] == 2 and fake.counts["stream"] == 3
    assert registry.stats()["cached_tokens"] > 0


# -- the pure layer: a flow's steps, no server --------------------------------------------------
def test_first_acquire_steps(client: Any, tmp_path: Path) -> None:
    """The steps of a first acquire, performed by hand: read, lease, re-read, create, record,
    unlease. Backend steps (SQL, on the SQLite backend) go to the backend; the provider step
    is answered here."""
    from semcache_core.backends.embedded import Query, Swap, Write
    from semcache_core.context_cache.flow import Remote
    from semcache_core.context_cache.provider import RemoteCache

    registry = ContextCacheRegistry(
        f"sqlite:///{tmp_path / 'pure.db'}", provider=GeminiProvider(client), namespace="pure"
    )
    spec = spec_of()
    key = registry.key(spec)
    flow = registry._acquire(spec, key)
    step = next(flow)
    assert isinstance(step, Query) and ["ctx:" + key, "small:" + key, "lease:" + key] == list(
        step.params[1:4]
    )
    step = flow.send(registry.backend.execute(step))
    assert isinstance(step, Swap) and (step.key, step.expected) == ("lease:" + key, None)
    step = flow.send(registry.backend.execute(step))
    assert isinstance(step, Query) and list(step.params[1:]) == ["ctx:" + key, "small:" + key]
    step = flow.send(registry.backend.execute(step))
    assert isinstance(step, Remote) and step.op == "create"
    assert step.args[2] == f"semcache:{key}:pure"
    expire = time.time() + 3600
    step = flow.send(RemoteCache("cachedContents/x", MODEL, step.args[2], expire, 200))
    assert isinstance(step, Write) and step.statements[0][1][1] == "ctx:" + key
    step = flow.send(registry.backend.execute(step))
    assert isinstance(step, Write) and step.statements[0][1] == ("pure", "lease:" + key)
    with pytest.raises(StopIteration) as stop:
        flow.send(registry.backend.execute(step))
    context, counts = stop.value.value
    assert context.name == "cachedContents/x" and counts["creates"] == 1


def test_backend_error_means_inline(client: Any) -> None:
    from semcache_core.errors import BackendError

    registry = ContextCacheRegistry(provider=GeminiProvider(client), namespace="pure")
    flow = registry._call(spec_of())
    next(flow)  # the first read
    step = flow.throw(BackendError("down"))
    assert step.name is None  # Attempt(None): the context goes inline


# -- untrusted records ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "planted",
    [
        b"not json",
        b"[" * 100_000,
        b'{"name": 5, "expire_time": 9e99}',
        b'{"name": "cachedContents/x", "expire_time": "soon"}',
        b'{"name": "cachedContents/x", "expire_time": 9e99, "tokens": "many"}',
    ],
    ids=["not-json", "nested", "name-not-text", "expiry-not-number", "tokens-not-number"],
)
def test_corrupt_records_are_ignored(
    fake: FakeGemini, client: Any, registry_url: str, context_namespace: str, planted: bytes
) -> None:
    """A record anyone could have written under the registry's keys is untrusted: a corrupt
    one is ignored (the context gets a cache of its own), never an exception in the app. (A
    planted size note, ``small:``, only sends the context inline, which is safe.)"""
    from semcache_core.backends import connect
    from semcache_core.context_cache.records import REC, model_id

    registry = registry_for(registry_url, client, context_namespace)
    spec = spec_of()
    key = registry.key(spec)
    backend = connect(registry_url)
    model_key = registry._model_key(model_id(spec.model))  # the learned minimum size
    backend.set_many(context_namespace, [(REC + key, planted), (model_key, planted)])
    assert ask(registry, client, spec)
    assert fake.counts["create"] == 1
    assert_all_cached(fake)
    backend.close()
