"""The measurements behind the fixes proposed for missed targets: what costs the time or bytes.

    .venv/bin/python benchmarks/profiles.py [exact] [semantic] [memory]

* ``exact``: an exact hit on Redis, interleaved: the raw ``GET``, ``ExactCache.lookup`` as it
  is, the same lookup with the two proposed fixes applied *in this script only* (a subclass:
  no prompt parsing for exact keys, one cached LangChain ``Reviver`` instead of ``load()`` per
  generation), LangChain's ``RedisCache``; then a cProfile of ``ExactCache.lookup``.
* ``semantic``: 10k entries on the embedded backend, plain Redis and Redis with the Query
  Engine: hot-loop medians of the numpy floor, the mirror search, ``search_vectors`` and the
  core lookup; round trips per lookup; ``FT.PROFILE`` of the Query Engine's query.
* ``memory``: the bytes of one plain-Redis semantic entry, as written and as the proposed
  layouts would store it (measured on copies written with plain commands).

Starts its own servers with ``tests/servers.py`` and stops them. Nothing here changes
semcache: the proposals are applied to copies or subclasses inside this script.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.context import (  # noqa: E402
    EMBEDDED,
    REDIS,
    REDIS_QE,
    BenchContext,
    count_round_trips,
)
from benchmarks.harness import (  # noqa: E402
    Contender,
    cycling,
    fmt_bytes,
    fmt_time,
    repeating,
    round_robin,
)
from benchmarks.workloads import (  # noqa: E402
    LLM_STRING,
    PrecomputedEmbedder,
    chat_generation,
    chat_prompt,
    response_payload,
    unit_vectors,
)
from semcache_core import Prompt, ResponseCache, VectorRecord  # noqa: E402
from semcache_core.keys import semantic_entry_id  # noqa: E402


def _hot(call: Callable[[int], object], n: int = 300) -> float:
    for i in range(20):
        call(i)
    times = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _profile(call: Callable[[int], object], n: int, top: int = 14) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        call(i)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start : start + top + 1])


# -- exact -------------------------------------------------------------------------------------


def exact(ctx: BenchContext) -> None:
    from langchain_core.load.load import Reviver

    from langchain_semcache import ExactCache
    from langchain_semcache._serialization import ALLOWED_CLASSES

    reviver = Reviver(ALLOWED_CLASSES, secrets_from_env=False)

    def revive(obj: Any) -> Any:
        # What langchain_core.load.load() does, with the Reviver (and its allowlist set)
        # built once instead of on every call.
        from langchain_core.load._validation import _is_escaped_dict, _unescape_value

        if isinstance(obj, dict):
            if _is_escaped_dict(obj):
                return _unescape_value(obj)
            return reviver({k: revive(v) for k, v in obj.items()})
        if isinstance(obj, list):
            return [revive(o) for o in obj]
        return obj

    class ProposedExactCache(ExactCache):
        def lookup(self, prompt: str, llm_string: str) -> Any:
            self._check(prompt, llm_string)
            result = self._core.lookup(llm_string, Prompt.plain(prompt))
            if not result.body:
                return None
            return [revive(g) for g in result.body["value"]["generations"]]

    backend = ctx.semcache_backend(REDIS)
    client = ctx.redis_client(REDIS)
    generation = chat_generation(1)
    prompts = [chat_prompt(i) for i in range(200)]
    cache = ExactCache(backend, namespace="profile-exact")
    proposed = ProposedExactCache(backend, namespace="profile-exact")
    for prompt in prompts:
        cache.update(prompt, LLM_STRING, [generation])
    assert proposed.lookup(prompts[0], LLM_STRING) == cache.lookup(prompts[0], LLM_STRING)
    keys = [k for k in client.scan_iter(match="profile-exact:llm:*")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.cache import RedisCache

        community = RedisCache(client)
        for prompt in prompts:
            community.update(prompt, LLM_STRING, [generation])

    contenders = [
        Contender("raw GET", lambda i: client.get(keys[i % len(keys)])),
        Contender(
            "ExactCache.lookup (as is)", lambda i: cache.lookup(prompts[i % 200], LLM_STRING)
        ),
        Contender(
            "ExactCache.lookup (proposed fixes)",
            lambda i: proposed.lookup(prompts[i % 200], LLM_STRING),
        ),
        Contender(
            "langchain_community RedisCache",
            lambda i: community.lookup(prompts[i % 200], LLM_STRING),
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = round_robin(contenders, 3000, warmup=50)
    floor = results["raw GET"].median
    print("## exact hit on Redis, interleaved (3,000 rounds)")
    for name, samples in results.items():
        print(f"  {name:38s} {fmt_time(samples.median):>10}  {samples.median / floor:5.2f}x GET")
    print("\n## in-process pieces of one ExactCache hit (hot loop medians)")
    from langchain_semcache._prompts import split_prompt
    from langchain_semcache._serialization import generations_from_json

    body = cache._core.lookup(LLM_STRING, Prompt.plain(prompts[0])).body
    assert body is not None
    pieces: list[tuple[str, Callable[[int], object]]] = [
        ("split_prompt(prompt) (JSON parse of the chat)", lambda i: split_prompt(prompts[i % 200])),
        ("generations_from_json (load() per generation)", lambda i: generations_from_json(body["value"])),
        ("cached Reviver walk (proposed)", lambda i: [revive(g) for g in body["value"]["generations"]]),
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, call in pieces:
            print(f"  {name:48s} {fmt_time(_hot(call, 2000)):>10}")
        print("\n## cProfile of ExactCache.lookup (3,000 hits), by own time")
        print(_profile(lambda i: cache.lookup(prompts[i % 200], LLM_STRING), 3000))


# -- semantic ----------------------------------------------------------------------------------


def semantic(ctx: BenchContext, size: int = 10_000) -> None:
    from benchmarks.semantic_lookup import SCOPE, _workload

    work = _workload(size, 200)
    q = work.queries
    print(f"## semantic lookup at {size:,} entries, hot loops (medians)")
    print(
        f"  numpy floor argmin(1 - M @ q): {fmt_time(_hot(lambda i: np.argmin(1.0 - work.vectors @ work.near_vectors[i % q])))}"
    )
    for kind in (EMBEDDED, REDIS, REDIS_QE):
        backend = ctx.semcache_backend(kind)
        namespace = f"profile-{kind}"
        cache = ResponseCache(
            backend, namespace=namespace, embedder=work.embedder, trap_guard=False
        )
        partition = cache.partition(SCOPE, Prompt.plain("x"))
        for start in range(0, size, 1000):
            backend.add_vectors(
                namespace,
                partition,
                [
                    VectorRecord(
                        semantic_entry_id(namespace, partition, work.stored[i]),
                        work.vectors[i],
                        work.payloads[i],
                    )
                    for i in range(start, min(start + 1000, size))
                ],
            )
        ctx.wait_idle()
        prompts = [Prompt.plain(t) for t in work.near_texts]
        cache.lookup(SCOPE, prompts[0])

        def search(i: int, b: Any = backend, ns: str = namespace, p: str = partition) -> Any:
            return b.search_vectors(ns, p, work.near_vectors[i % q], k=4, max_distance=0.2)

        def lookup(i: int, c: ResponseCache = cache, ps: list[Prompt] = prompts) -> Any:
            return c.lookup(SCOPE, ps[i % q])

        mirrors = getattr(backend, "_mirrors", None) or getattr(
            getattr(backend, "ops", None), "mirrors", None
        )
        mirror = mirrors.peek(namespace, partition) if mirrors is not None else None
        parts = [f"search_vectors {fmt_time(_hot(search))}", f"lookup hit {fmt_time(_hot(lookup))}"]
        if mirror is not None:

            def mirror_search(vector: Any, m: Any = mirror) -> Any:
                return m.search(vector, k=8, max_distance=0.2, now=time.time())

            seconds = _hot(cycling(mirror_search, list(work.near_vectors)))
            parts.insert(0, f"mirror.search {fmt_time(seconds)}")
        with count_round_trips() as trips:
            for i in range(20):
                lookup(i)
        parts.append(f"round trips per lookup {trips.redis / 20:g}")
        print(f"  {kind:9s} " + ", ".join(parts))
        if kind == REDIS:
            print("\n  cProfile of the plain-Redis lookup (200 hits), by own time")
            print("  " + _profile(lookup, 200, 10).replace("\n", "\n  "))
        if kind == REDIS_QE:
            _ft_profile(ctx, namespace, partition, work.near_vectors[0])
            _recall(
                ctx,
                namespace,
                partition,
                work,
                ids=[semantic_entry_id(namespace, partition, t) for t in work.stored],
            )
            _small_partition(ctx, backend, cache, namespace, work)
        backend.clear(namespace)


def _ft_profile(ctx: BenchContext, namespace: str, partition: str, vector: Any) -> None:
    from semcache_core.backends.redis.keys import index_name, partition_token

    client = ctx.redis_client(REDIS_QE)
    query = f"(@ptag:{{{partition_token(partition)}}})=>[KNN $K @vector $BLOB AS __dist]"
    blob = np.asarray(vector, dtype="<f4").tobytes()
    base = ("PARAMS", 4, "K", 8, "BLOB", blob, "SORTBY", "__dist", "ASC")
    tail = ("RETURN", 2, "payload", "vector", "LIMIT", 0, 8, "DIALECT", 2)
    prefix = f"(@ptag:{{{partition_token(partition)}}})"

    def knn(policy: str) -> str:
        return f"{prefix}=>[KNN $K @vector $BLOB {policy} AS __dist]"

    limit = ("LIMIT", 0, 8, "DIALECT", 2)
    variants: dict[str, Sequence[Any]] = {
        "as semcache queries (partition pre-filter)": (query, *base, *tail),
        "no pre-filter (whole index)": ("*=>[KNN $K @vector $BLOB AS __dist]", *base, *tail),
        "pre-filter, HYBRID_POLICY BATCHES": (
            knn("HYBRID_POLICY BATCHES"),
            *base,
            *tail,
        ),
        "pre-filter, HYBRID_POLICY ADHOC_BF": (
            knn("HYBRID_POLICY ADHOC_BF"),
            *base,
            *tail,
        ),
        "pre-filter, RETURN payload only": (query, *base, "RETURN", 1, "payload", *limit),
    }
    print("\n  Query Engine: FT.SEARCH variants (hot loop medians)")
    for name, args in variants.items():
        command = ("FT.SEARCH", index_name(namespace), *args)
        seconds = _hot(repeating(lambda c: client.execute_command(*c), command), 200)
        print(f"    {name:45s} {fmt_time(seconds)}")
    profile = client.execute_command(
        "FT.PROFILE", index_name(namespace), "SEARCH", "QUERY", query, *base, *tail
    )
    if isinstance(profile, dict):
        profile = {_compact(k): v for k, v in profile.items()}.get("profile", profile)
    elif isinstance(profile, list) and len(profile) > 1:
        profile = profile[-1]
    print("  FT.PROFILE (as semcache queries):")
    print("   ", _compact(profile)[:1500])


def _recall(ctx: BenchContext, namespace: str, partition: str, work: Any, ids: list[str]) -> None:
    """Share of near queries whose own entry comes back first, per query variant."""
    from semcache_core.backends.redis.keys import index_name, partition_token, vector_key

    client = ctx.redis_client(REDIS_QE)
    prefix = f"(@ptag:{{{partition_token(partition)}}})"
    print("\n  Query Engine recall@1 of near queries (own entry first) and median latency")
    for label, clause in (
        ("default policy, default EF_RUNTIME (10)", ""),
        ("HYBRID_POLICY BATCHES, EF_RUNTIME 10", "HYBRID_POLICY BATCHES "),
        ("HYBRID_POLICY BATCHES, EF_RUNTIME 100", "HYBRID_POLICY BATCHES EF_RUNTIME 100 "),
        ("no pre-filter, EF_RUNTIME 10", None),
        ("no pre-filter, EF_RUNTIME 100", "EF_RUNTIME 100 "),
    ):
        head = "*" if clause is None or label.startswith("no pre-filter") else prefix
        query = f"{head}=>[KNN $K @vector $BLOB {clause or ''}AS __dist]"
        found, times = 0, []
        for i, target in enumerate(work.targets):
            blob = np.asarray(work.near_vectors[i], dtype="<f4").tobytes()
            started = time.perf_counter()
            reply = client.execute_command(
                "FT.SEARCH", index_name(namespace), query, "PARAMS", 4, "K", 8, "BLOB", blob,
                "SORTBY", "__dist", "ASC", "RETURN", 0, "LIMIT", 0, 8, "DIALECT", 2,
            )  # fmt: skip
            times.append(time.perf_counter() - started)
            found += _first_id(reply) == vector_key(namespace, ids[int(target)])
        print(
            f"    {label:45s} recall {found / len(work.targets):4.0%}  "
            f"{fmt_time(statistics.median(times))}"
        )


def _first_id(reply: Any) -> str | None:
    """The first result's key of an FT.SEARCH reply, RESP2 (list) or RESP3 (map)."""
    if isinstance(reply, dict):
        results = {_compact(k): v for k, v in reply.items()}.get("results") or []
        if not results:
            return None
        first = {_compact(k): v for k, v in results[0].items()}
        return _compact(first.get("id"))
    if isinstance(reply, list) and len(reply) > 1:
        return _compact(reply[1])
    return None


