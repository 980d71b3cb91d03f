"""Redis-specific behaviour, on plain Redis (client mirror) and Redis with the Query Engine.

The generic suites (backend contract, LangChain standard tests) already run on both kinds;
these tests cover what only Redis has: TTLs enforced by the server, the key layout, round
trips, several clients on one server, index schemas, log compaction and a dead server.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import redis
from langchain_core.outputs import Generation

from langchain_semcache import BackendByteStore, ExactCache, SemanticCache
from semcache_core import Backend, VectorRecord, connect, keys
from semcache_core.backends.redis import RedisBackend, log_mirror, query_engine
from semcache_core.backends.redis.commands import as_text
from semcache_core.backends.redis.keys import partition_token
from semcache_core.codecs import as_vector, normalize
from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheInputError,
    VectorDimensionError,
)
from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace, make_backend
from tests.fakes import WordHashEmbeddings

pytestmark = pytest.mark.redis

REDIS_KINDS = [kind for kind in ("redis", "redis-qe") if kind in BACKEND_KINDS]
if not REDIS_KINDS:
    pytest.skip("no Redis backend kind selected", allow_module_level=True)

DIM = 8
SPECIAL = "a{b}|c,d.e<f>-g@h:\"i' j\\k [l] *m? ~n"


def unit(*values: float) -> np.ndarray:
    return normalize(as_vector(list(values) + [0.0] * (DIM - len(values))))


def at_distance(distance: float) -> np.ndarray:
    cos = 1.0 - distance
    return unit(cos, float(np.sqrt(max(0.0, 1.0 - cos * cos))))


def nearest(
    backend: Backend, namespace: str, partition: str, vector: np.ndarray, *, k: int = 1
) -> list[tuple[str, bytes]]:
    """(id, payload) of the records within cosine distance 0.1 of ``vector``."""
    hits = backend.search_vectors(namespace, partition, vector, k=k, max_distance=0.1)
    return [(hit.id, hit.payload) for hit in hits]


@pytest.fixture(params=REDIS_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_HAS_QUERY_ENGINE: dict[str, bool] = {}


@pytest.fixture
def redis_url(kind: str, server_pool: ServerPool) -> str:
    """The server of ``kind``; ``redis-qe`` is skipped when that server has no Query Engine."""
    url = server_pool.url(kind)
    if kind == "redis-qe":
        if url not in _HAS_QUERY_ENGINE:
            probe = RedisBackend.from_url(url)
            _HAS_QUERY_ENGINE[url] = probe.vector_search == "query-engine"
            probe.close()
        if not _HAS_QUERY_ENGINE[url]:
            pytest.skip(f"the Redis server at {url} has no Query Engine")
    return url


@pytest.fixture
def mode(kind: str) -> str:
    """The ``vector_search`` option of ``kind`` (as in ``tests.backends.make_backend``)."""
    return "mirror" if kind == "redis" else "query-engine"


@pytest.fixture
async def backend(kind: str, tmp_path: Path, server_pool: ServerPool) -> AsyncIterator[Backend]:
    instance = make_backend(kind, tmp_path, server_pool)
    yield instance
    await instance.aclose()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the same server, to look at what the backend wrote."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def second(backend: Backend, redis_url: str) -> Iterator[RedisBackend]:
    """Another backend instance (another client) on the same server, in the same mode."""
    assert isinstance(backend, RedisBackend)
    other = RedisBackend.from_url(redis_url, vector_search=backend.vector_search)  # type: ignore[arg-type]
    yield other
    other.close()


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


# -- TTL -----------------------------------------------------------------------------------------


def test_ttl_expiry_and_per_entry_override(backend: Backend, namespace: str) -> None:
    cache = ExactCache(backend, namespace=namespace, ttl=60)
    cache.update("short", "llm", [Generation(text="s")], ttl=0.3)
    cache.update("long", "llm", [Generation(text="l")])
    forever = ExactCache(backend, namespace=namespace)  # ttl=None: never expires
    forever.update("forever", "llm", [Generation(text="f")])
    assert cache.lookup("short", "llm") == [Generation(text="s")]
    time.sleep(0.6)
    assert cache.lookup("short", "llm") is None
    assert cache.lookup("long", "llm") == [Generation(text="l")]
    assert forever.lookup("forever", "llm") == [Generation(text="f")]


def test_ttl_is_set_with_the_value(
    backend: Backend, namespace: str, raw: redis.Redis, kind: str
) -> None:
    store = BackendByteStore(backend, namespace=namespace)
    store.mset([("a", b"1")])
    store.mset([("b", b"2")], ttl=30)
    assert raw.pttl(f"{namespace}:kv:a") == -1
    assert 0 < raw.pttl(f"{namespace}:kv:b") <= 30_000
    backend.add_vectors(namespace, "p", [VectorRecord("v1", unit(1), b"x")], ttl=30)
    backend.add_vectors(namespace, "q", [VectorRecord("v2", unit(1), b"x")])
    assert 0 < raw.pttl(f"{namespace}:vec:{{{namespace}}}v1") <= 30_000
    assert raw.pttl(f"{namespace}:vec:{{{namespace}}}v2") == -1
    if kind == "redis":
        # A partition's log lives as long as its longest-lived entry.
        assert 0 < raw.pttl(f"{namespace}:vlog:{{{namespace}}}p") <= 30_000
        assert raw.pttl(f"{namespace}:vlog:{{{namespace}}}q") == -1


def test_semantic_entries_expire(backend: Backend, namespace: str) -> None:
    cache = SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace)
    cache.update("What is the capital of France?", "llm", [Generation(text="Paris")], ttl=0.3)
    assert cache.lookup("what's the capital city of France", "llm") == [Generation(text="Paris")]
    time.sleep(0.6)
    assert cache.lookup("what's the capital city of France", "llm") is None
    assert cache.lookup("What is the capital of France?", "llm") is None


# -- namespaces and keys -------------------------------------------------------------------------


def test_namespace_isolation_and_clear(backend: Backend, raw: redis.Redis) -> None:
    ns_a, ns_b = fresh_namespace("a"), fresh_namespace("b")
    ns_a_longer = ns_a + "x"  # shares ns_a as a prefix: must survive clearing ns_a
    caches = {ns: ExactCache(backend, namespace=ns) for ns in (ns_a, ns_b, ns_a_longer)}
    for ns, cache in caches.items():
        cache.update("same prompt", "llm", [Generation(text=ns)])
    semantic = SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=ns_a)
    semantic.update("What is the capital of France?", "llm", [Generation(text="Paris")])
    raw.set(f"unrelated-{ns_a}", b"keep")
    raw.set(ns_a, b"keep")  # the bare namespace name is not inside the namespace
    for ns, cache in caches.items():
        assert cache.lookup("same prompt", "llm") == [Generation(text=ns)]
    caches[ns_a].clear()
    assert caches[ns_a].lookup("same prompt", "llm") is None
    assert semantic.lookup("What is the capital of France?", "llm") is None
    assert raw.keys(f"{ns_a}:*") == []
    assert caches[ns_b].lookup("same prompt", "llm") == [Generation(text=ns_b)]
    assert caches[ns_a_longer].lookup("same prompt", "llm") == [Generation(text=ns_a_longer)]
    assert raw.get(f"unrelated-{ns_a}") == b"keep"
    assert raw.get(ns_a) == b"keep"
    raw.delete(f"unrelated-{ns_a}", ns_a)
    caches[ns_b].clear()
    caches[ns_a_longer].clear()


def test_clear_pages_through_a_large_namespace(
    backend: Backend, namespace: str, raw: redis.Redis
) -> None:
    other = fresh_namespace()
    store = BackendByteStore(backend, namespace=namespace)
    store.mset([(f"k{i}", b"v") for i in range(2500)])  # several SCAN pages
    BackendByteStore(backend, namespace=other).mset([("k0", b"other")])
    store.clear()
    assert raw.keys(f"{namespace}:*") == []
    assert list(store.yield_keys()) == []
    assert BackendByteStore(backend, namespace=other).mget(["k0"]) == [b"other"]
    backend.clear(other)


@pytest.mark.parametrize("prefix", ["a*", "a?", "[x]", "back\\slash"])
def test_yield_keys_prefix_with_glob_characters(
    backend: Backend, namespace: str, prefix: str
) -> None:
    store = BackendByteStore(backend, namespace=namespace)
    keys = ["a*1", "ab", "a?2", "aX2", "[x]3", "x3", "back\\slash4", "backXslash", "back"]
    store.mset([(key, b"v") for key in keys])
    assert sorted(store.yield_keys(prefix=prefix)) == sorted(
        key for key in keys if key.startswith(prefix)
    )


def test_key_layout(backend: Backend, namespace: str, raw: redis.Redis, kind: str) -> None:
    BackendByteStore(backend, namespace=namespace).mset([("user key", b"v")])
    ExactCache(backend, namespace=namespace).update("p", "llm", [Generation(text="x")])
    backend.add_vectors(namespace, "part", [VectorRecord("id1", unit(1), b"payload")])
    backend.incr_counters(namespace, "stats", {"hits": 1})
    keys = {key.decode() for key in raw.scan_iter(match=f"{namespace}:*", count=1000)}
    assert f"{namespace}:kv:user key" in keys
    assert any(key.startswith(f"{namespace}:llm:") for key in keys)
    assert f"{namespace}:vec:{{{namespace}}}id1" in keys
    assert f"{namespace}:stats:stats" in keys
    assert (f"{namespace}:vlog:{{{namespace}}}part" in keys) == (kind == "redis")
    record: dict[bytes, bytes] = raw.hgetall(f"{namespace}:vec:{{{namespace}}}id1")  # type: ignore[assignment]
    assert record[b"payload"] == b"payload"
    assert record[b"partition"] == b"part"
    if kind == "redis-qe":  # the index reads the vector from the hash (FLOAT16, own field)
        assert b"vector" not in record
        stored = np.frombuffer(record[b"vector16"], dtype="<f2")
        assert stored.tolist() == unit(1).astype("<f2").tolist()
    else:  # plain Redis: the vector lives once, in the partition log the mirrors read
        assert b"vector" not in record
        ((_, fields),) = raw.xrange(f"{namespace}:vlog:{{{namespace}}}part")  # type: ignore[misc]
        assert np.frombuffer(fields[b"vector"], dtype="<f4").tolist() == unit(1).tolist()
    assert raw.hgetall(f"{namespace}:stats:stats") == {b"hits": b"1"}
    # Internal keys never show up as values.
    assert sorted(backend.iter_keys(namespace)) == sorted(
        key[len(namespace) + 1 :]
        for key in keys
        if key.startswith((f"{namespace}:kv:", f"{namespace}:llm:"))
    )


def test_key_layout_of_engine_partitions(
    backend: Backend, namespace: str, raw: redis.Redis, kind: str
) -> None:
    """An engine-made partition's keys carry its hash tag ``{<ns>:<tag>}`` (plain Redis has
    the cluster's layout), the entry id carries the tag, and by-id calls need no partition."""
    partition = keys.partition_key(namespace, "llm", "")
    tag = keys.partition_tag(partition)
    entry_id = keys.semantic_entry_id(namespace, partition, "question")
    assert tag is not None and entry_id.startswith(f"{tag}.")
    backend.add_vectors(namespace, partition, [VectorRecord(entry_id, unit(1), b"payload")])
    entry = entry_id.split(".", 1)[1]
    record_key = f"{namespace}:vec:{{{namespace}:{tag}}}{entry}"
    assert raw.hget(record_key, "partition") == partition.encode()
    log = f"{namespace}:vlog:{{{namespace}:{tag}}}{partition}"
    assert raw.exists(log) == (kind == "redis")
    # The namespace's first dimension is the one of the Query Engine index <ns>:idx; both
    # paths keep each partition's (a new embedding model starts its own partition).
    namespace_dim = raw.get(f"{namespace}:vdim")
    assert namespace_dim == (str(DIM).encode() if kind == "redis-qe" else None)
    partition_dim = raw.get(f"{namespace}:vdim:{{{namespace}:{tag}}}{partition}")
    assert partition_dim == str(DIM).encode()
    assert nearest(backend, namespace, partition, unit(1)) == [(entry_id, b"payload")]
    assert backend.get_vector_payloads(namespace, [entry_id]) == [b"payload"]
    backend.expire_many(namespace, [keys.vector_key(entry_id)], ttl=60)
    assert 0 < raw.pttl(record_key) <= 60_000
    backend.delete_vectors(namespace, [entry_id])
    assert not raw.exists(record_key)
    assert nearest(backend, namespace, partition, unit(1)) == []
    with pytest.raises(SemcacheInputError, match="needs an id"):  # it would cross slots
        backend.add_vectors(namespace, partition, [VectorRecord("x", unit(1), b"v")])
    with pytest.raises(SemcacheInputError, match="needs an id"):
        backend.add_vectors(namespace, "p", [VectorRecord(entry_id, unit(1), b"v")])


