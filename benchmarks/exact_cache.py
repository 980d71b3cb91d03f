"""1. Exact LLM cache: hit and miss latency beside the raw floor and LangChain's own caches."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from benchmarks.context import EMBEDDED, REDIS, REDIS_QE, BenchContext, require_module
from benchmarks.harness import (
    Contender,
    Samples,
    Section,
    Skip,
    Target,
    cycling,
    fmt_ratio,
    fmt_time,
    ratio,
    round_robin,
)
from benchmarks.workloads import LLM_STRING, chat_generation, chat_prompt, response_payload
from semcache_core import ResponseCache
from semcache_core.keys import exact_entry_key

TITLE = "1. Exact LLM cache: hit and miss latency"
DISTINCT_PROMPTS = 200


def run(ctx: BenchContext) -> Section:
    section = Section(
        key="exact",
        title=TITLE,
        description=(
            "`cache.lookup(prompt, llm_string)` as LangChain calls it, for a chat prompt "
            "(system + human message, `dumps(messages)`) and a ChatGeneration of ~500 characters "
            f"with usage and response metadata; {DISTINCT_PROMPTS} distinct prompts, cycled. "
            "The floor is a raw redis-py `GET` of the very bytes semcache stores (no decoding). "
            "Ratios: Redis rows against the raw `GET`, in-process rows against LangChain's "
            "`InMemoryCache`."
        ),
        columns=["contender", "backend", "op", "n", "median", "p99", "× anchor", "anchor"],
    )
    generation = chat_generation(1)
    prompts = [chat_prompt(i) for i in range(DISTINCT_PROMPTS)]
    missing = [chat_prompt(10_000 + i) for i in range(DISTINCT_PROMPTS)]
    contenders: list[tuple[str, str, str, Callable[[str], Any] | None]] = []
    skips: list[tuple[str, str, str]] = []

    def add(name: str, backend: str, anchor: str, factory: Callable[[], Any]) -> None:
        """``factory`` returns ``lookup(prompt) -> result`` with every prompt stored."""
        try:
            contenders.append((name, backend, anchor, factory()))
        except Skip as exc:
            skips.append((name, backend, str(exc)))
        except Exception as exc:  # an anchor that does not run here is not a result
            skips.append((name, backend, f"failed: {type(exc).__name__}: {exc}"))

    # -- in-process ------------------------------------------------------------------------
    def in_memory_cache() -> Callable[[str], Any]:
        from langchain_core.caches import InMemoryCache

        cache = InMemoryCache()
        for prompt in prompts:
            cache.update(prompt, LLM_STRING, [generation])
        return lambda p: cache.lookup(p, LLM_STRING)

    def semcache_exact(backend_factory: Callable[[], Any]) -> Callable[[], Callable[[str], Any]]:
        def build() -> Callable[[str], Any]:
            from langchain_semcache import ExactCache

            cache = ExactCache(backend_factory(), namespace=ctx.namespace("exact"))
            for prompt in prompts:
                cache.update(prompt, LLM_STRING, [generation])
            return lambda p: cache.lookup(p, LLM_STRING)

        return build

    def semcache_core(backend_factory: Callable[[], Any]) -> Callable[[], Callable[[str], Any]]:
        def build() -> Callable[[str], Any]:
            from langchain_semcache._prompts import split_prompt
            from langchain_semcache._serialization import generations_to_json

            core = ResponseCache(backend_factory(), namespace=ctx.namespace("core"))
            body = generations_to_json([generation])
            for prompt in prompts:
                core.update(LLM_STRING, split_prompt(prompt), body)
            return lambda p: core.lookup(LLM_STRING, split_prompt(p)).body

        return build

    add("langchain_core InMemoryCache", "in-process", "", in_memory_cache)
    add(
        "semcache ExactCache",
        "embedded memory://",
        "langchain_core InMemoryCache",
        semcache_exact(lambda: ctx.semcache_backend(EMBEDDED)),
    )
    add(
        "semcache ExactCache",
        "embedded sqlite file",
        "langchain_core InMemoryCache",
        semcache_exact(lambda: ctx.sqlite_backend("exact.db")),
    )

    # -- Redis -----------------------------------------------------------------------------
    floor = "raw redis-py GET (floor)"

    def raw_get() -> Callable[[str], Any]:
        ctx.require_kind(REDIS)
        client = ctx.redis_client(REDIS)
        namespace = ctx.namespace("raw")
        payload = response_payload("", 1)
        for prompt in prompts:
            client.set(f"{namespace}:{exact_entry_key(namespace, LLM_STRING, prompt)}", payload)
        return lambda p: client.get(f"{namespace}:{exact_entry_key(namespace, LLM_STRING, p)}")

    def community_redis_cache() -> Callable[[str], Any]:
        ctx.require_kind(REDIS)
        require_module("langchain_community", "langchain-community")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.cache import RedisCache

        cache = RedisCache(ctx.redis_client(REDIS))
        for prompt in prompts:
            cache.update(prompt, LLM_STRING, [generation])
        return lambda p: cache.lookup(p, LLM_STRING)

    def langchain_redis_cache() -> Callable[[str], Any]:
        # It stores JSON documents (JSON.SET): it needs RedisJSON, so the Redis 8 server.
        ctx.require_kind(REDIS_QE)
        require_module("langchain_redis", "langchain-redis")
        from langchain_redis import RedisCache as LangChainRedisCache

        cache = LangChainRedisCache(
            redis_client=ctx.redis_client(REDIS_QE), prefix=ctx.namespace("lcredis")
        )
        for prompt in prompts:
            cache.update(prompt, LLM_STRING, [generation])
        return lambda p: cache.lookup(p, LLM_STRING)

    add(floor, "redis", "", raw_get)
    add(
        "semcache ExactCache",
        "redis",
        floor,
        semcache_exact(lambda: ctx.semcache_backend(REDIS)),
    )
    add(
        "semcache ResponseCache.lookup (core only)",
        "redis",
        floor,
        semcache_core(lambda: ctx.semcache_backend(REDIS)),
    )
    add("langchain_community RedisCache", "redis", floor, community_redis_cache)
    add("langchain-redis RedisCache", "redis-qe (RedisJSON)", floor, langchain_redis_cache)
    add(
        "semcache ExactCache",
        "elasticsearch",
        "",
        semcache_exact(lambda: ctx.semcache_backend("elasticsearch")),
    )

    timed: list[Contender] = []
    for name, backend, _anchor, lookup in contenders:
        assert lookup is not None
        label = f"{name} [{backend}]"
        timed.append(
            Contender(
                f"{label} hit",
                cycling(lookup, prompts),
                lambda _i, r: bool(r),
            )
        )
        timed.append(
            Contender(
                f"{label} miss",
                cycling(lookup, missing),
                lambda _i, r: not r,
            )
        )
    results = round_robin(timed, ctx.sizes.exact_iterations, warmup=20, budget_s=ctx.sizes.budget_s)

    def samples(name: str, backend: str, op: str) -> Samples | None:
        return results.get(f"{name} [{backend}] {op}")

    for name, backend, anchor, _lookup in contenders:
        for op in ("hit", "miss"):
            own = samples(name, backend, op)
            assert own is not None
            anchor_backend = "redis" if anchor == floor else "in-process"
            base = samples(anchor, anchor_backend, op) if anchor else None
            data = {"contender": name, "backend": backend, "op": op, **own.as_json()}
            if own.error:
                section.add_skip(name, f"error: {own.error}", backend=backend, op=op)
                continue
            if own.correct_rate is not None and own.correct_rate < 1.0:
                section.notes.append(
                    f"{name} [{backend}] {op}: only {own.correct_rate:.0%} of results were as "
                    "expected"
                )
            r = ratio(own.median, base.median) if base else None
            data["ratio_to_anchor"] = r
            is_anchor = any(a == name for _n, _b, a, _l in contenders)
            shown = "anchor" if is_anchor else fmt_ratio(r)
            section.add(
                data,
                contender=name,
                backend=backend,
                op=op,
                n=str(own.n),
                median=fmt_time(own.median),
                p99=fmt_time(own.p99),
                **{"× anchor": shown, "anchor": anchor or "–"},
            )
    for name, backend, reason in skips:
        section.add_skip(name, reason, backend=backend)

    section.targets.append(_in_process_target(samples))

    # -- targets -----------------------------------------------------------------------------
    ours = samples("semcache ExactCache", "redis", "hit")
    raw = samples(floor, "redis", "hit")
    community = samples("langchain_community RedisCache", "redis", "hit")
    if ours and raw and not ours.error and not raw.error:
        r = ratio(ours.median, raw.median)
        section.targets.append(
            Target.check(
                "Exact hit on Redis ≤ 1.3× raw GET",
                "≤ 1.30×",
                f"{fmt_ratio(r)} ({fmt_time(ours.median)} vs {fmt_time(raw.median)})",
                r is not None and r <= 1.3,
            )
        )
    else:
        section.targets.append(
            Target.skipped("Exact hit on Redis ≤ 1.3× raw GET", "≤ 1.30×", _why(skips, "redis"))
        )
    if ours and community and not ours.error and not community.error:
        r = ratio(ours.median, community.median)
        section.targets.append(
            Target.check(
                "Exact hit on Redis ≤ 0.8× langchain_community RedisCache",
                "≤ 0.80×",
                f"{fmt_ratio(r)} ({fmt_time(ours.median)} vs {fmt_time(community.median)})",
                r is not None and r <= 0.8,
            )
        )
    else:
        section.targets.append(
            Target.skipped(
                "Exact hit on Redis ≤ 0.8× langchain_community RedisCache",
                "≤ 0.80×",
                _why(skips, "redis"),
            )
        )
    our_miss = samples("semcache ExactCache", "redis", "miss")
    raw_miss = samples(floor, "redis", "miss")
    if our_miss and raw_miss and not our_miss.error and not raw_miss.error:
        r = ratio(our_miss.median, raw_miss.median)
        section.targets.append(
            Target.check(
                "Exact miss on Redis ≤ 1.1× raw GET",
                "≤ 1.10×",
                f"{fmt_ratio(r)} ({fmt_time(our_miss.median)} vs {fmt_time(raw_miss.median)})",
                r is not None and r <= 1.1,
            )
        )
    else:
        section.targets.append(
            Target.skipped("Exact miss on Redis ≤ 1.1× raw GET", "≤ 1.10×", _why(skips, "redis"))
        )
    section.notes.append(
        "`semcache ResponseCache.lookup (core only)` is the same lookup without LangChain's "
        "`load()` of the generation: the gap to `ExactCache` is LangChain object "
        "reconstruction, the gap to the raw GET is semcache's own work (keying, JSON decode)."
    )
    return section


def _why(skips: list[tuple[str, str, str]], backend: str) -> str:
    reasons = sorted({reason for _n, b, reason in skips if b == backend})
    return "; ".join(reasons) or "a contender failed (see the table)"


def _in_process_target(samples: Callable[[str, str, str], Samples | None]) -> Target:
    """Exact hit on ``memory://`` within 10x LangChain's ``InMemoryCache``."""
    name, limit = "Exact hit on memory:// ≤ 10× langchain_core InMemoryCache", "≤ 10.0×"
    ours = samples("semcache ExactCache", "embedded memory://", "hit")
    anchor = samples("langchain_core InMemoryCache", "in-process", "hit")
    if not ours or not anchor or ours.error or anchor.error:
        return Target.skipped(name, limit, "a contender did not run (see the table)")
    r = ratio(ours.median, anchor.median)
    return Target.check(
        name,
        limit,
        f"{fmt_ratio(r)} ({fmt_time(ours.median)} vs {fmt_time(anchor.median)})",
        r is not None and r <= 10.0,
        "InMemoryCache returns the objects it stored (shared, mutable); semcache decodes its "
        "bytes as untrusted JSON and rebuilds new LangChain objects on every hit",
    )
