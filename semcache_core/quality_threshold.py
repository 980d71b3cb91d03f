"""The default threshold the quality measurements support (used by :mod:`semcache_core.quality`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_CATEGORY_RATE",
    "MAX_TRAP_RATE",
    "recommend_threshold",
    "recommend_threshold_groups",
]

#: With the guard, at most this share of all traps may be served...
MAX_TRAP_RATE = 0.03
#: ...and at most this share of any one trap category.
MAX_CATEGORY_RATE = 0.08


def recommend_threshold(
    sweep: Sequence[dict[str, Any]],
    *,
    max_trap_rate: float = MAX_TRAP_RATE,
    max_category_rate: float = MAX_CATEGORY_RATE,
    margin_steps: int = 1,
) -> float | None:
    """The default threshold the measurements support.

    A threshold is *within budget* when, with the guard, the share of traps served is at most
    ``max_trap_rate`` and the share served of every trap category at most
    ``max_category_rate``. The *edge* is the
    largest threshold of the sweep up to which every threshold is within budget (so it serves
    the most paraphrases); the recommendation is ``margin_steps`` steps of the sweep below it,
    as margin for a model or a traffic mix that differs from the labelled set. None when even
    the smallest threshold is over budget.
    """
    ordered = sorted(sweep, key=lambda r: r["threshold"])
    edge = -1
    for i, r in enumerate(ordered):
        worst = r.get("worst_trap_category_guard")
        pooled = r["traps_served_guard"]
        if (pooled is not None and pooled > max_trap_rate) or (
            worst is not None and worst > max_category_rate
        ):
            break
        edge = i
    if edge < 0:
        return None
    return float(ordered[max(0, edge - margin_steps)]["threshold"])


def recommend_threshold_groups(
    sweeps: Sequence[Sequence[dict[str, Any]]],
    *,
    max_trap_rate: float = MAX_TRAP_RATE,
    max_category_rate: float = MAX_CATEGORY_RATE,
    margin_steps: int = 1,
) -> float | None:
    """:func:`recommend_threshold` over several groups of tuning data at once: a threshold is
    within budget only when it is within budget on *every* group on its own (not only on
    the groups pooled), so that it holds under a shift of distribution; then the same edge
    and margin. None when no group's sweep starts within budget."""
    if not sweeps:
        return None
    edges = []
    for sweep in sweeps:
        edge = recommend_threshold(
            sweep, max_trap_rate=max_trap_rate, max_category_rate=max_category_rate,
            margin_steps=0,
        )  # fmt: skip
        if edge is None:
            return None
        edges.append(edge)
    ordered = sorted(r["threshold"] for r in sweeps[0])
    edge_index = max(i for i, t in enumerate(ordered) if t <= min(edges) + 1e-12)
    return float(ordered[max(0, edge_index - margin_steps)])
