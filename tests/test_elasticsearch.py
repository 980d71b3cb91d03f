"""Elasticsearch-specific behaviour, beyond the contract every backend passes.

Runs against the session's Elasticsearch-compatible server (noida-db, see ``tests/servers.py``)
or the cluster named by ``ELASTICSEARCH_URL``. Each test uses indices of its own, deleted
afterwards. Where noida-db differs from Elasticsearch, the test that works around it says so
in a comment starting with ``NOIDA:``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from semcache_core import VectorRecord, connect
from semcache_core.backends.elasticsearch import ElasticsearchBackend
from semcache_core.backends.elasticsearch.schema import doc_id, now_ms
from semcache_core.codecs import (
    Vector,
    as_vector,
    bytes_from_base64,
    normalize,
    vector_from_base64,
)
from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheInputError,
    VectorDimensionError,
)
from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace

pytestmark = pytest.mark.elasticsearch

DIM = 8


def unit(*values: float, dim: int = DIM) -> Vector:
    padded = list(values) + [0.0] * (dim - len(values))
    return normalize(as_vector(padded))


def at_distance(distance: float) -> Vector:
    """A unit vector at cosine distance ``distance`` from ``unit(1)``."""
    cos = 1.0 - distance
    return unit(cos, float(np.sqrt(max(0.0, 1.0 - cos * cos))))


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds (a server task may run after its request returned)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    params: dict[str, str]
    body: Any


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def es_url(server_pool: ServerPool) -> str:
    if "elasticsearch" not in BACKEND_KINDS:
        pytest.skip("the elasticsearch backend kind is not selected")
    return server_pool.url("elasticsearch")


@pytest.fixture
def http_url(es_url: str) -> str:
    return es_url.removeprefix("elasticsearch+")


@pytest.fixture
def raw(http_url: str) -> Iterator[Elasticsearch]:
    """A plain client to look at what the backend stored."""
    client = Elasticsearch(http_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def new_index(raw: Elasticsearch) -> Iterator[Callable[[], str]]:
    """Fresh index names; every index (and its aliases) is deleted at the end."""
    names: list[str] = []

    def make() -> str:
        names.append(f"semcache-test-{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    for name in names:
        raw.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture
def index_name(new_index: Callable[[], str]) -> str:
    return new_index()


@pytest.fixture
def make(es_url: str, index_name: str) -> Iterator[Callable[..., ElasticsearchBackend]]:
    """Backends from the URL, on this test's index unless ``index=`` says otherwise."""
    made: list[ElasticsearchBackend] = []

    def factory(**options: Any) -> ElasticsearchBackend:
        options.setdefault("index", index_name)
        backend = ElasticsearchBackend.from_url(es_url, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def spied(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Elasticsearch, list[Sent]]]:
    """A client that records every request it sends (method, path, query parameters, body)."""
    client = Elasticsearch(http_url, request_timeout=30)
    sent: list[Sent] = []
    original = client.transport.perform_request

    def record(method: str, target: str, **kwargs: Any) -> Any:
        parts = urlsplit(target)
        sent.append(Sent(method, parts.path, dict(parse_qsl(parts.query)), kwargs.get("body")))
        return original(method, target, **kwargs)

    monkeypatch.setattr(client.transport, "perform_request", record)
    yield client, sent
    client.close()


def requests_to(sent: list[Sent], suffix: str) -> list[Sent]:
    return [s for s in sent if s.path.endswith(suffix)]