def test_entries_of_the_untagged_layout_miss(
    backend: Backend, namespace: str, raw: redis.Redis, kind: str
) -> None:
    """Entries written before the slot tags (``<ns>:vec:<id>``, ``<ns>:vlog:<partition>``)
    are neither read by id nor found by a search: they miss."""
    partition = keys.partition_key(namespace, "llm", "")
    entry_id = keys.semantic_entry_id(namespace, partition, "question")
    backend.add_vectors(namespace, partition, [VectorRecord(entry_id, unit(0, 1), b"new")])
    old = keys.stable_hash("semantic", namespace, partition, "question")
    fields = {"vector": unit(1).astype("<f4").tobytes(), "payload": b"old"}
    token = partition_token(partition)  # indexed on the Query Engine path: a hit to skip
    raw.hset(f"{namespace}:vec:{old}", mapping={**fields, "partition": partition, "ptag": token})
    raw.xadd(f"{namespace}:vlog:{partition}", {"id": old, "vector": fields["vector"], "tags": "{}"})
    assert backend.get_vector_payloads(namespace, [old]) == [None]
    assert nearest(backend, namespace, partition, unit(1)) == []


def test_special_characters_in_llm_string_and_tags(backend: Backend, namespace: str) -> None:
    embeddings = WordHashEmbeddings()
    cache = SemanticCache(backend, embeddings=embeddings, namespace=namespace)
    exact = ExactCache(backend, namespace=namespace)
    llm_a = f"model={SPECIAL}"
    llm_b = f"model={SPECIAL.replace(' ', '')}"  # differs only by spaces
    for target in (cache, exact):
        target.update("What is the capital of France?", llm_a, [Generation(text="A")])
        target.update("What is the capital of France?", llm_b, [Generation(text="B")])
        assert target.lookup("What is the capital of France?", llm_a) == [Generation(text="A")]
        assert target.lookup("What is the capital of France?", llm_b) == [Generation(text="B")]
    assert cache.lookup("what's the capital city of France", llm_a) == [Generation(text="A")]
    assert cache.lookup("what's the capital city of France", llm_b) == [Generation(text="B")]

    # Tags (metadata) are exact: case, spaces and punctuation all count.
    tag_ns = namespace + "-tags"  # vectors of another dimension than the embeddings'
    tags = {"user": SPECIAL, "meta:data {x}": "Value With Spaces"}
    backend.add_vectors(
        tag_ns,
        SPECIAL,
        [
            VectorRecord("tagged", unit(1), b"tagged", tags),
            VectorRecord("upper", at_distance(0.01), b"upper", {**tags, "user": SPECIAL.upper()}),
            VectorRecord("spaced", at_distance(0.02), b"spaced", {**tags, "user": f" {SPECIAL} "}),
        ],
    )

    def found(wanted: dict[str, str]) -> list[str]:
        hits = backend.search_vectors(tag_ns, SPECIAL, unit(1), k=5, max_distance=0.5, tags=wanted)
        return [hit.id for hit in hits]

    assert found(tags) == ["tagged"]
    assert found({"user": SPECIAL.upper()}) == ["upper"]
    assert found({"user": f" {SPECIAL} "}) == ["spaced"]
    assert found({"meta:data {x}": "Value With Spaces"}) == ["tagged", "upper", "spaced"]
    assert found({"meta:data {x}": "value with spaces"}) == []
    assert found({}) == ["tagged", "upper", "spaced"]
    backend.clear(tag_ns)


