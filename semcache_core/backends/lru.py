"""Least-recently-used size limits of the embedded backend (``max_entries``).

An *entry* is one row of a namespace: a value (``kv``: an exact LLM entry, a ByteStore or KV
value, a cached embedding) or a vector record (``vec``: a semantic entry, its vector and its
response together). Each row carries ``used``, the last time it was written or read.

Reads must stay cheap, so a read does not write: :class:`RecentUses` collects the rows read
(by ``get_many`` and by verified vector searches) and hands them over as ``UPDATE`` statements
in batches, with the process's next write (before its limit is enforced, in the same
transaction) or once 256 uses or a second have piled up. :func:`evict` runs inside the write
transaction that added rows (SQLite's write lock is held, so processes sharing a file never
evict at once): while the namespace holds more than ``max_entries`` rows, the least recently
used go first. Uses another process has not flushed yet are not seen: across processes the
order is approximate by at most a second, within one process it is exact.

Served hits (``track_hits``; ``hits``, ``last_hit``: what ``entries()`` shows) travel the
same way, whether or not there is a limit: each
served hit adds one to a counter in memory (no write, whatever the resolution), and the
counters are added to the rows with the uses. A process reads its own pending hits at once;
another process's after its next flush.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from semcache_core.errors import SemcacheInputError

Statement = tuple[str, Sequence[Any]]

#: Uses kept in memory before they are written without waiting for the next write.
FLUSH_EVERY_USES = 256
#: Seconds a use may wait for the next write before it is written on its own.
FLUSH_EVERY_SECONDS = 1.0
#: Recency is kept to this many seconds: a row read again within it is not written again.
USE_RESOLUTION = 1.0

_COUNT = "SELECT (SELECT count(*) FROM kv WHERE ns = ?) + (SELECT count(*) FROM vec WHERE ns = ?)"
# ``used`` is NULL for rows written before limits existed: oldest (NULLs sort first).
_OLDEST = {
    "kv": "SELECT key, used, expires_at FROM kv WHERE ns = ? ORDER BY used LIMIT ?",
    "vec": "SELECT id, used, expires_at FROM vec WHERE ns = ? ORDER BY used LIMIT ?",
}
_DELETE = {
    "kv": "DELETE FROM kv WHERE ns = ? AND key = ?",
    "vec": "DELETE FROM vec WHERE ns = ? AND id = ?",
}
# max(): a later use already written by another process is kept.
_BUMP_VALUE = "UPDATE kv SET used = max(coalesce(used, 0), ?) WHERE ns = ? AND key = ?"
_BUMP_VECTOR = "UPDATE vec SET used = max(coalesce(used, 0), ?) WHERE ns = ? AND id = ?"
_BUMP_ROW = "UPDATE vec SET used = max(coalesce(used, 0), ?) WHERE seq = ?"
# A count planted by hand that is not a number counts from 0 (SQLite's arithmetic on text).
_ADD_HITS = {
    table: f"UPDATE {table} SET hits = coalesce(hits, 0) + ?, "
    f"last_hit = max(coalesce(last_hit, 0), ?) WHERE ns = ? AND {column} = ?"
    for table, column in (("kv", "key"), ("vec", "id"))
}


def worth_noting(last_use: object, now: float) -> bool:
    """Whether a read of a row last used at ``last_use`` should be written as a use: not when
    it was used less than :data:`USE_RESOLUTION` ago (a hot entry costs no write per hit)."""
    return not isinstance(last_use, (int, float)) or last_use < now - USE_RESOLUTION


def validate_max_entries(value: object) -> int | None:
    """``value`` as a limit: a whole number of at least 1, or ``None`` (no limit)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise SemcacheInputError(
                f"max_entries must be a whole number of at least 1, got {value!r}"
            )
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_entries must be an int or None, got {type(value).__name__}")
    if value < 1:
        raise SemcacheInputError(f"max_entries must be at least 1 (or None: no limit), got {value}")
    return value