# --- the layout -------------------------------------------------------------------------------
def test_mapping_is_strict_and_stores_base64_in_binary_fields(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    backend = make()
    vector = unit(1, 2, 3)
    backend.set_many(namespace, [("kv:a", b"\x00\xff binary")], ttl=600)
    backend.add_vectors(
        namespace, "p", [VectorRecord("r1", vector, b"payload", {"user": "a=b", "x=y": "z"})]
    )

    mappings = raw.indices.get_mapping(index=index_name)[index_name]["mappings"]
    fields = mappings["properties"]
    assert mappings["dynamic"] == "strict"
    for name in ("ns", "kind", "key", "part", "tags"):
        assert fields[name]["type"] == "keyword"
    for name in ("value", "vector"):
        assert fields[name]["type"] == "binary"
        assert fields[name].get("doc_values", False) is False
    assert fields["expires_at"] == {"type": "date", "format": "epoch_millis"}
    knn = fields[f"knn_{DIM}"]
    assert (knn["type"], knn["dims"], knn["similarity"], knn["index"]) == (
        "dense_vector",
        DIM,
        "cosine",
        True,
    )
    assert knn["index_options"]["type"] == "hnsw"  # exact float scores, not int8
    assert mappings["_source"]["excludes"] == ["knn_*"]

    value = raw.get(index=index_name, id=f"{namespace}:kv:a")["_source"]
    assert (value["ns"], value["kind"], value["key"]) == (namespace, "value", "kv:a")
    assert bytes_from_base64(value["value"]) == b"\x00\xff binary"
    assert value["expires_at"] > now_ms()

    record = raw.get(index=index_name, id=f"{namespace}:vec:r1")["_source"]
    np.testing.assert_array_equal(vector_from_base64(record["vector"], dim=DIM), vector)
    assert bytes_from_base64(record["value"]) == b"payload"
    assert (record["kind"], record["key"], record["part"]) == ("vector", "r1", "p")
    # ``=`` in a tag *name* is escaped, so name and value split unambiguously.
    assert sorted(record["tags"]) == ["user=a=b", "x\\=y=z"]
    assert "expires_at" not in record
    # NOIDA: noida-db ignores the mapping's ``_source.excludes`` and keeps the float array in
    # _source; Elasticsearch leaves ``knn_8`` out and only the base64 copy is stored.


def test_long_keys_get_a_hashed_id_and_still_round_trip(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    backend = make()
    long_key = "kv:" + "é" * 400  # 803 bytes: more than Elasticsearch's 512-byte id limit
    backend.set_many(namespace, [(long_key, b"v"), ("kv:short", b"s")])
    assert backend.get_many(namespace, [long_key, "kv:short"]) == [b"v", b"s"]
    assert sorted(backend.iter_keys(namespace, "kv:")) == sorted([long_key, "kv:short"])
    stored_id = doc_id(namespace, "", long_key)
    assert len(stored_id.encode()) <= 512 and "#" in stored_id
    assert raw.get(index=index_name, id=stored_id)["_source"]["key"] == long_key
    backend.delete_many(namespace, [long_key])
    assert backend.get_many(namespace, [long_key]) == [None]


def test_reserved_value_keys_are_refused(
    make: Callable[..., ElasticsearchBackend], namespace: str
) -> None:
    with pytest.raises(SemcacheInputError, match="reserves"):
        make().set_many(namespace, [("vec:x", b"v")])


# --- aliases and conflicts ----------------------------------------------------------------------
def test_alias_is_written_through_with_require_alias(
    es_url: str,
    raw: Elasticsearch,
    new_index: Callable[[], str],
    spied: tuple[Elasticsearch, list[Sent]],
    namespace: str,
) -> None:
    concrete = new_index()
    owner = ElasticsearchBackend.from_url(es_url, index=concrete)
    owner.get_many(namespace, ["kv:none"])  # creates the index with semcache's mapping
    owner.close()
    alias = concrete + "-alias"
    raw.indices.put_alias(index=concrete, name=alias)

    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=alias)
    backend.set_many(namespace, [("kv:a", b"1")])
    backend.add_vectors(namespace, "p", [VectorRecord("r", unit(1), b"v")])
    backend.incr_counters(namespace, "stats", {"hits": 1})
    assert backend.is_alias
    assert backend.get_many(namespace, ["kv:a"]) == [b"1"]
    assert [
        h.id for h in backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
    ] == ["r"]
    assert raw.get(index=concrete, id=f"{namespace}:kv:a")["found"]
    writes = requests_to(sent, "/_bulk") + [s for s in sent if "/_update/" in s.path]
    assert len(writes) == 3
    assert all(s.params.get("require_alias") == "true" for s in writes)

    # Without the alias, a write fails instead of creating an index named like the alias.
    raw.indices.delete_alias(index=concrete, name=alias)
    with pytest.raises(SchemaConflictError, match="alias"):
        backend.set_many(namespace, [("kv:b", b"2")])
    assert not raw.indices.exists(index=alias)


def test_alias_to_several_indices_is_a_conflict(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, new_index: Callable[[], str]
) -> None:
    first, second = new_index(), new_index()
    for name in (first, second):
        raw.indices.create(index=name)
    alias = first + "-both"
    raw.indices.put_alias(index=[first, second], name=alias)
    with pytest.raises(SchemaConflictError, match="exactly one index"):
        make(index=alias).get_many(fresh_namespace(), ["kv:a"])


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"key": {"type": "text"}}, "field 'key'"),
        ({"value": {"type": "keyword"}}, "field 'value'"),
        ({"expires_at": {"type": "date", "format": "strict_date"}}, "date format"),
        ({"knn_8": {"type": "keyword"}}, "knn_8"),
        (
            {"knn_8": {"type": "dense_vector", "dims": 8, "similarity": "dot_product"}},
            "cosine",
        ),
    ],
    ids=["key-text", "value-keyword", "expiry-format", "knn-keyword", "knn-dot-product"],
)
def test_conflicting_mapping_is_a_schema_conflict_error(
    make: Callable[..., ElasticsearchBackend],
    raw: Elasticsearch,
    index_name: str,
    properties: dict[str, Any],
    message: str,
) -> None:
    raw.indices.create(index=index_name, mappings={"properties": properties})
    with pytest.raises(SchemaConflictError, match=message):
        make().add_vectors(fresh_namespace(), "p", [VectorRecord("r", unit(1), b"v")])