# -- several clients -----------------------------------------------------------------------------


def test_second_client_sees_entries_of_the_first(
    backend: Backend, second: RedisBackend, namespace: str
) -> None:
    embeddings = WordHashEmbeddings()
    first_cache = SemanticCache(backend, embeddings=embeddings, namespace=namespace)
    second_cache = SemanticCache(second, embeddings=embeddings, namespace=namespace)
    # The second client searches first: its mirror (or index check) exists before the write.
    assert second_cache.lookup("What is the capital of France?", "llm") is None
    first_cache.update("What is the capital of France?", "llm", [Generation(text="Paris")])
    assert second_cache.lookup("what's the capital city of France", "llm") == [
        Generation(text="Paris")
    ]
    BackendByteStore(backend, namespace=namespace).mset([("k", b"v")])
    assert BackendByteStore(second, namespace=namespace).mget(["k"]) == [b"v"]

    # Deleted and replaced vectors are never served by the other client.
    vec_ns = namespace + "-v"  # DIM-sized vectors, not the embeddings' size
    backend.add_vectors(vec_ns, "p", [VectorRecord("x", unit(1), b"v1")])
    assert nearest(second, vec_ns, "p", unit(1)) == [("x", b"v1")]
    backend.add_vectors(vec_ns, "p", [VectorRecord("x", unit(0, 1), b"v2")])
    assert second.search_vectors(vec_ns, "p", unit(1), k=1, max_distance=0.1) == []
    assert nearest(second, vec_ns, "p", unit(0, 1)) == [("x", b"v2")]
    backend.delete_vectors(vec_ns, ["x"])
    assert second.search_vectors(vec_ns, "p", unit(0, 1), k=1, max_distance=0.1) == []
    backend.clear(vec_ns)
    # A clear by one client empties the namespace for the other, which can write again.
    backend.clear(namespace)
    assert second_cache.lookup("what's the capital city of France", "llm") is None
    second_cache.update("What is the capital of Spain?", "llm", [Generation(text="Madrid")])
    assert first_cache.lookup("what's the capital city of Spain", "llm") == [
        Generation(text="Madrid")
    ]


