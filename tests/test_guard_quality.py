"""The tuning data (schema, balance, the guard alone on it) and the evaluation harness with
a cheap deterministic embedder (split from test_guard.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from semcache_core.guard import (
    TrapGuard,
)

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "benchmarks" / "data" / "tuning_pairs.jsonl"
PAIRS_2 = ROOT / "benchmarks" / "data" / "tuning_pairs_2.jsonl"
#: Trap categories of the frozen tuning set that the guard checks; ``lexical`` traps
#: (content-word swaps: "bake bread" / "bake a cake") are there to calibrate the distance
#: threshold, which is what stops most of them.
GUARD_CATEGORIES = {
    "negation", "quoted", "code", "version", "date", "unit", "number", "entity", "quantifier",
    "scope",
}  # fmt: skip
TRAP_CATEGORIES = GUARD_CATEGORIES | {"lexical"}


# -- the labelled set ----------------------------------------------------------------------


def _rows() -> list[dict[str, Any]]:
    with PAIRS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_dataset_schema_and_balance() -> None:
    rows = _rows()
    assert len(rows) >= 300
    for row in rows:
        assert set(row) == {"a", "b", "same_answer", "category"}, row
        assert isinstance(row["a"], str) and row["a"].strip(), row
        assert isinstance(row["b"], str) and row["b"].strip(), row
        assert row["a"] != row["b"], row
        assert isinstance(row["same_answer"], bool), row
        assert isinstance(row["category"], str), row
        if row["same_answer"]:
            assert row["category"].split("/")[0] == "paraphrase", row
        else:
            assert row["category"] in TRAP_CATEGORIES, row
    share = sum(row["same_answer"] for row in rows) / len(rows)
    assert 0.45 <= share <= 0.55, share
    traps = Counter(row["category"] for row in rows if not row["same_answer"])
    for category in TRAP_CATEGORIES:
        assert traps[category] >= 12, (category, traps[category])
    pairs = [frozenset((row["a"], row["b"])) for row in rows]
    duplicates = [pair for pair, count in Counter(pairs).items() if count > 1]
    assert not duplicates


def test_second_tuning_file_schema() -> None:
    rows = [json.loads(line) for line in PAIRS_2.open(encoding="utf-8") if line.strip()]
    assert len(rows) >= 150
    traps = Counter(row["category"] for row in rows if not row["same_answer"])
    new_checks = {"antonym", "morphological", "phrasal", "direction", "role", "audience",
                  "qualifier", "constraint", "intent"}  # fmt: skip
    assert set(traps) == new_checks
    assert min(traps.values()) >= 10
    for row in rows:
        assert set(row) == {"a", "b", "same_answer", "category"}, row
        assert row["same_answer"] == row["category"].startswith("paraphrase/"), row
    assert Counter(r["category"] for r in rows)["paraphrase/padded"] >= 15


def test_guard_alone_on_the_dataset(guard: TrapGuard) -> None:
    """The guard without embeddings: rejects >= 90% of the traps of the kinds it checks and
    accepts >= 90% of the paraphrases. ``lexical`` traps are left to the threshold."""
    rows = _rows()
    paraphrases = [r for r in rows if r["same_answer"]]
    traps = [r for r in rows if not r["same_answer"] and r["category"] in GUARD_CATEGORIES]
    accepted = [r for r in paraphrases if guard.check(r["a"], r["b"]).ok]
    rejected = [r for r in traps if not guard.check(r["a"], r["b"]).ok]
    assert len(accepted) / len(paraphrases) >= 0.90, len(accepted) / len(paraphrases)
    assert len(rejected) / len(traps) >= 0.90, len(rejected) / len(traps)
    # and for most rejected traps the reason is the category the pair was written for
    right_reason = [r for r in rejected if guard.check(r["a"], r["b"]).reason == r["category"]]
    assert len(right_reason) / len(rejected) >= 0.85


# -- the evaluation harness (cheap deterministic embedder) ---------------------------------


def _quality() -> ModuleType:
    import semcache_core.quality

    return semcache_core.quality


def test_evaluate_with_a_deterministic_embedder(guard: TrapGuard, tmp_path: Path) -> None:
    quality = _quality()
    pairs = quality.load_pairs(PAIRS)
    result = quality.evaluate(pairs, quality.hash_embedder(), quality.THRESHOLDS, guard)
    assert result["pairs"] == len(pairs)
    sweep = result["sweep"]
    assert [r["threshold"] for r in sweep] == [round(0.02 * i, 2) for i in range(1, 31)]
    for key in ("paraphrases_served", "traps_served", "paraphrases_served_guard"):
        values = [r[key] for r in sweep]
        assert values == sorted(values), key  # served shares grow with the threshold
    for r in sweep:
        assert r["paraphrases_served_guard"] <= r["paraphrases_served"]
        assert r["traps_served_guard"] <= r["traps_served"]
    assert set(result["categories"]) == {"paraphrase"} | TRAP_CATEGORIES
    assert result["guard_alone"]["traps_rejected_checked_categories"] >= 0.9
    # same input, same numbers
    again = quality.evaluate(pairs, quality.hash_embedder(), quality.THRESHOLDS, guard)
    assert again["sweep"] == sweep
    result["meta"] = {"embedder": "hash"}
    written = quality.write_outputs(result, tmp_path)
    assert (tmp_path / "quality.md").read_text(encoding="utf-8").startswith("# ")
    assert json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))["pairs"] == len(
        pairs
    )
    assert {p.name for p in written} >= {"quality.md", "quality.json"}


def test_evaluate_without_guard_and_distances() -> None:
    quality = _quality()
    pairs = [
        quality.Pair("same", "same", True, "paraphrase"),
        quality.Pair("x", "y", False, "number"),
    ]
    vectors = {"same": [1.0, 0.0], "x": [1.0, 0.0], "y": [0.0, 1.0]}

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([vectors[t] for t in texts])

    result = quality.evaluate(pairs, embed, [0.5, 1.0], None)
    assert [d["distance"] for d in result["details"]] == [0.0, 1.0]
    assert result["sweep"][0]["traps_served"] == 0.0
    assert result["sweep"][1]["traps_served"] == 1.0
    assert result["sweep"][1]["precision"] == 0.5
    assert result["sweep"][1]["traps_served_guard"] == 1.0  # no guard: same as plain


def test_recommend_threshold_keeps_a_margin() -> None:
    quality = _quality()

    def row(t: float, traps: float, worst: float) -> dict[str, Any]:
        return {
            "threshold": t,
            "paraphrases_served_guard": t,
            "traps_served_guard": traps,
            "worst_trap_category_guard": worst,
        }

    sweep = [row(0.1, 0.0, 0.0), row(0.2, 0.01, 0.05), row(0.3, 0.02, 0.2), row(0.4, 0.06, 0.3)]
    assert quality.recommend_threshold(sweep) == 0.1  # edge 0.2 (worst category), one step down
    assert quality.recommend_threshold(sweep, max_category_rate=1.0) == 0.2  # edge 0.3
    assert quality.recommend_threshold(sweep, margin_steps=0) == 0.2
    assert quality.recommend_threshold([row(0.1, 0.5, 0.5)]) is None


def test_guard_alone_on_the_second_tuning_file(guard: TrapGuard) -> None:
    rows = [json.loads(line) for line in PAIRS_2.open(encoding="utf-8") if line.strip()]
    paraphrases = [r for r in rows if r["same_answer"]]
    traps = [r for r in rows if not r["same_answer"]]
    accepted = [r for r in paraphrases if guard.check(r["a"], r["b"]).ok]
    rejected = [r for r in traps if not guard.check(r["a"], r["b"]).ok]
    assert len(accepted) / len(paraphrases) >= 0.90
    assert len(rejected) / len(traps) >= 0.95


def test_recommend_threshold_groups_needs_every_group_within_budget() -> None:
    quality = _quality()

    def row(t: float, traps: float, worst: float) -> dict[str, Any]:
        return {
            "threshold": t,
            "paraphrases_served_guard": t,
            "traps_served_guard": traps,
            "worst_trap_category_guard": worst,
        }

    thresholds = (0.1, 0.2, 0.3, 0.4, 0.5)
    easy = [row(t, 0.0, 0.0) for t in thresholds]  # within budget everywhere: edge 0.5
    hard = [row(t, 0.0, 0.0 if t <= 0.3 else 0.1) for t in thresholds]  # one class over at 0.4
    pooled = [row(t, 0.0, 0.05 if t <= 0.4 else 0.1) for t in thresholds]
    assert quality.recommend_threshold(pooled) == 0.3  # pooled: edge 0.4, one step down
    # every group on its own: the hard group's edge (0.3) decides, one step of margin
    assert quality.recommend_threshold_groups([easy, hard]) == 0.2
    assert quality.recommend_threshold_groups([easy, hard], margin_steps=0) == 0.3
    assert quality.recommend_threshold_groups([easy]) == 0.4
    assert quality.recommend_threshold_groups([easy, [row(0.1, 0.5, 0.5)]]) is None
    assert quality.recommend_threshold_groups([]) is None
