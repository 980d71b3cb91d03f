"""Flows and operations driven with fed replies: the sans-I/O layer, no server at all."""

from __future__ import annotations

from typing import Any

import pytest

from semcache_core import Prompt, ResponseCache, VectorRecord, keys
from semcache_core.backends.base import Backend, KeyPage
from semcache_core.backends.elasticsearch.calls import Call, Reply
from semcache_core.backends.elasticsearch.ops import ElasticsearchOperations
from semcache_core.backends.redis.commands import Round
from semcache_core.backends.redis.ops import RedisOperations
from semcache_core.codecs import as_vector, normalize
from semcache_core.errors import BackendError, SemcacheInputError, VectorDimensionError
from semcache_core.flow import Flow, Step, arun, run
from semcache_core.testing import FedTransport


def redis_ops() -> RedisOperations:
    return RedisOperations(vector_search="mirror", recreate_index=False, max_mirror_rows=100)


def es_ops() -> ElasticsearchOperations:
    ops = ElasticsearchOperations(
        index="semcache",
        refresh="wait_for",
        purge_interval=None,
        num_candidates=100,
        page_size=2,
        vector_index_options={"type": "hnsw"},
        index_settings=None,
    )
    ops._ready = True  # the index is known: no mapping round trips in these tests
    return ops


class Ask(Step):
    """A step of the toy flows below."""


def toy(name: str) -> Flow[str]:
    try:
        answer = yield Ask()
    except BackendError:
        return f"{name}: recovered"
    return f"{name}: {answer}"


def test_run_and_arun_drive_the_same_flow() -> None:
    import asyncio

    assert run(toy("sync"), FedTransport("42")) == "sync: 42"
    assert asyncio.run(arun(toy("async"), FedTransport("42"))) == "async: 42"


def test_a_failed_step_is_thrown_into_the_flow() -> None:
    assert run(toy("x"), FedTransport(BackendError("down"))) == "x: recovered"
    with pytest.raises(ValueError, match="bad"):
        run(toy("x"), FedTransport(ValueError("bad")))


def test_redis_get_many_is_one_round_for_values_and_records() -> None:
    transport = FedTransport([b"1", None, b"payload"])
    got = run(redis_ops().get_many("ns", ["kv:a", "kv:b", keys.vector_key("r")]), transport)
    assert got == [b"1", None, b"payload"]
    (step,) = transport.steps
    assert isinstance(step, Round)
    assert list(step.commands) == [
        ("GET", "ns:kv:a"),
        ("GET", "ns:kv:b"),
        ("HGET", "ns:vec:{ns}r", "payload"),
    ]


def test_redis_single_get_and_batch_mget() -> None:
    transport = FedTransport([b"v"], [[b"1", b"2"]])  # a round's replies: one per command
    ops = redis_ops()
    assert run(ops.get_many("ns", ["kv:a"]), transport) == [b"v"]
    assert run(ops.get_many("ns", ["kv:a", "kv:b"]), transport) == [b"1", b"2"]
    assert [step.commands[0][0] for step in transport.steps] == ["GET", "MGET"]  # type: ignore[attr-defined]


def test_ttl_is_rounded_up_to_whole_milliseconds_once() -> None:
    transport = FedTransport([True])
    run(redis_ops().set_many("ns", [("kv:a", b"x")], ttl=0.0001), transport)
    assert transport.steps[0].commands == [("SET", "ns:kv:a", b"x", "PX", 1)]  # type: ignore[attr-defined]
    assert keys.ttl_ms(1.0004) == 1001
    assert keys.ttl_ms(None) is None