async def test_second_async_client_sees_entries_of_the_first(
    backend: Backend, redis_url: str, namespace: str
) -> None:
    assert isinstance(backend, RedisBackend)
    other = RedisBackend.from_url(redis_url, vector_search=backend.vector_search)  # type: ignore[arg-type]
    try:
        await backend.aadd_vectors(namespace, "p", [VectorRecord("x", at_distance(0.1), b"v")])
        hits = await other.asearch_vectors(namespace, "p", unit(1), k=2, max_distance=0.2)
        assert [(h.id, h.payload) for h in hits] == [("x", b"v")]
        await backend.adelete_vectors(namespace, ["x"])
        assert await other.asearch_vectors(namespace, "p", unit(1), k=2, max_distance=0.2) == []
    finally:
        await other.aclose()


def test_same_decisions_as_the_embedded_backend(
    backend: Backend, namespace: str, kind: str
) -> None:
    """Plain Redis: the embedded backend's decisions exactly. The Query Engine's FLOAT16
    index: never a hit the embedded backend would not serve; every one it serves that is
    within the threshold by more than twice the fp16 rounding bound; distances reported as
    upper bounds, within twice that bound."""
    embedded = connect("memory://")
    distances = [0.05, 0.1, 0.15, 0.19, 0.2, 0.21, 0.3, 0.9999, 1.0, 1.5, 2.0]
    records = [VectorRecord(f"d{d}", at_distance(d), str(d).encode()) for d in distances]
    for target in (backend, embedded):
        target.add_vectors(namespace, "p", records)
    slack = query_engine.fp16_distance_error(DIM) if kind == "redis-qe" else 0.0
    for threshold in (0.0, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0):
        for k in (1, 3, 10, 20):
            expected = embedded.search_vectors(namespace, "p", unit(1), k=k, max_distance=threshold)
            got = backend.search_vectors(namespace, "p", unit(1), k=k, max_distance=threshold)
            if not slack:
                assert [h.id for h in got] == [h.id for h in expected], (threshold, k)
                assert [h.distance for h in got] == pytest.approx([h.distance for h in expected])
                continue
            exact = {h.id: h.distance for h in expected}
            assert set(h.id for h in got) <= set(exact), (threshold, k)
            assert [h.distance for h in got] == sorted(h.distance for h in got)
            for hit in got:  # an upper bound of the float32 distance
                assert exact[hit.id] <= hit.distance <= exact[hit.id] + 2 * slack
            clear = [h.id for h in expected if h.distance + 2 * slack <= threshold]
            assert [h.id for h in got][: len(clear)] == clear, (threshold, k)


# -- round trips ---------------------------------------------------------------------------------


class CountingConnection(redis.connection.Connection):
    """Records, per round trip, the names of the commands sent."""

    rounds: ClassVar[list[list[str]]] = []

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.rounds.append([str(args[0]).upper()])
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Any) -> Any:
        CountingConnection.rounds.append([str(c[0]).upper() for c in commands])
        return super().pack_commands(commands)


