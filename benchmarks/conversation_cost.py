"""What semantic context matching adds to a lookup: embedding the search text instead of the
question alone, and the rules run on each candidate. (The vector search itself is unchanged:
one partition-filtered k-nearest search, measured in ``semantic_lookup.py``.)

    python -m benchmarks.conversation_cost [PAIRS.jsonl] [--embedder minilm|hash]

Uses the conversations of the tuning part by default. "cold" clears every per-text cache
first (a conversation and its candidates seen for the first time in this process); "warm"
is the same decisions again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from semcache_core.conversation import facts, match_conversation, query_text, search_text
from semcache_core.engine import DEFAULT_DISTANCE_THRESHOLD
from semcache_core.guard import TrapGuard, extract_features
from semcache_core.quality_chat import DEFAULT_FILES, VectorTable, load_pairs


def _clear_caches() -> None:
    facts.units.cache_clear()
    facts.has_facts.cache_clear()
    clear = getattr(extract_features, "cache_clear", None)
    if clear is not None:
        clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="?", default=str(DEFAULT_FILES[0]))
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.pairs)
    from semcache_core.quality import hash_embedder, minilm_embedder

    embed = minilm_embedder() if args.embedder == "minilm" else hash_embedder()
    conversations = [p.a for p in pairs]
    rows = []
    for name, text_of in (("question alone", query_text), ("search text", search_text)):
        texts = [text_of(c) for c in conversations]
        embed(texts[:4])  # warm the model
        times = []
        for text in texts:
            started = time.perf_counter()
            embed([text])
            times.append(time.perf_counter() - started)
        rows.append((f"embed the {name} (one call)", statistics.median(times)))

    vectors = VectorTable(embed, progress=False)
    guard = TrapGuard()

    def decide_all() -> float:
        started = time.perf_counter()
        for p in pairs:
            match_conversation(
                p.a,
                p.b,
                embed=vectors,
                threshold=DEFAULT_DISTANCE_THRESHOLD,
                guard=guard,
                context_distance=0.0,
            )
        return (time.perf_counter() - started) / len(pairs)

    decide_all()  # every vector the decisions need, computed once
    _clear_caches()
    rows.append(("rules per candidate, cold", decide_all()))
    rows.append(("rules per candidate, warm", decide_all()))
    print(f"{len(pairs)} pairs of {args.pairs}, embedder {args.embedder}", file=sys.stderr)
    print("| step | median / mean time |\n| --- | ---: |")
    for label, seconds in rows:
        print(f"| {label} | {1e3 * seconds:.2f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
