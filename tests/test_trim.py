"""``trim``: a size limit applied on demand (Elasticsearch: oldest written first; the embedded
backend: least recently used first), on the backend and through ``semcache trim``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from semcache_core import Prompt, ResponseCache, SemcacheInputError, connect, persisted_stats
from semcache_core.cli import main as cli_main
from semcache_core.testing import HashingEmbedder
from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace


@pytest.fixture
def es_url(server_pool: ServerPool) -> str:
    if "elasticsearch" not in BACKEND_KINDS:
        pytest.skip("the elasticsearch backend kind is not selected")
    return server_pool.url("elasticsearch")


@pytest.fixture
def es(es_url: str) -> Iterator[Any]:
    index = f"semcache-trim-{fresh_namespace().lower()}"
    backend = connect(es_url, index=index, refresh=True)
    yield backend
    backend.close()
    from elasticsearch import Elasticsearch

    raw = Elasticsearch(es_url.removeprefix("elasticsearch+"))
    raw.options(ignore_status=404).indices.delete(index=index)
    raw.close()


def after_a_millisecond() -> None:
    """``created`` is in milliseconds: writes in one millisecond would tie."""
    time.sleep(0.002)


def present(backend: Any, namespace: str, keys: list[str]) -> list[str]:
    values = backend.get_many(namespace, keys)
    return [key for key, value in zip(keys, values, strict=True) if value is not None]


def test_elasticsearch_trim_keeps_the_newest_entries(es: Any, namespace: str) -> None:
    other = namespace + "-other"
    for i in range(8):
        es.set_many(namespace, [(f"k{i}", b"v")])
        after_a_millisecond()
    es.set_many(other, [("x", b"x")])
    es.incr_counters(namespace, "stats", {"writes": 8})

    assert es.trim(namespace, 3) == 5
    assert present(es, namespace, [f"k{i}" for i in range(8)]) == ["k5", "k6", "k7"]
    assert present(es, other, ["x"]) == ["x"]  # other namespaces untouched
    stats = persisted_stats(es, namespace)
    assert (stats["evictions"], stats["writes"]) == (5, 8)  # counters are not entries
    assert es.trim(namespace, 3) == 0


def test_elasticsearch_trim_removes_semantic_records_and_expired_first(
    es: Any, namespace: str
) -> None:
    cache = ResponseCache(es, namespace=namespace, embedder=HashingEmbedder())
    questions = ["how do I repot a fern", "what is the capital of peru", "who painted guernica"]
    for number, question in enumerate(questions):
        cache.update("model", Prompt.plain(question), {"text": str(number)}, tokens=0)
        after_a_millisecond()
    es.set_many(namespace, [("short-lived", b"v")], ttl=0.001)

    assert es.trim(namespace, 2) == 1  # the expired value went first, and is no eviction
    assert cache.lookup("model", Prompt.plain(questions[0])).outcome == "miss"
    for number, question in enumerate(questions[1:], start=1):
        found = cache.lookup("model", Prompt.plain(question))
        assert found.body is not None and found.body["value"] == {"text": str(number)}


async def test_elasticsearch_atrim(es: Any, namespace: str) -> None:
    await es.aset_many(namespace, [("a", b"a")])
    after_a_millisecond()
    await es.aset_many(namespace, [("b", b"b")])
    assert await es.atrim(namespace, 1) == 1
    assert await es.aget_many(namespace, ["a", "b"]) == [None, b"b"]


def test_elasticsearch_trim_rejects_bad_limits(es: Any, namespace: str) -> None:
    with pytest.raises(SemcacheInputError, match="at least 1"):
        es.trim(namespace, 0)
    with pytest.raises(TypeError, match="int or None"):
        es.trim(namespace, 3.5)


def test_the_cli_trims_elasticsearch(
    es: Any, es_url: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(4):
        es.set_many(namespace, [(f"k{i}", b"v")])
        after_a_millisecond()
    url = f"{es_url}?index={es.index}"
    assert cli_main(["trim", url, "--namespace", namespace, "--max-entries", "1"]) == 0
    assert "evicted 3 entries" in capsys.readouterr().out
    assert present(es, namespace, [f"k{i}" for i in range(4)]) == ["k3"]


def test_the_cli_trims_a_sqlite_file_least_recently_used_first(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'trim.db'}"
    backend = connect(url)
    for key in ("a", "b", "c"):
        backend.set_many(namespace, [(key, b"v")])
    assert cli_main(["trim", url, "--namespace", namespace, "--max-entries", "2"]) == 0
    assert "evicted 1 entries" in capsys.readouterr().out
    assert present(backend, namespace, ["a", "b", "c"]) == ["b", "c"]
    assert persisted_stats(backend, namespace)["evictions"] == 1
    with sqlite3.connect(tmp_path / "trim.db") as raw:
        assert raw.execute("SELECT count(*) FROM kv WHERE ns = ?", (namespace,)).fetchone() == (2,)


def test_the_cli_says_redis_has_no_trim(
    server_pool: ServerPool, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "redis" not in BACKEND_KINDS:
        pytest.skip("the redis backend kind is not selected")
    url = server_pool.url("redis")
    assert cli_main(["trim", url, "--namespace", namespace, "--max-entries", "2"]) == 2
    assert "maxmemory" in capsys.readouterr().err


def test_elasticsearch_trim_through_an_alias_over_an_index_from_before_created(
    es_url: str, namespace: str
) -> None:
    from elasticsearch import Elasticsearch

    from semcache_core.backends.elasticsearch import ElasticsearchBackend
    from semcache_core.backends.elasticsearch.schema import mapping
    from semcache_core.codecs import bytes_to_base64

    raw = Elasticsearch(es_url.removeprefix("elasticsearch+"))
    old, new = (f"semcache-trim-{fresh_namespace().lower()}" for _ in range(2))
    alias = old + "-alias"
    try:
        earlier = mapping()
        del earlier["properties"]["created"]  # the layout before trim existed
        raw.indices.create(index=old, mappings=earlier)
        key = "kv:written-long-ago"
        document_id = ElasticsearchBackend.from_url(es_url, index=old).ops._value_id(namespace, key)
        source = {"ns": namespace, "kind": "value", "key": key, "value": bytes_to_base64(b"o")}
        raw.index(index=old, id=document_id, document=source, refresh=True)
        ElasticsearchBackend.from_url(es_url, index=new).get_many(namespace, ["kv:x"])
        raw.indices.update_aliases(
            actions=[
                {"add": {"index": old, "alias": alias}},
                {"add": {"index": new, "alias": alias, "is_write_index": True}},
            ]
        )
        backend = ElasticsearchBackend.from_url(es_url, index=alias, refresh=True)
        backend.set_many(namespace, [("kv:a", b"a")])
        after_a_millisecond()
        backend.set_many(namespace, [("kv:b", b"b")])
        assert backend.get_many(namespace, [key]) == [b"o"]
        # NOIDA: the stand-in sorts on a field one index lacks even without `unmapped_type`;
        # Elasticsearch needs it (trim passes it), so this also runs on a real cluster.
        assert backend.trim(namespace, 2) == 1  # the document without `created` goes first
        assert present(backend, namespace, [key, "kv:a", "kv:b"]) == ["kv:a", "kv:b"]
        backend.close()
    finally:
        for index in (old, new):
            raw.options(ignore_status=404).indices.delete(index=index)
        raw.close()