def test_one_round_trip_per_batch(kind: str, mode: str, redis_url: str, namespace: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    backend = RedisBackend.from_client(client, vector_search=mode)
    try:
        client.ping()  # connection handshake out of the way
        keys = [f"kv:{i}" for i in range(100)]

        def rounds_of(call: Any) -> list[list[str]]:
            CountingConnection.rounds.clear()
            call()
            return list(CountingConnection.rounds)

        items = [(key, b"v") for key in keys]
        assert rounds_of(lambda: backend.set_many(namespace, items, ttl=60)) == [["SET"] * 100]
        assert rounds_of(lambda: backend.get_many(namespace, keys)) == [["MGET"]]
        # Vector records are named by their key (vec:<id>): only they need the script.
        assert rounds_of(lambda: backend.expire_many(namespace, keys, ttl=60)) == [
            ["PEXPIRE"] * 100
        ]
        backend.expire_many(namespace, ["vec:x"], ttl=60)  # the server learns the script
        expire = rounds_of(lambda: backend.expire_many(namespace, [*keys, "vec:x"], ttl=60))
        assert expire == [["PEXPIRE"] * 100 + ["EVALSHA"]]
        assert rounds_of(lambda: backend.delete_many(namespace, keys)) == [["UNLINK"] * 100]
        counters = rounds_of(lambda: backend.incr_counters(namespace, "stats", {"a": 1, "b": 2}))
        assert counters == [["HINCRBYFLOAT"] * 2]
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        record = VectorRecord("y", unit(0, 1), b"w")
        assert len(rounds_of(lambda: backend.add_vectors(namespace, "p", [record]))) == 1
        backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
        # Steady state: one round trip for a miss and for a verified hit. On the mirror path
        # the candidates are verified in the round that catches up with the log; a write
        # since the last search costs one more (the mirror, caught up, is searched again).
        miss = rounds_of(lambda: nearest(backend, namespace, "p", unit(0, 0, 1)))
        hit = rounds_of(lambda: nearest(backend, namespace, "p", unit(1)))
        if kind == "redis":
            assert miss == [["GET", "HGET", "XRANGE"]]
            assert hit == [["GET", "HGET", "XRANGE", "HMGET"]]
            backend.add_vectors(namespace, "p", [VectorRecord("z", unit(1, 0.01), b"z")])
            after_write = rounds_of(lambda: nearest(backend, namespace, "p", unit(1, 0.01)))
            assert after_write[0] == ["GET", "HGET", "XRANGE", "HMGET"]
            assert len(after_write) == 2 and set(after_write[1]) == {"HMGET"}
        else:
            # A hit: the range query. A miss: the range query finds nothing, then the KNN
            # (the range search is approximate) with the partition's dimension check, which
            # only an empty result needs.
            assert hit == [["FT.SEARCH"]]
            assert miss == [["FT.SEARCH"], ["FT.SEARCH", "GET"]]
            empty = rounds_of(lambda: nearest(backend, namespace, "empty", unit(1)))
            assert empty == [["FT.SEARCH"], ["FT.SEARCH", "GET"]]
            # A large threshold: the KNN alone; the dimension checked only when it found none.
            wide = rounds_of(lambda: backend.search_vectors(namespace, "p", unit(1), k=1,
                                                            max_distance=1.0))  # fmt: skip
            assert wide == [["FT.SEARCH"]]
            wide = rounds_of(lambda: backend.search_vectors(namespace, "empty", unit(1), k=1,
                                                            max_distance=1.0))  # fmt: skip
            assert wide == [["FT.SEARCH"], ["GET"]]
        backend.clear(namespace)
    finally:
        backend.close()
        client.ping()  # the user's client is not closed by the backend
        client.close()


# -- Query Engine index --------------------------------------------------------------------------


def test_existing_index_with_other_schema(
    kind: str, redis_url: str, raw: redis.Redis, namespace: str
) -> None:
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    raw.execute_command(
        "FT.CREATE", f"{namespace}:idx", "ON", "HASH", "PREFIX", 1, f"{namespace}:vec:",
        "SCHEMA", "vector", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", DIM,
        "DISTANCE_METRIC", "L2",
    )  # fmt: skip
    backend = RedisBackend.from_url(redis_url, vector_search="query-engine")
    try:
        with pytest.raises(SchemaConflictError, match="recreate_index"):
            backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
    finally:
        backend.close()
    fixed = RedisBackend.from_url(redis_url, vector_search="query-engine", recreate_index=True)
    try:
        fixed.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        assert nearest(fixed, namespace, "p", unit(1)) == [("x", b"v")]
    finally:
        fixed.clear(namespace)
        fixed.close()


def test_index_per_dimension(kind: str, redis_url: str, raw: redis.Redis, namespace: str) -> None:
    """A namespace's index of dimension 4 and vectors of another dimension (a switched
    embedding model): a second index ``<ns>:idx:d<dim>`` over the same prefix; each index
    holds its dimension's entries, a search uses its vector's; clear drops both."""
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    old = RedisBackend.from_url(redis_url)
    small = normalize(as_vector([1.0, 0.0, 0.0, 0.0]))
    old.add_vectors(namespace, "p4", [VectorRecord("old", small, b"old")])
    assert old.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1) == []  # no index
    old.close()
    backend = RedisBackend.from_url(redis_url)
    try:
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        assert nearest(backend, namespace, "p", unit(1)) == [("x", b"v")]
        assert nearest(backend, namespace, "p4", small) == [("old", b"old")]
        assert raw.get(f"{namespace}:vdim") == b"4"
        listed = {as_text(name) for name in raw.execute_command("FT._LIST")}
        assert {f"{namespace}:idx", f"{namespace}:idx:d{DIM}"} <= listed
        assert len(raw.keys(f"{namespace}:vec:*")) == 2  # both stored, each indexed once
        backend.clear(namespace)
        listed = {as_text(name) for name in raw.execute_command("FT._LIST")}
        assert not {f"{namespace}:idx", f"{namespace}:idx:d{DIM}"} & listed
        assert nearest(backend, namespace, "p", unit(1)) == []
    finally:
        backend.close()


