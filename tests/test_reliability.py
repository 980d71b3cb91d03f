"""Reliability, part 1: hostile stored data, bad input, key edge cases, model switches, loops.

Hostile bytes are planted directly under the documented key layout (``keys`` module; the
Redis layout of ``backends/redis/keys.py``; the SQLite tables of ``backends/embedded.py``),
on every backend kind. Each must be a miss (or a skipped row) with a warning, never an
exception out of a lookup, and the rest of the namespace keeps working. Part 2 (servers
stopped and killed, 32-thread load) is ``test_reliability_faults.py``; the README's
reliability section reports the figures.
"""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.outputs import Generation

from langchain_semcache import ExactCache, SemanticCache
from semcache_core import (
    Backend,
    Prompt,
    ResponseCache,
    SchemaConflictError,
    SemcacheInputError,
    connect,
    keys,
)
from semcache_core.backends import VectorRecord
from semcache_core.codecs import as_vector, normalize
from semcache_core.testing import HashingEmbedder, fresh_namespace
from tests.backends import ServerPool
from tests.fakes import WordHashEmbeddings

SCOPE = "llm-config"


def _entry(body: Any, *, kind: str = "response", version: Any = 1) -> bytes:
    import json

    return json.dumps({"_": "semcache", "v": version, "kind": kind, "body": body}).encode()


#: Stored entries that must never be served nor raise (name, raw bytes).
HOSTILE_ENTRIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("invalid utf-8", b"\xff\xfe\xfd"),
    ("not json", b"<html>"),
    ("nested 100k [", b"[" * 100_000),
    ("nested 100k {", b'{"a":' * 100_000),
    ("json null", b"null"),
    ("json list", b"[1, 2]"),
    ("json string", b'"semcache"'),
    ("no magic", b'{"v": 1, "kind": "response", "body": {"value": {}}}'),
    ("unknown version", _entry({"value": {}}, version=99)),
    ("version as text", _entry({"value": {}}, version="1")),
    ("other kind", _entry({"value": {}}, kind="kv")),
    ("body a list", _entry([1])),
    ("body lacks value", _entry({"tokens": 1})),
    ("value a number", _entry({"value": 3})),
    ("value a list", _entry({"value": [1]})),
    ("value null", _entry({"value": None})),
    ("tokens text", _entry({"value": {}, "tokens": "many"})),
    ("tokens a bool", _entry({"value": {}, "tokens": True})),
    ("tokens NaN", b'{"_":"semcache","v":1,"kind":"response","body":{"value":{},"tokens":NaN}}'),
    (
        "tokens 1e999",
        b'{"_":"semcache","v":1,"kind":"response","body":{"value":{},"tokens":1e999}}',
    ),
    ("created text", _entry({"value": {}, "created": "yesterday"})),
    ("query a number", _entry({"value": {}, "query": 7})),
    ("deep value", b'{"_":"semcache","v":1,"kind":"response","body":{"value":' + b"[" * 50_000),
]

