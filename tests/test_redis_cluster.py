"""Redis Cluster: what only a cluster has (the generic suites already run on ``redis-cluster``).

Detection from a node URL, a cluster URL and cluster clients; batches split by slot and sent as
one pipeline per primary; a partition's vector keys in one slot, partitions over shards; scans and ``clear`` over
every primary; the fallback from ``auto`` to the mirror path; and a failover (SIGKILL of a
primary) that costs misses, never exceptions or wrong answers.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from langchain_core.outputs import Generation
from redis.connection import AbstractConnection

from langchain_semcache import BackendByteStore, ExactCache, SemanticCache
from semcache_core import VectorRecord, connect, keys
from semcache_core.backends.redis import RedisBackend
from semcache_core.backends.redis import ops as redis_ops
from semcache_core.codecs import as_vector, normalize
from semcache_core.errors import BackendError, SemcacheInputError
from tests import servers
from tests.backends import BACKEND_KINDS, ServerPool, fresh_namespace
from tests.fakes import WordHashEmbeddings

pytestmark = pytest.mark.redis

if "redis-cluster" not in BACKEND_KINDS:
    pytest.skip("the redis-cluster kind is not selected", allow_module_level=True)

DIM = 8


def unit(*values: float) -> np.ndarray:
    return normalize(as_vector(list(values) + [0.0] * (DIM - len(values))))


@pytest.fixture(scope="module")
def cluster_url(server_pool: ServerPool) -> str:
    return server_pool.url("redis-cluster")


@pytest.fixture
def raw(cluster_url: str) -> Iterator[Any]:
    """A redis-py ``RedisCluster`` on the same cluster, to look at what the backend wrote."""
    client = _raw_cluster(cluster_url)
    yield client
    client.close()


@pytest.fixture
def backend(cluster_url: str) -> Iterator[RedisBackend]:
    instance = RedisBackend.from_url(cluster_url)
    yield instance
    instance.close()


def _raw_cluster(url: str) -> Any:
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        first = url.split("://", 1)[1].split(",", 1)[0]
        url = ("rediss://" if url.startswith("rediss") else "redis://") + first
    return redis.cluster.RedisCluster.from_url(url)


def _keys_of(raw: Any, pattern: str) -> set[str]:
    """Every key matching ``pattern`` on every primary."""
    found: set[str] = set()
    for node in raw.get_primaries():
        found.update(k.decode() for k in node.redis_connection.scan_iter(match=pattern, count=1000))
    return found


class SendCounter:
    """Counts client round trips (redis-py writes of packed commands), per connection."""

    def __init__(self) -> None:
        self.sends: list[str] = []
        self._lock = threading.Lock()

    def __enter__(self) -> SendCounter:
        original = AbstractConnection.send_packed_command
        self._original = original
        counter = self

        def send(connection: Any, command: Any, check_health: bool = True) -> None:
            with counter._lock:
                counter.sends.append(f"{connection.host}:{connection.port}")
            original(connection, command, check_health)

        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


# -- detection -----------------------------------------------------------------------------------


def test_cluster_detected_from_a_node_url(backend: RedisBackend) -> None:
    assert backend.topology == "cluster"
    assert backend.vector_search == "mirror"
    assert "topology='cluster'" in repr(backend)


def test_cluster_url_with_every_node(cluster_url: str, raw: Any, namespace: str) -> None:
    nodes = ",".join(node.name for node in raw.get_nodes())
    backend = connect(f"redis+cluster://{nodes}")
    try:
        assert backend.topology == "cluster"  # type: ignore[attr-defined]
        backend.set_many(namespace, [("kv:a", b"1")])
        assert raw.get(f"{namespace}:kv:a") == b"1"
        backend.clear(namespace)
    finally:
        backend.close()


async def test_cluster_clients_passed_in(cluster_url: str, raw: Any, namespace: str) -> None:
    sync_client = _raw_cluster(cluster_url)
    backend = connect(sync_client)
    try:
        backend.set_many(namespace, [("kv:a", b"1")])
        assert await backend.aget_many(namespace, ["kv:a"]) == [b"1"]  # async side built
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        hits = await backend.asearch_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
        assert [h.payload for h in hits] == [b"v"]
    finally:
        await backend.aclose()
    assert sync_client.ping()  # never closed by the backend
    async_client = redis.asyncio.cluster.RedisCluster.from_url(
        "redis://" + raw.get_default_node().name
    )
    backend = connect(async_client)
    try:
        assert await backend.aget_many(namespace, ["kv:a"]) == [b"1"]
        assert backend.get_many(namespace, ["kv:a"]) == [b"1"]  # sync side built from it
        await backend.aclear(namespace)
    finally:
        await backend.aclose()
    assert await async_client.ping()
    await async_client.aclose()
    sync_client.close()


def test_auto_falls_back_to_the_mirror_once_with_a_warning(
    cluster_url: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_ops, "FALLBACK_LOGGED", set())  # as in a fresh process
    with caplog.at_level(logging.WARNING, logger="semcache"):
        cache = SemanticCache(cluster_url, embeddings=WordHashEmbeddings(), namespace=namespace)
        again = SemanticCache(cluster_url, embeddings=WordHashEmbeddings(), namespace=namespace)
        assert again.stats()["vector_search"] == "mirror"
        cache.update("What is the capital of France?", "llm", [Generation(text="Paris")])
        assert cache.lookup("what's the capital city of France", "llm") == [
            Generation(text="Paris")
        ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "cluster-wide Query Engine" in warnings[0].getMessage()
    assert cache.stats()["vector_search"] == "mirror"
    assert cache.stats()["redis_topology"] == "cluster"
    cache.clear()


def test_query_engine_required_on_a_cluster_without_it(cluster_url: str) -> None:
    with pytest.raises(SemcacheInputError, match="Redis Cluster"):
        RedisBackend.from_url(cluster_url, vector_search="query-engine")


# -- key layout and round trips ------------------------------------------------------------------


def test_batch_keys_on_several_slots_one_pipeline_per_primary(
    backend: RedisBackend, raw: Any, namespace: str
) -> None:
    store = BackendByteStore(backend, namespace=namespace)
    keys = [f"doc-{i}" for i in range(1000)]
    slots = {raw.keyslot(f"{namespace}:kv:{key}") for key in keys}
    owners = {raw.get_node_from_key(f"{namespace}:kv:{key}").name for key in keys}
    primaries = {node.name for node in raw.get_primaries()}
    assert len(slots) > 100 and owners == primaries
    store.mget(keys)  # a connection to every primary, and the stats flush, out of the way
    for name, call in (
        ("mset", lambda: store.mset([(key, key.encode()) for key in keys])),
        ("mget", lambda: store.mget(keys)),
        ("mdelete", lambda: store.mdelete(keys)),
    ):
        with SendCounter() as counter:
            call()
        assert sorted(counter.sends) == sorted(primaries), name  # one round trip per primary
        if name == "mset":
            assert store.mget(keys) == [key.encode() for key in keys]
    assert store.mget(keys) == [None] * len(keys)


def _partition_keys(raw: Any, namespace: str, tag: str) -> set[str]:
    """Every vector key (records, log, meta, dimension) of the partitions tagged ``tag``."""
    found = set()
    for kind in ("vec", "vlog", "vmeta", "vlock", "vdim"):
        found |= _keys_of(raw, f"{namespace}:{kind}:{{{namespace}:{tag}}}*")
    return found


def test_a_partition_log_and_its_entries_share_one_slot_and_partitions_spread(
    backend: RedisBackend, raw: Any, namespace: str
) -> None:
    """Engine-made partitions: a partition's log, meta, dimension and record hashes share
    the slot of ``{<ns>:<tag>}``; two partitions of one namespace sit on different primaries
    (found by trying scopes); records are read, refreshed and deleted by id alone."""
    first = keys.partition_key(namespace, "scope-0", "")
    first_node = raw.get_node_from_key(f"{{{namespace}:{keys.partition_tag(first)}}}").name
    second = next(
        partition
        for partition in (keys.partition_key(namespace, f"scope-{i}", "") for i in range(1, 200))
        if raw.get_node_from_key(f"{{{namespace}:{keys.partition_tag(partition)}}}").name
        != first_node
    )
    ids: dict[str, list[str]] = {}
    for partition in (first, second):
        ids[partition] = [keys.semantic_entry_id(namespace, partition, f"q{i}") for i in range(20)]
        records = [
            VectorRecord(i, unit(1, n), b"v" + i.encode()) for n, i in enumerate(ids[partition])
        ]
        backend.add_vectors(namespace, partition, records, ttl=600)
    slots = {}
    for partition in (first, second):
        tag = keys.partition_tag(partition)
        assert tag is not None and all(i.startswith(f"{tag}.") for i in ids[partition])
        found = _partition_keys(raw, namespace, tag)
        assert len(found) == 20 + 2  # the records, the log and the partition's dimension
        assert f"{namespace}:vlog:{{{namespace}:{tag}}}{partition}" in found
        assert f"{namespace}:vdim:{{{namespace}:{tag}}}{partition}" in found
        assert {raw.keyslot(key) for key in found} == {raw.keyslot(f"{{{namespace}:{tag}}}")}
        slots[partition] = raw.keyslot(f"{{{namespace}:{tag}}}")
        assert {raw.get_node_from_key(key).name for key in found} == {
            raw.get_node_from_key(f"{{{namespace}:{tag}}}").name
        }
    assert slots[first] != slots[second]
    assert raw.get_node_from_key(f"{namespace}:vdim").name  # the namespace's dimension: anywhere
    both = [ids[first][3], ids[second][5]]
    hits = backend.search_vectors(namespace, second, unit(1, 5), k=1, max_distance=0.01)
    assert [h.id for h in hits] == [ids[second][5]]
    assert backend.get_vector_payloads(namespace, both) == [b"v" + i.encode() for i in both]
    backend.expire_many(
        namespace, [keys.vector_key(i) for i in both], ttl=3600
    )  # one script per slot
    for partition in (first, second):
        tag = keys.partition_tag(partition)
        log = f"{namespace}:vlog:{{{namespace}:{tag}}}{partition}"
        assert 600_000 < raw.pttl(log) <= 3_600_000
    backend.delete_vectors(namespace, both)
    assert backend.get_vector_payloads(namespace, both) == [None, None]
    with pytest.raises(SemcacheInputError, match="needs an id"):
        backend.add_vectors(namespace, first, [VectorRecord("x", unit(1), b"v")])
    backend.clear(namespace)
    assert _keys_of(raw, f"{namespace}:*") == set()


def test_untagged_partitions_and_ids_share_the_namespace_slot(
    backend: RedisBackend, raw: Any, namespace: str
) -> None:
    """Partitions and ids of other forms (no tag) keep working, in the slot of ``{<ns>}``."""
    for partition in ("p1", "p2", "a{b}c"):
        backend.add_vectors(
            namespace,
            partition,
            [VectorRecord(f"{partition}-{i}", unit(1, i), b"v") for i in range(20)],
        )
    vector_keys = {
        key
        for key in _keys_of(raw, f"{namespace}:*")
        if key.split(":", 2)[1] in ("vec", "vlog", "vmeta", "vdim") and key != f"{namespace}:vdim"
    }
    assert len(vector_keys) == 60 + 3 + 3
    assert {raw.keyslot(key) for key in vector_keys} == {raw.keyslot(f"{{{namespace}}}")}
    assert f"{namespace}:vlog:{{{namespace}}}p1" in vector_keys
    hits = backend.search_vectors(namespace, "a{b}c", unit(1, 3), k=1, max_distance=0.01)
    assert [h.id for h in hits] == ["a{b}c-3"]
    backend.clear(namespace)


def test_yield_keys_and_clear_visit_every_primary(
    backend: RedisBackend, raw: Any, namespace: str
) -> None:
    other = fresh_namespace()
    store = BackendByteStore(backend, namespace=namespace)
    keys = [f"k{i}" for i in range(2500)]  # several SCAN pages on each primary
    store.mset([(key, b"v") for key in keys])
    ExactCache(backend, namespace=namespace).update("p", "llm", [Generation(text="x")])
    backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
    backend.incr_counters(namespace, "stats", {"hits": 1})
    BackendByteStore(backend, namespace=other).mset([(key, b"other") for key in keys[:50]])
    backend.add_vectors(other, "p", [VectorRecord("x", unit(1), b"other")])
    raw.set(f"unrelated-{namespace}", b"keep")
    raw.set(namespace, b"keep")
    assert sorted(store.yield_keys()) == sorted(keys)
    assert sorted(store.yield_keys(prefix="k1")) == sorted(k for k in keys if k.startswith("k1"))
    store.clear()
    assert _keys_of(raw, f"{namespace}:*") == set()
    assert list(store.yield_keys()) == []
    assert BackendByteStore(backend, namespace=other).mget(keys[:50]) == [b"other"] * 50
    assert backend.get_vector_payloads(other, ["x"]) == [b"other"]
    assert raw.get(f"unrelated-{namespace}") == b"keep" and raw.get(namespace) == b"keep"
    raw.delete(f"unrelated-{namespace}")
    raw.delete(namespace)
    backend.clear(other)


# -- failover ------------------------------------------------------------------------------------

FAILOVER_PROMPTS = 60
#: Seconds the failover test runs after the kill at most (the promotion takes ~2-4 s).
FAILOVER_BUDGET = 30.0


def _promoted(survivor: str, dead: str) -> bool:
    """Whether ``dead`` is marked failed and every slot is served again (seen from a node)."""
    client = redis.Redis.from_url(survivor, socket_timeout=1)
    try:
        nodes = client.execute_command("CLUSTER", "NODES")
        text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
        info = client.execute_command("CLUSTER", "INFO")
        state = info.decode() if isinstance(info, bytes) else str(info)
    except redis.RedisError:
        return False
    finally:
        client.close()
    dead_line = next((line for line in text.splitlines() if dead in line), "")
    return "fail" in dead_line.split()[2] and "cluster_state:ok" in state if dead_line else False


def test_failover_costs_misses_not_exceptions_or_wrong_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if os.environ.get("REDIS_CLUSTER_URL"):
        pytest.skip("kills a primary: runs on a cluster of its own, not on REDIS_CLUSTER_URL")
    cluster = servers.start_redis_cluster()
    namespace = fresh_namespace("failover")
    raw = _raw_cluster(cluster.url)
    try:
        exact = ExactCache(cluster.url, namespace=namespace)
        embeddings = WordHashEmbeddings()
        semantic = SemanticCache(exact.backend, embeddings=embeddings, namespace=f"{namespace}s")
        prompts = [f"question number {i} about topic {i * 7}" for i in range(FAILOVER_PROMPTS)]
        for i, prompt in enumerate(prompts):
            exact.update(prompt, "llm", [Generation(text=f"answer {i}")])
            semantic.update(prompt, "llm", [Generation(text=f"answer {i}")])
        raw.wait(1, 1000)  # replicas have the entries before the kill (best effort)
        time.sleep(0.5)
        # The primary holding the semantic partition (its log and entries) is the one killed:
        # both the exact entries on it and every semantic lookup go through the failover.
        (log,) = _keys_of(raw, f"{namespace}s:vlog:*")
        victim_name = raw.get_node_from_key(log).name
        victim = cluster.node_for_port(int(victim_name.rsplit(":", 1)[1]))
        survivor = next(n.url for n in cluster.nodes if n is not victim)

        exceptions = wrong = misses = hits = 0
        killed_at = promoted_at = back_at = None
        started = time.monotonic()
        rounds = 0
        while time.monotonic() - started < FAILOVER_BUDGET + 2:
            rounds += 1
            round_hits = 0
            for i, prompt in enumerate(prompts):
                expected = [Generation(text=f"answer {i}")]
                for cache in (exact, semantic):
                    try:
                        got = cache.lookup(prompt, "llm")
                        cache.update(f"new {rounds} {i}", "llm", [Generation(text="new")])
                    except Exception:
                        exceptions += 1
                        continue
                    if got is None:
                        misses += 1
                    elif got == expected:
                        hits += 1
                        round_hits += 1
                    else:
                        wrong += 1
            now = time.monotonic()
            if killed_at is None and now - started > 1.0:
                os.kill(victim.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                continue
            if killed_at is not None and promoted_at is None and _promoted(survivor, victim_name):
                promoted_at = time.monotonic()
            if promoted_at is not None and round_hits == 2 * len(prompts):
                back_at = time.monotonic()
                break
            if killed_at is not None and now - killed_at > FAILOVER_BUDGET:
                break
            time.sleep(0.05)
        assert killed_at is not None
        assert exceptions == 0
        assert wrong == 0
        assert promoted_at is not None, "no replica was promoted"
        assert back_at is not None, "hits did not come back"
        seconds = back_at - promoted_at
        print(
            f"\nfailover: promoted {promoted_at - killed_at:.1f} s after the kill; every lookup "
            f"a hit again {seconds:.1f} s after the promotion; {misses} misses, {hits} hits, "
            f"{exceptions} exceptions, {wrong} wrong answers"
        )
        assert seconds <= 10.0
        assert "continuing without the cache" in caplog.text  # the failure was warned about
        exact.backend.close()
    finally:
        raw.close()
        cluster.stop()


# -- resharding: ASK during a slot migration, MOVED after it --------------------------------------


def test_ask_and_moved_are_followed_while_a_slot_moves(
    backend: RedisBackend, raw: Any, namespace: str
) -> None:
    """Moves the slot of the namespace's vector keys to another primary, the way
    ``redis-cli --cluster reshard`` does, while the backend keeps its old slot map."""
    slot = raw.keyslot(f"{{{namespace}}}")
    backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"before")])
    assert backend.get_vector_payloads(namespace, ["x"]) == [b"before"]  # map loaded
    source = raw.get_node_from_key(f"{{{namespace}}}")
    target = next(node for node in raw.get_primaries() if node.name != source.name)
    src, dst = source.redis_connection, target.redis_connection
    src_id, dst_id = ((c.execute_command("CLUSTER", "MYID") or b"").decode() for c in (src, dst))
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    try:
        # Mid-migration the keys are at the target: the source answers ASK and redis-py asks
        # the target. A multi-key script on a migrating slot gets TRYAGAIN from Redis until
        # the slot has moved: a vector write then fails (a cache skips it), never half-done.
        keys_before = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys_before)
        assert backend.get_vector_payloads(namespace, ["x"]) == [b"before"]
        backend.set_many(namespace, [(f"kv:{{{namespace}}}z", b"during")])  # this slot too
        with pytest.raises(BackendError):
            backend.add_vectors(namespace, "q", [VectorRecord("y", unit(0, 1), b"no")])
        for node in raw.get_primaries():
            node.redis_connection.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    except Exception:
        for client in (src, dst):
            client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        raise
    # After it: the backend's map is stale, the source answers MOVED, redis-py follows it.
    assert backend.get_many(namespace, [f"kv:{{{namespace}}}z"]) == [b"during"]
    backend.add_vectors(namespace, "q", [VectorRecord("y", unit(0, 1), b"during")])
    assert backend.get_vector_payloads(namespace, ["x", "y"]) == [b"before", b"during"]
    hits = backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
    assert [h.payload for h in hits] == [b"before"]
    hits = backend.search_vectors(namespace, "q", unit(0, 1), k=1, max_distance=0.1)
    assert [h.payload for h in hits] == [b"during"]
    backend.clear(namespace)
    assert _keys_of(raw, f"{namespace}:*") == set()


def test_a_snapshot_is_read_on_the_partition_shard_by_its_sketches(
    cluster_url: str, raw: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror's snapshot lives in its partition's slot; a new client adopts its sketches,
    reads its candidates' vectors from the log, then the vector chunks (here inline)."""
    from semcache_core.backends.redis import log_mirror
    from semcache_core.flow import run

    monkeypatch.setattr(log_mirror, "SNAPSHOT_MIN_ROWS", 8)
    monkeypatch.setattr(log_mirror, "SNAPSHOT_CHUNK_ROWS", 10)
    partition = keys.partition_key(namespace, "scope-snap", "")
    ids = [keys.semantic_entry_id(namespace, partition, f"q{i}") for i in range(24)]
    rng = np.random.default_rng(11)
    matrix = np.stack([normalize(as_vector(rng.normal(size=DIM))) for _ in ids])
    writer = RedisBackend.from_url(cluster_url, vector_search="mirror")
    late = RedisBackend.from_url(cluster_url, vector_search="mirror")
    late.ops.background = lambda flow: run(flow, late)
    try:
        records = [VectorRecord(i, matrix[n], i.encode()) for n, i in enumerate(ids)]
        writer.add_vectors(namespace, partition, records, ttl=600)
        writer.search_vectors(namespace, partition, matrix[0], k=1, max_distance=0.01)
        tag = keys.partition_tag(partition)
        snapshot = f"{namespace}:vsnap:{{{namespace}:{tag}}}{partition}"
        assert raw.keyslot(snapshot) == raw.keyslot(f"{{{namespace}:{tag}}}")
        assert {k.decode() for k in raw.hkeys(snapshot)} == {"h", "i", "m", "q", "s", "0", "1", "2"}
        for n, entry_id in enumerate(ids):
            hits = late.search_vectors(namespace, partition, matrix[n], k=1, max_distance=0.01)
            assert [(h.id, h.payload) for h in hits] == [(entry_id, entry_id.encode())]
        mirror = late.ops.mirrors.peek(namespace, partition)
        assert mirror is not None and mirror.vectors_complete
    finally:
        writer.clear(namespace)
        writer.close()
        late.close()
