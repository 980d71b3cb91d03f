"""What ``max_entries`` (the embedded backend's LRU limit) and hit counting cost a hit and a write.

    python -m benchmarks.lru_cost [--entries N] [--lookups N]

One SQLite file per case in a temporary directory: ``ResponseCache`` exact and semantic (the
hashing embedder: the embedding itself costs next to nothing, so the storage cost shows),
without a limit, with a limit that is never reached (uses are recorded, nothing is evicted)
and with a limit of half the entries (every write evicts). "every read" repeats the limited
cases with the one-second recency resolution turned off, so every hit is written as a use:
the worst case. "hits not counted" (``?track_hits=0``) against "no limit" is what counting
served hits per entry costs (the default), on ``sqlite://`` and ``memory://``. Rounds of lookups over the entries still stored, interleaved; the best round
of each case is reported.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence

from semcache_core import Prompt, ResponseCache, connect
from semcache_core.backends import lru
from semcache_core.testing import HashingEmbedder


def _filled(url: str, *, semantic: bool, entries: int) -> tuple[ResponseCache, list[Prompt], float]:
    embedder = HashingEmbedder() if semantic else None
    cache = ResponseCache(connect(url), namespace="bench", embedder=embedder)
    prompts = [Prompt.plain(f"question {i} about topic {i * 7} and more") for i in range(entries)]
    started = time.perf_counter()
    for prompt in prompts:
        cache.update("model", prompt, {"text": "answer"}, tokens=0)
    return cache, prompts, 1e6 * (time.perf_counter() - started) / entries


def _lookups(cache: ResponseCache, stored: list[Prompt], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        if cache.lookup("model", stored[i % len(stored)]).body is None:
            raise RuntimeError("a stored entry missed")
    return 1e6 * (time.perf_counter() - started) / count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--lookups", type=int, default=1000, help="per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    directory = tempfile.mkdtemp(prefix="semcache-lru-")
    half = args.entries // 2
    limits = [
        ("no limit", "", args.entries),
        ("no limit, hits not counted", "?track_hits=0", args.entries),
        ("limit not reached", f"?max_entries={10 * args.entries}", args.entries),
        (f"limit {half}, evicting", f"?max_entries={half}", half),
    ]
    cases = []
    for semantic in (False, True):
        for name, query, kept in limits:
            path = os.path.join(directory, f"{semantic}-{len(query)}.db")
            urls = [("sqlite", f"sqlite:///{path}{query}")]
            if "max_entries" not in query:
                urls.append(("memory", f"memory://{query}"))
            for scheme, url in urls:
                cache, prompts, write = _filled(url, semantic=semantic, entries=args.entries)
                kind = "semantic cache, same prompt" if semantic else "exact cache"
                cases.append((f"{scheme}: {name}", kind, cache, prompts[-kept:], write))
    # Rounds interleave the cases, and the best round of each counts: on a shared machine
    # that is the cost of the code, not of whatever else ran meanwhile.
    best: dict[tuple[int, str], float] = {}
    for _ in range(args.rounds):
        for number, (name, _, cache, stored, _) in enumerate(cases):
            for label, resolution in (("1 s", 1.0), ("every read", 0.0)):
                if label == "every read" and "no limit" in name:
                    continue
                lru.USE_RESOLUTION = resolution
                hit = _lookups(cache, stored, args.lookups)
                best[(number, label)] = min(best.get((number, label), hit), hit)
    lru.USE_RESOLUTION = 1.0
    print("| case | lookup | write (µs) | hit, 1 s recency (µs) | hit, every read a use (µs) |")
    print("|---|---|---:|---:|---:|")
    for number, (name, kind, _, _, write) in enumerate(cases):
        every = best.get((number, "every read"))
        shown = "" if every is None else f"{every:.1f}"
        print(f"| {name} | {kind} | {write:.0f} | {best[(number, '1 s')]:.1f} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