def _small_partition(
    ctx: BenchContext, backend: Any, cache: ResponseCache, namespace: str, work: Any
) -> None:
    """A selective filter: 100 entries of another partition in the same 10k-entry index."""
    from semcache_core.backends.redis.keys import index_name, partition_token

    other = cache.partition("another-llm-string", Prompt.plain("x"))
    small = 100
    records = [VectorRecord(f"small-{i}", work.vectors[i], work.payloads[i]) for i in range(small)]
    backend.add_vectors(namespace, other, records)
    ctx.wait_idle()
    client = ctx.redis_client(REDIS_QE)
    blob = np.asarray(work.vectors[3], dtype="<f4").tobytes()
    prefix = f"(@ptag:{{{partition_token(other)}}})"
    print(f"\n  Query Engine, a {small}-entry partition in the same index (hot loop medians)")
    for policy in ("", "HYBRID_POLICY BATCHES ", "HYBRID_POLICY ADHOC_BF "):
        query = f"{prefix}=>[KNN $K @vector $BLOB {policy}AS __dist]"
        args = ("PARAMS", 4, "K", 8, "BLOB", blob, "SORTBY", "__dist", "ASC", "RETURN", 2,
                "payload", "vector", "LIMIT", 0, 8, "DIALECT", 2)  # fmt: skip

        def search(_i: int, qy: str = query, a: tuple[Any, ...] = args) -> Any:
            return client.execute_command("FT.SEARCH", index_name(namespace), qy, *a)

        label = policy.strip() or "default (as semcache queries)"
        print(f"    {label:45s} {fmt_time(_hot(search, 200))}")