def test_index_of_a_dimension_created_for_another(
    kind: str, redis_url: str, raw: redis.Redis, namespace: str
) -> None:
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    old = RedisBackend.from_url(redis_url)
    old.add_vectors(namespace, "p4", [VectorRecord("old", normalize(as_vector([1.0] * 4)), b"o")])
    old.close()
    raw.execute_command(
        "FT.CREATE", f"{namespace}:idx:d{DIM}", "ON", "HASH", "PREFIX", 1, f"{namespace}:vec:",
        "SCHEMA", "ptag", "TAG", "SEPARATOR", ",", "ttag", "TAG", "SEPARATOR", ",",
        "vector", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", 3, "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    backend = RedisBackend.from_url(redis_url)
    try:
        with pytest.raises(SchemaConflictError, match="dimension 3") as error:
            backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        assert isinstance(error.value, VectorDimensionError)
    finally:
        backend.close()
    fixed = RedisBackend.from_url(redis_url, recreate_index=True)
    try:
        fixed.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        assert nearest(fixed, namespace, "p", unit(1)) == [("x", b"v")]
        assert raw.get(f"{namespace}:vdim") == b"4"  # the first index keeps its dimension
    finally:
        fixed.clear(namespace)
        fixed.close()


def _old_float32_index(raw: redis.Redis, namespace: str, dim: int) -> None:
    """The index earlier versions created: FLOAT32 vectors in the hash field ``vector``."""
    raw.execute_command(
        "FT.CREATE", f"{namespace}:idx", "ON", "HASH", "PREFIX", 1, f"{namespace}:vec:",
        "SCHEMA", "ptag", "TAG", "SEPARATOR", ",", "ttag", "TAG", "SEPARATOR", ",",
        "vector", "VECTOR", "HNSW", 10, "TYPE", "FLOAT32", "DIM", dim,
        "DISTANCE_METRIC", "COSINE", "M", 16, "EF_CONSTRUCTION", 100,
    )  # fmt: skip
    raw.set(f"{namespace}:vdim", dim)


def _vector_info(raw: redis.Redis, name: str) -> dict[str, Any]:
    info = raw.execute_command("FT.INFO", name)
    fields = {as_text(k): v for k, v in (info.items() if isinstance(info, dict) else
              zip(info[::2], info[1::2], strict=False))}  # fmt: skip
    for attribute in fields["attributes"]:
        pairs = (
            attribute.items()
            if isinstance(attribute, dict)
            else zip(attribute[::2], attribute[1::2], strict=False)
        )
        described = {as_text(k).lower(): v for k, v in pairs}
        if as_text(described["attribute"]) == "vector":
            return {**described, "num_docs": int(fields["num_docs"])}
    raise AssertionError(f"no vector attribute in {name}")


def test_float32_index_of_an_earlier_version_still_read_and_written(
    kind: str, redis_url: str, raw: redis.Redis, namespace: str
) -> None:
    """An upgrade loses nothing: an index created as FLOAT32 (hash field ``vector``) by an
    earlier version keeps its entries found, gets new ones as FLOAT32 and gives the embedded
    backend's decisions exactly; a new dimension in that namespace gets a FLOAT16 index, whose
    hash field the FLOAT32 index does not read."""
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    _old_float32_index(raw, namespace, DIM)
    # An entry as the earlier version's write script stored it.
    old_key = f"{namespace}:vec:{{{namespace}}}old"
    raw.hset(old_key, mapping={
        "vector": unit(1, 0.02).astype("<f4").tobytes(), "payload": b"old", "partition": "p",
        "ptag": partition_token("p"), "tags": "{}", "ver": "",
    })  # fmt: skip
    raw.set(f"{namespace}:vdim:{{{namespace}}}p", DIM)
    backend = RedisBackend.from_url(redis_url, vector_search="query-engine")
    try:
        assert nearest(backend, namespace, "p", unit(1, 0.02)) == [("old", b"old")]
        backend.add_vectors(namespace, "p", [VectorRecord("new", unit(0, 1), b"new")])
        record: dict[bytes, bytes] = raw.hgetall(f"{namespace}:vec:{{{namespace}}}new")  # type: ignore[assignment]
        assert b"vector16" not in record
        assert np.frombuffer(record[b"vector"], dtype="<f4").tolist() == unit(0, 1).tolist()
        described = _vector_info(raw, f"{namespace}:idx")
        assert as_text(described["data_type"]) == "FLOAT32"
        assert described["num_docs"] == 2
        other = RedisBackend.from_url(redis_url, vector_search="query-engine")
        try:  # a fresh client reads the index's type from FT.INFO
            assert nearest(other, namespace, "p", unit(0, 1)) == [("new", b"new")]
            assert nearest(other, namespace, "p", unit(1, 0.02)) == [("old", b"old")]
            # Exact float32 decisions, at the threshold too.
            other.add_vectors(namespace, "q", [VectorRecord("edge", at_distance(0.1), b"e")])
            embedded = connect("memory://")
            embedded.add_vectors(namespace, "q", [VectorRecord("edge", at_distance(0.1), b"e")])
            for threshold in (0.0999, 0.1, 0.5):
                expected = embedded.search_vectors(namespace, "q", unit(1), k=1,
                                                   max_distance=threshold)  # fmt: skip
                got = other.search_vectors(namespace, "q", unit(1), k=1, max_distance=threshold)
                assert [h.id for h in got] == [h.id for h in expected], threshold
            # Another dimension in this namespace: its own index, FLOAT16, its own field.
            small = normalize(as_vector([1.0, 0.0, 0.0, 1.0]))
            other.add_vectors(namespace, "p4", [VectorRecord("small", small, b"s")])
            assert nearest(other, namespace, "p4", small) == [("small", b"s")]
            described4 = _vector_info(raw, f"{namespace}:idx:d4")
            assert as_text(described4["data_type"]) == "FLOAT16"
            assert as_text(described4["identifier"]) == "vector16"
            small_key = f"{namespace}:vec:{{{namespace}}}small"
            assert raw.hkeys(small_key) and not raw.hexists(small_key, "vector")
            # The 8-d entries are still found after the 4-d index was added.
            assert nearest(other, namespace, "p", unit(0, 1)) == [("new", b"new")]
        finally:
            other.close()
    finally:
        backend.clear(namespace)
        backend.close()


def test_new_index_is_float16(
    kind: str, raw: redis.Redis, backend: Backend, namespace: str
) -> None:
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
    described = _vector_info(raw, f"{namespace}:idx")
    assert as_text(described["data_type"]) == "FLOAT16"
    assert as_text(described["identifier"]) == "vector16"
    assert int(described["dim"]) == DIM


@pytest.mark.parametrize("max_distance", [0.1, 1.0])  # the range query; the KNN alone
def test_search_returns_only_the_partitions_entries(
    kind: str, backend: Backend, namespace: str, max_distance: float
) -> None:
    """Identical vectors in other partitions and with other tags are never returned."""
    vector = unit(1, 0.01)
    backend.add_vectors(namespace, "a", [VectorRecord("a1", vector, b"a1")])
    backend.add_vectors(namespace, "b", [VectorRecord("b1", vector, b"b1")])
    backend.add_vectors(namespace, "a", [VectorRecord("a2", vector, b"a2", tags={"user": "u"})])
    backend.add_vectors(namespace, "c", [VectorRecord("c1", vector, b"c1", tags={"user": "u"})])
    for partition, tags, expected in (
        ("a", None, {"a1", "a2"}),
        ("b", None, {"b1"}),
        ("a", {"user": "u"}, {"a2"}),
        ("b", {"user": "u"}, set()),
        ("c", {"user": "v"}, set()),
        ("d", None, set()),
    ):
        hits = backend.search_vectors(
            namespace, partition, vector, k=10, max_distance=max_distance, tags=tags
        )
        assert {h.id for h in hits} == expected, (partition, tags)


def test_knn_finds_what_the_range_query_missed(
    kind: str, backend: Backend, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The range search over HNSW is approximate: when it finds nothing the KNN runs (here
    the range query's radius is made 0, so it finds nothing)."""
    if kind != "redis-qe":
        pytest.skip("Query Engine only")
    backend.add_vectors(namespace, "p", [VectorRecord("x", at_distance(0.05), b"v")])
    monkeypatch.setattr(query_engine, "RANGE_MARGIN", -0.1)
    assert nearest(backend, namespace, "p", unit(1)) == [("x", b"v")]
    assert nearest(backend, namespace, "p", unit(0, 0, 1)) == []


def test_query_engine_required_but_missing(server_pool: ServerPool) -> None:
    if "redis" not in REDIS_KINDS:
        pytest.skip("needs the plain Redis server")
    url = server_pool.url("redis")
    probe = RedisBackend.from_url(url)
    plain = probe.vector_search == "mirror"
    probe.close()
    if not plain:
        pytest.skip(f"the server at {url} has the Query Engine")
    with pytest.raises(ValueError, match="no Query Engine"):
        RedisBackend.from_url(url, vector_search="query-engine")


# -- mirror: log compaction and memory bound -----------------------------------------------------


def test_log_compaction_keeps_results_and_shrinks_the_log(
    kind: str,
    backend: Backend,
    second: RedisBackend,
    namespace: str,
    raw: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if kind != "redis":
        pytest.skip("the log exists on the mirror path only")
    monkeypatch.setattr(log_mirror, "COMPACT_FLOOR", 8)
    log = f"{namespace}:vlog:{{{namespace}}}p"
    assert second.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1) == []
    for version in range(40):  # the same three ids, rewritten over and over
        backend.add_vectors(
            namespace,
            "p",
            [
                VectorRecord("a", unit(1), f"a{version}".encode()),
                VectorRecord("b", unit(0, 1), f"b{version}".encode()),
                VectorRecord("gone", unit(0, 0, 1), b"gone"),
            ],
        )
        backend.delete_vectors(namespace, ["gone"])
    assert raw.xlen(log) < 3 * 40 // 2
    assert int(raw.hget(f"{namespace}:vmeta:{{{namespace}}}p", "epoch") or 0) >= 1
    for client in (backend, second):  # the second client rebuilds its mirror after a compaction
        assert nearest(client, namespace, "p", unit(1)) == [("a", b"a39")]
        assert nearest(client, namespace, "p", unit(0, 1)) == [("b", b"b39")]
        assert client.search_vectors(namespace, "p", unit(0, 0, 1), k=1, max_distance=0.1) == []


def test_mirror_memory_is_bounded(redis_url: str, kind: str, namespace: str) -> None:
    if kind != "redis":
        pytest.skip("mirror path only")
    backend = RedisBackend.from_url(redis_url, vector_search="mirror", max_mirror_rows=10)
    try:
        rng = np.random.default_rng(0)
        records = [
            VectorRecord(f"r{i}", normalize(as_vector(rng.normal(size=DIM))), str(i).encode())
            for i in range(30)
        ]
        backend.add_vectors(namespace, "p", records)
        backend.add_vectors(namespace, "q", records[:8])
        newest = records[-1]
        hits = backend.search_vectors(namespace, "p", newest.vector, k=1, max_distance=0.01)
        assert [h.id for h in hits] == [newest.id]
        hits = backend.search_vectors(namespace, "q", records[0].vector, k=1, max_distance=0.01)
        assert [h.id for h in hits] == [records[0].id]
        mirrors = backend.ops.mirrors
        held = [m for m in (mirrors.peek(namespace, "p"), mirrors.peek(namespace, "q")) if m]
        assert sum(m.size for m in held) <= 10
        backend.clear(namespace)
    finally:
        backend.close()


# -- failure behaviour ---------------------------------------------------------------------------


def test_unreachable_server_degrades_to_misses(caplog: pytest.LogCaptureFixture) -> None:
    url = closed_port_url()
    backend = connect(url)  # no error at construction
    assert backend.vector_search == "auto"  # type: ignore[attr-defined]
    cache = ExactCache(backend, namespace="down")
    assert cache.lookup("p", "llm") is None
    cache.update("p", "llm", [Generation(text="x")])  # skipped, no exception
    assert "continuing without the cache" in caplog.text
    store = BackendByteStore(url, namespace="down")
    assert store.mget(["a"]) == [None]
    with pytest.raises(BackendError, match="Redis"):
        ExactCache(url, namespace="down", on_backend_error="raise").lookup("p", "llm")
    backend.close()


async def test_unreachable_server_async(caplog: pytest.LogCaptureFixture) -> None:
    url = closed_port_url()
    cache = SemanticCache(url, embeddings=WordHashEmbeddings(), namespace="down")
    assert await cache.alookup("What is up?", "llm") is None
    await cache.aupdate("What is up?", "llm", [Generation(text="x")])
    with pytest.raises(BackendError):
        await ExactCache(url, on_backend_error="raise").alookup("p", "llm")


# -- clients passed in ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, 3])
async def test_user_clients_with_decoded_responses(
    mode: str, redis_url: str, namespace: str, protocol: int
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True, protocol=protocol)
    backend = connect(client, vector_search=mode)
    try:
        backend.set_many(namespace, [("kv:bin", b"\x00\xff\xfe")])
        assert backend.get_many(namespace, ["kv:bin"]) == [b"\x00\xff\xfe"]
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"\xff")], ttl=60)
        hits = await backend.asearch_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
        assert [(h.id, h.payload) for h in hits] == [("x", b"\xff")]
        assert await backend.aget_counters(namespace, "stats") == {}
        await backend.aclear(namespace)
    finally:
        await backend.aclose()
    assert client.ping()  # never closed by the backend
    client.close()


