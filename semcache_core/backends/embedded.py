"""The embedded backend: no server, SQLite from the standard library, numpy for vectors.

* ``memory://``: an in-process SQLite database, gone with the process.
* ``sqlite:///relative/file.db`` or ``sqlite:////absolute/file.db`` (SQLAlchemy's spelling): a
  file that survives restarts and that several processes can share. WAL journaling lets
  readers work while a writer commits; a writer waits up to ``busy_timeout`` for another.

Values expire on read (an expired row is never returned) and expired rows are purged in the
background of later writes. Vector records live in the ``vec`` table; each process keeps a
numpy mirror of the partitions it searches (:mod:`semcache_core.mirror`) and, before every
search, reads only the rows added since its last look (``seq`` is monotonic), so writes from
other processes are seen at once. A candidate is verified against its row before it is
returned, so deleted, replaced and expired records are never served.

The async methods run inline: every operation is local and takes microseconds, so a thread
hop would cost more than it saves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from semcache_core.backends.base import (
    Backend,
    InProcessAsyncMixin,
    VectorHit,
    VectorRecord,
)
from semcache_core.codecs import Vector
from semcache_core.errors import BackendError, SemcacheInputError, VectorDimensionError
from semcache_core.mirror import MirrorSet

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vec (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL, id TEXT NOT NULL, part TEXT NOT NULL,
    vector BLOB NOT NULL, payload BLOB NOT NULL, tags TEXT NOT NULL, expires_at REAL,
    UNIQUE (ns, id)
);
CREATE INDEX IF NOT EXISTS vec_by_partition ON vec (ns, part, seq);
CREATE TABLE IF NOT EXISTS vec_dim (ns TEXT PRIMARY KEY, dim INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL, name TEXT NOT NULL, field TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (ns, name, field)
) WITHOUT ROWID;
"""

# SQLite allows 32766 host parameters per statement; stay well below for IN (...) lists.
_BATCH = 500
_INSERT_VECTOR = (
    "INSERT OR REPLACE INTO vec (ns, id, part, vector, payload, tags, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INCREMENT_COUNTER = (
    "INSERT INTO counters (ns, name, field, value) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (ns, name, field) DO UPDATE SET value = value + excluded.value"
)
# Expired rows are deleted on one write out of this many.
_PURGE_EVERY = 256


