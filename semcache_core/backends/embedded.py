"""The embedded backend: no server, SQLite from the standard library, numpy for vectors.

* ``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db`` (SQLAlchemy's spelling): a
  file that survives restarts and that several processes can share. WAL journaling lets
  readers work while a writer commits; a writer waits up to ``busy_timeout`` for another.

Values expire on read (an expired row is never returned) and expired rows are purged in the
background of later writes. Vector records live in the ``vec`` table; each process keeps a
numpy mirror of the partitions it searches (:mod:`semcache_core.mirror`) and, before every
search, reads only the rows added since its last look (``seq`` is monotonic), so writes from
other processes are seen at once. A candidate is verified against its row before it is
returned, so deleted, replaced and expired records are never served.

``max_entries`` (keyword, or ``?max_entries=N`` in the URL) bounds each namespace: the write
that goes over it evicts the least recently used entries in its own transaction
(:mod:`semcache_core.backends.lru`).

``track_hits=True`` (or ``?track_hits=1``) counts served hits per entry (``hits`` and
``last_hit`` columns, what ``entries()`` shows), batched with the uses: no write of its own, but
one ``UPDATE`` per entry served in a batch, +7-8 µs on a ~18-24 µs hit when every hit is of a
different entry (``python -m benchmarks.lru_cost``), so it is opt-in.

:class:`EmbeddedOperations` builds SQL steps (:class:`Query`, :class:`Write`, and
:class:`Swap`: the compare-and-write of the atomic operations); the backend is their transport. ``aexecute`` runs a step inline: every step is local and takes microseconds,
so a thread hop would cost more than it saves.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from semcache_core import keys as keyspace
from semcache_core.backends import lru
from semcache_core.backends.base import (
    Backend,
    EntryHits,
    KeyPage,
    Operations,
    VectorHit,
    VectorSearch,
    VectorWrite,
    counters_of,
)
from semcache_core.codecs import canonical_json, loads_untrusted, vector_to_bytes
from semcache_core.errors import BackendError, SemcacheInputError
from semcache_core.flow import Flow, Step, arun, run
from semcache_core.stats import COUNTER_GROUP

if TYPE_CHECKING:
    from semcache_core.mirror import Candidate, MirrorSet

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL, used REAL,
    hits INTEGER, last_hit REAL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vec (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL, id TEXT NOT NULL, part TEXT NOT NULL,
    vector BLOB NOT NULL, payload BLOB NOT NULL, tags TEXT NOT NULL, expires_at REAL,
    used REAL, hits INTEGER, last_hit REAL,
    UNIQUE (ns, id)
);
CREATE INDEX IF NOT EXISTS vec_by_partition ON vec (ns, part, seq);
CREATE TABLE IF NOT EXISTS vec_dim (ns TEXT PRIMARY KEY, dim INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL, name TEXT NOT NULL, field TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (ns, name, field)
) WITHOUT ROWID;
"""
# Indexes of the least-recently-used order (``max_entries``), created after the ``used``
# columns exist (files written before there was a limit get them by ALTER TABLE).
# Columns added since the first files were written (added to older files on open).
_ADDED_COLUMNS = {"used": "REAL", "hits": "INTEGER", "last_hit": "REAL"}
_USE_INDEXES = """
CREATE INDEX IF NOT EXISTS kv_by_use ON kv (ns, used);
CREATE INDEX IF NOT EXISTS vec_by_use ON vec (ns, used);
"""

