"""Cache statistics: counted in-process, and flushed as deltas to the backend's counters so
``semcache stats URL --namespace N`` can print the totals of every process using a namespace.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Histogram of semantic-hit distances: fine bins where thresholds live, one bin above.
DISTANCE_BIN_EDGES: tuple[float, ...] = (*tuple(round(0.02 * i, 2) for i in range(26)), 2.0)

#: The counter group (``incr_counters``) a namespace's stats are persisted in.
COUNTER_GROUP = "stats"
COUNTER_FIELDS = (
    "lookups",
    "exact_hits",
    "semantic_hits",
    "misses",
    "guard_rejections",
    "context_rejections",
    "backend_errors",
    "tokens_saved",
    "writes",
    "kv_hits",
    "kv_misses",
    "verifier_calls",
    "verifier_cache_hits",
    "verifier_rejections",
    "verifier_failures",
    # Entries the storage removed to stay within a size limit (the embedded backend's
    # max_entries, Elasticsearch's trim): counted by the backend, in its counters.
    "evictions",
)
#: Summed judge-call time (seconds), a float counter: ``verifier_latency_ms`` is its mean.
VERIFIER_SECONDS = "verifier_seconds"


def _bin_label(index: int) -> str:
    return f"{DISTANCE_BIN_EDGES[index]:.2f}-{DISTANCE_BIN_EDGES[index + 1]:.2f}"


@dataclass
class CacheStats:
    """Thread-safe counters of one cache object.

    ``stats()`` on an adapter returns :meth:`snapshot`: counts, hit rate, the histogram of
    semantic-hit distances, lookup latency (median and p99 over the last 2,048 lookups) and,
    with a verifier, the judge's mean latency. ``verifier_calls`` counts judge calls (verdicts
    from the verifier's cache are ``verifier_cache_hits``); ``verifier_rejections`` counts the
    candidates it refused, ``verifier_failures`` (errors, timeouts, replies that are neither
    yes nor no) included.
    """

    counters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTER_FIELDS, 0))
    histogram: list[int] = field(default_factory=lambda: [0] * (len(DISTANCE_BIN_EDGES) - 1))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    _unflushed: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_flush: float = field(default_factory=time.monotonic)

    def add(self, **deltas: float) -> None:
        with self._lock:
            self._count(deltas)

    def _count(self, deltas: dict[str, float]) -> None:
        for name, delta in deltas.items():
            self.counters[name] = self.counters.get(name, 0) + delta
            self._unflushed[name] = self._unflushed.get(name, 0) + delta

    def record_lookup(
        self,
        outcome: str,
        seconds: float,
        *,
        distance: float | None = None,
        tokens: float = 0,
    ) -> None:
        """Count one lookup: ``outcome`` is ``exact_hits``, ``semantic_hits`` or ``misses``."""
        deltas: dict[str, float] = {"lookups": 1, outcome: 1}
        if tokens:
            deltas["tokens_saved"] = tokens
        index = None
        if distance is not None:
            last_bin = len(DISTANCE_BIN_EDGES) - 2
            index = min(max(bisect.bisect_right(DISTANCE_BIN_EDGES, distance) - 1, 0), last_bin)
            deltas[f"distance_bin:{_bin_label(index)}"] = 1
        with self._lock:  # one acquisition per lookup
            if index is not None:
                self.histogram[index] += 1
            self.latencies.append(seconds)
            self._count(deltas)

    def record_exact(
        self, hit: bool, seconds: float, tokens: float = 0, *, flush_every: float = 5.0
    ) -> bool:
        """:meth:`record_lookup` of an exact lookup (no distance), with no dict of deltas:
        what the exact hot path counts. Returns whether :meth:`take_unflushed` with
        ``every=flush_every`` may have deltas now."""
        outcome = "exact_hits" if hit else "misses"
        counters = self.counters
        with self._lock:
            unflushed = self._unflushed  # under the lock: a flush swaps it for a new one
            self.latencies.append(seconds)
            counters["lookups"] += 1
            counters[outcome] += 1
            unflushed["lookups"] = unflushed.get("lookups", 0) + 1
            unflushed[outcome] = unflushed.get(outcome, 0) + 1
            if tokens:
                counters["tokens_saved"] += tokens
                unflushed["tokens_saved"] = unflushed.get("tokens_saved", 0) + tokens
        return time.monotonic() - self._last_flush >= flush_every

    def take_unflushed(self, *, every: float) -> dict[str, float] | None:
        """Deltas to persist if ``every`` seconds passed since the last flush (else None)."""
        now = time.monotonic()
        if now - self._last_flush < every:  # the common case, decided without the lock
            return None
        with self._lock:
            if not self._unflushed or now - self._last_flush < every:
                return None
            deltas, self._unflushed = self._unflushed, {}
            self._last_flush = now
            return deltas

    def take_all_unflushed(self) -> dict[str, float]:
        with self._lock:
            deltas, self._unflushed = self._unflushed, {}
            return deltas

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counters = {k: v for k, v in self.counters.items() if ":" not in k}
            latencies = sorted(self.latencies)
            histogram = {_bin_label(i): n for i, n in enumerate(self.histogram) if n}
        return summarize(counters, histogram, latencies)


def summarize(
    counters: dict[str, float], histogram: dict[str, int], latencies: list[float]
) -> dict[str, Any]:
    """The public shape of stats, shared by ``cache.stats()`` and ``semcache stats``."""
    lookups = counters.get("lookups", 0)
    hits = counters.get("exact_hits", 0) + counters.get("semantic_hits", 0)
    result: dict[str, Any] = {
        **{name: int(counters.get(name, 0)) for name in COUNTER_FIELDS},
        "hit_rate": (hits / lookups) if lookups else 0.0,
        "semantic_distance_histogram": histogram,
    }
    calls = counters.get("verifier_calls", 0)
    if calls:
        result["verifier_latency_ms"] = {"mean": 1000 * counters.get(VERIFIER_SECONDS, 0) / calls}
    if latencies:
        result["lookup_latency_ms"] = {
            "median": 1000 * latencies[len(latencies) // 2],
            "p99": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "samples": len(latencies),
        }
    return result


def from_counters(raw: dict[str, float]) -> dict[str, Any]:
    """Rebuild the public stats shape from persisted counters (no latency samples there)."""
    counters = {k: v for k, v in raw.items() if ":" not in k}
    histogram = {
        k.split(":", 1)[1]: int(v) for k, v in sorted(raw.items()) if k.startswith("distance_bin:")
    }
    return summarize(counters, histogram, [])