def _compact(value: Any, depth: int = 0) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{_compact(k)}: {_compact(v, depth + 1)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_compact(v, depth + 1) for v in value) + "]"
    return str(value)


# -- memory ------------------------------------------------------------------------------------


def memory(ctx: BenchContext, n: int = 2000) -> None:
    backend = ctx.semcache_backend(REDIS)
    client = ctx.redis_client(REDIS)
    namespace = "profile-mem"
    cache = ResponseCache(
        backend, namespace=namespace, embedder=PrecomputedEmbedder({}), trap_guard=False
    )
    partition = cache.partition("bench-llm-string", Prompt.plain("x"))
    vectors = unit_vectors(n, seed=5)
    payloads = [response_payload(f"stored question number {i}", i) for i in range(n)]
    records = [
        VectorRecord(
            semantic_entry_id(namespace, partition, f"stored question number {i}"),
            vectors[i],
            payloads[i],
        )
        for i in range(n)
    ]
    for start in range(0, n, 500):
        backend.add_vectors(namespace, partition, records[start : start + 500])
    expected = statistics.fmean(len(p) for p in payloads) + 4 * vectors.shape[1]
    hashes = [k for k in client.scan_iter(match=f"{namespace}:vec:*")]
    logs = [k for k in client.scan_iter(match=f"{namespace}:vlog:*")]
    as_is = statistics.fmean(client.memory_usage(k, samples=0) for k in hashes)
    log = sum(client.memory_usage(k, samples=0) for k in logs) / n
    fields = client.hgetall(hashes[0])
    sizes = {k.decode(): len(v) for k, v in fields.items()}
    # The proposed layouts, written with plain commands on copies.
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(hashes):
        f = client.hgetall(key)
        pipe.hset(
            f"copy-novec:{i}", mapping={k: v for k, v in f.items() if k not in (b"vector", b"ptag")}
        )
        pipe.set(
            f"copy-string:{i}",
            f[b"ver"] + b"|" + f[b"partition"] + b"|" + f[b"tags"] + b"|" + f[b"payload"],
        )
    pipe.execute()
    no_vector = statistics.fmean(
        client.memory_usage(f"copy-novec:{i}", samples=0) for i in range(len(hashes))
    )
    string = statistics.fmean(
        client.memory_usage(f"copy-string:{i}", samples=0) for i in range(len(hashes))
    )
    print(f"## plain-Redis semantic entry, {n:,} entries, payload + vector = {fmt_bytes(expected)}")
    print(f"  hash fields (bytes): {sizes}; encoding {client.object('encoding', hashes[0])!r}")
    rows = [
        ("as written: hash + log stream", as_is, log),
        ("proposed: hash without vector/ptag + log", no_vector, log),
        ("proposed: one STRING (ver|partition|tags|payload) + log", string, log),
    ]
    for name, entry, stream in rows:
        total = entry + stream
        print(
            f"  {name:58s} {fmt_bytes(entry):>9} + {fmt_bytes(stream):>9} = {fmt_bytes(total):>9}  {total / expected:.2f}x"
        )
    client.delete(
        *[f"copy-novec:{i}" for i in range(len(hashes))],
        *[f"copy-string:{i}" for i in range(len(hashes))],
    )
    backend.clear(namespace)


def main(argv: Sequence[str] | None = None) -> int:
    wanted = list(argv if argv is not None else sys.argv[1:]) or ["exact", "semantic", "memory"]
    unknown = set(wanted) - {"exact", "semantic", "memory"}
    if unknown:
        print(f"unknown experiments {sorted(unknown)}; choose from exact, semantic, memory")
        return 2
    ctx = BenchContext.create(quick=False, kinds=frozenset({EMBEDDED, REDIS, REDIS_QE}))
    try:
        for name in wanted:
            {"exact": exact, "semantic": semantic, "memory": memory}[name](ctx)
            print()
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