# SQLite allows 32766 host parameters per statement; stay well below for IN (...) lists.
_BATCH = 500
logger = logging.getLogger("semcache")
_INSERT_VECTOR = (
    "INSERT OR REPLACE INTO vec (ns, id, part, vector, payload, tags, expires_at, used) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_VALUE = (
    "INSERT OR REPLACE INTO kv (ns, key, value, expires_at, used) VALUES (?, ?, ?, ?, ?)"
)
_INCREMENT_COUNTER = (
    "INSERT INTO counters (ns, name, field, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (ns, name, field) DO UPDATE SET value = value + excluded.value"
)
# Expired rows are deleted on one write out of this many.
_PURGE_EVERY = 256
_KEY_PAGE = 1000
Statement = tuple[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Query(Step):
    """One read: the rows of ``sql``."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Write(Step):
    """Statements run in one transaction; then, if ``trim`` names a namespace, its least
    recently used entries beyond ``limit`` (default: the backend's ``max_entries``) are
    evicted in the same transaction (:mod:`semcache_core.backends.lru`). The reply is how
    many were evicted."""

    statements: Sequence[Statement]
    trim: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Swap(Step):
    """Compare the live value of ``key`` with ``expected`` (``None``: absent) and, if equal,
    write ``new``: in one transaction. The reply is whether it wrote."""

    namespace: str
    key: str
    expected: bytes | None
    new: bytes
    expires_at: float | None


def _expiry(ttl_ms: int | None) -> float | None:
    return None if ttl_ms is None else time.time() + ttl_ms / 1000


def _live(expires_at: float | None, now: float) -> bool:
    if isinstance(expires_at, (int, float)):
        return expires_at > now
    return expires_at is None  # anything else in the column is garbage: not served


def _blob(value: object) -> bytes | None:
    """A stored value as bytes; a column of another type (planted by hand) is ``None``."""
    if isinstance(value, (bytes, memoryview)):
        return bytes(value)
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else None


class EmbeddedOperations(Operations):
    """The protocol over the SQLite tables; the numpy mirrors live here (client-side)."""

    label = "the embedded"

    def __init__(
        self, *, max_mirror_rows: int, max_entries: int | None = None, track_hits: bool = False
    ) -> None:
        self._max_mirror_rows = max_mirror_rows
        self._mirrors: MirrorSet | None = None
        self._mirrors_lock = threading.Lock()
        #: Entries per namespace (``None``: no limit); reads are recorded as uses only then.
        self.max_entries = max_entries
        #: Served hits are counted (``track_hits``: batched with the uses, see the module).
        self.counts_hits = track_hits
        self.uses = lru.RecentUses()

    @property
    def mirrors(self) -> MirrorSet:
        """The numpy mirrors, made on the first vector search: an exact cache never loads
        numpy (the mirror module imports it)."""
        if self._mirrors is None:
            with self._mirrors_lock:
                if self._mirrors is None:
                    from semcache_core.mirror import MirrorSet

                    self._mirrors = MirrorSet(max_rows=self._max_mirror_rows)
        return self._mirrors

    def trim(self, namespace: str, max_entries: int) -> Flow[int]:
        """Evict beyond ``max_entries`` now (``semcache trim``); how many were evicted."""
        namespace = keyspace.validate_namespace(namespace)
        limit = lru.validate_max_entries(max_entries)
        if limit is None:
            raise TypeError("max_entries must be an int of at least 1, got None")
        evicted: int = yield Write(self._with_uses([]), trim=namespace, limit=limit)
        return evicted

    @property
    def _records_uses(self) -> bool:
        return self.max_entries is not None or self.counts_hits

    def _with_uses(self, statements: list[Statement]) -> list[Statement]:
        """``statements`` preceded by the pending uses and hits, when any are recorded."""
        return [*self.uses.take(), *statements] if self._records_uses else statements

    def _flush_uses(self) -> Flow[None]:
        """Write the pending uses if they waited long enough; a failure only loses them."""
        if not self._records_uses or not self.uses.due():
            return
        try:
            yield Write(self.uses.take())
        except BackendError as exc:
            logger.debug("semcache: recording entry uses failed: %s", exc)

    def _read_by_id(
        self, table: str, column: str, field: str, namespace: str, ids: list[str]
    ) -> Flow[dict[str, bytes]]:
        found: dict[str, bytes] = {}
        used: list[str] = []
        now = time.time()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = yield Query(
                f"SELECT {column}, {field}, expires_at, used FROM {table} "
                f"WHERE ns = ? AND {column} IN ({marks})",
                [namespace, *chunk],
            )
            for key, value, exp, last_use in rows:
                raw = _blob(value)
                if raw is not None and _live(exp, now):
                    found[key] = raw
                    if lru.worth_noting(last_use, now):
                        used.append(key)
        if used and self.max_entries is not None:
            self.uses.note(table, namespace, used)
        return found

    # -- values ----------------------------------------------------------------------------
    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]:
        ids = [i for i in map(keyspace.vector_id, keys) if i is not None]
        values = [k for k in keys if keyspace.vector_id(k) is None]
        found = yield from self._read_by_id("kv", "key", "value", namespace, values)
        if ids:
            payloads = yield from self._read_by_id("vec", "id", "payload", namespace, ids)
            found.update({keyspace.vector_key(i): p for i, p in payloads.items()})
        yield from self._flush_uses()
        return [found.get(key) for key in keys]

    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]:
        expires_at, now = _expiry(ttl_ms), time.time()
        rows = [(namespace, key, value, expires_at, now) for key, value in items]
        yield Write(self._with_uses([(_INSERT_VALUE, row) for row in rows]), trim=namespace)

    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]:
        statements: list[Statement] = []
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                statements.append(("DELETE FROM kv WHERE ns = ? AND key = ?", (namespace, key)))
            else:
                statements.append(
                    ("DELETE FROM vec WHERE ns = ? AND id = ?", (namespace, entry_id))
                )
        yield Write(statements)

    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int | None) -> Flow[None]:
        expires_at, now = _expiry(ttl_ms), time.time()
        # Only live rows: an expired row not purged yet must not come back to life.
        live = "(expires_at IS NULL OR expires_at > ?)"
        statements: list[Statement] = []
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                sql, param = (
                    f"UPDATE kv SET expires_at = ? WHERE ns = ? AND key = ? AND {live}",
                    key,
                )
            else:
                sql = f"UPDATE vec SET expires_at = ? WHERE ns = ? AND id = ? AND {live}"
                param = entry_id
            statements.append((sql, (expires_at, namespace, param, now)))
        yield Write(statements)

    def _live_rows(
        self, namespace: str, keys: list[str], columns: tuple[str, ...]
    ) -> Flow[list[tuple[str, str, tuple[Any, ...]]]]:
        """``columns`` of the live rows stored under ``keys`` (values and vector records), as
        ``(key, table, values)``; keys not stored or expired are left out."""
        found: list[tuple[str, str, tuple[Any, ...]]] = []
        ids = {i: key for key in keys if (i := keyspace.vector_id(key)) is not None}
        values = [key for key in keys if keyspace.vector_id(key) is None]
        selected = "".join(f", {name}" for name in columns)
        now = time.time()
        for table, column, wanted in (("kv", "key", values), ("vec", "id", list(ids))):
            for start in range(0, len(wanted), _BATCH):
                chunk = wanted[start : start + _BATCH]
                rows = yield Query(
                    f"SELECT {column}, expires_at{selected} FROM {table} "
                    f"WHERE ns = ? AND {column} IN ({','.join('?' * len(chunk))})",
                    [namespace, *chunk],
                )
                for name, expires_at, *rest in rows:
                    if _live(expires_at, now):
                        key = ids.get(name, name) if table == "vec" else name
                        found.append((key, table, (expires_at, *rest)))
        return found

    def _get_expiries(self, namespace: str, keys: list[str]) -> Flow[dict[str, float | None]]:
        rows = yield from self._live_rows(namespace, keys, ())
        return {key: row[0] for key, _table, row in rows}

    def _note_hits(self, namespace: str, keys: list[str]) -> Flow[None]:
        ids = [i for i in map(keyspace.vector_id, keys) if i is not None]
        values = [key for key in keys if keyspace.vector_id(key) is None]
        if values:
            self.uses.hit("kv", namespace, values)
        if ids:
            self.uses.hit("vec", namespace, ids)
        yield from self._flush_uses()

    def _get_hits(self, namespace: str, keys: list[str]) -> Flow[dict[str, EntryHits]]:
        found: dict[str, EntryHits] = {}
        rows = yield from self._live_rows(namespace, keys, ("hits", "last_hit"))
        for key, table, (_expires_at, hits, last_hit) in rows:
            stored = _stored_hits(hits, last_hit)
            # This process's hits not written yet count at once.
            name = keyspace.vector_id(key) if table == "vec" else key
            pending = self.uses.pending_hits(table, namespace, name or key)
            if pending is not None:
                count, last = pending
                newest = max(stored.last_hit or 0.0, last)
                stored = EntryHits(stored.hits + count, newest)
            if stored.hits:
                found[key] = stored
        return found

    def _scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]:
        # Pages by key (keyset pagination): a huge namespace never sits in memory.
        # The prefix is compared as UTF-8 bytes: substr() on TEXT stops at a NUL character.
        vectors = prefix.startswith(keyspace.VECTOR_PREFIX)
        table, column = ("vec", "id") if vectors else ("kv", "key")
        raw_prefix = prefix[len(keyspace.VECTOR_PREFIX) :] if vectors else prefix
        raw = raw_prefix.encode("utf-8")
        rows = yield Query(
            f"SELECT {column}, expires_at FROM {table} WHERE ns = ? AND ({column} > ? OR ?) "
            f"AND substr(CAST({column} AS BLOB), 1, ?) = ? ORDER BY {column} LIMIT ?",
            (namespace, cursor or "", cursor is None, len(raw), raw, _KEY_PAGE),
        )
        now = time.time()
        live = [key for key, expires_at in rows if _live(expires_at, now)]
        if vectors:
            live = [keyspace.vector_key(entry_id) for entry_id in live]
        return KeyPage(live, rows[-1][0] if len(rows) == _KEY_PAGE else None)

    # -- atomic values (used by semcache_core.context_cache) --------------------------------
    def _set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        stored: bool = yield Swap(namespace, key, None, value, _expiry(ttl_ms))
        return stored

    def _compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        written: bool = yield Swap(namespace, key, expected, new, _expiry(ttl_ms))
        return written

    # -- vectors ---------------------------------------------------------------------------
    def _check_dim(self, namespace: str, partition: str, dim: int) -> Flow[None]:
        """A partition holds vectors of one dimension: its newest row's. The dimension is per
        partition, not per namespace, so a new embedding model (a new partition: the model's
        name is part of it) simply starts its own. A row whose bytes are not a whole float32
        vector is garbage, skipped by searches, and decides nothing."""
        rows = yield Query(
            "SELECT length(vector) FROM vec WHERE ns = ? AND part = ? ORDER BY seq DESC LIMIT 1",
            (namespace, partition),
        )
        stored = rows[0][0] if rows and isinstance(rows[0][0], int) else None
        if stored is not None and stored % 4 == 0 and stored and stored != 4 * dim:
            raise keyspace.dimension_error(namespace, dim, stored // 4)

    def _add_vectors(self, namespace: str, write: VectorWrite) -> Flow[None]:
        partition, records, dim, ttl_ms = write.partition, write.records, write.dim, write.ttl_ms
        yield from self._check_dim(namespace, partition, dim)
        expires_at, now = _expiry(ttl_ms), time.time()
        rows = [
            (
                namespace,
                record.id,
                partition,
                vector_to_bytes(record.vector),
                record.payload,
                canonical_json(dict(record.tags)),
                expires_at,
                now,
            )
            for record in records
        ]
        yield Write(self._with_uses([(_INSERT_VECTOR, row) for row in rows]), trim=namespace)

    def _search_vectors(self, namespace: str, search: VectorSearch) -> Flow[list[VectorHit]]:
        import numpy as np

        from semcache_core.mirror import verified_search

        partition, vector, k = search.partition, search.vector, search.k
        max_distance, tags = search.max_distance, search.tags
        dim = int(vector.shape[0])
        yield from self._check_dim(namespace, partition, dim)
        with self.mirrors.lock:
            mirror = self.mirrors.get(namespace, partition, dim)
            since = mirror.last_seq
        rows = yield Query(
            "SELECT seq, id, vector, expires_at, tags FROM vec "
            "WHERE ns = ? AND part = ? AND seq > ? ORDER BY seq",
            (namespace, partition, since),
        )
        if rows:
            with self.mirrors.lock:
                fresh = _valid_rows([row for row in rows if row[0] > mirror.last_seq], dim)
                if fresh:
                    mirror.append(
                        [row[0] for row in fresh],
                        [row[1] for row in fresh],
                        np.frombuffer(b"".join(row[2] for row in fresh), dtype="<f4").reshape(
                            -1, dim
                        ),
                        [row[3] for row in fresh],
                        [row[4] for row in fresh],
                    )
                if rows[-1][0] > mirror.last_seq:  # skipped rows are not read again
                    mirror.last_seq = rows[-1][0]
                self.mirrors.enforce_bound()
        return (
            yield from verified_search(
                self.mirrors, mirror, vector, k, max_distance, tags, self._verify
            )
        )

    def _verify(self, candidates: list[Candidate]) -> Flow[list[bytes | None]]:
        """The payload of each candidate's row if that very row is still there and live."""
        marks = ",".join("?" * len(candidates))
        rows = yield Query(
            f"SELECT seq, payload, expires_at, used FROM vec WHERE seq IN ({marks})",
            [c.seq for c in candidates],
        )
        now = time.time()
        found = {seq: _blob(payload) for seq, payload, exp, _ in rows if _live(exp, now)}
        if self.max_entries is not None:
            # A proposed row that is still there counts as used (served, or a near miss).
            live = set(found)
            self.uses.rows([r[0] for r in rows if r[0] in live and lru.worth_noting(r[3], now)])
            yield from self._flush_uses()
        return [found.get(c.seq) for c in candidates]

    # -- namespace-wide --------------------------------------------------------------------
    def _clear(self, namespace: str) -> Flow[None]:
        tables = ("kv", "vec", "vec_dim", "counters")
        yield Write([(f"DELETE FROM {table} WHERE ns = ?", (namespace,)) for table in tables])
        if self._mirrors is not None:
            with self._mirrors.lock:
                self._mirrors.drop_namespace(namespace)

    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]:
        rows = [(namespace, name, field, delta) for field, delta in deltas.items()]
        yield Write([(_INCREMENT_COUNTER, row) for row in rows])

    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        rows = yield Query(
            "SELECT field, value FROM counters WHERE ns = ? AND name = ?", (namespace, name)
        )
        return counters_of(rows)


def _stored_hits(hits: object, last_hit: object) -> EntryHits:
    """A row's hit columns; a value that is no count or time (NULL: never served, or a file
    written before hits were counted; garbage planted by hand) reads as none."""
    count = hits if isinstance(hits, int) and not isinstance(hits, bool) and hits > 0 else 0
    last = float(last_hit) if isinstance(last_hit, (int, float)) and count else None
    return EntryHits(count, last)


def _valid_rows(rows: list[Any], dim: int) -> list[tuple[Any, ...]]:
    """``rows`` (seq, id, vector, expires_at, tags) whose vector is ``dim`` float32 values and
    whose tags are a JSON object of strings, tags decoded; any other row is skipped with a
    warning (stored data is untrusted: one bad row must not take the partition down)."""
    valid: list[tuple[Any, ...]] = []
    for seq, entry_id, vector, expires_at, raw_tags in rows:
        tags = _tags_of(raw_tags)
        if not isinstance(vector, bytes) or len(vector) != 4 * dim or tags is None:
            logger.warning("semcache: skipping a malformed vector row (seq %s)", seq)
            continue
        if not isinstance(expires_at, (int, float, type(None))):
            logger.warning("semcache: skipping a vector row with a bad expiry (seq %s)", seq)
            continue
        valid.append((seq, entry_id, vector, expires_at, tags))
    return valid


def _tags_of(raw: object) -> dict[str, str] | None:
    try:
        tags = loads_untrusted(raw) if isinstance(raw, (str, bytes)) else None
    except ValueError:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        return None
    return tags


class EmbeddedBackend(Backend):
    """SQLite-backed storage for values and vectors (see the module docstring)."""

    #: ``memory://`` is :class:`~semcache_core.backends.memory.MemoryBackend`; constructed
    #: directly with the default path, this class is SQLite in memory.
    schemes = ("sqlite",)
    ops: EmbeddedOperations

    def __init__(
        self,
        path: str = ":memory:",
        *,
        busy_timeout: float = 5.0,
        max_mirror_rows: int = 200_000,
        max_entries: int | str | None = None,
        track_hits: bool | str = False,
    ) -> None:
        self.path = path
        limit = lru.validate_max_entries(max_entries)
        counting = lru.validate_track_hits(track_hits)
        try:
            self._conn = sqlite3.connect(
                path,
                timeout=busy_timeout,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open SQLite database {path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self._set_up(busy_timeout)
        self.ops = EmbeddedOperations(
            max_mirror_rows=max_mirror_rows, max_entries=limit, track_hits=counting
        )
        self._writes = 0
        self._evictions: dict[str, int] = {}

    def _set_up(self, busy_timeout: float) -> None:
        """Switch to WAL and create the schema. Processes opening a new file at once can get
        "database is locked" here without SQLite's busy handler being called (changing the
        journal mode needs an exclusive lock that SQLite refuses rather than waits for, to
        avoid deadlock), so the whole setup is retried until ``busy_timeout`` runs out."""
        deadline = time.monotonic() + busy_timeout
        pause = 0.005
        while True:
            try:
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA journal_mode=WAL")
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
                self._add_use_columns()
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise BackendError(
                        f"cannot set up SQLite database {self.path!r}: {exc}"
                    ) from exc
                if self._conn.in_transaction:
                    self._conn.rollback()
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def _add_use_columns(self) -> None:
        """Files created before ``max_entries`` existed have no ``used`` columns, and before
        hits were counted no ``hits``/``last_hit``: add them (NULL: such rows are the first
        evicted, and were never served). Idempotent, and safe when another process adds them
        at the same time."""
        for table in ("kv", "vec"):
            columns = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column, kind in _ADDED_COLUMNS.items():
                if column in columns:
                    continue
                try:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:
                    # Another process added it first; anything else reaches _set_up.
                    if "duplicate column" not in str(exc):
                        raise
        self._conn.executescript(_USE_INDEXES)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> EmbeddedBackend:
        parts = urlsplit(url)
        if parts.scheme == "memory":
            if parts.netloc or parts.path.strip("/"):
                raise SemcacheInputError(
                    f"malformed URL {url!r}: the in-memory backend takes no path, use 'memory://'"
                )
            return cls(":memory:", **_url_options(url, parts.query, options))
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs.db -> "/abs.db"
        if parts.netloc or not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise SemcacheInputError(
                f"malformed URL {url!r}: use 'sqlite:///relative/path.db' or "
                "'sqlite:////absolute/path.db'"
            )
        path = unquote(url[len("sqlite:///") :].partition("?")[0])
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise SemcacheInputError(
                f"malformed URL {url!r}: directory {directory!r} does not exist"
            )
        return cls(path, **_url_options(url, parts.query, options))

    # -- the transport ---------------------------------------------------------------------
    def execute(self, step: Step) -> Any:
        if isinstance(step, Query):
            return self._query(step.sql, step.params)
        if isinstance(step, Write):
            return self._write(step.statements, step.trim, step.limit)
        if isinstance(step, Swap):
            return self._swap(step)
        raise TypeError(f"the embedded backend cannot execute {step!r}")

    async def aexecute(self, step: Step) -> Any:
        return self.execute(step)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _write(
        self, statements: Sequence[Statement], trim: str | None = None, limit: int | None = None
    ) -> int:
        """Run ``statements`` in one transaction, then enforce the size limit of ``trim``;
        returns how many entries that evicted."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self._conn.execute(sql, params)
                    self._writes += 1
                    if self._writes % _PURGE_EVERY == 0:
                        self._purge_expired()
                    evicted = self._enforce_limit(trim, limit or self.ops.max_entries)
                    self._conn.execute("COMMIT")
                    if evicted:
                        self._evictions[trim or ""] = self._evictions.get(trim or "", 0) + evicted
                    return evicted
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _swap(self, swap: Swap) -> bool:
        """A :class:`Swap` in one ``BEGIN IMMEDIATE`` transaction: it holds SQLite's write lock,
        so no other connection (thread or process) writes between the read and the write."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    row = self._conn.execute(
                        "SELECT value, expires_at FROM kv WHERE ns = ? AND key = ?",
                        (swap.namespace, swap.key),
                    ).fetchone()
                    live = row is not None and _live(row[1], time.time())
                    if (_blob(row[0]) if live else None) != swap.expected:
                        self._conn.execute("ROLLBACK")
                        return False
                    self._conn.execute(
                        _INSERT_VALUE,
                        (swap.namespace, swap.key, swap.new, swap.expires_at, time.time()),
                    )
                    self._conn.execute("COMMIT")
                    return True
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _enforce_limit(self, namespace: str | None, limit: int | None) -> int:
        """Evict beyond ``limit`` in the open transaction, counted in the namespace's
        persisted stats (``evictions``, what ``semcache stats`` prints) in that transaction."""
        if namespace is None or limit is None:
            return 0
        evicted = lru.evict(self._conn, namespace, limit)
        if evicted:
            row = (namespace, COUNTER_GROUP, "evictions", float(evicted))
            self._conn.execute(_INCREMENT_COUNTER, row)
        return evicted

    def trim(self, namespace: str, max_entries: int) -> int:
        """Evict the least recently used entries of ``namespace`` beyond ``max_entries`` now
        (whatever the backend's own limit); returns how many."""
        return run(self.ops.trim(namespace, max_entries), self)

    async def atrim(self, namespace: str, max_entries: int) -> int:
        return await arun(self.ops.trim(namespace, max_entries), self)

    def namespace_counts(self, namespace: str) -> dict[str, int]:
        """Entries this backend object evicted from ``namespace`` (``max_entries``)."""
        return {"evictions": self._evictions.get(namespace, 0)}

    def _purge_expired(self) -> None:
        now = time.time()
        for table in ("kv", "vec"):
            self._conn.execute(
                f"DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )

    def close(self) -> None:
        pending = self.ops.uses.take()  # uses and hits not written yet: best effort
        if pending:
            try:
                self._write(pending)
            except BackendError as exc:
                logger.debug("semcache: recording entry uses on close failed: %s", exc)
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"EmbeddedBackend({self.path!r})"


#: Options a ``sqlite://`` or ``memory://`` URL may carry in its query string.
_URL_OPTIONS = ("max_entries", "track_hits")


def _url_options(url: str, query: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus those of the URL's query (``?max_entries=1000``); an unknown or
    repeated one, or one also passed as a keyword, is an error."""
    merged = dict(options)
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in _URL_OPTIONS:
            raise SemcacheInputError(
                f"unknown option {name!r} in URL {url!r}; the embedded backend takes "
                f"{', '.join(_URL_OPTIONS)} (a '?' in a file name is written %3F)"
            )
        if len(values) > 1 or name in options:
            raise SemcacheInputError(f"option {name!r} is given twice (URL {url!r})")
        merged[name] = values[0]
    return merged