def test_existing_index_without_our_fields_gets_them(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    raw.indices.create(index=index_name, mappings={"properties": {"other": {"type": "keyword"}}})
    raw.index(index=index_name, id="unrelated", document={"other": "x"}, refresh=True)
    backend = make()
    backend.set_many(namespace, [("kv:a", b"1")])
    assert backend.get_many(namespace, ["kv:a"]) == [b"1"]
    fields = raw.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert fields["value"]["type"] == "binary" and fields["other"]["type"] == "keyword"
    backend.clear(namespace)
    assert raw.get(index=index_name, id="unrelated")["found"]  # never touched


# --- TTL ----------------------------------------------------------------------------------------
def test_ttl_hides_expired_entries_and_purge_deletes_them(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    backend = make(purge_interval=None)
    other = fresh_namespace()
    backend.set_many(namespace, [("kv:short", b"x")], ttl=0.3)
    backend.set_many(namespace, [("kv:long", b"y")], ttl=600)
    backend.set_many(namespace, [("kv:forever", b"z")])
    backend.add_vectors(namespace, "p", [VectorRecord("short", unit(1), b"s")], ttl=0.3)
    backend.add_vectors(namespace, "p", [VectorRecord("long", at_distance(0.1), b"l")])
    backend.set_many(other, [("kv:short", b"o")], ttl=0.3)
    time.sleep(0.6)

    keys = ["kv:short", "kv:long", "kv:forever"]
    assert backend.get_many(namespace, keys) == [None, b"y", b"z"]
    assert sorted(backend.iter_keys(namespace)) == ["kv:forever", "kv:long"]
    hits = backend.search_vectors(namespace, "p", unit(1), k=5, max_distance=0.5)
    assert [h.id for h in hits] == ["long"]
    assert backend.get_vector_payloads(namespace, ["short", "long"]) == [None, b"l"]
    # Hidden, not yet deleted: Elasticsearch has no TTL of its own.
    assert raw.get(index=index_name, id=f"{namespace}:kv:short")["found"]

    assert backend.purge_expired(namespace) == 2
    missing = raw.options(ignore_status=404)
    assert not missing.get(index=index_name, id=f"{namespace}:kv:short")["found"]
    assert not missing.get(index=index_name, id=f"{namespace}:vec:short")["found"]
    assert raw.get(index=index_name, id=f"{namespace}:kv:long")["found"]
    assert raw.get(index=index_name, id=f"{other}:kv:short")["found"]  # another namespace
    assert backend.purge_expired() == 1  # every namespace
    assert not missing.get(index=index_name, id=f"{other}:kv:short")["found"]


def test_purge_runs_on_a_write_at_most_once_per_interval(
    make: Callable[..., ElasticsearchBackend],
    raw: Elasticsearch,
    index_name: str,
    spied: tuple[Elasticsearch, list[Sent]],
    namespace: str,
) -> None:
    make(purge_interval=None).set_many(namespace, [("kv:old", b"x")], ttl=0.2)
    time.sleep(0.4)
    raw.indices.refresh(index=index_name)

    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=index_name, purge_interval=3600)
    backend.set_many(namespace, [("kv:new", b"y")])
    backend.set_many(namespace, [("kv:newer", b"z")])
    purges = requests_to(sent, "/_delete_by_query")
    assert len(purges) == 1
    assert purges[0].params.get("wait_for_completion") == "false"  # never blocks the write
    # On Elasticsearch the purge is a server task that may finish after the write returned.
    missing = raw.options(ignore_status=404)
    assert eventually(lambda: not missing.get(index=index_name, id=f"{namespace}:kv:old")["found"])
    assert backend.get_many(namespace, ["kv:new", "kv:newer"]) == [b"y", b"z"]

    sent.clear()
    quiet = ElasticsearchBackend.from_client(client, index=index_name, purge_interval=None)
    quiet.set_many(namespace, [("kv:a", b"1")])
    assert requests_to(sent, "/_delete_by_query") == []


def test_expire_many_refreshes_ttl_keeps_vectors_searchable_and_never_revives(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    backend = make()
    backend.set_many(namespace, [("kv:a", b"1")])
    backend.set_many(namespace, [("kv:gone", b"2")], ttl=0.2)
    backend.add_vectors(namespace, "p", [VectorRecord("r", unit(1), b"v", {"t": "1"})])
    time.sleep(0.4)
    backend.expire_many(namespace, ["kv:a", "vec:r", "kv:gone", "kv:never"], ttl=600)

    assert backend.get_many(namespace, ["kv:a", "kv:gone"]) == [b"1", None]
    record = raw.get(index=index_name, id=f"{namespace}:vec:r")["_source"]
    assert record["expires_at"] > now_ms() + 500_000
    np.testing.assert_array_equal(vector_from_base64(record["vector"]), unit(1))
    # The record was rewritten from its base64 copy (the kNN field is not in _source on
    # Elasticsearch): once refreshed, the new version must still be found by kNN.
    raw.indices.refresh(index=index_name)
    hits = backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1, tags={"t": "1"})
    assert [(h.id, h.payload) for h in hits] == [("r", b"v")]


# --- isolation ----------------------------------------------------------------------------------
def test_namespaces_are_isolated(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str
) -> None:
    backend = make()
    mine, theirs = fresh_namespace(), fresh_namespace()
    backend.set_many(mine, [("kv:k", b"mine")])
    backend.set_many(theirs, [("kv:k", b"theirs"), ("kv:only-theirs", b"t")])
    backend.add_vectors(mine, "p", [VectorRecord("r", at_distance(0.15), b"mine")])
    backend.add_vectors(theirs, "p", [VectorRecord("r", unit(1), b"theirs")])
    backend.incr_counters(mine, "stats", {"n": 1})
    backend.incr_counters(theirs, "stats", {"n": 5})

    assert backend.get_many(mine, ["kv:k", "kv:only-theirs"]) == [b"mine", None]
    assert list(backend.iter_keys(mine)) == ["kv:k"]
    hits = backend.search_vectors(mine, "p", unit(1), k=5, max_distance=1.0)
    assert [(h.id, h.payload) for h in hits] == [("r", b"mine")]
    assert backend.get_vector_payloads(mine, ["r"]) == [b"mine"]
    assert backend.get_counters(mine, "stats") == {"n": 1}

    backend.clear(mine)
    count = raw.count(index=index_name, query={"term": {"ns": mine}})["count"]
    assert count == 0
    assert backend.get_many(theirs, ["kv:k"]) == [b"theirs"]
    assert backend.get_vector_payloads(theirs, ["r"]) == [b"theirs"]
    assert backend.get_counters(theirs, "stats") == {"n": 5}


# --- iter_keys ----------------------------------------------------------------------------------
def test_iter_keys_pages_through_more_keys_than_a_page(
    index_name: str, spied: tuple[Elasticsearch, list[Sent]], namespace: str
) -> None:
    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=index_name, page_size=1000)
    keys = [f"kv:{i:05d}" for i in range(2500)]
    backend.set_many(namespace, [(key, b"v") for key in keys])
    backend.set_many(namespace, [("llm:other", b"v")])
    assert len(requests_to(sent, "/_bulk")) == 2  # one request per batch

    sent.clear()
    assert backend.get_many(namespace, keys)[::500] == [b"v"] * 5
    assert len(requests_to(sent, "/_mget")) == 1

    sent.clear()
    listed = list(backend.iter_keys(namespace, "kv:"))
    assert listed == keys  # every key once, in key order
    searches = requests_to(sent, "/_search")
    assert len(searches) == 3
    if requests_to(sent, "/_pit"):  # a point in time where the server has them
        assert all("pit" in s.body for s in searches)
        assert [s.method for s in requests_to(sent, "/_pit")] == ["POST", "DELETE"]

    # Abandoning the iteration early still releases the point in time.
    sent.clear()
    iterator = backend.iter_keys(namespace, "kv:0")
    assert [next(iterator) for _ in range(3)] == keys[:3]
    iterator.close()  # type: ignore[attr-defined]
    pits = requests_to(sent, "/_pit")
    assert [s.method for s in pits] in ([], ["POST", "DELETE"])


