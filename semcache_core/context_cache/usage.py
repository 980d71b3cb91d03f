"""The registry's counters and what they are worth under a user's price table.

Counters are one backend counter group (``context``) per registry namespace, so every worker
adds to the same totals: ``creates``, ``reuses``, ``refreshes``, ``recreations``,
``inline_calls``, and per model ``cached_tokens|<model>`` and ``storage_token_hours|<model>``.
Prices are the user's, per million tokens: ``{model: {"input", "cached_input",
"storage_per_hour"}}``; semcache has none built in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from semcache_core.backends import connect
from semcache_core.errors import SemcacheInputError
from semcache_core.keys import validate_namespace

COUNTER_GROUP = "context"
COUNTER_FIELDS = ("creates", "reuses", "refreshes", "recreations", "inline_calls")
PER_MODEL_FIELDS = ("cached_tokens", "storage_token_hours")
PRICE_FIELDS = ("input", "cached_input", "storage_per_hour")


def per_model(model: str, **amounts: float) -> Counter[str]:
    """Counter deltas of ``model`` (``cached_tokens=...`` -> ``cached_tokens|<model>``)."""
    return Counter({f"{name}|{model}": value for name, value in amounts.items() if value})


def validate_prices(
    prices: Mapping[str, Mapping[str, float]] | None,
) -> dict[str, dict[str, float]]:
    if prices is None:
        return {}
    clean: dict[str, dict[str, float]] = {}
    for model, table in prices.items():
        missing = [name for name in PRICE_FIELDS if name not in table]
        if missing:
            raise SemcacheInputError(
                f"prices[{model!r}] lacks {missing}: give {list(PRICE_FIELDS)} per million tokens"
            )
        values = {name: float(table[name]) for name in PRICE_FIELDS}
        if any(v < 0 for v in values.values()):
            raise SemcacheInputError(f"prices[{model!r}] has a negative price: {values}")
        clean[model.removeprefix("models/")] = values
    return clean


def summarize(
    counters: Mapping[str, float], prices: Mapping[str, Mapping[str, float]] | None
) -> dict[str, Any]:
    """The stats view of raw counters: totals, per model, and the saving if priced."""
    table = validate_prices(prices)
    stats: dict[str, Any] = {name: int(counters.get(name, 0)) for name in COUNTER_FIELDS}
    by_model: dict[str, dict[str, float]] = {}
    for name, value in counters.items():
        field_name, sep, model = name.partition("|")
        if sep and field_name in PER_MODEL_FIELDS:
            by_model.setdefault(model, dict.fromkeys(PER_MODEL_FIELDS, 0.0))[field_name] += value
    stats["cached_tokens"] = int(sum(m["cached_tokens"] for m in by_model.values()))
    stats["storage_token_hours"] = sum(m["storage_token_hours"] for m in by_model.values())
    savings: float | None = None
    for model, usage in by_model.items():
        price = table.get(model)
        if price is None:
            continue
        saved = usage["cached_tokens"] * (price["input"] - price["cached_input"]) / 1e6
        saved -= usage["storage_token_hours"] * price["storage_per_hour"] / 1e6
        usage["estimated_savings"] = saved
        savings = (savings or 0.0) + saved
    stats["estimated_savings"] = savings
    stats["by_model"] = by_model
    return stats


def context_stats(
    backend: Any, namespace: str, prices: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, Any] | None:
    """The persisted counters of a registry namespace (``semcache stats``), None if unused."""
    counters = connect(backend).get_counters(validate_namespace(namespace), COUNTER_GROUP)
    return summarize(counters, prices) if counters else None
