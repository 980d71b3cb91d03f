"""Large partitions searched through sign sketches, and the in-memory backend's index.

The sketches (:mod:`semcache_core.sketch`) only rule rows out; these tests check that a
sketched search returns what the full scan returns (deletes, replacements, expiry and tags
included), on the mirror alone, on both embedded backends, and across processes sharing one
SQLite file.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from semcache_core import VectorRecord, connect, sketch
from semcache_core.mirror import SKETCH_MIN_ROWS, PartitionMirror
from semcache_core.testing import fresh_namespace

pytestmark = pytest.mark.skipif(not sketch.available(), reason="needs numpy.bitwise_count")

DIM = 48
ROWS = SKETCH_MIN_ROWS + 2_000
ROOT = Path(__file__).resolve().parent.parent


def unit_rows(count: int, seed: int, *, clustered: bool = False) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, DIM)).astype(np.float32)
    if clustered:  # real embeddings share a direction: every row near one of 20 centres
        centres = rng.standard_normal((20, DIM)).astype(np.float32) * 4
        rows = rows + centres[rng.integers(0, 20, count)]
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def near(rows: npt.NDArray[np.float32], seed: int, sigma: float) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    noisy = rows + rng.standard_normal(rows.shape).astype(np.float32) * np.float32(sigma)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return noisy


def same(a: list, b: list) -> bool:
    """The same rows in the same order, distances equal to float32 rounding (the two scans
    multiply in different orders)."""
    return [(c.seq, c.id) for c in a] == [(c.seq, c.id) for c in b] and all(
        abs(x.distance - y.distance) < 1e-5 for x, y in zip(a, b, strict=False)
    )


def full_scan(mirror: PartitionMirror, query: npt.NDArray[np.float32], **search: object) -> list:
    """The same search with the sketches switched off (a partition below the size)."""
    import semcache_core.mirror as mirror_module

    saved = mirror_module.SKETCH_MIN_ROWS
    mirror_module.SKETCH_MIN_ROWS = 10**12
    try:
        return mirror.search(query, **search)  # type: ignore[arg-type]
    finally:
        mirror_module.SKETCH_MIN_ROWS = saved


def test_cutoff_is_the_binomial_tail() -> None:
    """The cutoff admits a row at the threshold's angle with probability >= 1 - 1e-9, computed
    from the binomial tail; it grows with the distance and gives up when nothing can be ruled
    out (90 degrees and beyond)."""
    cutoffs = [sketch.hamming_cutoff(d) for d in (0.0, 0.05, 0.1, 0.14, 0.25, 0.5, 0.9)]
    assert all(c is not None for c in cutoffs)
    assert cutoffs == sorted(cutoffs)  # type: ignore[type-var]
    assert sketch.hamming_cutoff(1.0) is None and sketch.hamming_cutoff(2.0) is None
    p = math.acos(1 - 0.14) / math.pi
    cut = sketch.hamming_cutoff(0.14)
    assert cut is not None
    n = sketch.BITS
    tail = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(cut + 1, n + 1))
    just_below = tail + math.comb(n, cut) * p**cut * (1 - p) ** (n - cut)
    assert tail <= sketch.MISS_PROBABILITY < just_below


@pytest.mark.parametrize("clustered", [False, True], ids=["random", "clustered"])
@pytest.mark.parametrize("max_distance", [0.05, 0.14, 0.3, 0.6, 1.2])
def test_sketched_search_equals_the_full_scan(clustered: bool, max_distance: float) -> None:
    rows = unit_rows(ROWS, seed=1, clustered=clustered)
    mirror = PartitionMirror(DIM)
    mirror.append(list(range(1, ROWS + 1)), [f"r{i}" for i in range(ROWS)], rows, [None] * ROWS)
    queries = np.concatenate([near(rows[:40], seed=2, sigma=0.05), unit_rows(10, seed=3)])
    now = time.time()
    for query in queries:
        search = {"k": 8, "max_distance": max_distance, "now": now}
        assert same(mirror.search(query, **search), full_scan(mirror, query, **search))  # type: ignore[arg-type]
    assert mirror._sketches is not None and mirror._sketches.size == ROWS  # it was sketched


def test_sketched_search_sees_appends_deletes_expiry_and_tags() -> None:
    rows = unit_rows(ROWS, seed=4, clustered=True)
    mirror = PartitionMirror(DIM)
    now = time.time()
    tags = [{"user": "a" if i % 2 else "b"} for i in range(ROWS)]
    expires: list[float | None] = [now - 1 if i % 7 == 0 else None for i in range(ROWS)]
    mirror.append(list(range(1, ROWS + 1)), [f"r{i}" for i in range(ROWS)], rows, expires, tags)
    query = near(rows[14:15], seed=5, sigma=0.02)[0]
    search = {"k": 5, "max_distance": 0.3, "now": now}
    first = mirror.search(query, **search)  # type: ignore[arg-type]
    assert first and same(first, full_scan(mirror, query, **search))
    assert "r14" not in [c.id for c in first]  # expired (14 % 7 == 0)
    mirror.discard(first[0].id)
    # Rows appended after the sketches were made are sketched on the next search.
    mirror.append([ROWS + 1], ["new"], query[np.newaxis, :], [None], [{"user": "a"}])
    after = mirror.search(query, **search)  # type: ignore[arg-type]
    assert after[0].id == "new" and first[0].id not in [c.id for c in after]
    assert same(after, full_scan(mirror, query, **search))
    only_b = mirror.search(query, tags={"user": "b"}, **search)  # type: ignore[arg-type]
    assert same(only_b, full_scan(mirror, query, tags={"user": "b"}, **search))
    assert {int(c.id[1:]) % 2 for c in only_b} == {0}


def _load(backend: object, namespace: str, rows: npt.NDArray[np.float32]) -> None:
    for start in range(0, len(rows), 2000):
        batch = [
            VectorRecord(f"r{i}", rows[i], f"payload {i}".encode())
            for i in range(start, min(start + 2000, len(rows)))
        ]
        backend.add_vectors(namespace, "p", batch)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_large_partition_on_the_embedded_backends(kind: str, tmp_path: Path) -> None:
    backend = connect("memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'big.db'}")
    namespace = fresh_namespace()
    rows = unit_rows(ROWS, seed=6, clustered=True)
    _load(backend, namespace, rows)
    queries = near(rows[:50], seed=7, sigma=0.03)
    found = [backend.search_vectors(namespace, "p", q, k=1, max_distance=0.14) for q in queries]
    assert [hits[0].id for hits in found] == [f"r{i}" for i in range(50)]
    # A deleted record, a replaced one (moved far away) and an expired one are never served.
    backend.delete_vectors(namespace, ["r0"])
    backend.add_vectors(namespace, "p", [VectorRecord("r1", -rows[1], b"moved")])
    backend.add_vectors(namespace, "p", [VectorRecord("r2", rows[2], b"brief")], ttl=0.2)
    time.sleep(0.4)
    for i in range(3):
        hits = backend.search_vectors(namespace, "p", queries[i], k=3, max_distance=0.14)
        assert f"r{i}" not in [h.id for h in hits]
    backend.clear(namespace)
    assert backend.search_vectors(namespace, "p", queries[3], k=1, max_distance=2.0) == []
    backend.close()


_WRITER = """
import sys
import numpy as np
from semcache_core import VectorRecord, connect
url, namespace, action = sys.argv[1:4]
backend = connect(url)
rng = np.random.default_rng(99)
if action == "add":
    vector = rng.standard_normal(48).astype(np.float32)
    vector /= np.linalg.norm(vector)
    np.save(sys.argv[4], vector)
    backend.add_vectors(namespace, "p", [VectorRecord("from-b", vector, b"written by b")])