def test_iter_keys_without_point_in_time(
    index_name: str,
    spied: tuple[Elasticsearch, list[Sent]],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(self: Elasticsearch, **kwargs: Any) -> Any:
        raise EsConnectionError("point in time not available here")

    # A server (or a role) without point in time: plain search_after pages on the unique key.
    monkeypatch.setattr(Elasticsearch, "open_point_in_time", unavailable)
    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=index_name, page_size=100)
    keys = [f"kv:{i:04d}" for i in range(250)]
    backend.set_many(namespace, [(key, b"v") for key in keys])
    sent.clear()
    assert list(backend.iter_keys(namespace, "kv:")) == keys
    searches = requests_to(sent, "/_search")
    assert len(searches) == 3
    assert all(s.path == f"/{index_name}/_search" and "pit" not in s.body for s in searches)


async def test_async_iter_keys_pages(es_url: str, index_name: str, namespace: str) -> None:
    backend = ElasticsearchBackend.from_url(es_url, index=index_name, page_size=100)
    try:
        keys = [f"kv:{i:04d}" for i in range(250)]
        await backend.aset_many(namespace, [(key, b"v") for key in keys])
        assert [key async for key in backend.aiter_keys(namespace, "kv:")] == keys
    finally:
        await backend.aclose()


# --- semantic search ----------------------------------------------------------------------------
def test_same_hits_and_misses_as_the_embedded_backend(
    make: Callable[..., ElasticsearchBackend], namespace: str
) -> None:
    distances = [0.02, 0.08, 0.095, 0.105, 0.15, 0.195, 0.205, 0.3, 0.8, 1.5]
    records = [VectorRecord(f"d{d}", at_distance(d), str(d).encode()) for d in distances]
    embedded = connect("memory://")
    elastic = make()
    for backend in (embedded, elastic):
        backend.add_vectors(namespace, "p", records)
    for threshold in (0.1, 0.2, 0.5, 2.0):
        for k in (1, 3, 20):
            expected = embedded.search_vectors(namespace, "p", unit(1), k=k, max_distance=threshold)
            got = elastic.search_vectors(namespace, "p", unit(1), k=k, max_distance=threshold)
            assert [h.id for h in got] == [h.id for h in expected], (threshold, k)
            assert [h.payload for h in got] == [h.payload for h in expected]
            for hit, reference in zip(got, expected, strict=True):
                assert hit.distance == pytest.approx(reference.distance, abs=1e-5)
    embedded.close()


