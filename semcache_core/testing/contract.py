"""The backend contract: what every :class:`~semcache_core.backends.base.Backend` must do.

A third-party backend runs it by subclassing :class:`BackendContract` in its own tests and
providing a ``backend`` fixture (a fresh backend; it may be parametrized)::

    import pytest
    from semcache_core.testing.contract import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            return MyBackend(...)

The tests speak to the backend directly (its convenience methods, each ``run`` of one
protocol operation), so a backend that breaks the contract fails here with a precise message
before any adapter test. Needs pytest (and pytest-asyncio for the async test).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import numpy.typing as npt
import pytest

from semcache_core import keys
from semcache_core.backends.base import Backend, VectorRecord
from semcache_core.codecs import as_vector, normalize
from semcache_core.errors import SemcacheInputError, VectorDimensionError
from semcache_core.testing import fresh_namespace

DIM = 8


def unit(*values: float) -> npt.NDArray[np.float32]:
    padded = list(values) + [0.0] * (DIM - len(values))
    return normalize(as_vector(padded))


def at_distance(distance: float) -> npt.NDArray[np.float32]:
    """A unit vector at cosine distance ``distance`` from ``unit(1)``."""
    cos = 1.0 - distance
    return unit(cos, float(np.sqrt(max(0.0, 1.0 - cos * cos))))


class BackendContract:
    """The contract suite; subclass it and provide a ``backend`` fixture."""

    @pytest.fixture
    def namespace(self) -> str:
        return fresh_namespace()

    def test_values_roundtrip_missing_and_duplicates(
        self, backend: Backend, namespace: str
    ) -> None:
        backend.set_many(namespace, [("kv:a", b"1"), ("kv:b", b"\x00\xff binary")])
        assert backend.get_many(namespace, ["kv:a", "kv:zz", "kv:b", "kv:a"]) == [
            b"1",
            None,
            b"\x00\xff binary",
            b"1",
        ]
        backend.delete_many(namespace, ["kv:a", "kv:never"])
        assert backend.get_many(namespace, ["kv:a", "kv:b"]) == [None, b"\x00\xff binary"]

    def test_one_step_get_reads_what_get_many_reads(self, backend: Backend, namespace: str) -> None:
        # The engine's exact read (Operations.one_step_get) is optional; where a backend has
        # it, its one step must read what get_many reads, expiry included.
        backend.set_many(namespace, [("llm:a", b"\x00\xff entry")])
        backend.set_many(namespace, [("llm:short", b"x")], ttl=0.3)
        backend.get_many(namespace, ["llm:a"])  # the server answered: the layout is known
        for key in ("llm:a", "llm:missing", "llm:short"):
            plan = backend.ops.one_step_get(namespace, key)
            if plan is None:
                continue
            step, value_of = plan
            reply = backend.execute(step)
            read = reply if value_of is None else value_of(reply)
            assert read == backend.get_many(namespace, [key])[0], key
        time.sleep(0.6)
        plan = backend.ops.one_step_get(namespace, "llm:short")
        if plan is not None:
            reply = backend.execute(plan[0])
            assert (reply if plan[1] is None else plan[1](reply)) is None

    def test_ttl_expires_values(self, backend: Backend, namespace: str) -> None:
        backend.set_many(namespace, [("kv:short", b"x")], ttl=0.3)
        backend.set_many(namespace, [("kv:long", b"y")], ttl=60)
        backend.set_many(namespace, [("kv:forever", b"z")])
        assert backend.get_many(namespace, ["kv:short"]) == [b"x"]
        time.sleep(0.6)
        assert backend.get_many(namespace, ["kv:short", "kv:long", "kv:forever"]) == [
            None,
            b"y",
            b"z",
        ]
        assert sorted(backend.iter_keys(namespace, "kv:")) == ["kv:forever", "kv:long"]

    def test_expire_many_resets_ttl(self, backend: Backend, namespace: str) -> None:
        backend.set_many(namespace, [("kv:a", b"x")])
        backend.expire_many(namespace, ["kv:a"], ttl=0.3)
        time.sleep(0.6)
        assert backend.get_many(namespace, ["kv:a"]) == [None]

    @pytest.mark.parametrize("prefix", ["a*", "a?", "[x]", "back\\slash", "50%_", "a"])
    def test_iter_keys_prefix_is_literal(
        self, backend: Backend, namespace: str, prefix: str
    ) -> None:
        keys = [
            "kv:a*1",
            "kv:ab",
            "kv:a?2",
            "kv:[x]3",
            "kv:x3",
            "kv:back\\slash4",
            "kv:50%_5",
            "kv:505",
        ]
        backend.set_many(namespace, [(key, b"v") for key in keys])
        expected = sorted(key for key in keys if key.startswith("kv:" + prefix))
        assert sorted(backend.iter_keys(namespace, "kv:" + prefix)) == expected

    def test_clear_removes_only_its_namespace(self, backend: Backend, namespace: str) -> None:
        other = fresh_namespace()
        prefixed = namespace + "x"  # a namespace that starts with ours must survive our clear
        for ns in (namespace, other, prefixed):
            backend.set_many(ns, [("kv:k", ns.encode())])
            backend.add_vectors(ns, "p", [VectorRecord("id1", unit(1), ns.encode())])
            backend.incr_counters(ns, "stats", {"hits": 1})
        backend.clear(namespace)
        assert backend.get_many(namespace, ["kv:k"]) == [None]
        assert backend.get_vector_payloads(namespace, ["id1"]) == [None]
        assert backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=2.0) == []
        assert backend.get_counters(namespace, "stats") == {}
        for ns in (other, prefixed):
            assert backend.get_many(ns, ["kv:k"]) == [ns.encode()]
            assert backend.get_vector_payloads(ns, ["id1"]) == [ns.encode()]
            assert backend.get_counters(ns, "stats") == {"hits": 1}
        backend.clear(other)
        backend.clear(prefixed)

    def test_vector_search_threshold_order_and_partition(
        self, backend: Backend, namespace: str
    ) -> None:
        backend.add_vectors(
            namespace,
            "p1",
            [
                VectorRecord("near", at_distance(0.05), b"near"),
                VectorRecord("mid", at_distance(0.15), b"mid"),
                VectorRecord("far", at_distance(0.6), b"far"),
            ],
        )
        # Closer than everything in p1, but in another partition: must never be returned.
        backend.add_vectors(namespace, "p2", [VectorRecord("other", unit(1), b"other")])
        hits = backend.search_vectors(namespace, "p1", unit(1), k=5, max_distance=0.2)
        assert [hit.id for hit in hits] == ["near", "mid"]
        assert [hit.payload for hit in hits] == [b"near", b"mid"]
        assert hits[0].distance == pytest.approx(0.05, abs=1e-3)
        assert hits[1].distance == pytest.approx(0.15, abs=1e-3)
        assert [
            h.id for h in backend.search_vectors(namespace, "p1", unit(1), k=1, max_distance=2)
        ] == ["near"]
        assert backend.search_vectors(namespace, "p1", unit(1), k=5, max_distance=0.01) == []

    def test_vector_tags_filter_before_ranking(self, backend: Backend, namespace: str) -> None:
        backend.add_vectors(
            namespace,
            "p",
            [
                VectorRecord("a", unit(1), b"a", {"user": "alice", "lang": "en"}),
                VectorRecord("b", at_distance(0.1), b"b", {"user": "bob {x|y}", "lang": "en"}),
            ],
        )
        hits = backend.search_vectors(
            namespace, "p", unit(1), k=1, max_distance=0.5, tags={"user": "bob {x|y}"}
        )
        assert [hit.id for hit in hits] == ["b"]
        assert (
            backend.search_vectors(
                namespace, "p", unit(1), k=1, max_distance=0.5, tags={"user": "carol"}
            )
            == []
        )

    def test_vector_replace_delete_and_expiry(self, backend: Backend, namespace: str) -> None:
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v1")])
        assert [
            h.payload
            for h in backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.1)
        ] == [b"v1"]
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(0, 1), b"v2")])
        assert backend.search_vectors(namespace, "p", unit(1), k=3, max_distance=0.1) == []
        assert backend.get_vector_payloads(namespace, ["x"]) == [b"v2"]
        backend.delete_vectors(namespace, ["x"])
        assert backend.get_vector_payloads(namespace, ["x"]) == [None]
        assert backend.search_vectors(namespace, "p", unit(0, 1), k=3, max_distance=0.1) == []
        backend.add_vectors(namespace, "p", [VectorRecord("t", unit(1), b"t")], ttl=0.3)
        time.sleep(0.6)
        assert backend.search_vectors(namespace, "p", unit(1), k=3, max_distance=0.5) == []
        assert backend.get_vector_payloads(namespace, ["t"]) == [None]

    def test_vector_records_are_addressed_by_their_key(
        self, backend: Backend, namespace: str
    ) -> None:
        backend.set_many(namespace, [("kv:x", b"value")])
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"record")], ttl=60)
        both = ["kv:x", keys.vector_key("x"), keys.vector_key("none")]
        assert backend.get_many(namespace, both) == [b"value", b"record", None]
        backend.expire_many(namespace, [keys.vector_key("x")], ttl=0.3)
        time.sleep(0.6)
        assert backend.get_many(namespace, both) == [b"value", None, None]

    def test_expire_many_none_removes_the_expiry(self, backend: Backend, namespace: str) -> None:
        backend.set_many(namespace, [("kv:a", b"x"), ("kv:b", b"y")], ttl=0.4)
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"r")], ttl=0.4)
        backend.expire_many(namespace, ["kv:a", keys.vector_key("x"), "kv:none"], ttl=None)
        assert backend.get_expiries(namespace, ["kv:a", keys.vector_key("x")]) == {
            "kv:a": None,
            keys.vector_key("x"): None,
        }
        time.sleep(0.8)
        assert backend.get_many(namespace, ["kv:a", "kv:b", keys.vector_key("x")]) == [
            b"x",
            None,
            b"r",
        ]
        # An expired entry stays expired: removing the expiry does not bring it back.
        backend.expire_many(namespace, ["kv:b"], ttl=None)
        assert backend.get_many(namespace, ["kv:b"]) == [None]

    def test_served_hits_are_counted_where_the_backend_counts_them(
        self, backend: Backend, namespace: str
    ) -> None:
        backend.set_many(namespace, [("kv:a", b"x"), ("kv:b", b"y"), ("kv:c", b"z")])
        backend.add_vectors(namespace, "p", [VectorRecord("r", unit(1), b"r")])
        record = keys.vector_key("r")
        before = time.time()
        backend.note_hits(namespace, ["kv:a", record, "kv:none"])
        backend.note_hits(namespace, ["kv:a", "kv:c"])
        backend.get_many(namespace, ["kv:b"])  # a read is no hit: the engine says what it served
        backend.search_vectors(namespace, "p", unit(1), k=1, max_distance=0.5)
        wanted = ["kv:a", "kv:b", "kv:c", record, "kv:none"]
        hits = backend.get_hits(namespace, wanted)
        if not backend.ops.counts_hits:  # optional: a backend that does not count says nothing
            assert hits == {}
            return
        assert {key: found.hits for key, found in hits.items()} == {
            "kv:a": 2,
            "kv:c": 1,
            record: 1,
        }
        for found in hits.values():
            assert found.last_hit is not None and before <= found.last_hit <= time.time()
        backend.delete_many(namespace, ["kv:a"])
        backend.set_many(namespace, [("kv:c", b"rewritten")])  # a new entry: no hits yet
        assert set(backend.get_hits(namespace, wanted)) == {record}

    def test_get_expiries_dates_live_keys(self, backend: Backend, namespace: str) -> None:
        before = time.time()
        backend.set_many(namespace, [("kv:a", b"x")], ttl=60)
        backend.set_many(namespace, [("kv:b", b"y")])
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"r")], ttl=120)
        asked = ["kv:a", "kv:b", "kv:none", keys.vector_key("x"), keys.vector_key("none")]
        expiries = backend.get_expiries(namespace, asked)
        assert set(expiries) == {"kv:a", "kv:b", keys.vector_key("x")}
        assert expiries["kv:b"] is None
        a, x = expiries["kv:a"], expiries[keys.vector_key("x")]
        assert a is not None and before + 59 <= a <= time.time() + 61
        assert x is not None and before + 119 <= x <= time.time() + 121
        backend.expire_many(namespace, ["kv:b"], ttl=30)
        b = backend.get_expiries(namespace, ["kv:b"])["kv:b"]
        assert b is not None and before + 29 <= b <= time.time() + 31

    def test_scan_keys_pages_vector_records(self, backend: Backend, namespace: str) -> None:
        backend.set_many(namespace, [("kv:v", b"value"), ("llm:e", b"entry")])
        backend.add_vectors(namespace, "p1", [VectorRecord("a1", unit(1), b"1")])
        backend.add_vectors(
            namespace,
            "p2",
            [VectorRecord("a2", unit(0, 1), b"2"), VectorRecord("b3", unit(1, 1), b"3")],
        )
        backend.add_vectors(fresh_namespace(), "p1", [VectorRecord("a9", unit(1), b"9")])
        vec = keys.vector_key
        assert sorted(backend.iter_keys(namespace, "vec:")) == [vec("a1"), vec("a2"), vec("b3")]
        assert sorted(backend.iter_keys(namespace, "vec:a")) == [vec("a1"), vec("a2")]
        assert sorted(backend.iter_keys(namespace, "")) == ["kv:v", "llm:e"]
        backend.delete_vectors(namespace, ["a2"])
        assert sorted(backend.iter_keys(namespace, "vec:")) == [vec("a1"), vec("b3")]

    def test_vector_dimension_mismatch_is_clear_error(
        self, backend: Backend, namespace: str
    ) -> None:
        backend.add_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        wrong = normalize(as_vector([1.0, 0.0, 0.0]))
        with pytest.raises(VectorDimensionError, match="dimension"):
            backend.add_vectors(namespace, "p", [VectorRecord("y", wrong, b"v")])
        with pytest.raises(VectorDimensionError, match="dimension"):
            backend.search_vectors(namespace, "p", wrong, k=1, max_distance=0.5)
        assert backend.get_vector_payloads(namespace, ["x"]) == [b"v"]

    def test_counters_accumulate(self, backend: Backend, namespace: str) -> None:
        backend.incr_counters(namespace, "stats", {"hits": 2, "misses": 1})
        backend.incr_counters(namespace, "stats", {"hits": 3.5})
        assert backend.get_counters(namespace, "stats") == {"hits": 5.5, "misses": 1}

    async def test_async_side_matches_sync(self, backend: Backend, namespace: str) -> None:
        await backend.aset_many(namespace, [("kv:a", b"1"), ("kv:b", b"2")], ttl=60)
        assert await backend.aget_many(namespace, ["kv:a", "kv:c", "kv:b"]) == [b"1", None, b"2"]
        assert sorted([key async for key in backend.aiter_keys(namespace, "kv:")]) == [
            "kv:a",
            "kv:b",
        ]
        await backend.adelete_many(namespace, ["kv:a"])
        assert backend.get_many(namespace, ["kv:a"]) == [None]
        await backend.aadd_vectors(namespace, "p", [VectorRecord("x", unit(1), b"v")])
        hits = await backend.asearch_vectors(
            namespace, "p", at_distance(0.1), k=1, max_distance=0.2
        )
        assert [(h.id, h.payload) for h in hits] == [("x", b"v")]
        assert await backend.aget_vector_payloads(namespace, ["x"]) == [b"v"]
        await backend.aincr_counters(namespace, "stats", {"n": 1})
        assert await backend.aget_counters(namespace, "stats") == {"n": 1}
        await backend.aexpire_many(namespace, ["kv:b"], ttl=0.3)
        await asyncio.sleep(0.6)
        assert await backend.aget_many(namespace, ["kv:b"]) == [None]
        await backend.adelete_vectors(namespace, ["x"])
        assert await backend.aget_vector_payloads(namespace, ["x"]) == [None]
        await backend.aclear(namespace)
        assert [key async for key in backend.aiter_keys(namespace)] == []

    # -- atomic values (set_if_absent / compare_and_set: the context-cache registry) ----------
    def test_set_if_absent_stores_once(self, backend: Backend, namespace: str) -> None:
        assert backend.set_if_absent(namespace, "kv:lease", b"a", ttl=60) is True
        assert backend.set_if_absent(namespace, "kv:lease", b"b", ttl=60) is False
        assert backend.get_many(namespace, ["kv:lease"]) == [b"a"]

    def test_set_if_absent_after_expiry(self, backend: Backend, namespace: str) -> None:
        assert backend.set_if_absent(namespace, "kv:lease", b"a", ttl=0.3)
        time.sleep(0.6)
        assert backend.set_if_absent(namespace, "kv:lease", b"b", ttl=60)
        assert backend.get_many(namespace, ["kv:lease"]) == [b"b"]

    def test_compare_and_set(self, backend: Backend, namespace: str) -> None:
        assert backend.compare_and_set(namespace, "kv:r", b"x", b"y") is False  # absent
        assert backend.compare_and_set(namespace, "kv:r", None, b"v1", ttl=60) is True
        assert backend.compare_and_set(namespace, "kv:r", None, b"v2") is False
        assert backend.compare_and_set(namespace, "kv:r", b"other", b"v2") is False
        assert backend.compare_and_set(namespace, "kv:r", b"v1", b"v2", ttl=60) is True
        assert backend.get_many(namespace, ["kv:r"]) == [b"v2"]
        with pytest.raises(SemcacheInputError, match="reserve"):
            backend.compare_and_set(namespace, "vec:r", None, b"v")

    async def test_atomic_values_async(self, backend: Backend, namespace: str) -> None:
        assert await backend.aset_if_absent(namespace, "kv:l", b"a", ttl=60)
        assert not await backend.aset_if_absent(namespace, "kv:l", b"b", ttl=60)
        assert await backend.acompare_and_set(namespace, "kv:l", b"a", b"c", ttl=60)
        assert not await backend.acompare_and_set(namespace, "kv:l", b"a", b"d", ttl=60)
        assert await backend.aget_many(namespace, ["kv:l"]) == [b"c"]

    def test_set_if_absent_one_winner_among_threads(self, backend: Backend, namespace: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        def take(i: int) -> bool:
            return backend.set_if_absent(namespace, "kv:race", str(i).encode(), ttl=60)

        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(take, range(8)))
        assert won.count(True) == 1