#: Entries well-formed for the core but not for LangChain: the adapter must miss on them.
HOSTILE_GENERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("no generations", {}),
    ("generations text", {"generations": "x"}),
    ("generations empty", {"generations": []}),
    ("generation a number", {"generations": [3]}),
    (
        "constructor outside the allowlist",
        {"generations": [{"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}}]},
    ),
    (
        "secret",
        {"generations": [{"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}]},
    ),
]


def _plant_exact(backend: Backend, ns: str, prompt: str, raw: bytes) -> None:
    backend.set_many(ns, [(keys.exact_entry_key(ns, SCOPE, prompt), raw)])


def test_hostile_entries_are_misses(backend: Backend, namespace: str) -> None:
    cache = ResponseCache(backend, namespace=namespace)
    cache.update(SCOPE, Prompt.plain("healthy"), {"answer": 42}, tokens=3)
    for index, (name, raw) in enumerate(HOSTILE_ENTRIES):
        prompt = f"hostile {index}"
        _plant_exact(backend, namespace, prompt, raw)
        assert cache.lookup(SCOPE, Prompt.plain(prompt)).outcome == "miss", name
    healthy = cache.lookup(SCOPE, Prompt.plain("healthy")).body
    assert healthy is not None and healthy["value"] == {"answer": 42}


def test_hostile_semantic_payloads_are_misses(backend: Backend, namespace: str) -> None:
    embedder = HashingEmbedder(16)
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder, trap_guard=False)
    for index, (name, raw) in enumerate(HOSTILE_ENTRIES):
        query = f"hostile semantic payload number {index}"
        prompt = Prompt.plain(query)
        partition = cache.partition(SCOPE, prompt)
        compared = cache.query(prompt).compared  # what the entry id and the vector are of
        vector = normalize(as_vector(embedder.embed(compared)))
        record_id = keys.semantic_entry_id(namespace, partition, compared)
        backend.add_vectors(namespace, partition, [VectorRecord(record_id, vector, raw)])
        # Both paths: the read by id (the same query) and the search (a paraphrase).
        assert cache.lookup(SCOPE, prompt).outcome == "miss", name
        assert cache.lookup(SCOPE, Prompt.plain(query + " today")).outcome == "miss", name
    cache.update(SCOPE, Prompt.plain("a healthy question"), {"answer": 1})
    assert cache.lookup(SCOPE, Prompt.plain("a healthy question")).outcome == "exact"


def test_hostile_generations_are_langchain_misses(backend: Backend, namespace: str) -> None:
    cache = ExactCache(backend, namespace=namespace)
    for index, (name, value) in enumerate(HOSTILE_GENERATIONS):
        prompt = f"generation {index}"
        _plant_exact(backend, namespace, prompt, _entry({"value": value, "tokens": 0}))
        assert cache.lookup(prompt, SCOPE) is None, name
    cache.update("ok", SCOPE, [Generation(text="fine")])
    assert cache.lookup("ok", SCOPE) == [Generation(text="fine")]


# -- storage planted below the protocol --------------------------------------------------------


def test_sqlite_rows_planted_by_hand_are_skipped(tmp_path: Path, namespace: str) -> None:
    path = tmp_path / "hostile.db"
    backend = connect(f"sqlite:///{path}")
    embedder = HashingEmbedder(16)
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder, trap_guard=False)
    prompt = Prompt.plain("how do I reset my password")
    cache.update(SCOPE, prompt, {"answer": "healthy"})
    partition = cache.partition(SCOPE, prompt)
    raw = sqlite3.connect(path, isolation_level=None)
    insert = (
        "INSERT INTO vec (ns, id, part, vector, payload, tags, expires_at) VALUES (?,?,?,?,?,?,?)"
    )
    good_vector = normalize(as_vector(embedder.embed("reset my password how"))).tobytes()
    rows = [
        ("short vector", b"\x00" * 7, b"{}", "{}", None),
        ("other length", b"\x00\x00\x80\x3f" * 3, b"{}", "{}", None),
        ("vector as text", "abcd" * 16, b"{}", "{}", None),
        ("tags not json", good_vector, b"{}", "{not json", None),
        ("tags a list", good_vector, b"{}", "[1]", None),
        ("tags nested deep", good_vector, b"{}", "[" * 100_000, None),
        ("expiry as text", good_vector, b"{}", "{}", "tomorrow"),
        ("payload as text", good_vector, "not bytes", "{}", None),
    ]
    for index, (_, vector, payload, tags, expires) in enumerate(rows):
        raw.execute(insert, (namespace, f"bad{index}", partition, vector, payload, tags, expires))
    raw.execute("INSERT OR REPLACE INTO vec_dim (ns, dim) VALUES (?, ?)", (namespace, "garbage"))
    raw.execute(
        "INSERT INTO counters (ns, name, field, value) VALUES (?, 'stats', 'writes', 'x')",
        (namespace,),
    )
    raw.execute(
        "INSERT INTO kv (ns, key, value, expires_at) VALUES (?, 'kv:t', 'text', 'soon')",
        (namespace,),
    )
    # The partition still answers (the healthy row is found; the planted ones are skipped).
    paraphrase = Prompt.plain("how do I reset my own password")
    assert cache.lookup(SCOPE, paraphrase).body["value"] == {"answer": "healthy"}  # type: ignore[index]
    cache.update(SCOPE, Prompt.plain("another question entirely"), {"answer": 2})
    assert cache.lookup(SCOPE, Prompt.plain("another question entirely")).outcome == "exact"
    assert "writes" not in backend.get_counters(namespace, "stats")
    assert backend.get_many(namespace, ["kv:t"]) == [None]
    cache.flush_stats()
    assert cache.stats_snapshot()["backend_errors"] == 0
    backend.close()


def _redis_raw(server_pool: ServerPool, kind: str) -> Any:
    redis = pytest.importorskip("redis")
    return redis.Redis.from_url(server_pool.url(kind))


@pytest.mark.parametrize("kind", ["redis", "redis-qe"])
def test_redis_keys_planted_by_hand(kind: str, server_pool: ServerPool, tmp_path: Path) -> None:
    from tests.backends import make_backend

    backend = make_backend(kind, tmp_path, server_pool)
    raw = _redis_raw(server_pool, kind)
    namespace = fresh_namespace()
    embedder = HashingEmbedder(16)
    cache = ResponseCache(backend, namespace=namespace, embedder=embedder, trap_guard=False)
    prompt = Prompt.plain("how do I reset my password")
    partition = cache.partition(SCOPE, prompt)
    # A garbage dimension marker (the namespace's and the partition's) before any write.
    from semcache_core.backends.redis import keys as layout

    raw.set(layout.dim_key(namespace), "garbage")
    raw.set(layout.partition_dim_key(namespace, partition), "\x00\xff")
    cache.update(SCOPE, prompt, {"answer": "healthy"})
    paraphrase = Prompt.plain("how do I reset my own password")
    assert cache.lookup(SCOPE, paraphrase).outcome == "semantic"
    # Keys of the wrong type where values and records live.
    exact = ResponseCache(backend, namespace=namespace)
    raw.hset(f"{namespace}:{keys.exact_entry_key(namespace, SCOPE, 'p')}", "x", "y")
    assert exact.lookup(SCOPE, Prompt.plain("p")).outcome == "miss"
    q_id = keys.semantic_entry_id(namespace, partition, cache.query(Prompt.plain("q")).compared)
    raw.set(layout.vector_key(namespace, q_id), "string")
    assert cache.lookup(SCOPE, Prompt.plain("q")).outcome == "miss"
    # Log entries (plain path) that are no vector records.
    raw.xadd(layout.log_key(namespace, partition), {"id": "x", "vector": b"123", "tags": "{}"})
    raw.xadd(layout.log_key(namespace, partition), {"id": "y", "vector": b"\x00" * 64, "tags": "["})
    raw.xadd(layout.log_key(namespace, partition), {"junk": "1"})
    assert cache.lookup(SCOPE, paraphrase).outcome == "semantic"
    # A stats field that is no number: flushes keep working, lookups keep hitting.
    raw.hset(f"{namespace}:stats:stats", mapping={"writes": "abc", "exact_hits": "1e999x"})
    for _ in range(5):
        cache.flush_stats()
        assert cache.lookup(SCOPE, paraphrase).outcome == "semantic"
    assert cache.stats_snapshot()["backend_errors"] == 0
    assert backend.get_counters(namespace, "stats")["writes"] >= 1
    backend.close()


def test_elasticsearch_documents_planted_by_hand(server_pool: ServerPool, tmp_path: Path) -> None:
    pytest.importorskip("elasticsearch")
    from tests.backends import make_backend

    backend = make_backend("elasticsearch", tmp_path, server_pool)
    namespace = fresh_namespace()
    cache = ResponseCache(backend, namespace=namespace)
    cache.update(SCOPE, Prompt.plain("ok"), {"answer": 1})
    ops: Any = backend.ops  # type: ignore[attr-defined]
    client: Any = backend._sync_clients().client  # type: ignore[attr-defined]
    from semcache_core.backends.elasticsearch.schema import doc_id

    client.index(
        index=ops.index,
        id=doc_id(namespace, "ctr:", "stats"),
        document={"ns": namespace, "kind": "counter", "key": "stats", "counters": {"w": "x"}},
        refresh=True,
    )
    assert backend.get_counters(namespace, "stats") == {}
    client.index(
        index=ops.index,
        id=doc_id(namespace, "", keys.exact_entry_key(namespace, SCOPE, "p")),
        document={"ns": namespace, "kind": "value", "key": 5, "value": "@@not base64"},
        refresh=True,
    )
    assert cache.lookup(SCOPE, Prompt.plain("p")).outcome == "miss"
    assert cache.lookup(SCOPE, Prompt.plain("ok")).outcome == "exact"
    backend.close()


# -- inputs ------------------------------------------------------------------------------------


class NoneEmbedder:
    name = "returns-none"

    def embed(self, text: str) -> Any:
        return None

    async def aembed(self, text: str) -> Any:
        return None


def test_bad_inputs_are_clear_errors(backend: Backend, namespace: str) -> None:
    semantic = SemanticCache(backend, embeddings=WordHashEmbeddings(16), namespace=namespace)
    nested = "[" * 100_000
    assert semantic.lookup(nested, SCOPE) is None  # a plain prompt, not a RecursionError
    semantic.update(nested, SCOPE, [Generation(text="deep")])
    assert semantic.lookup(nested, SCOPE) == [Generation(text="deep")]
    bad_embedder = ResponseCache(backend, namespace=namespace, embedder=NoneEmbedder())
    with pytest.raises(SemcacheInputError, match="returned None"):
        bad_embedder.lookup(SCOPE, Prompt.plain("anything"))
    for bad in ("ns\n", "ns\r", "a:b", "", "x" * 129, "ns "):
        with pytest.raises(SemcacheInputError, match="invalid namespace"):
            ResponseCache(backend, namespace=bad)
    cache = ResponseCache(backend, namespace=namespace)
    for argument, call in (
        ("prompt", lambda: cache.lookup(SCOPE, Prompt.plain("bad \ud800"))),
        ("prompt", lambda: cache.update(SCOPE, Prompt.plain("\udcff"), {"a": 1})),
        ("scope", lambda: cache.lookup("llm \ud800", Prompt.plain("p"))),
        ("key", lambda: backend.set_many(namespace, [("kv:\ud800", b"x")])),
        ("key", lambda: backend.get_many(namespace, ["kv:\ud800"])),
        ("prefix", lambda: list(backend.iter_keys(namespace, "kv:\ud800"))),
        ("holds text", lambda: cache.update(SCOPE, Prompt.plain("p"), {"a": "\ud800"})),
    ):
        with pytest.raises(SemcacheInputError, match=argument):
            call()


def test_redis_url_with_a_database_that_is_no_number() -> None:
    pytest.importorskip("redis")
    for url in ("redis://127.0.0.1:1/notadb", "redis://127.0.0.1:1/0x", "unix:///x.sock?db=a"):
        with pytest.raises(SemcacheInputError, match="database must be a number"):
            connect(url)


# -- keys --------------------------------------------------------------------------------------


def test_key_edge_cases(backend: Backend, namespace: str) -> None:
    strange = ["kv:m\x00a", "kv:m\x00", "kv:m", "kv:m\x01", "kv:#", "kv:é\x00ü", "kv:*?[]"]
    backend.set_many(namespace, [(key, key.encode()) for key in strange])
    assert sorted(backend.iter_keys(namespace, "kv:m\x00")) == ["kv:m\x00", "kv:m\x00a"]
    assert sorted(backend.iter_keys(namespace, "kv:*")) == ["kv:*?[]"]
    assert backend.get_many(namespace, strange) == [key.encode() for key in strange]
    # A short key spelled like a long key's shortened Elasticsearch id must not overwrite it.
    long_key = "kv:" + "L" * 600
    if type(backend).__name__ == "ElasticsearchBackend":
        from semcache_core.backends.elasticsearch.schema import doc_id

        spelled = doc_id(namespace, "", long_key).split(":", 1)[1]
    else:
        spelled = "kv:" + "L" * 197 + "#" + keys.stable_hash("", long_key)
    backend.set_many(namespace, [(long_key, b"long")])
    backend.set_many(namespace, [(spelled, b"short")])
    assert backend.get_many(namespace, [long_key, spelled]) == [b"long", b"short"]


# -- configuration changes -----------------------------------------------------------------------


def test_model_switch_starts_a_new_partition(backend: Backend, namespace: str) -> None:
    old = SemanticCache(
        backend, embeddings=WordHashEmbeddings(16, model="m16"), namespace=namespace
    )
    old.update("What is the capital of France?", SCOPE, [Generation(text="Paris")])
    new = SemanticCache(
        backend, embeddings=WordHashEmbeddings(32, model="m32"), namespace=namespace
    )
    assert new.lookup("What is the capital of France?", SCOPE) is None  # never the old model's
    new.update("What is the capital of France?", SCOPE, [Generation(text="Paris (32)")])
    # Every backend follows the dimension (the Query Engine with one index per dimension).
    assert new.lookup("What is the capital of France?", SCOPE) == [Generation(text="Paris (32)")]
    assert old.lookup("What is the capital of France?", SCOPE) == [Generation(text="Paris")]
    # The same model name with another dimension: a warned miss, never an exception.
    same_name = SemanticCache(
        backend, embeddings=WordHashEmbeddings(24, model="m16"), namespace=namespace
    )
    for _ in range(3):
        assert same_name.lookup("What is the capital of Spain?", SCOPE) is None
        same_name.update("What is the capital of Spain?", SCOPE, [Generation(text="Madrid")])
    assert old.lookup("What is the capital of France?", SCOPE) == [Generation(text="Paris")]


# -- lifecycle ---------------------------------------------------------------------------------


def test_aclose_from_another_event_loop(
    backend: Backend, backend_kind: str, namespace: str
) -> None:
    async def use() -> list[bytes | None]:
        await backend.aset_many(namespace, [("kv:a", b"1")])
        return await backend.aget_many(namespace, ["kv:a"])

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert asyncio.run(use()) == [b"1"]
        assert asyncio.run(use()) == [b"1"]  # a second loop: a client of its own
        asyncio.run(backend.aclose())  # from a third loop: no RuntimeError
        if backend_kind not in ("memory", "sqlite"):  # an embedded database closes for good
            assert asyncio.run(use()) == [b"1"]  # network clients: usable again after aclose
            asyncio.run(backend.aclose())


def test_alias_over_several_indices_reads_all_writes_one(server_pool: ServerPool) -> None:
    pytest.importorskip("elasticsearch")
    from elasticsearch import Elasticsearch

    url = server_pool.url("elasticsearch").removeprefix("elasticsearch+")
    raw = Elasticsearch(url)
    old, new, ns = f"rel-{fresh_namespace()}", f"rel-{fresh_namespace()}", fresh_namespace()
    alias = old + "-all"
    vector = normalize(as_vector([1.0, 0.0, 0.0, 0.0]))
    before = connect(f"elasticsearch+{url}/{old}")  # written before the rollover
    before.set_many(ns, [("kv:a", b"old a"), ("kv:b", b"old b")])
    before.add_vectors(ns, "p", [VectorRecord("r", vector, b"old record")])
    before.close()
    raw.indices.create(index=new)
    raw.indices.update_aliases(
        actions=[
            {"add": {"index": old, "alias": alias}},
            {"add": {"index": new, "alias": alias, "is_write_index": True}},
        ]
    )
    try:
        backend = connect(f"elasticsearch+{url}/{alias}")
        assert backend.get_many(ns, ["kv:a", "kv:b"]) == [b"old a", b"old b"]
        backend.set_many(ns, [("kv:a", b"new a"), ("kv:c", b"new c")])
        assert raw.get(index=new, id=f"{ns}:kv:c")["found"]  # written to the write index
        assert backend.get_many(ns, ["kv:a", "kv:c"]) == [b"new a", b"new c"]  # newest copy
        backend.delete_many(ns, ["kv:a"])
        assert backend.get_many(ns, ["kv:a"]) == [None]  # no older copy comes back
        hits = backend.search_vectors(ns, "p", vector, k=3, max_distance=0.1)
        assert [(h.id, h.payload) for h in hits] == [("r", b"old record")]
        backend.incr_counters(ns, "stats", {"hits": 2})
        assert backend.get_counters(ns, "stats") == {"hits": 2}
        cache = ResponseCache(backend, namespace=fresh_namespace())
        cache.update(SCOPE, Prompt.plain("p"), {"a": 1})
        assert cache.lookup(SCOPE, Prompt.plain("p")).outcome == "exact"
        backend.close()
        # Without a write index the alias cannot take writes: a warned skip under "warn".
        raw.indices.update_aliases(
            actions=[{"add": {"index": new, "alias": alias, "is_write_index": False}}]
        )
        unusable = connect(f"elasticsearch+{url}/{alias}")
        cache = ResponseCache(unusable, namespace=fresh_namespace())
        for _ in range(3):
            assert cache.lookup(SCOPE, Prompt.plain("p")).outcome == "miss"
            cache.update(SCOPE, Prompt.plain("p"), {"a": 1})
        strict = ResponseCache(unusable, namespace=fresh_namespace(), on_backend_error="raise")
        with pytest.raises(SchemaConflictError, match="write index"):
            strict.lookup(SCOPE, Prompt.plain("p"))
        unusable.close()
    finally:
        raw.indices.delete(index=[old, new])
        raw.close()


# -- the circuit breaker, without a server -------------------------------------------------------


def test_breaker_is_process_wide_with_a_single_probe(tmp_path: Path) -> None:
    import threading
    import time

    from semcache_core.backends.embedded import EmbeddedBackend
    from semcache_core.errors import BackendError

    class Flaky(EmbeddedBackend):
        down = False
        calls = 0

        def execute(self, step: Any) -> Any:
            if self.down:
                with lock:
                    Flaky.calls += 1
                time.sleep(0.05)  # a timeout
                raise BackendError("down")
            return super().execute(step)

    lock = threading.Lock()
    backend = Flaky(str(tmp_path / "flaky.db"))
    caches = [ResponseCache(backend, namespace=fresh_namespace(), retry_after=0.3) for _ in "ab"]
    for cache in caches:
        cache.update(SCOPE, Prompt.plain("q"), {"a": 1})
    backend.down = True
    caches[0].lookup(SCOPE, Prompt.plain("q"))  # opens the breaker of the backend object
    assert Flaky.calls == 1
    stop = time.monotonic() + 1.0

    def hammer(cache: ResponseCache) -> None:
        while time.monotonic() < stop:
            assert cache.lookup(SCOPE, Prompt.plain("q")).outcome == "miss"
            time.sleep(0.002)

    threads = [threading.Thread(target=hammer, args=(caches[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One probe per window for 8 threads on two caches: about 1 s / (0.3 s + 0.05 s) probes.
    assert 2 <= Flaky.calls <= 5, Flaky.calls
    backend.down = False
    time.sleep(0.35)
    assert caches[1].lookup(SCOPE, Prompt.plain("q")).outcome == "exact"  # the probe closes it
    assert caches[0].lookup(SCOPE, Prompt.plain("q")).outcome == "exact"


# -- the embedding cache is transparent ----------------------------------------------------------


def test_cached_embedding_returns_the_models_floats(backend: Backend, namespace: str) -> None:
    pytest.importorskip("llama_index.core")
    import numpy as np

    from llamaindex_semcache import CachedEmbedding
    from tests.llama_fakes import WordHashEmbedding

    model = WordHashEmbedding(dim=24)
    texts = ["a first text", "another one", "a first text"]
    expected = [model._vector(t) for t in texts]
    lossless = CachedEmbedding(WordHashEmbedding(dim=24), backend, namespace=namespace)
    assert lossless.get_text_embedding_batch(texts) == expected  # the miss
    assert lossless.get_text_embedding_batch(texts) == expected  # the hit, bit for bit
    assert lossless.get_query_embedding("a query") == model._vector("a query")
    assert lossless.get_query_embedding("a query") == model._vector("a query")
    half = CachedEmbedding(
        WordHashEmbedding(dim=24), backend, namespace=namespace, precision="float32"
    )
    rounded = [[float(np.float32(x)) for x in vector] for vector in expected]
    assert half.get_text_embedding_batch(texts) == rounded  # fresh, as a hit returns it
    assert half.get_text_embedding_batch(texts) == rounded
    assert rounded != expected  # the two precisions never read each other's entries
    with pytest.raises(SemcacheInputError, match="precision"):
        CachedEmbedding(model, backend, namespace=namespace, precision="float16")  # type: ignore[arg-type]


def test_processes_opening_one_new_sqlite_file_at_once(tmp_path: Path) -> None:
    """Switching a new file to WAL needs an exclusive lock that SQLite refuses without
    waiting; before the setup was retried, about 1 open in 25 here failed with "database
    is locked" (seen in CI, through the context-cache registry)."""
    import multiprocessing

    from tests.sqlite_open_worker import open_new_sqlite_file

    spawn = multiprocessing.get_context("spawn")
    failures: list[str] = []
    for round_number in range(10):
        path = str(tmp_path / f"new-{round_number}.db")
        start = spawn.Barrier(8)
        outcomes = spawn.Queue()
        workers = [
            spawn.Process(target=open_new_sqlite_file, args=(path, start, outcomes), daemon=True)
            for _ in range(8)
        ]
        try:
            for worker in workers:
                worker.start()
            failures += [o for o in (outcomes.get(timeout=120) for _ in workers) if o != "ok"]
            for worker in workers:
                worker.join(timeout=60)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.kill()
    assert failures == []