def test_distance_is_numpy_one_minus_dot(
    make: Callable[..., ElasticsearchBackend], namespace: str
) -> None:
    rng = np.random.default_rng(7)
    vectors = [normalize(as_vector(rng.normal(size=16))) for _ in range(20)]
    query = normalize(as_vector(rng.normal(size=16)))
    backend = make()
    backend.add_vectors(
        namespace, "p", [VectorRecord(f"r{i}", v, b"") for i, v in enumerate(vectors)]
    )
    hits = backend.search_vectors(namespace, "p", query, k=20, max_distance=2.0)
    expected = {
        f"r{i}": 1.0 - float(np.dot(query.astype(np.float64), v.astype(np.float64)))
        for i, v in enumerate(vectors)
    }
    assert sorted(h.id for h in hits) == sorted(expected)
    # Elasticsearch's cosine score is (1 + cos) / 2; the backend reports 1 - cos = 2 - 2 score.
    # NOIDA: noida-db uses the same score formula, in float32 (checked here). With the default
    # index_options of dense_vector (int8_hnsw, in Elasticsearch since 8.14 and in noida-db)
    # scores are approximate: cos 0.70711 scored 0.85323 instead of 0.85355 on noida-db. The
    # backend maps its kNN fields with ``hnsw`` (float vectors) so distances are exact.
    for hit in hits:
        assert hit.distance == pytest.approx(expected[hit.id], abs=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert all(h.payload == b"" for h in hits)


def test_knn_filters_inside_the_clause(
    index_name: str, spied: tuple[Elasticsearch, list[Sent]], namespace: str
) -> None:
    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=index_name, num_candidates=10)
    query = unit(1)
    # Thirty entries of another partition, another tag and another namespace, all closer to
    # the query than the one entry that may be returned: a post-filter over the nearest
    # candidates would find nothing.
    backend.add_vectors(namespace, "other", [VectorRecord(f"o{i}", query, b"o") for i in range(30)])
    backend.add_vectors(
        namespace,
        "mine",
        [VectorRecord(f"alice{i}", query, b"a", {"user": "alice"}) for i in range(30)]
        + [VectorRecord("bob", at_distance(0.3), b"b", {"user": "bob"})],
    )
    backend.add_vectors(
        fresh_namespace(), "mine", [VectorRecord("x", query, b"x", {"user": "bob"})]
    )

    sent.clear()
    hits = backend.search_vectors(
        namespace, "mine", query, k=1, max_distance=1.0, tags={"user": "bob"}
    )
    assert [(h.id, h.payload) for h in hits] == [("bob", b"b")]
    (search,) = requests_to(sent, "/_search")
    assert "query" not in search.body and "post_filter" not in search.body
    knn = search.body["knn"]
    assert {"term": {"part": "mine"}} in knn["filter"]
    assert {"term": {"ns": namespace}} in knn["filter"]
    assert {"term": {"tags": "user=bob"}} in knn["filter"]
    assert knn["k"] == 1 and knn["num_candidates"] == 10

    hits = backend.search_vectors(namespace, "mine", query, k=3, max_distance=1.0)
    assert len(hits) == 3 and all(h.id.startswith("alice") for h in hits)


