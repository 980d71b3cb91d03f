"""4. CacheBackedEmbeddings end to end: 10,000 texts, cold then warm, per store."""

from __future__ import annotations

import contextlib
import random
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.context import ELASTICSEARCH, EMBEDDED, REDIS, BenchContext, require_module
from benchmarks.harness import Section, Skip, fmt_ratio, fmt_time, ratio
from benchmarks.workloads import FastFakeEmbeddings

TITLE = "4. CacheBackedEmbeddings: cold and warm, per text"
NO_CACHE = "no cache (the fake embedder alone)"
IN_MEMORY = "langchain_core InMemoryByteStore"
COMMUNITY = "langchain_community RedisStore"
REDISVL_EMBEDDINGS = "RedisVL EmbeddingsCache (mget, embed the misses, mset)"


class _RedisVLEmbeddings:
    """RedisVL's ``EmbeddingsCache`` used as its docs show (it is no ByteStore): ``mget`` the
    texts, embed the misses in one call, ``mset`` them."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def wrap(self, embedder: Any) -> Any:
        cache = self.cache
        model = embedder.model

        class Cached:
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                found = cache.mget(texts, model_name=model)
                missing = [i for i, entry in enumerate(found) if entry is None]
                vectors: list[Any] = [None if e is None else e["embedding"] for e in found]
                if missing:
                    fresh = embedder.embed_documents([texts[i] for i in missing])
                    cache.mset(
                        [
                            {"content": texts[i], "model_name": model, "embedding": vector}
                            for i, vector in zip(missing, fresh, strict=True)
                        ]
                    )
                    for i, vector in zip(missing, fresh, strict=True):
                        vectors[i] = vector
                return vectors

        return Cached()


@dataclass
class Entry:
    name: str
    backend: str
    anchor: str
    make_store: Callable[[int], tuple[Any, Callable[[], object]]] | None  # rep -> store, cleanup
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    error: str | None = None
    wrong: int = 0
    problems: list[str] = field(default_factory=list)


def run(ctx: BenchContext) -> Section:
    n = ctx.sizes.embedding_texts
    section = Section(
        key="embeddings",
        title=TITLE,
        description=(
            f"`CacheBackedEmbeddings.from_bytes_store(embedder, store, namespace=model, "
            f'key_encoder="sha256").embed_documents(texts)` for {n:,} distinct texts: cold (empty '
            "store: one `mget` of all keys, the embedder, one `mset`), then warm (one `mget`, all "
            "hits). The embedder is a trivial fake (a list copy per text), so the cache's own cost "
            f"dominates. Median of {ctx.sizes.embedding_reps} repetition(s), contenders "
            "interleaved, each repetition on a fresh namespace. Ratios: warm cost against "
            "`InMemoryByteStore` (in-process) or `RedisStore` (Redis)."
        ),
        columns=[
            "contender",
            "backend",
            "texts",
            "cold: per text",
            "warm: per text",
            "warm / cold",
            "warm × anchor",
            "anchor",
        ],
    )
    require_module("langchain_classic", "langchain-classic")
    from langchain_classic.embeddings import CacheBackedEmbeddings

    texts = [f"document {i}: {'lorem ipsum dolor sit amet ' * 4}" for i in range(n)]
    entries: list[Entry] = [Entry(NO_CACHE, "–", "", None)]

    def add(name: str, backend: str, anchor: str, build: Callable[[], Any]) -> None:
        try:
            entries.append(Entry(name, backend, anchor, build()))
        except Skip as exc:
            section.add_skip(name, str(exc), backend=backend)

    def in_memory() -> Callable[[int], tuple[Any, Callable[[], object]]]:
        from langchain_core.stores import InMemoryByteStore

        return lambda _rep: (InMemoryByteStore(), lambda: None)

    def semcache(backend_factory: Callable[[], Any]) -> Any:
        from langchain_semcache import BackendByteStore

        backend = backend_factory()

        def make(_rep: int) -> tuple[Any, Callable[[], object]]:
            store = BackendByteStore(backend, namespace=ctx.namespace("emb"))
            return store, store.clear

        return make

    def community() -> Callable[[int], tuple[Any, Callable[[], object]]]:
        ctx.require_kind(REDIS)
        require_module("langchain_community", "langchain-community")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.storage import RedisStore

        client = ctx.redis_client(REDIS)

        def make(_rep: int) -> tuple[Any, Callable[[], object]]:
            store = RedisStore(client=client, namespace=ctx.namespace("community"))
            return store, lambda: store.mdelete(list(store.yield_keys()))

        return make

    add(IN_MEMORY, "in-process", "", in_memory)
    add(
        "semcache BackendByteStore",
        "embedded memory://",
        IN_MEMORY,
        lambda: semcache(lambda: ctx.semcache_backend(EMBEDDED)),
    )
    add(
        "semcache BackendByteStore",
        "embedded sqlite file",
        IN_MEMORY,
        lambda: semcache(lambda: ctx.sqlite_backend("embeddings.db")),
    )
    add(
        "semcache BackendByteStore",
        "redis",
        COMMUNITY,
        lambda: semcache(lambda: ctx.semcache_backend(REDIS)),
    )

    def redisvl() -> Callable[[int], tuple[Any, Callable[[], object]]]:
        ctx.require_kind(REDIS)
        require_module("redisvl", "redisvl")
        from redisvl.extensions.cache.embeddings import EmbeddingsCache

        url = ctx.server_url(REDIS)

        def make(_rep: int) -> tuple[Any, Callable[[], object]]:
            cache = EmbeddingsCache(name=ctx.namespace("redisvl-emb"), redis_url=url)
            return _RedisVLEmbeddings(cache), cache.clear

        return make

    add(COMMUNITY, "redis", "", community)
    add(REDISVL_EMBEDDINGS, "redis", COMMUNITY, redisvl)
    add(
        "semcache BackendByteStore",
        "elasticsearch",
        "",
        lambda: semcache(lambda: ctx.semcache_backend(ELASTICSEARCH)),
    )

    order = random.Random(0)
    for rep in range(ctx.sizes.embedding_reps):
        active = [e for e in entries if e.error is None]
        order.shuffle(active)
        for entry in active:
            ctx.wait_idle()
            _one_rep(entry, rep, texts, CacheBackedEmbeddings)

    by_key = {(e.name, e.backend): e for e in entries}
    for entry in entries:
        if entry.error:
            section.add_skip(entry.name, f"error: {entry.error}", backend=entry.backend)
            continue
        cold = statistics.median(entry.cold) / n
        warm = statistics.median(entry.warm) / n
        anchor_backend = "in-process" if entry.anchor == IN_MEMORY else "redis"
        anchor = by_key.get((entry.anchor, anchor_backend)) if entry.anchor else None
        anchor_warm = statistics.median(anchor.warm) / n if anchor and anchor.warm else None
        r = ratio(warm, anchor_warm) if anchor_warm else None
        is_anchor = entry.name in (IN_MEMORY, COMMUNITY)
        if entry.wrong:
            section.notes.append(
                f"{entry.name} [{entry.backend}]: {entry.wrong} of {len(entry.cold)} "
                f"repetition(s) not fully cached ({'; '.join(sorted(set(entry.problems)))}): its "
                "warm figure includes embedding again"
            )
        section.add(
            {
                "contender": entry.name,
                "backend": entry.backend,
                "texts": n,
                "cold_s": entry.cold,
                "warm_s": entry.warm,
                "cold_per_text_s": cold,
                "warm_per_text_s": warm,
                "warm_over_cold": ratio(warm, cold),
                "warm_ratio_to_anchor": r,
            },
            contender=entry.name,
            backend=entry.backend,
            texts=f"{n:,}",
            anchor=entry.anchor or "–",
            **{
                "cold: per text": fmt_time(cold),
                "warm: per text": fmt_time(warm),
                "warm / cold": fmt_ratio(ratio(warm, cold)),
                "warm × anchor": "anchor" if is_anchor else fmt_ratio(r),
            },
        )

    ours = by_key.get(("semcache BackendByteStore", "redis"))
    theirs = by_key.get((COMMUNITY, "redis"))
    if ours and theirs and ours.warm and theirs.warm and not (ours.error or theirs.error):
        r = ratio(statistics.median(ours.warm), statistics.median(theirs.warm))
        section.notes.append(
            f"Warm on Redis, semcache `BackendByteStore` vs `RedisStore`: {fmt_ratio(r)} "
            "(no target; the ByteStore section holds the batch targets)."
        )
    section.notes.append(
        "Per-text cost includes LangChain's own work (sha256 key encoding, JSON "
        "(de)serialization of 384 floats), which is the same for every store: compare the "
        f"rows with each other and with `{NO_CACHE}`."
    )
    return section


def _one_rep(entry: Entry, rep: int, texts: list[str], cache_cls: Any) -> None:
    embedder = FastFakeEmbeddings()
    cleanup: Callable[[], object] = lambda: None  # noqa: E731
    try:
        if entry.make_store is None:
            started = time.perf_counter()
            embedder.embed_documents(texts)
            entry.cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            embedder.embed_documents(texts)
            entry.warm.append(time.perf_counter() - started)
            return
        store, cleanup = entry.make_store(rep)
        cached = (
            store.wrap(embedder)
            if isinstance(store, _RedisVLEmbeddings)
            else cache_cls.from_bytes_store(
                embedder, store, namespace=embedder.model, key_encoder="sha256"
            )
        )
        started = time.perf_counter()
        cold = cached.embed_documents(texts)
        entry.cold.append(time.perf_counter() - started)
        embedded_cold = embedder.texts
        started = time.perf_counter()
        warm = cached.embed_documents(texts)
        entry.warm.append(time.perf_counter() - started)
        if embedded_cold != len(texts) or embedder.texts != embedded_cold or warm != cold:
            entry.wrong += 1
            errors = store.stats().get("backend_errors") if hasattr(store, "stats") else None
            entry.problems.append(
                f"re-embedded {embedder.texts - embedded_cold:,} of {len(texts):,} texts when "
                f"warm" + (f", {errors} backend error(s)" if errors else "")
            )
    except Exception as exc:
        entry.error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            cleanup()
