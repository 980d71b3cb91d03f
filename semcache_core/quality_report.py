"""Reporting for the quality harness (:mod:`semcache_core.quality`): the Markdown report,
the plot, the output files and the one-line summaries ``semcache eval`` prints."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# -- reporting ---------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _guard_cost(result: dict[str, Any]) -> str:
    timing = result["timing"]
    if timing.get("guard_microseconds_median_cold") is None:
        return "No guard."
    return (
        f"Guard cost per candidate pair (median): {timing['guard_microseconds_median_cold']:.0f} µs"
        f" with both prompts new (p90 {timing['guard_microseconds_p90_cold']:.0f} µs), "
        f"{timing['guard_microseconds_median_one_new']:.0f} µs with the stored prompt seen "
        f"before (a one-candidate lookup), {timing['guard_microseconds_median_warm']:.0f} µs "
        f"with both seen; {_us(timing.get('guard_microseconds_median_lookup4'))} per candidate in"
        " a lookup of 4 candidates (the new prompt's features extracted once per lookup)."
    )


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} µs"


def render_markdown(result: dict[str, Any], *, title: str = "Semantic hit quality") -> str:
    """The Markdown report of an :func:`evaluate` result."""
    meta = result.get("meta", {})
    t = result["threshold"]
    lines = [f"# {title}", ""]
    lines.append(
        f"{result['pairs']} labelled pairs: {result['paraphrases']} true paraphrases, "
        f"{result['traps']} near-miss traps. Embedder: {meta.get('embedder', '?')}. "
        "Distance = 1 - cosine similarity."
    )
    if meta.get("load_seconds") is not None:
        lines.append(
            f"Model load {meta['load_seconds']:.1f} s; embedding {result['timing']['texts']} "
            f"texts {result['timing']['embed_seconds']:.2f} s."
        )
    lines.append(_guard_cost(result))
    lines += [
        "",
        (
            f"Recommended default threshold: **{result['recommended_threshold']}**: the most "
            "paraphrases served while, with the guard, at most "
            f"{_pct(result['max_trap_rate'])} of all traps and at most "
            f"{_pct(result['max_category_rate'])} of any one trap category are served, one "
            "sweep step below that edge as margin."
        ),
        "",
    ]
    at = result["at_threshold"]
    if at is not None:
        lines += [
            f"## At threshold {t}",
            "",
            "| | paraphrases served | traps served | precision |",
            "| --- | ---: | ---: | ---: |",
            (
                f"| without guard | {_pct(at['paraphrases_served'])} "
                f"| {_pct(at['traps_served'])} | {_pct(at['precision'])} |"
            ),
            (
                f"| with guard | {_pct(at['paraphrases_served_guard'])} "
                f"| {_pct(at['traps_served_guard'])} | {_pct(at['precision_guard'])} |"
            ),
            "",
            f"### Per category at threshold {t}",
            "",
            (
                "| category | pairs | median distance | served without guard "
                "| served with guard | guard alone accepts |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, c in result["categories"].items():
            lines.append(
                f"| {name} | {c['pairs']} | {c['median_distance']:.3f} | {_pct(c.get('served'))} "
                f"| {_pct(c.get('served_guard'))} | {_pct(c['guard_accepts'])} |"
            )
        lines.append("")
    alone = result["guard_alone"]
    lines += [
        "## The guard alone (no distance threshold)",
        "",
        (
            f"Rejects {_pct(alone['traps_rejected_checked_categories'])} of the traps of the "
            f"kinds it checks ({_pct(alone['traps_rejected'])} of all traps, `lexical` "
            f"included) and accepts {_pct(alone['paraphrases_accepted'])} of the paraphrases."
        ),
        "",
        "| reason | traps rejected |",
        "| --- | ---: |",
    ]
    for reason, count in alone["trap_rejections_by_reason"].items():
        lines.append(f"| {reason} | {count} |")
    lines += [
        "",
        "## Threshold sweep",
        "",
        (
            "| threshold | paraphrases served | traps served | precision "
            "| paraphrases served (guard) | traps served (guard) | precision (guard) "
            "| worst trap category (guard) |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["sweep"]:
        lines.append(
            f"| {r['threshold']:.2f} | {_pct(r['paraphrases_served'])} "
            f"| {_pct(r['traps_served'])} | {_pct(r['precision'])} "
            f"| {_pct(r['paraphrases_served_guard'])} | {_pct(r['traps_served_guard'])} "
            f"| {_pct(r['precision_guard'])} | {_pct(r.get('worst_trap_category_guard'))} |"
        )
    q = result["distances"]
    lines += ["", "## Distance quantiles", "", "| | p10 | p25 | p50 | p75 | p90 |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, key in (("paraphrases", "paraphrase_quantiles"), ("traps", "trap_quantiles")):
        if q[key]:
            values = " | ".join(f"{q[key][p]:.3f}" for p in ("p10", "p25", "p50", "p75", "p90"))
            lines.append(f"| {label} | {values} |")
    served_traps = [
        d
        for d in result["details"]
        if not d["same_answer"] and d["guard_ok"] and t is not None and d["distance"] <= t
    ]
    if served_traps:
        lines += ["", f"## Traps still served at {t} with the guard", ""]
        for d in sorted(served_traps, key=lambda d: d["distance"]):
            lines.append(f"- {d['distance']:.3f} [{d['category']}] {d['a']!r} / {d['b']!r}")
    lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Share served against threshold, with and without the guard (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = result["sweep"]
    x = [r["threshold"] for r in sweep]

    def series(key: str) -> list[float]:
        return [100 * (r[key] or 0.0) for r in sweep]

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.plot(x, series("paraphrases_served"), "--", color="tab:blue", label="paraphrases")
    ax.plot(x, series("paraphrases_served_guard"), "-", color="tab:blue", lw=2,
            label="paraphrases, guard on")  # fmt: skip
    ax.plot(x, series("traps_served"), "--", color="tab:red", label="traps")
    ax.plot(x, series("traps_served_guard"), "-", color="tab:red", lw=2,
            label="traps, guard on")  # fmt: skip
    ax.plot(x, series("worst_trap_category_guard"), ":", color="darkred",
            label="worst trap category, guard on")  # fmt: skip
    ax.axhline(100 * result["max_trap_rate"], color="grey", lw=0.8, ls=":",
               label=f"trap budget {100 * result['max_trap_rate']:.0f}%")  # fmt: skip
    if result["threshold"] is not None:
        ax.axvline(result["threshold"], color="black", lw=0.8,
                   label=f"threshold {result['threshold']}")  # fmt: skip
    ax.set_xlabel("cosine distance threshold (1 - cos)")
    ax.set_ylabel("share of pairs served (%)")
    embedder = result.get("meta", {}).get("embedder", "")
    ax.set_title(f"Semantic hits served: {result['paraphrases']} paraphrases, "
                 f"{result['traps']} traps ({embedder})")  # fmt: skip
    ax.set_xlim(0, max(x))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(
    result: dict[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    sets: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    """Write quality.md, quality.json and (if matplotlib is there) quality.png.

    ``result`` is the first (tuning) set; ``sets`` maps every set's name to its result
    (``result`` included): quality.md then has one section per set, and quality.json keeps
    the first set's fields at the top level with every set under ``"sets"``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "quality.md", out / "quality.json"]
    sets = sets or {}
    if len(sets) > 1:
        markdown = "\n".join(
            render_markdown(r, title=f"Semantic hit quality: set {name!r}")
            for name, r in sets.items()
        )
    else:
        markdown = render_markdown(result)
    written[0].write_text(markdown, encoding="utf-8")
    document = dict(result)
    if sets:
        document["sets"] = sets
    written[1].write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")
    try:
        plot(result, out / "quality.png")
        written.append(out / "quality.png")
    except ImportError:
        print("matplotlib is not installed: no quality.png", file=sys.stderr)
    return written


def _summary(name: str, result: dict[str, Any], threshold: float | None) -> str:
    row = next((r for r in result["sweep"] if threshold is not None
                and abs(r["threshold"] - threshold) < 1e-9), None)  # fmt: skip
    if row is None:
        row = result["at_threshold"]
    if row is None:
        return f"[{name}] no threshold"
    worst = max(row["traps_served_guard_by_category"].items(), key=lambda kv: kv[1] or 0,
                default=(None, None))  # fmt: skip
    return (
        f"[{name}] at {row['threshold']}: rewordings served {_pct(row['paraphrases_served_guard'])}"
        f", traps served {_pct(row['traps_served_guard'])} (worst class {worst[0]} "
        f"{_pct(worst[1])}); {result['paraphrases']} rewordings, {result['traps']} traps"
    )