async def test_async_client_only(redis_url: str, namespace: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    backend = connect(client)
    try:
        await backend.aset_many(namespace, [("kv:a", b"1")])
        assert backend.get_many(namespace, ["kv:a"]) == [b"1"]  # sync side built from it
        await backend.aclear(namespace)
    finally:
        await backend.aclose()
    assert await client.ping()
    await client.aclose()


class _TunnelConnection(redis.connection.AbstractConnection):
    """A transport of the application's own, not built on redis-py's TCP, TLS or unix
    socket connections: semcache cannot know how to open one of the other kind."""

    def repr_pieces(self) -> list[tuple[str, Any]]:
        return []

    def _connect(self) -> Any:
        raise NotImplementedError

    def _host_error(self) -> str:
        return "tunnel"


async def test_a_client_that_cannot_be_copied_is_refused_at_construction(
    redis_url: str,
) -> None:
    client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=_TunnelConnection))
    with pytest.raises(SemcacheInputError) as caught:
        connect(client)  # at construction, not on the first async call
    message = str(caught.value)
    assert "cannot build a redis.asyncio.client.Redis" in message
    assert "_TunnelConnection" in message and "pass both clients" in message


async def test_a_connection_subclass_is_copied_as_the_class_it_extends(
    redis_url: str, namespace: str
) -> None:
    import redis.asyncio

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    backend = RedisBackend.from_client(client)
    try:
        await backend.aset_many(namespace, [("kv:a", b"1")])
        assert client.get(f"{namespace}:kv:a") == b"1"
        built = await backend._async()  # type: ignore[attr-defined]
        assert built.connection_pool.connection_class is redis.asyncio.Connection
        await backend.aclear(namespace)
    finally:
        await backend.aclose()
        client.close()


