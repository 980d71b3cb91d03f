"""6. Embedding calls per semantic miss through SemanticCache (must be exactly 1)."""

from __future__ import annotations

from benchmarks.context import (
    ELASTICSEARCH,
    EMBEDDED,
    REDIS,
    REDIS_QE,
    BenchContext,
    module_available,
)
from benchmarks.harness import Section, Skip, Target
from benchmarks.workloads import LLM_STRING, CountingEmbeddings, chat_generation, chat_prompt

TITLE = "6. Embedding calls per semantic miss"


def run(ctx: BenchContext) -> Section:
    n = ctx.sizes.calls_prompts
    guard = module_available("semcache_core.guard")
    section = Section(
        key="calls",
        title=TITLE,
        description=(
            f"`SemanticCache` with a counting embedder: {n} distinct chat prompts, each looked up "
            "(a miss) and then updated, as LangChain does; then each looked up again (an exact "
            "repeat, served by the exact-key probe). Trap guard "
            + ("on." if guard else "off (`semcache_core.guard` not present in this checkout).")
        ),
        columns=[
            "backend",
            "prompts",
            "calls per miss + update",
            "calls per exact repeat",
            "misses",
            "hits on repeat",
        ],
    )
    from langchain_semcache import SemanticCache

    generation = chat_generation(3)
    prompts = [chat_prompt(50_000 + i) for i in range(n)]
    for kind in (EMBEDDED, REDIS, REDIS_QE, ELASTICSEARCH):
        try:
            backend = ctx.semcache_backend(kind)
        except Skip as exc:
            section.add_skip(kind, str(exc))
            section.targets.append(_skipped(kind, str(exc)))
            continue
        embeddings = CountingEmbeddings()
        cache = SemanticCache(
            backend, embeddings=embeddings, namespace=ctx.namespace("calls"), trap_guard=guard
        )
        misses = 0
        for prompt in prompts:
            misses += cache.lookup(prompt, LLM_STRING) is None
            cache.update(prompt, LLM_STRING, [generation])
        per_miss = embeddings.calls / n
        before = embeddings.calls
        hits = sum(cache.lookup(prompt, LLM_STRING) is not None for prompt in prompts)
        per_repeat = (embeddings.calls - before) / n
        cache.clear()
        section.add(
            {
                "backend": kind,
                "prompts": n,
                "calls_per_miss": per_miss,
                "calls_per_exact_repeat": per_repeat,
                "misses": misses,
                "hits_on_repeat": hits,
            },
            backend=kind,
            prompts=str(n),
            misses=f"{misses}/{n}",
            **{
                "calls per miss + update": f"{per_miss:g}",
                "calls per exact repeat": f"{per_repeat:g}",
                "hits on repeat": f"{hits}/{n}",
            },
        )
        section.targets.append(
            Target.check(
                f"Embedding calls per semantic miss ({kind}) = 1",
                "= 1",
                f"{per_miss:g} (exact repeat: {per_repeat:g}; {misses}/{n} misses, {hits}/{n} hits)",
                per_miss == 1 and per_repeat == 0 and misses == n and hits == n,
            )
        )
    return section


def _skipped(kind: str, reason: str) -> Target:
    return Target.skipped(f"Embedding calls per semantic miss ({kind}) = 1", "= 1", reason)
