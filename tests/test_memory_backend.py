"""The in-memory backend (``memory://``) beyond the contract: its vector index under churn and
refresh, copies instead of shared objects, ``max_entries`` (least recently used), expiries and
the listing of vector keys."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest

from semcache_core import Prompt, ResponseCache, VectorRecord, connect, persisted_stats
from semcache_core.backends.memory import MemoryBackend
from semcache_core.errors import SemcacheInputError
from semcache_core.testing import HashingEmbedder, fresh_namespace


def unit_rows(count: int, seed: int) -> npt.NDArray[np.float32]:
    rows = np.random.default_rng(seed).standard_normal((count, 16)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_memory_refreshed_record_outlives_its_first_ttl() -> None:
    backend = MemoryBackend()
    namespace = fresh_namespace()
    vector = unit_rows(1, seed=9)[0]
    backend.add_vectors(namespace, "p", [VectorRecord("x", vector, b"v")], ttl=0.3)
    backend.expire_many(namespace, ["vec:x"], ttl=60)  # refresh on hit
    time.sleep(0.5)
    hits = backend.search_vectors(namespace, "p", vector, k=1, max_distance=0.1)
    assert [h.id for h in hits] == ["x"]
    assert backend.get_vector_payloads(namespace, ["x"]) == [b"v"]


def test_memory_index_stays_bounded_and_correct_under_churn() -> None:
    backend = MemoryBackend()
    namespace = fresh_namespace()
    rows = unit_rows(50, seed=10)
    for round_ in range(80):  # every record replaced 80 times: dead index rows pile up
        backend.add_vectors(
            namespace,
            "p",
            [
                VectorRecord(f"r{i}", rows[(i + round_) % 50], f"{round_}".encode())
                for i in range(50)
            ],
        )
    index = backend.store._indexes[(namespace, "p")]
    assert index.size <= 2 * index.live_count + 1024 + 50
    hits = backend.search_vectors(namespace, "p", rows[0], k=1, max_distance=0.01)
    assert [(h.id, h.payload) for h in hits] == [("r21", b"79")]  # (21 + 79) % 50 == 0


def test_memory_backend_keeps_no_reference_to_caller_objects() -> None:
    """Stored values and vectors are copies: a caller changing its objects afterwards does
    not change the cache (and what a read returns is immutable bytes)."""
    backend = MemoryBackend()
    namespace = fresh_namespace()
    value = bytearray(b"original")
    backend.set_many(namespace, [("kv:a", value)])
    value[:] = b"changed!"
    vector = unit_rows(1, seed=11)[0]
    backend.add_vectors(namespace, "p", [VectorRecord("x", vector, b"v")])
    kept = vector.copy()
    vector[:] = -vector
    assert backend.get_many(namespace, ["kv:a"]) == [b"original"]
    assert type(backend.get_many(namespace, ["kv:a"])[0]) is bytes
    assert [h.id for h in backend.search_vectors(namespace, "p", kept, k=1, max_distance=0.01)] == [
        "x"
    ]


def test_memory_record_moved_to_another_partition() -> None:
    backend = MemoryBackend()
    namespace = fresh_namespace()
    vector = unit_rows(1, seed=12)[0]
    backend.add_vectors(namespace, "p1", [VectorRecord("x", vector, b"in p1")])
    backend.add_vectors(namespace, "p2", [VectorRecord("x", vector, b"in p2")])
    assert backend.search_vectors(namespace, "p1", vector, k=1, max_distance=0.1) == []
    hits = backend.search_vectors(namespace, "p2", vector, k=1, max_distance=0.1)
    assert [h.payload for h in hits] == [b"in p2"]


def test_memory_url_options() -> None:
    assert isinstance(connect("memory://"), MemoryBackend)
    assert connect("memory://?max_entries=5").store.max_entries == 5  # type: ignore[attr-defined]
    with pytest.raises(SemcacheInputError, match="takes only max_entries"):
        connect("memory://", busy_timeout=1)
    with pytest.raises(SemcacheInputError, match="takes no path"):
        connect("memory://somewhere")
    for url, message in [
        ("memory://?max_entries=0", "at least 1"),
        ("memory://?max_entries=ten", "whole number"),
        ("memory://?max_entries=2&max_entries=3", "given twice"),
        ("memory://?max_entry=2", "unknown option 'max_entry'"),
    ]:
        with pytest.raises(SemcacheInputError, match=message):
            connect(url)


def test_least_recently_used_goes_first() -> None:
    backend = MemoryBackend(max_entries=3)
    namespace = fresh_namespace()
    for key in ("kv:a", "kv:b", "kv:c"):
        backend.set_many(namespace, [(key, key.encode())])
    assert backend.get_many(namespace, ["kv:a"]) == [b"kv:a"]  # a is now newer than b and c
    backend.set_many(namespace, [("kv:d", b"kv:d")])
    everything = ["kv:a", "kv:b", "kv:c", "kv:d"]
    assert backend.get_many(namespace, everything) == [b"kv:a", None, b"kv:c", b"kv:d"]
    backend.set_many(namespace, [(f"kv:n{i}", b"v") for i in range(5)])  # one big batch
    assert sum(v is not None for v in backend.get_many(namespace, everything)) == 0
    assert backend.namespace_counts(namespace) == {"evictions": 6}
    assert persisted_stats(backend, namespace)["lookups"] == 0  # the stats shape still reads
    assert backend.get_counters(namespace, "stats") == {"evictions": 6}
    other = fresh_namespace()
    backend.set_many(other, [("kv:x", b"x")])  # the limit is per namespace
    assert backend.get_many(other, ["kv:x"]) == [b"x"]
    assert backend.trim(namespace, 1) == 2
    assert len(list(backend.iter_keys(namespace))) == 1


def test_semantic_entries_are_evicted_with_their_vector() -> None:
    backend = MemoryBackend(max_entries=2)
    namespace = fresh_namespace()
    cache = ResponseCache(backend, namespace=namespace, embedder=HashingEmbedder())
    questions = ["how do I repot a fern", "what is the capital of peru", "who wrote ulysses"]
    cache.update("model", Prompt.plain(questions[0]), {"text": "fern"})
    cache.update("model", Prompt.plain(questions[1]), {"text": "lima"})
    paraphrase = cache.lookup("model", Prompt.plain("how do I repot a fern please"))
    assert paraphrase.body is not None and paraphrase.body["value"] == {"text": "fern"}
    cache.update("model", Prompt.plain(questions[2]), {"text": "joyce"})
    assert cache.lookup("model", Prompt.plain(questions[1])).outcome == "miss"
    for question, answer in ((questions[0], "fern"), (questions[2], "joyce")):
        found = cache.lookup("model", Prompt.plain(question))
        assert found.body is not None and found.body["value"] == {"text": answer}
    index = backend.store._indexes
    assert sum(i.live_count for i in index.values()) == 2  # gone from the search too


def test_without_a_limit_trim_goes_in_write_order() -> None:
    backend = MemoryBackend()
    namespace = fresh_namespace()
    backend.set_many(namespace, [("kv:a", b"a"), ("kv:b", b"b"), ("kv:c", b"c")])
    assert backend.get_many(namespace, ["kv:a"]) == [b"a"]  # not a use: no limit
    assert backend.trim(namespace, 2) == 1
    assert backend.get_many(namespace, ["kv:a", "kv:b", "kv:c"]) == [None, b"b", b"c"]


def test_expiries_and_vector_keys() -> None:
    backend = MemoryBackend()
    namespace = fresh_namespace()
    vector = unit_rows(1, seed=3)[0]
    backend.set_many(namespace, [("kv:a", b"a")], ttl=60)
    backend.set_many(namespace, [("kv:b", b"b")])
    backend.add_vectors(namespace, "p", [VectorRecord("x", vector, b"x")], ttl=30)
    before = time.time()
    expiries = backend.get_expiries(namespace, ["kv:a", "kv:b", "vec:x", "kv:no"])
    assert set(expiries) == {"kv:a", "kv:b", "vec:x"} and expiries["kv:b"] is None
    assert before + 55 < expiries["kv:a"] <= before + 60  # type: ignore[operator]
    backend.expire_many(namespace, ["vec:x", "kv:a"], ttl=None)  # no expiry any more
    assert backend.get_expiries(namespace, ["vec:x", "kv:a"]) == {"vec:x": None, "kv:a": None}
    assert list(backend.iter_keys(namespace, "vec:")) == ["vec:x"]
    assert sorted(backend.iter_keys(namespace, "kv:")) == ["kv:a", "kv:b"]


def test_threads_writing_and_searching_one_partition() -> None:
    """Writers, deleters and searchers on one partition at once: no error, and every search
    answer is a record that was written with that payload."""
    from concurrent.futures import ThreadPoolExecutor

    backend = MemoryBackend(max_entries=300)
    namespace = fresh_namespace()
    rows = unit_rows(400, seed=20)

    def work(worker: int) -> int:
        checked = 0
        for i in range(worker, 400, 4):
            backend.add_vectors(namespace, "p", [VectorRecord(f"r{i}", rows[i], f"{i}".encode())])
            if i % 3 == 0:
                backend.delete_vectors(namespace, [f"r{i - 3}"])
            for hit in backend.search_vectors(namespace, "p", rows[i], k=2, max_distance=0.5):
                assert hit.payload == hit.id[1:].encode()
                checked += 1
        return checked

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(work, range(4))) > 0
    assert len(list(backend.iter_keys(namespace, "vec:"))) <= 300