def test_new_event_loop_per_call(redis_url: str, namespace: str) -> None:
    backend = RedisBackend.from_url(redis_url)
    try:
        for value in (b"1", b"2"):
            asyncio.run(backend.aset_many(namespace, [("kv:a", value)]))
            assert asyncio.run(backend.aget_many(namespace, ["kv:a"])) == [value]
        backend.clear(namespace)
    finally:
        backend.close()


def test_exact_repeat_with_its_vector_under_a_zero_threshold(
    backend: Backend, namespace: str
) -> None:
    """lookup(vector=) finds an exact repeat by search: also under threshold 0 on the Query
    Engine's FLOAT16 index, which serves a semantic hit only within the threshold by more
    than its rounding."""
    from semcache_core import Prompt, ResponseCache
    from semcache_core.testing import HashingEmbedder

    cache = ResponseCache(
        backend, namespace=namespace, embedder=HashingEmbedder(DIM), distance_threshold=0.0
    )
    vector = unit(1, 0.3)
    cache.store("the question", "the answer", vector=vector)
    found = cache.lookup("", Prompt.plain("the question"), vector=vector)
    assert found.outcome == "exact" and found.body is not None
    near = cache.lookup("", Prompt.plain("another question"), vector=unit(1, 0.301))
    assert near.outcome == "miss"