def test_dimensions_get_their_own_vector_field(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str
) -> None:
    backend = make()
    small, large = fresh_namespace(), fresh_namespace()
    backend.add_vectors(small, "p", [VectorRecord("s", unit(1, dim=4), b"s")])
    backend.add_vectors(large, "p", [VectorRecord("l", unit(1, dim=12), b"l")])
    fields = raw.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert fields["knn_4"]["dims"] == 4 and fields["knn_12"]["dims"] == 12
    assert [
        h.id for h in backend.search_vectors(small, "p", unit(1, dim=4), k=1, max_distance=0.1)
    ] == ["s"]
    assert [
        h.id for h in backend.search_vectors(large, "p", unit(1, dim=12), k=1, max_distance=0.1)
    ] == ["l"]
    # Another process (a fresh backend) learns each namespace's dimension from the index.
    fresh = make()
    with pytest.raises(VectorDimensionError, match=r"dimension 12.*dimension 4"):
        fresh.search_vectors(small, "p", unit(1, dim=12), k=1, max_distance=1)
    with pytest.raises(VectorDimensionError, match=r"dimension 4.*dimension 12"):
        fresh.add_vectors(large, "p", [VectorRecord("x", unit(1, dim=4), b"x")])
    # A dimension no namespace ever stored: no field for it, nothing found, nothing created.
    assert fresh.search_vectors(fresh_namespace(), "p", unit(1, dim=5), k=1, max_distance=1) == []
    fields = raw.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert "knn_5" not in fields


# --- refresh ------------------------------------------------------------------------------------
@pytest.mark.parametrize("refresh", ["wait_for", False, True])
def test_writes_refresh_only_where_configured(
    index_name: str,
    spied: tuple[Elasticsearch, list[Sent]],
    namespace: str,
    refresh: Any,
) -> None:
    client, sent = spied
    backend = ElasticsearchBackend.from_client(client, index=index_name, refresh=refresh)
    backend.get_many(namespace, ["kv:x"])  # creates the index

    def refresh_params(operation: Callable[[], object]) -> list[str | None]:
        sent.clear()
        operation()
        writes = requests_to(sent, "/_bulk") + [s for s in sent if "/_update/" in s.path]
        assert writes
        assert requests_to(sent, "/_refresh") == []  # never an index refresh on a write
        return [s.params.get("refresh") for s in writes]

    # Values are read by id (realtime): their writes never refresh nor wait.
    assert refresh_params(lambda: backend.set_many(namespace, [("kv:a", b"1")])) == [None]
    assert refresh_params(lambda: backend.expire_many(namespace, ["kv:a"], ttl=60)) == [None]
    assert refresh_params(lambda: backend.delete_many(namespace, ["kv:a"])) == [None]
    assert refresh_params(lambda: backend.incr_counters(namespace, "s", {"n": 1})) == [None]
    # Vector writes must be visible to the next search: they use the configured refresh.
    expected = {"wait_for": "wait_for", True: "true", False: None}[refresh]
    record = VectorRecord("r", unit(1), b"v")
    assert refresh_params(lambda: backend.add_vectors(namespace, "p", [record])) == [expected]
    assert refresh_params(lambda: backend.delete_vectors(namespace, ["r"])) == [expected]
    # A scan refreshes the index once first, unless refresh=False.
    sent.clear()
    list(backend.iter_keys(namespace))
    assert len(requests_to(sent, "/_refresh")) == (0 if refresh is False else 1)