else:
    backend.delete_vectors(namespace, sys.argv[4].split(","))
backend.close()
"""


def test_processes_sharing_one_sqlite_file(tmp_path: Path) -> None:
    """Process A has sketched a large partition; process B adds and deletes records of it.
    A finds B's record at once (its mirror and sketches catch up) and never serves what B
    deleted."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    namespace = fresh_namespace()
    a = connect(url)
    rows = unit_rows(ROWS, seed=8)
    _load(a, namespace, rows)
    assert a.search_vectors(namespace, "p", rows[5], k=1, max_distance=0.1)[0].id == "r5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def in_b(*args: str) -> None:
        subprocess.run([sys.executable, "-c", _WRITER, url, namespace, *args], check=True, env=env)

    in_b("add", str(tmp_path / "b.npy"))
    b_vector = np.load(tmp_path / "b.npy")
    hits = a.search_vectors(namespace, "p", b_vector, k=1, max_distance=0.1)
    assert [(h.id, h.payload) for h in hits] == [("from-b", b"written by b")]
    in_b("delete", "from-b,r5")
    assert a.search_vectors(namespace, "p", b_vector, k=1, max_distance=0.1) == []
    assert a.search_vectors(namespace, "p", rows[5], k=1, max_distance=0.1) == []
    assert a.search_vectors(namespace, "p", rows[6], k=1, max_distance=0.1)[0].id == "r6"
    a.close()
