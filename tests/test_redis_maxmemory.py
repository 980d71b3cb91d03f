"""Redis under ``maxmemory``: what Redis evicts becomes a miss, never an error or a wrong answer.

Each test runs on a server of its own (started here: the session's servers are shared and keep
their memory), with a small ``maxmemory`` and one ``maxmemory-policy``, fills a namespace past
it and checks every answer: the right response, or a miss.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from semcache_core import Prompt, ResponseCache, StorageFullError, connect
from semcache_core.testing import HashingEmbedder

redis = pytest.importorskip("redis")
servers = pytest.importorskip("tests.servers")

MAXMEMORY = "3mb"
FILLER = "x" * 800


@pytest.fixture(scope="module", params=["redis", "redis-qe"])
def small_redis(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    kind = str(request.param)
    try:
        server = servers.start_redis(query_engine=kind == "redis-qe")
    except RuntimeError as exc:  # no Query Engine binary here
        pytest.skip(str(exc))
    try:
        yield kind, server.url
    finally:
        server.stop()


def prepared(url: str, policy: str) -> Any:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_set("maxmemory", MAXMEMORY)
    client.config_set("maxmemory-policy", policy)
    client.config_resetstat()
    return client


def question(i: int) -> Prompt:
    return Prompt.plain(f"question {i} about widget model {i * 13}")


def answer_of(body: dict[str, Any] | None) -> int | None:
    return None if body is None else int(body["value"]["text"].split()[1])


def fill(cache: ResponseCache, client: Any, *, at_least: int, until_evicted: bool) -> int:
    """Entries written: ``at_least``, and on until Redis evicted a good number of keys (if
    asked: a few evicted keys might all be logs or counters rather than entries)."""
    written = 0
    while written < at_least or (
        until_evicted and client.info("stats")["evicted_keys"] < 200 and written < 30_000
    ):
        value = {"text": f"answer {written} {FILLER}"}
        cache.update("model", question(written), value, tokens=0)
        written += 1
    return written


def backend_for(kind: str, url: str) -> Any:
    return connect(url, vector_search="query-engine" if kind == "redis-qe" else "mirror")


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl"])
@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_evicted_entries_are_misses_and_the_rest_answer_right(
    small_redis: tuple[str, str], policy: str, semantic: bool
) -> None:
    kind, url = small_redis
    client = prepared(url, policy)
    backend = backend_for(kind, url)
    embedder = HashingEmbedder() if semantic else None
    # A TTL on every entry, so the volatile policies may evict them.
    cache = ResponseCache(backend, namespace="filled", embedder=embedder, ttl=3600)
    written = fill(cache, client, at_least=500, until_evicted=True)
    assert client.info("stats")["evicted_keys"] >= 200

    hits = 0
    for i in range(written):
        result = cache.lookup("model", question(i))
        found = answer_of(result.body)
        assert found in (None, i), f"question {i} was answered with entry {found}"
        hits += found is not None
    assert 0 < hits < written
    if semantic:  # through the vector search (mirror log / Query Engine index), not by id
        for i in range(0, written, 50):
            result = cache.lookup(
                "model", Prompt.plain(f"question {i} about widget model {i * 13} please now")
            )
            assert answer_of(result.body) in (None, i)
    assert cache.stats_snapshot()["backend_errors"] == 0
    backend.close()


@pytest.mark.parametrize("semantic", [False, True], ids=["exact", "semantic"])
def test_noeviction_skips_writes_and_keeps_serving(
    small_redis: tuple[str, str], semantic: bool
) -> None:
    kind, url = small_redis
    client = prepared(url, "noeviction")
    backend = backend_for(kind, url)
    embedder = HashingEmbedder() if semantic else None
    cache = ResponseCache(backend, namespace="full", embedder=embedder)
    written = fill(cache, client, at_least=6000, until_evicted=False)
    skipped = cache.stats_snapshot()["backend_errors"]
    if kind == "redis-qe" and semantic and skipped == 0:
        pytest.skip("this server let the index grow past maxmemory: nothing was refused")
    assert skipped > 0  # Redis refused writes (OOM): skipped, not raised
    # The breaker stayed closed: what was stored before Redis filled up is still served.
    assert answer_of(cache.lookup("model", question(0)).body) == 0
    for i in range(0, written, 97):
        assert answer_of(cache.lookup("model", question(i)).body) in (None, i)
    assert client.info("stats")["evicted_keys"] == 0

    backend.close()


def test_noeviction_refusals_raise_storage_full_under_raise(small_redis: tuple[str, str]) -> None:
    kind, url = small_redis
    client = prepared(url, "noeviction")
    backend = backend_for(kind, url)
    fill(ResponseCache(backend, namespace="full"), client, at_least=6000, until_evicted=False)
    written = 6000
    strict = ResponseCache(backend, namespace="full", on_backend_error="raise")
    refusals: list[Exception] = []
    for i in range(written, written + 200):  # memory hovers at the limit: some writes fit
        try:
            strict.update("model", question(i), {"text": f"answer {i} {FILLER}"}, tokens=0)
        except StorageFullError as exc:
            refusals.append(exc)
    assert refusals and all("full" in str(exc) for exc in refusals)
    backend.close()