class EmbeddedBackend(InProcessAsyncMixin, Backend):
    """SQLite-backed storage for values and vectors (see the module docstring)."""

    schemes = ("memory", "sqlite")

    def __init__(
        self,
        path: str = ":memory:",
        *,
        busy_timeout: float = 5.0,
        max_mirror_rows: int = 200_000,
    ) -> None:
        self.path = path
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
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._mirrors = MirrorSet(max_rows=max_mirror_rows)
        self._writes = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> EmbeddedBackend:
        parts = urlsplit(url)
        if parts.scheme == "memory":
            if parts.netloc or parts.path.strip("/"):
                raise SemcacheInputError(
                    f"malformed URL {url!r}: the in-memory backend takes no path, use 'memory://'"
                )
            return cls(":memory:", **options)
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs.db -> "/abs.db"
        if parts.netloc or not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise SemcacheInputError(
                f"malformed URL {url!r}: use 'sqlite:///relative/path.db' or "
                "'sqlite:////absolute/path.db'"
            )
        path = unquote(url[len("sqlite:///") :])
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise SemcacheInputError(
                f"malformed URL {url!r}: directory {directory!r} does not exist"
            )
        return cls(path, **options)

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` in one transaction."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self._conn.execute(sql, params)
                    self._writes += 1
                    if self._writes % _PURGE_EVERY == 0:
                        self._purge_expired()
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def _purge_expired(self) -> None:
        now = time.time()
        self._conn.execute(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        )
        self._conn.execute(
            "DELETE FROM vec WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        )

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.time() + ttl

    # -- values ----------------------------------------------------------------------------
    def get_many(self, namespace: str, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._run(
                f"SELECT key, value, expires_at FROM kv WHERE ns = ? AND key IN ({marks})",
                [namespace, *chunk],
            )
            for key, value, expires_at in rows:
                if expires_at is None or expires_at > now:
                    found[key] = bytes(value)
        return [found.get(key) for key in keys]

    def set_many(
        self,
        namespace: str,
        items: Sequence[tuple[str, bytes]],
        *,
        ttl: float | None = None,
    ) -> None:
        expires_at = self._expiry(ttl)
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)",
                    (namespace, key, value, expires_at),
                )
                for key, value in items
            ]
        )

    def delete_many(self, namespace: str, keys: Sequence[str]) -> None:
        self._write([("DELETE FROM kv WHERE ns = ? AND key = ?", (namespace, key)) for key in keys])

    def iter_keys(self, namespace: str, prefix: str = "") -> Iterator[str]:
        # Pages by key so a huge namespace never sits in memory and the lock is not held
        # while the caller consumes keys.
        last = ""
        first = True
        while True:
            rows = self._run(
                "SELECT key, expires_at FROM kv WHERE ns = ? AND (key > ? OR ?) "
                "AND substr(key, 1, ?) = ? ORDER BY key LIMIT 1000",
                (namespace, last, first, len(prefix), prefix),
            )
            if not rows:
                return
            now = time.time()
            for key, expires_at in rows:
                if expires_at is None or expires_at > now:
                    yield key
            last = rows[-1][0]
            first = False

    def expire_many(self, namespace: str, keys: Sequence[str], *, ttl: float) -> None:
        expires_at = self._expiry(ttl)
        statements: list[tuple[str, Sequence[Any]]] = []
        for key in keys:
            params = (expires_at, namespace, key)
            statements.append(("UPDATE kv SET expires_at = ? WHERE ns = ? AND key = ?", params))
            statements.append(("UPDATE vec SET expires_at = ? WHERE ns = ? AND id = ?", params))
        self._write(statements)

    # -- atomic values (used by semcache_core.context_cache) --------------------------------
    def set_if_absent(
        self, namespace: str, key: str, value: bytes, *, ttl: float | None = None
    ) -> bool:
        return self._swap(namespace, key, None, value, ttl)

    def compare_and_set(
        self,
        namespace: str,
        key: str,
        expected: bytes | None,
        new: bytes,
        *,
        ttl: float | None = None,
    ) -> bool:
        return self._swap(namespace, key, expected, new, ttl)

    def _swap(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl: float | None
    ) -> bool:
        """Compare and write in one ``BEGIN IMMEDIATE`` transaction: it holds SQLite's write
        lock, so no other connection (thread or process) writes between the read and the write."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    row = self._conn.execute(
                        "SELECT value, expires_at FROM kv WHERE ns = ? AND key = ?",
                        (namespace, key),
                    ).fetchone()
                    live = row is not None and (row[1] is None or row[1] > time.time())
                    current = bytes(row[0]) if live else None
                    if current != expected:
                        self._conn.execute("ROLLBACK")
                        return False
                    self._conn.execute(
                        "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?, ?, ?, ?)",
                        (namespace, key, bytes(new), self._expiry(ttl)),
                    )
                    self._conn.execute("COMMIT")
                    return True
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    # -- vectors ---------------------------------------------------------------------------
    def _check_dim(self, namespace: str, dim: int, *, register: bool) -> None:
        rows = self._run("SELECT dim FROM vec_dim WHERE ns = ?", (namespace,))
        if rows:
            if rows[0][0] != dim:
                raise VectorDimensionError(
                    f"vector has dimension {dim}, but namespace {namespace!r} stores vectors of "
                    f"dimension {rows[0][0]}; use one embedding model per namespace or clear it"
                )
        elif register:
            self._write(
                [
                    (
                        "INSERT OR IGNORE INTO vec_dim (ns, dim) VALUES (?, ?)",
                        (namespace, dim),
                    )
                ]
            )

    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        *,
        ttl: float | None = None,
    ) -> None:
        if not records:
            return
        dims = {int(record.vector.shape[0]) for record in records}
        if len(dims) != 1:
            raise VectorDimensionError(f"one batch holds vectors of dimensions {sorted(dims)}")
        self._check_dim(namespace, dims.pop(), register=True)
        expires_at = self._expiry(ttl)
        self._write(
            [
                (
                    _INSERT_VECTOR,
                    (
                        namespace,
                        record.id,
                        partition,
                        np.asarray(record.vector, dtype="<f4").tobytes(),
                        record.payload,
                        json.dumps(dict(record.tags), sort_keys=True),
                        expires_at,
                    ),
                )
                for record in records
            ]
        )

    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        *,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None = None,
    ) -> list[VectorHit]:
        dim = int(vector.shape[0])
        self._check_dim(namespace, dim, register=False)
        with self._lock, self._mirrors.lock:
            mirror = self._mirrors.get(namespace, partition, dim)
            rows = self._run(
                "SELECT seq, id, vector, expires_at, tags FROM vec "
                "WHERE ns = ? AND part = ? AND seq > ? ORDER BY seq",
                (namespace, partition, mirror.last_seq),
            )
            if rows:
                mirror.append(
                    [row[0] for row in rows],
                    [row[1] for row in rows],
                    np.frombuffer(b"".join(row[2] for row in rows), dtype="<f4").reshape(-1, dim),
                    [row[3] for row in rows],
                    [json.loads(row[4]) for row in rows],
                )
                self._mirrors.enforce_bound()
            now = time.time()
            # Ask for a few more than k: some candidates may fail verification.
            candidates = mirror.search(
                vector, k=k + 4, max_distance=max_distance, now=now, tags=tags
            )
            hits: list[VectorHit] = []
            for candidate in candidates:
                verified = self._run(
                    "SELECT payload, expires_at FROM vec WHERE seq = ?",
                    (candidate.seq,),
                )
                if not verified or (verified[0][1] is not None and verified[0][1] <= now):
                    mirror.discard_seq(candidate.seq, candidate.id)
                    continue
                hits.append(VectorHit(candidate.id, candidate.distance, bytes(verified[0][0])))
                if len(hits) == k:
                    break
            return hits

    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._run(
                f"SELECT id, payload, expires_at FROM vec WHERE ns = ? AND id IN ({marks})",
                [namespace, *chunk],
            )
            for entry_id, payload, expires_at in rows:
                if expires_at is None or expires_at > now:
                    found[entry_id] = bytes(payload)
        return [found.get(entry_id) for entry_id in ids]

    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> None:
        self._write([("DELETE FROM vec WHERE ns = ? AND id = ?", (namespace, i)) for i in ids])

    # -- namespace-wide --------------------------------------------------------------------
    def clear(self, namespace: str) -> None:
        self._write(
            [
                (f"DELETE FROM {table} WHERE ns = ?", (namespace,))
                for table in ("kv", "vec", "vec_dim", "counters")
            ]
        )
        with self._mirrors.lock:
            self._mirrors.drop_namespace(namespace)

    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> None:
        self._write(
            [
                (
                    _INCREMENT_COUNTER,
                    (namespace, name, field, float(delta)),
                )
                for field, delta in deltas.items()
            ]
        )

    def get_counters(self, namespace: str, name: str) -> dict[str, float]:
        rows = self._run(
            "SELECT field, value FROM counters WHERE ns = ? AND name = ?",
            (namespace, name),
        )
        return {field: value for field, value in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"EmbeddedBackend({self.path!r})"