def test_invariants_are_checked_before_any_step() -> None:
    transport = FedTransport()
    for ops in (redis_ops(), es_ops()):
        with pytest.raises(SemcacheInputError, match="reserves"):
            run(ops.set_many("ns", [("vec:x", b"v")]), transport)
        with pytest.raises(SemcacheInputError, match="namespace"):
            run(ops.get_many("bad:ns", ["kv:a"]), transport)
        mixed = [
            VectorRecord("a", normalize(as_vector([1.0, 0.0])), b""),
            VectorRecord("b", normalize(as_vector([1.0, 0.0, 0.0])), b""),
        ]
        with pytest.raises(VectorDimensionError, match="one batch"):
            run(ops.add_vectors("ns", "p", mixed), transport)
        assert run(ops.get_many("ns", []), transport) == []
    assert transport.steps == []


def test_elasticsearch_scan_pages_by_key() -> None:
    def page(*keys: str) -> Reply:
        return Reply(200, {"hits": {"hits": [{"sort": [k]} for k in keys]}})

    ops = es_ops()
    transport = FedTransport(Reply(200, {}), page("kv:a", "kv:b"))
    first = run(ops.scan_keys("ns", "kv:", None), transport)
    assert first == KeyPage(["kv:a", "kv:b"], "kv:b")
    refresh, search = transport.steps
    assert isinstance(refresh, Call) and refresh.api == "indices.refresh"
    assert isinstance(search, Call) and "search_after" not in search.kwargs
    transport = FedTransport(page("kv:c"))
    assert run(ops.scan_keys("ns", "kv:", "kv:b"), transport) == KeyPage(["kv:c"], None)
    assert transport.steps[0].kwargs["search_after"] == ["kv:b"]  # type: ignore[attr-defined]


class FedBackend(Backend):
    """A Redis-shaped backend whose transport is a :class:`FedTransport`."""

    def __init__(self, *replies: Any) -> None:
        self.ops = redis_ops()
        self.transport = FedTransport(*replies)

    def execute(self, step: Step) -> Any:
        return self.transport.execute(step)

    async def aexecute(self, step: Step) -> Any:
        return self.transport.execute(step)


def test_exact_lookup_flow_and_the_circuit_breaker() -> None:
    backend = FedBackend([None], BackendError("connection refused"))
    cache = ResponseCache(backend, namespace="app", retry_after=60)
    prompt = Prompt.plain("hello")
    assert cache.lookup("model", prompt).outcome == "miss"
    (step,) = backend.transport.steps
    assert list(step.commands) == [("GET", "app:" + keys.exact_entry_key("app", "model", "hello"))]  # type: ignore[attr-defined]
    # A failure is a miss and opens the breaker: the next lookups make no step at all.
    assert cache.lookup("model", prompt).outcome == "miss"
    assert cache.lookup("model", prompt).outcome == "miss"
    assert len(backend.transport.steps) == 2
    assert cache.stats_snapshot()["backend_errors"] == 1


def test_one_chat_splitting_rule_for_every_framework() -> None:
    from semcache_core import Turn

    def turn(is_user: bool, text: str) -> Turn:
        role = "user" if is_user else "assistant"
        return Turn(role, text, rest={"extra": 1}, whole={"user": is_user, "text": text})

    split = Prompt.from_turns("T", [turn(False, "be brief"), turn(True, "hi"), turn(False, "ok")])
    assert (split.text, split.query) == ("T", "hi")
    assert split.context == (
        '{"after":[{"text":"ok","user":false}],"before":[{"text":"be brief","user":false}],'
        '"last_user":{"extra":1}}'
    )
    # No user turn, or a last user turn without text: only the identical conversation matches.
    for turns in ([turn(False, "system only")], [turn(True, "first"), turn(True, "  ")]):
        assert Prompt.from_turns("T", turns) == Prompt("T", "T", "T")
    # The semantic split of the same turns (``context_match="semantic"``).
    assert split.conversation is not None
    assert split.conversation.query == "hi"
    assert [(t.role, t.text) for t in split.conversation.history] == [("assistant", "be brief")]