def validate_track_hits(value: object) -> bool:
    """``value`` as the ``track_hits`` switch: a bool, or in a URL ``1``/``0``/``true``/``false``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text not in ("1", "0", "true", "false"):
            raise SemcacheInputError(f"track_hits must be 1, 0, true or false, got {value!r}")
        return text in ("1", "true")
    if not isinstance(value, bool):
        raise TypeError(f"track_hits must be a bool, got {type(value).__name__}")
    return value


class RecentUses:
    """Rows read since the last flush, by namespace and key, id or row (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], float] = {}
        self._vectors: dict[tuple[str, str], float] = {}
        self._rows: dict[int, float] = {}
        #: Served hits by (table, namespace, key or id): (count, last hit).
        self._hits: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._oldest: float | None = None

    def _noted(self, now: float) -> None:
        if self._oldest is None:
            self._oldest = now

    def note(self, table: str, namespace: str, keys: Sequence[str]) -> None:
        """Rows of ``table`` (``kv`` by key, ``vec`` by id) were read."""
        now = time.time()
        pending = self._values if table == "kv" else self._vectors
        with self._lock:
            pending.update(((namespace, key), now) for key in keys)
            self._noted(now)

    def rows(self, seqs: Sequence[int]) -> None:
        """Vector rows (by ``seq``) were read by a verified search."""
        if not seqs:
            return
        now = time.time()
        with self._lock:
            self._rows.update((seq, now) for seq in seqs)
            self._noted(now)

    def hit(self, table: str, namespace: str, keys: Sequence[str]) -> None:
        """Rows of ``table`` (``kv`` by key, ``vec`` by id) were served, one hit each."""
        now = time.time()
        with self._lock:
            for key in keys:
                count, _ = self._hits.get((table, namespace, key), (0, now))
                self._hits[(table, namespace, key)] = (count + 1, now)
            self._noted(now)

    def pending_hits(self, table: str, namespace: str, key: str) -> tuple[int, float] | None:
        """Hits of one row not written yet: (count, last hit), or ``None``."""
        with self._lock:
            return self._hits.get((table, namespace, key))

    def due(self) -> bool:
        """Whether the uses should be written now rather than with the next write."""
        with self._lock:
            if self._oldest is None:
                return False
            pending = len(self._values) + len(self._vectors) + len(self._rows) + len(self._hits)
            return pending >= FLUSH_EVERY_USES or time.time() - self._oldest >= FLUSH_EVERY_SECONDS

    def take(self) -> list[Statement]:
        """The pending uses as statements; they are forgotten (a failed write loses them:
        recency is best effort, the entries themselves are untouched)."""
        with self._lock:
            values, vectors, rows, hits = self._values, self._vectors, self._rows, self._hits
            self._values, self._vectors, self._rows, self._oldest = {}, {}, {}, None
            self._hits = {}
        statements: list[Statement] = [
            (_BUMP_VALUE, (used, ns, key)) for (ns, key), used in values.items()
        ]
        statements += [(_BUMP_VECTOR, (used, ns, i)) for (ns, i), used in vectors.items()]
        statements += [(_BUMP_ROW, (used, seq)) for seq, used in rows.items()]
        statements += [
            (_ADD_HITS[table], (count, last, ns, key))
            for (table, ns, key), (count, last) in hits.items()
        ]
        return statements


def evict(conn: sqlite3.Connection, namespace: str, max_entries: int) -> int:
    """Delete the least recently used rows of ``namespace`` beyond ``max_entries``; run inside
    the write transaction. Returns how many live entries were evicted (expired rows taken on
    the way are not evictions: they were gone already)."""
    count = conn.execute(_COUNT, (namespace, namespace)).fetchone()[0]
    excess = int(count) - max_entries
    if excess <= 0:
        return 0
    # The oldest ``excess`` of each table, merged: both reads use the (ns, used) indexes.
    candidates = [
        (_order(used), table, key, expires_at)
        for table, sql in _OLDEST.items()
        for key, used, expires_at in conn.execute(sql, (namespace, excess)).fetchall()
    ]
    candidates.sort(key=lambda row: row[0])
    now, evicted = time.time(), 0
    for _, table, key, expires_at in candidates[:excess]:
        conn.execute(_DELETE[table], (namespace, key))
        evicted += not (isinstance(expires_at, (int, float)) and expires_at <= now)
    return evicted


def _order(used: object) -> float:
    """A row's place in the eviction order: its ``used`` time; anything else (NULL: written
    before limits existed, or a value planted by hand) goes first."""
    return float(used) if isinstance(used, (int, float)) else float("-inf")
