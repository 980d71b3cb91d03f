"""2. ByteStore batches of 1,000 keys: latency, server commands and round trips per batch."""

from __future__ import annotations

import base64
import json
import statistics
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.context import (
    ELASTICSEARCH,
    EMBEDDED,
    REDIS,
    REDIS_CLUSTER,
    BenchContext,
    command_delta,
    command_stats,
    count_round_trips,
    fmt_commands,
    require_module,
)
from benchmarks.harness import (
    Contender,
    Section,
    Skip,
    Target,
    fmt_bytes,
    fmt_ratio,
    fmt_time,
    ratio,
    repeating,
    round_robin,
)
from benchmarks.workloads import unit_vectors

TITLE = "2. ByteStore: batches of 1,000 keys (mget / mset)"
REDIS_FLOOR = "raw redis-py (floor)"
CLUSTER_FLOOR = "raw RedisCluster (floor)"
ES_FLOOR = "raw elasticsearch-py (floor)"
COUNT_REPS = 5


@dataclass
class Store:
    name: str
    backend: str
    anchor: str  # the floor it is compared to ("" = none)
    mget: Callable[[list[str]], Any]
    mset: Callable[[list[tuple[str, bytes]]], Any]
    redis_client: Any = None  # for INFO commandstats


def run(ctx: BenchContext) -> Section:
    n = ctx.sizes.bytestore_keys
    section = Section(
        key="bytestore",
        title=TITLE,
        description=(
            f"`mget` of {n:,} existing keys and `mset` of {n:,} pairs (overwriting), values as "
            "`CacheBackedEmbeddings` stores them (a 384-float JSON list, "
            f"{fmt_bytes(len(_value(0)))} each). Floors: Redis `MGET` and one non-transactional "
            "pipeline of `SET`; Elasticsearch one `_mget` and one `_bulk` (no refresh). "
            "Commands are from `INFO commandstats` deltas (per batch, over "
            f"{COUNT_REPS} batches); on the cluster (3 primaries + 3 replicas) the floor is "
            "redis-py's `RedisCluster.mget_nonatomic` and a cluster pipeline of `SET`, server "
            "commands are not collected, and a round trip is one write to one node (a batch "
            "is at most one per primary, the pipelines of the primaries written before any "
            "reply is read); round trips are counted client-side (redis-py sends, HTTP "
            "requests), the median batch, and `one batch: +n` when one batch of the "
            f"{COUNT_REPS} made more (semcache flushes its stats counters at most every 5 s, "
            "riding on the next call)."
        ),
        columns=[
            "contender",
            "backend",
            "op",
            "n",
            "median",
            "p99",
            "× floor",
            "round trips",
            "server commands",
        ],
    )
    keys = [f"doc-{i:05d}-{'x' * 40}" for i in range(n)]
    items = [(key, _value(i)) for i, key in enumerate(keys)]
    stores: list[Store] = []
    reasons: dict[str, str] = {}

    def add(build: Callable[[], Store], name: str, backend: str) -> None:
        try:
            stores.append(build())
        except Skip as exc:
            section.add_skip(name, str(exc), backend=backend)
            reasons.setdefault(backend, str(exc))

    def semcache(kind: str) -> Callable[[], Store]:
        def build() -> Store:
            from langchain_semcache import BackendByteStore

            store = BackendByteStore(ctx.semcache_backend(kind), namespace=ctx.namespace("kv"))
            anchor = {
                REDIS: REDIS_FLOOR,
                REDIS_CLUSTER: CLUSTER_FLOOR,
                ELASTICSEARCH: ES_FLOOR,
            }.get(kind, "")
            client = ctx.redis_client(REDIS) if kind == REDIS else None
            return Store("semcache BackendByteStore", kind, anchor, store.mget, store.mset, client)

        return build

    def in_memory() -> Store:
        from langchain_core.stores import InMemoryByteStore

        store = InMemoryByteStore()
        return Store("langchain_core InMemoryByteStore", "in-process", "", store.mget, store.mset)

    def raw_redis() -> Store:
        ctx.require_kind(REDIS)
        client = ctx.redis_client(REDIS)
        prefix = ctx.namespace("raw") + ":"

        def mget(batch: list[str]) -> Any:
            return client.mget([prefix + k for k in batch])

        def mset(pairs: list[tuple[str, bytes]]) -> Any:
            pipe = client.pipeline(transaction=False)
            for key, value in pairs:
                pipe.set(prefix + key, value)
            return pipe.execute()

        return Store(REDIS_FLOOR, REDIS, "", mget, mset, client)

    def raw_cluster() -> Store:
        ctx.require_kind(REDIS_CLUSTER)
        client = ctx.redis_client(REDIS_CLUSTER)
        prefix = ctx.namespace("raw") + ":"

        def mget(batch: list[str]) -> Any:
            return client.mget_nonatomic([prefix + k for k in batch])

        def mset(pairs: list[tuple[str, bytes]]) -> Any:
            pipe = client.pipeline()
            for key, value in pairs:
                pipe.set(prefix + key, value)
            return pipe.execute()

        return Store(CLUSTER_FLOOR, REDIS_CLUSTER, "", mget, mset)

    def community() -> Store:
        ctx.require_kind(REDIS)
        require_module("langchain_community", "langchain-community")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.storage import RedisStore

        client = ctx.redis_client(REDIS)
        store = RedisStore(client=client, namespace=ctx.namespace("community"))
        return Store(
            "langchain_community RedisStore", REDIS, REDIS_FLOOR, store.mget, store.mset, client
        )

    def raw_es() -> Store:
        ctx.require_kind(ELASTICSEARCH)
        client = ctx.es_client()
        index = ctx.namespace("floor-kv")
        client.indices.create(
            index=index,
            mappings={"dynamic": False, "properties": {"v": {"type": "binary"}}},
        )

        def mget(batch: list[str]) -> Any:
            docs = client.mget(index=index, ids=batch)["docs"]
            return [base64.b64decode(d["_source"]["v"]) if d.get("found") else None for d in docs]

        def mset(pairs: list[tuple[str, bytes]]) -> Any:
            operations: list[dict[str, Any]] = []
            for key, value in pairs:
                operations.append({"index": {"_index": index, "_id": key}})
                operations.append({"v": base64.b64encode(value).decode("ascii")})
            response = client.bulk(operations=operations, refresh=False)
            if response.get("errors"):
                raise RuntimeError("bulk request had errors")
            return response

        return Store(ES_FLOOR, ELASTICSEARCH, "", mget, mset)

    add(in_memory, "langchain_core InMemoryByteStore", "in-process")
    add(semcache(EMBEDDED), "semcache BackendByteStore", EMBEDDED)
    add(raw_redis, REDIS_FLOOR, REDIS)
    add(semcache(REDIS), "semcache BackendByteStore", REDIS)
    add(community, "langchain_community RedisStore", REDIS)
    add(raw_cluster, CLUSTER_FLOOR, REDIS_CLUSTER)
    add(semcache(REDIS_CLUSTER), "semcache BackendByteStore", REDIS_CLUSTER)
    add(raw_es, ES_FLOOR, ELASTICSEARCH)
    add(semcache(ELASTICSEARCH), "semcache BackendByteStore", ELASTICSEARCH)

    ready: list[Store] = []
    for store in stores:
        try:
            store.mset(items)
            got = store.mget(keys)
            if list(got) != [v for _k, v in items]:
                raise RuntimeError("mget did not return what mset wrote")
            ready.append(store)
        except Exception as exc:
            section.add_skip(store.name, f"error: {exc}", backend=store.backend)
            reasons.setdefault(store.backend, f"{store.name}: error: {exc}")

    ctx.wait_idle()
    contenders: list[Contender] = []
    for store in ready:
        contenders.append(
            Contender(f"{store.name} [{store.backend}] mget", repeating(store.mget, keys))
        )
        contenders.append(
            Contender(f"{store.name} [{store.backend}] mset", repeating(store.mset, items))
        )
    results = round_robin(
        contenders, ctx.sizes.bytestore_iterations, warmup=2, budget_s=ctx.sizes.budget_s * 2
    )

    measured: dict[tuple[str, str, str], dict[str, Any]] = {}
    for store in ready:
        for op in ("mget", "mset"):
            samples = results[f"{store.name} [{store.backend}] {op}"]
            action = (
                (lambda s=store: s.mget(keys)) if op == "mget" else (lambda s=store: s.mset(items))
            )
            per_batch, commands = _count(store, action)
            trips = statistics.median(per_batch) if per_batch else None
            extra = max(per_batch) - trips if per_batch and trips is not None else 0
            floor = results.get(f"{store.anchor} [{store.backend}] {op}") if store.anchor else None
            r = ratio(samples.median, floor.median) if floor else None
            data = {
                "contender": store.name,
                "backend": store.backend,
                "op": op,
                "keys": n,
                **samples.as_json(),
                "ratio_to_floor": r,
                "round_trips": trips,
                "round_trips_per_batch": per_batch,
                "server_commands": dict(commands) if commands is not None else None,
            }
            measured[(store.name, store.backend, op)] = data
            if samples.error:
                section.add_skip(
                    store.name, f"error: {samples.error}", backend=store.backend, op=op
                )
                continue
            is_floor = store.name in (REDIS_FLOOR, CLUSTER_FLOOR, ES_FLOOR)
            section.add(
                data,
                contender=store.name,
                backend=store.backend,
                op=op,
                n=str(samples.n),
                median=fmt_time(samples.median),
                p99=fmt_time(samples.p99),
                **{
                    "× floor": "floor" if is_floor else fmt_ratio(r),
                    "round trips": "–"
                    if trips is None
                    else f"{trips:g}" + (f" (one batch: +{extra:g})" if extra else ""),
                    "server commands": "–"
                    if commands is None
                    else fmt_commands(commands, COUNT_REPS),
                },
            )

    for backend in (REDIS, ELASTICSEARCH):
        for op in ("mget", "mset"):
            name = f"ByteStore {op} of 1,000 keys on {backend}: 1 round trip, ≤ 1.2× floor"
            ours = measured.get(("semcache BackendByteStore", backend, op))
            if not ours or ours.get("error") or ours.get("ratio_to_floor") is None:
                reason = reasons.get(backend) or (ours or {}).get("error") or "not measured"
                section.targets.append(Target.skipped(name, "1 round trip, ≤ 1.20×", reason))
                continue
            trips, r = ours["round_trips"], ours["ratio_to_floor"]
            extra = max(ours["round_trips_per_batch"]) - trips
            section.targets.append(
                Target.check(
                    name,
                    "1 round trip, ≤ 1.20×",
                    f"{trips:g} round trip(s), {fmt_ratio(r)}",
                    trips == 1 and r <= 1.2,
                    f"one batch in {COUNT_REPS} made {extra:g} more (periodic stats flush)"
                    if extra
                    else "",
                )
            )
    for op in ("mget", "mset"):
        name = (
            f"ByteStore {op} of 1,000 keys on {REDIS_CLUSTER}: ≤ 1 round trip per primary, "
            "≤ 1.2× floor"
        )
        wanted = "≤ 3 round trips (3 primaries), ≤ 1.20×"
        ours = measured.get(("semcache BackendByteStore", REDIS_CLUSTER, op))
        if not ours or ours.get("error") or ours.get("ratio_to_floor") is None:
            reason = reasons.get(REDIS_CLUSTER) or (ours or {}).get("error") or "not measured"
            section.targets.append(Target.skipped(name, wanted, reason))
            continue
        trips, r = ours["round_trips"], ours["ratio_to_floor"]
        section.targets.append(
            Target.check(
                name, wanted, f"{trips:g} round trips, {fmt_ratio(r)}", trips <= 3 and r <= 1.2
            )
        )
    section.notes.append(
        "In-process rows have no floor; they show what the batch costs without a network."
    )
    return section


def _value(i: int) -> bytes:
    vector = unit_vectors(1, seed=1000 + i)[0]
    return json.dumps([float(x) for x in vector]).encode()


def _count(store: Store, action: Callable[[], object]) -> tuple[list[float], Counter[str] | None]:
    """Client round trips of each of ``COUNT_REPS`` batches, and their server commands."""
    if store.backend not in (REDIS, REDIS_CLUSTER, ELASTICSEARCH):
        return [], None
    client = store.redis_client
    if client is not None:
        command_stats(client)  # connect first: the handshake is not the batch's
    per_batch: list[float] = []
    commands: Counter[str] | None = Counter() if client is not None else None
    for _ in range(COUNT_REPS):
        with count_round_trips() as counts:
            if client is not None and commands is not None:
                commands.update(command_delta(client, action))
            else:
                action()
        trips = counts.http if store.backend == ELASTICSEARCH else counts.redis
        per_batch.append(trips - (2 if client is not None else 0))  # the two INFO calls
    return per_batch, commands