def test_value_writes_are_not_searchable_until_a_refresh(
    make: Callable[..., ElasticsearchBackend], raw: Elasticsearch, index_name: str, namespace: str
) -> None:
    # refresh_interval -1: nothing becomes searchable unless someone refreshes.
    lazy = make(refresh=False, index_settings={"refresh_interval": "-1"})
    lazy.set_many(namespace, [("kv:a", b"1")])
    assert raw.count(index=index_name, query={"term": {"ns": namespace}})["count"] == 0
    assert lazy.get_many(namespace, ["kv:a"]) == [b"1"]  # by id: realtime
    assert list(lazy.iter_keys(namespace)) == []  # refresh=False: the scan does not refresh
    assert list(make().iter_keys(namespace)) == ["kv:a"]  # the default refreshes before it


# --- counters -----------------------------------------------------------------------------------
def test_counters_are_atomic_across_threads(
    make: Callable[..., ElasticsearchBackend], namespace: str
) -> None:
    backend = make()

    def work() -> None:
        for _ in range(10):
            backend.incr_counters(namespace, "stats", {"hits": 1, "tokens": 2.5})

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.get_counters(namespace, "stats") == {"hits": 40.0, "tokens": 100.0}


# --- clients ------------------------------------------------------------------------------------
async def test_one_sided_clients_and_ownership(
    http_url: str, index_name: str, namespace: str
) -> None:
    sync_client = Elasticsearch(http_url, request_timeout=30)
    async_client = AsyncElasticsearch(http_url, request_timeout=30)
    try:
        # A sync client alone: the async side is built from it (same server).
        sync_only = connect(sync_client, index=index_name)
        assert isinstance(sync_only, ElasticsearchBackend)
        sync_only.set_many(namespace, [("kv:a", b"1")])
        assert await sync_only.aget_many(namespace, ["kv:a"]) == [b"1"]
        await sync_only.aset_many(namespace, [("kv:b", b"2")])
        assert sync_only.get_many(namespace, ["kv:b"]) == [b"2"]

        # An async client alone: the sync side is built from it.
        async_only = connect(async_client, index=index_name)
        assert async_only.get_many(namespace, ["kv:a"]) == [b"1"]
        async_only.set_many(namespace, [("kv:c", b"3")])
        assert await async_only.aget_many(namespace, ["kv:b", "kv:c"]) == [b"2", b"3"]

        both = ElasticsearchBackend.from_client(
            sync_client, async_client=async_client, index=index_name
        )
        assert both.get_many(namespace, ["kv:c"]) == [b"3"]
        assert await both.aget_many(namespace, ["kv:a"]) == [b"1"]

        for backend in (sync_only, async_only, both):
            await backend.aclose()
        # Clients the user passed stay open.
        assert sync_client.info()["version"]["number"]
        assert (await async_client.info())["version"]["number"]
    finally:
        sync_client.close()
        await async_client.close()


def test_async_side_of_a_sync_client_in_each_event_loop(
    http_url: str, index_name: str, namespace: str
) -> None:
    import asyncio

    sync_client = Elasticsearch(http_url, request_timeout=30)
    backend = connect(sync_client, index=index_name)
    try:
        for value in (b"1", b"2"):  # asyncio.run twice: a client per loop
            asyncio.run(backend.aset_many(namespace, [("kv:a", value)]))
            assert asyncio.run(backend.aget_many(namespace, ["kv:a"])) == [value]
    finally:
        backend.close()
        assert sync_client.info()["version"]["number"]  # still open
        sync_client.close()


async def test_the_built_client_has_the_given_clients_settings(
    http_url: str, index_name: str
) -> None:
    settings: dict[str, Any] = {
        "basic_auth": ("app", "secret"),
        "headers": {"x-team": "search"},
        "max_retries": 4,
        "retry_on_timeout": True,
        "connections_per_node": 7,
        "http_compress": True,
    }
    given = Elasticsearch(http_url, **settings)
    given_async = AsyncElasticsearch(http_url, **settings)
    sync_only = ElasticsearchBackend.from_client(given, index=index_name)
    async_only = ElasticsearchBackend.from_client(given_async, index=index_name)
    try:
        built = [
            (given, (await sync_only._async_clients()).client),  # type: ignore[attr-defined]
            (given_async, async_only._sync_clients().client),  # type: ignore[attr-defined]
        ]
        for source, copy in built:
            assert type(copy) is not type(source)
            assert copy._headers["authorization"] == source._headers["authorization"]
            assert copy._headers["x-team"] == "search"
            assert (copy._max_retries, copy._retry_on_timeout) == (4, True)
            assert [n.config for n in copy.transport.node_pool.all()] == [
                n.config for n in source.transport.node_pool.all()
            ]
            config = copy.transport.node_pool.all()[0].config
            assert (config.connections_per_node, config.http_compress) == (7, True)
    finally:
        await sync_only.aclose()
        await async_only.aclose()
        given.close()
        await given_async.close()


