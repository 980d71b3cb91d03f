"""Timing, results and rendering shared by every benchmark section.

Contenders are timed **round-robin**: each round runs every contender once, in a freshly
shuffled order, so a noisy neighbour or a CPU frequency change hits all of them alike, and no
contender always follows the same one (a fixed cyclic order makes one contender always pay for
the CPU caches its predecessor evicted). A ratio between two contenders of one run is
therefore the figure to trust; absolute numbers move from run to run on a shared 2-core
machine. Interleaving also means each call finds CPU caches in the state the other contenders
left them, as in an application that does other work between cache lookups: these are not
hot-loop numbers.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class Skip(Exception):
    """A contender or section cannot run here; the message says why."""


# -- timing ------------------------------------------------------------------------------------


@dataclass
class Contender:
    """One timed operation. ``call(i)`` does iteration ``i``; ``check(i, result)`` (untimed)
    says whether the result was the expected one, so a fast but broken path cannot pass."""

    name: str
    call: Callable[[int], object]
    check: Callable[[int, object], bool] | None = None


@dataclass
class Samples:
    """Per-call durations (seconds) of one contender, plus correctness and failure."""

    name: str
    seconds: list[float] = field(default_factory=list)
    checked: int = 0
    correct: int = 0
    error: str | None = None

    @property
    def n(self) -> int:
        return len(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 0.99)

    @property
    def p10(self) -> float:
        """A proxy for the latency on a quiet machine (the fastest tenth of the calls)."""
        return percentile(self.seconds, 0.10)

    @property
    def correct_rate(self) -> float | None:
        return self.correct / self.checked if self.checked else None

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "median_s": _finite(self.median),
            "p99_s": _finite(self.p99),
            "p10_s": _finite(self.p10),
            "min_s": min(self.seconds) if self.seconds else None,
            "mean_s": _finite(statistics.fmean(self.seconds)) if self.seconds else None,
            "correct_rate": self.correct_rate,
            "error": self.error,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1]); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def round_robin(
    contenders: Sequence[Contender],
    iterations: int,
    *,
    warmup: int = 3,
    budget_s: float = math.inf,
    seed: int = 0,
) -> dict[str, Samples]:
    """Time every contender ``iterations`` times, interleaved in a shuffled order per round.

    A contender whose calls add up to more than ``budget_s`` seconds stops early (fewer
    samples, noted by its ``n``); one that raises is dropped with its error recorded.
    """
    results = {c.name: Samples(c.name) for c in contenders}
    shuffle = random.Random(seed).shuffle
    active: list[Contender] = []
    for contender in contenders:
        try:
            for i in range(warmup):
                contender.call(-1 - i)
        except Exception as exc:
            results[contender.name].error = _describe(exc)
            continue
        active.append(contender)
    spent = dict.fromkeys(results, 0.0)
    for i in range(iterations):
        if not active:
            break
        order = list(active)
        shuffle(order)
        for contender in order:
            samples = results[contender.name]
            try:
                started = time.perf_counter()
                result = contender.call(i)
                elapsed = time.perf_counter() - started
            except Exception as exc:
                samples.error = _describe(exc)
                continue
            samples.seconds.append(elapsed)
            spent[contender.name] += elapsed
            if contender.check is not None:
                samples.checked += 1
                samples.correct += bool(contender.check(i, result))
        active = [c for c in active if results[c.name].error is None and spent[c.name] <= budget_s]
    return results


def cycling(call: Callable[[Any], object], items: Sequence[Any]) -> Callable[[int], object]:
    """``i -> call(items[i % len(items)])``: a contender cycling through ``items``."""
    return lambda i: call(items[i % len(items)])


def repeating(call: Callable[[Any], object], argument: Any) -> Callable[[int], object]:
    """``i -> call(argument)``: a contender doing the same call every time."""
    return lambda _i: call(argument)


def time_once(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# -- formatting --------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.2f}×"


def fmt_bytes(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if value < 10_000:
        return f"{value:,.0f} B"
    if value < 10_000_000:
        return f"{value / 1024:,.1f} KiB"
    return f"{value / 1024 / 1024:,.1f} MiB"


def ratio(value: float, anchor: float) -> float | None:
    if not (math.isfinite(value) and math.isfinite(anchor)) or anchor <= 0:
        return None
    return value / anchor


# -- results -----------------------------------------------------------------------------------

Status = Literal["met", "missed", "skipped"]


@dataclass
class Target:
    """A speed/size target of the issue, and whether this run met it."""

    name: str
    limit: str
    measured: str
    status: Status
    detail: str = ""

    @classmethod
    def check(cls, name: str, limit: str, measured: str, ok: bool, detail: str = "") -> Target:
        return cls(name, limit, measured, "met" if ok else "missed", detail)

    @classmethod
    def skipped(cls, name: str, limit: str, reason: str) -> Target:
        return cls(name, limit, "–", "skipped", reason)


@dataclass
class Row:
    """``cells`` are the rendered Markdown columns; ``data`` the raw numbers for JSON."""

    cells: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    key: str
    title: str
    description: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, data: dict[str, Any] | None = None, **cells: str) -> None:
        unknown = set(cells) - set(self.columns)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)} for section {self.key}")
        self.rows.append(Row(cells, data or {}))

    def add_skip(self, contender: str, reason: str, **cells: str) -> None:
        """A row saying why ``contender`` did not run, in the first column not in ``cells``."""
        filled = {self.columns[0]: contender, **cells}
        free = next((c for c in self.columns if c not in filled), self.columns[-1])
        filled[free] = f"skipped: {reason}"
        self.rows.append(Row(filled, {"contender": contender, **cells, "skipped": reason}))

    def sort_skips_last(self, group_column: str | None = None) -> None:
        """Measured rows first, skipped ones after them (within each ``group_column`` value)."""
        groups: dict[str, int] = {}
        for row in self.rows:
            groups.setdefault(row.cells.get(group_column, "") if group_column else "", len(groups))

        def key(row: Row) -> tuple[int, bool]:
            group = row.cells.get(group_column, "") if group_column else ""
            return groups[group], bool(row.data.get("skipped"))

        self.rows.sort(key=key)

    def skip_reason(self, **cells: str) -> str | None:
        """The reason of the first skipped row whose cells match ``cells``."""
        for row in self.rows:
            reason = row.data.get("skipped")
            if reason and all(row.cells.get(k) == v for k, v in cells.items()):
                return str(reason)
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "description": self.description,
            "seconds": round(self.seconds, 2),
            "columns": self.columns,
            "rows": [{"cells": r.cells, "data": r.data} for r in self.rows],
            "notes": self.notes,
            "targets": [t.__dict__ for t in self.targets],
        }

    def to_markdown(self) -> str:
        lines = [f"## {self.title}", "", self.description, ""]
        if self.rows:
            lines.append(_md_row(self.columns))
            lines.append(_md_row(["---"] * len(self.columns)))
            for row in self.rows:
                lines.append(_md_row([row.cells.get(c, "") for c in self.columns]))
            lines.append("")
        if self.targets:
            lines.append(
                "Targets: "
                + "; ".join(f"{t.name}: **{t.status}** ({t.measured})" for t in self.targets)
            )
            lines.append("")
        for note in self.notes:
            lines.append(f"- {note}")
        if self.notes:
            lines.append("")
        lines.append(f"_Section time: {self.seconds:.1f} s._")
        lines.append("")
        return "\n".join(lines)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def targets_markdown(sections: Sequence[Section]) -> str:
    lines = [
        "## Targets",
        "",
        _md_row(["target", "limit", "measured", "status", "detail"]),
        _md_row(["---"] * 5),
    ]
    for section in sections:
        for t in section.targets:
            status = {"met": "✅ met", "missed": "❌ missed", "skipped": "⏭ skipped"}[t.status]
            lines.append(_md_row([t.name, t.limit, t.measured, status, t.detail]))
    lines.append("")
    return "\n".join(lines)