def test_a_missing_extra_is_an_import_error_naming_it() -> None:
    from semcache_core.extras import require

    with pytest.raises(ImportError, match=r"pip install 'semcache\[redis\]'"):
        require("semcache_no_such_module", extra="redis", what="the Redis backend")
    with pytest.raises(ImportError, match=r"semcache\[llamaindex\]"):
        require("semcache_no_such_package.core", extra="llamaindex")
    require("numpy", extra="core")  # present: no error


def test_get_or_create_reads_through_in_one_flow() -> None:
    from semcache_core.engine import ResponseCodec
    from semcache_core.testing import FedTransport as _Fed

    codec: ResponseCodec[str] = ResponseCodec(
        encode=lambda text: {"text": text},
        decode=lambda body: body.get("text"),
        tokens=lambda body: 7.0,
    )
    backend = FedBackend([None], [True])  # the lookup's GET misses; then the SET
    cache = ResponseCache(backend, namespace="app")
    calls: list[str] = []

    def create() -> str:
        calls.append("model")
        return "answer"

    assert cache.get_or_create("m", Prompt.plain("q"), create, codec) == "answer"
    assert calls == ["model"]
    get, put = backend.transport.steps
    assert [c[0] for c in get.commands] == ["GET"]  # type: ignore[attr-defined]
    assert [c[0] for c in put.commands] == ["SET"]  # type: ignore[attr-defined]
    assert isinstance(backend.transport, _Fed) and not backend.transport.replies


# -- Redis Cluster: the same operations, another key layout and node-by-node scans ------------


def cluster_ops(layout: Any = "cluster") -> RedisOperations:
    from semcache_core.backends.redis.keys import CLUSTER

    return RedisOperations(
        vector_search="mirror",
        recreate_index=False,
        max_mirror_rows=100,
        layout=CLUSTER if layout == "cluster" else None,
    )


def test_cluster_get_many_is_one_get_per_key_in_one_round() -> None:
    transport = FedTransport([b"1", b"2", b"payload"])
    got = run(cluster_ops().get_many("ns", ["kv:a", "kv:b", keys.vector_key("r")]), transport)
    assert got == [b"1", b"2", b"payload"]
    (step,) = transport.steps
    assert list(step.commands) == [  # type: ignore[attr-defined]
        ("GET", "ns:kv:a"),
        ("GET", "ns:kv:b"),
        ("HGET", "ns:vec:{ns}r", "payload"),
    ]


def test_cluster_scan_visits_every_primary_in_turn() -> None:
    from semcache_core.backends.redis.commands import Primaries

    ops = cluster_ops()
    primaries = ["n1:1", "n2:2"]
    transport = FedTransport(
        primaries,
        [[7, [b"ns:kv:a", b"ns:vec:{ns}x"]]],
        primaries,
        [[0, [b"ns:kv:b"]]],
        primaries,
        [[0, [b"ns:kv:c"]]],
    )
    pages = []
    cursor = None
    while True:
        page = run(ops.scan_keys("ns", "", cursor), transport)
        pages.append(page.keys)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert pages == [["kv:a"], ["kv:b"], ["kv:c"]]  # the vector record is not a value
    rounds = [step for step in transport.steps if not isinstance(step, Primaries)]
    assert [step.node for step in rounds] == ["n1:1", "n1:1", "n2:2"]  # type: ignore[attr-defined]
    assert [step.commands[0][1] for step in rounds] == [0, 7, 0]  # type: ignore[attr-defined]


def test_unknown_topology_is_asked_once() -> None:
    from semcache_core.backends.redis.commands import Topology

    ops = cluster_ops(layout=None)
    transport = FedTransport(True, [b"1"], [b"2"])
    assert run(ops.get_many("ns", ["kv:a"]), transport) == [b"1"]
    assert run(ops.get_many("ns", ["kv:b"]), transport) == [b"2"]
    assert isinstance(transport.steps[0], Topology)
    assert sum(isinstance(step, Topology) for step in transport.steps) == 1