def test_a_client_that_cannot_be_copied_is_refused_at_construction(
    http_url: str, index_name: str
) -> None:
    import requests.auth

    client = Elasticsearch(
        http_url, node_class="requests", http_auth=requests.auth.HTTPDigestAuth("u", "p")
    )
    try:
        with pytest.raises(SemcacheInputError) as caught:
            ElasticsearchBackend.from_client(client, index=index_name)
        message = str(caught.value)
        assert "cannot build an AsyncElasticsearch" in message
        assert "requests.session.auth" in message
        assert "async_client=AsyncElasticsearch(...)" in message
    finally:
        client.close()


def test_unreachable_server_is_a_backend_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before use: nothing listens there
    backend = ElasticsearchBackend.from_url(
        f"elasticsearch+http://127.0.0.1:{port}?request_timeout=0.5"
    )
    with pytest.raises(BackendError, match="Elasticsearch"):
        backend.get_many("ns", ["kv:a"])
    with pytest.raises(BackendError):
        list(backend.iter_keys("ns"))
    backend.close()


def test_url_forms_and_options() -> None:
    backend = ElasticsearchBackend.from_url(
        "elasticsearch+https://user:p%40ss@example.com:9243/my-cache"
        "?refresh=false&request_timeout=5&purge_interval=none&page_size=50"
    )
    assert backend.index == "my-cache"
    assert backend.ops.refresh is False and backend.ops.purge_interval is None
    assert backend.ops.page_size == 50
    assert backend._async_kwargs is not None
    assert backend._async_kwargs["hosts"] == ["https://example.com:9243"]
    assert backend._async_kwargs["basic_auth"] == ("user", "p@ss")
    assert backend._async_kwargs["request_timeout"] == 5.0
    backend.close()

    default = ElasticsearchBackend.from_url("elasticsearch+http://localhost", refresh=True)
    assert default.index == "semcache" and default.ops.refresh is True
    assert default._async_kwargs is not None
    assert default._async_kwargs["hosts"] == ["http://localhost:9200"]
    default.close()

    for url, message in [
        ("elasticsearch+http://localhost?nope=1", "unknown option 'nope'"),
        ("elasticsearch+http://localhost/Upper", "invalid Elasticsearch index name"),
        ("elasticsearch+http://localhost/a?index=b", "both in the URL path"),
        ("elasticsearch+http://localhost?refresh=sometimes", "bad value for 'refresh'"),
        ("elasticsearch+https://", "give a host"),
        ("elasticsearch+http://localhost:99999", "malformed"),
    ]:
        with pytest.raises(SemcacheInputError, match=message):
            ElasticsearchBackend.from_url(url)
    with pytest.raises(SemcacheInputError, match="page_size"):
        ElasticsearchBackend.from_url("elasticsearch+http://localhost", page_size=0)


def test_large_batches_are_split_into_bounded_bulk_requests(
    make: Callable[..., ElasticsearchBackend], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch too large for one request (Elasticsearch caps bodies at 100 MB by default,
    and a huge body outlives the request timeout) is sent as several bulk requests, and
    every value arrives."""
    from semcache_core.backends.elasticsearch import bulk

    monkeypatch.setattr(bulk, "BULK_MAX_BYTES", 64 * 1024)
    backend = make()
    sent: list[int] = []
    original = backend.ops._bulk

    def counting_bulk(operations: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        sent.append(len(operations))
        return original(operations, *args, **kwargs)

    monkeypatch.setattr(backend.ops, "_bulk", counting_bulk)
    items = [(f"kv:{i}", bytes([i % 256]) * 4096) for i in range(100)]
    backend.set_many(namespace, items)
    assert len(sent) > 1
    assert sum(sent) == 2 * len(items)
    assert backend.get_many(namespace, [key for key, _ in items]) == [v for _, v in items]
