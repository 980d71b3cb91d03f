"""Mirror snapshots on plain Redis: a new client loads a large partition's mirror in one read.

The snapshot only replaces reading the log: these tests check that a client that loaded one
still sees what was written, deleted and replaced after it, that a stale (compacted) or
hostile snapshot is ignored (the log is read instead), and that the snapshot expires with
its partition.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from semcache_core import VectorRecord
from semcache_core.backends.redis import RedisBackend, log_mirror
from semcache_core.backends.redis.keys import STANDALONE
from semcache_core.codecs import as_vector, normalize
from semcache_core.flow import run
from semcache_core.mirror import PartitionMirror
from tests.backends import BACKEND_KINDS, ServerPool

pytestmark = pytest.mark.redis

if "redis" not in BACKEND_KINDS:
    pytest.skip("the plain Redis backend kind is not selected", allow_module_level=True)

DIM = 8
ROWS = 24


@pytest.fixture
def redis_url(server_pool: ServerPool) -> str:
    return server_pool.url("redis")


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def small_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshot partitions of a few rows (the default waits for thousands), in chunks of 10
    rows (so a snapshot has several)."""
    monkeypatch.setattr(log_mirror, "SNAPSHOT_MIN_ROWS", 8)
    monkeypatch.setattr(log_mirror, "SNAPSHOT_CHUNK_ROWS", 10)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row count of every snapshot a client loaded (any format, with or without its
    vectors)."""
    loaded: list[int] = []
    original = log_mirror.LogMirrorSearch._finish_adoption

    def counting(self: Any, mirror: Any, header: Any, epoch: int) -> None:
        loaded.append(header.count)
        original(self, mirror, header, epoch)

    monkeypatch.setattr(log_mirror.LogMirrorSearch, "_finish_adoption", counting)
    return loaded


def client(url: str, *, background: str = "thread") -> RedisBackend:
    """A mirror client; ``background``: how it reads a snapshot's vectors after adopting its
    sketches: ``"thread"`` (the default), ``"inline"`` (in the lookup that adopted them,
    deterministic) or ``"never"`` (only the rows searches need, from the log)."""
    backend = RedisBackend.from_url(url, vector_search="mirror")
    if background == "inline":
        backend.ops.background = lambda flow: run(flow, backend)
    elif background == "never":
        backend.ops.background = None
    return backend


def mirror_of(backend: RedisBackend, namespace: str) -> PartitionMirror:
    mirror = backend.ops.mirrors.peek(namespace, "p")
    assert mirror is not None
    return mirror


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([normalize(as_vector(rng.normal(size=DIM))) for _ in range(n)])


def found(backend: RedisBackend, namespace: str, vector: np.ndarray) -> list[tuple[str, bytes]]:
    hits = backend.search_vectors(namespace, "p", vector, k=1, max_distance=0.01)
    return [(hit.id, hit.payload) for hit in hits]


def snapshot_key(namespace: str) -> str:
    return STANDALONE.snapshot_key(namespace, "p")


def test_a_new_client_loads_the_snapshot_and_sees_later_writes(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(ROWS + 3)
    writer, first, second = client(redis_url), client(redis_url), client(redis_url)
    try:
        records = [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)]
        writer.add_vectors(namespace, "p", records)
        assert found(first, namespace, matrix[0]) == [("r0", b"v0")]  # builds from the log
        assert raw.exists(snapshot_key(namespace)) and loads == []
        # After the snapshot: a new record, a deletion, a replacement (new vector, payload).
        writer.add_vectors(namespace, "p", [VectorRecord("new", matrix[ROWS], b"new")])
        writer.delete_vectors(namespace, ["r1"])
        writer.add_vectors(namespace, "p", [VectorRecord("r2", matrix[ROWS + 1], b"moved")])
        assert found(second, namespace, matrix[3]) == [("r3", b"v3")]
        assert loads == [ROWS]  # the second client loaded the snapshot, not the log
        assert found(second, namespace, matrix[ROWS]) == [("new", b"new")]
        assert found(second, namespace, matrix[1]) == []  # deleted after the snapshot
        assert found(second, namespace, matrix[2]) == []  # replaced: the old vector is gone
        assert found(second, namespace, matrix[ROWS + 1]) == [("r2", b"moved")]
        for i in range(3, ROWS):
            assert found(second, namespace, matrix[i]) == [(f"r{i}", f"v{i}".encode())]
    finally:
        writer.clear(namespace)
        for backend in (writer, first, second):
            backend.close()


def test_the_snapshot_is_rewritten_when_it_lags(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(3 * ROWS, seed=1)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace, "p", [VectorRecord(f"r{i}", matrix[i], b"x") for i in range(ROWS)]
        )
        found(reader, namespace, matrix[0])
        before = raw.hlen(snapshot_key(namespace))
        more = [VectorRecord(f"r{i}", matrix[i], b"x") for i in range(ROWS, 3 * ROWS)]
        writer.add_vectors(namespace, "p", more)
        found(reader, namespace, matrix[0])  # catches up: twice the rows of its snapshot
        assert raw.hlen(snapshot_key(namespace)) > before  # more chunks
        late = client(redis_url)
        try:
            assert found(late, namespace, matrix[-1]) == [(f"r{3 * ROWS - 1}", b"x")]
            assert loads == [3 * ROWS]
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_a_compacted_log_makes_the_snapshot_stale(
    redis_url: str,
    raw: redis.Redis,
    namespace: str,
    small_snapshots: None,
    loads: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log_mirror, "COMPACT_FLOOR", 8)
    matrix = vectors(ROWS, seed=2)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace, "p", [VectorRecord(f"r{i}", matrix[i], b"old") for i in range(ROWS)]
        )
        found(reader, namespace, matrix[0])
        assert raw.exists(snapshot_key(namespace))
        for round_ in range(6):  # rewrites and deletions until a compaction bumps the epoch
            writer.add_vectors(
                namespace,
                "p",
                [VectorRecord(f"r{i}", matrix[i], f"new{round_}".encode()) for i in range(8)],
            )
            writer.delete_vectors(namespace, [f"r{i}" for i in range(8, 12)])
        meta = STANDALONE.meta_key(namespace, "p")
        assert int(raw.hget(meta, "epoch") or 0) >= 1
        late = client(redis_url)
        try:
            assert found(late, namespace, matrix[0]) == [("r0", b"new5")]
            assert found(late, namespace, matrix[9]) == []
            assert found(late, namespace, matrix[20]) == [("r20", b"old")]
            assert loads == []  # the snapshot of the old epoch was not used
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


#: Damage that makes a snapshot unusable: the new client reads the log instead.
IGNORED = [
    "garbage header",
    "other dimension",
    "unknown version",
    "duplicate ids",
    "an empty id",
    "ids not UTF-8",
    "ids of another snapshot",
    "bad tags",
    "rows out of order",
    "truncated seqs",
    "seqs of another snapshot",
    "bad sketches and a truncated chunk",
    "a string key",
]
#: Damage to the vector chunks, which a client that adopted the sketches reads later: it
#: answers from the log's vectors and never takes the damaged chunk's.
LAZY = ["truncated chunk", "missing chunk", "chunk of another snapshot"]
#: Sketches it cannot use: it reads the vectors at once and makes its own sketches.
RESKETCHED = ["truncated sketches", "sketches of other hyperplanes", "no sketches"]


def _damage(raw: redis.Redis, key: str, parts: dict[str, bytes], damage: str) -> None:
    header = log_mirror.SNAPSHOT_HEADER
    fields = list(header.unpack(parts["h"]))
    rows = 10  # per chunk (small_snapshots)
    if damage == "a string key":
        raw.delete(key)
        raw.set(key, b"planted")
    elif damage == "garbage header":
        raw.hset(key, "h", b"\x07" * header.size)
    elif damage == "other dimension":
        fields[2] = DIM * 2
        raw.hset(key, "h", header.pack(*fields))
    elif damage == "unknown version":
        fields[1] = 99
        raw.hset(key, "h", header.pack(*fields))
    elif damage == "truncated chunk":
        raw.hset(key, "1", parts["1"][:-4])
    elif damage == "missing chunk":
        raw.hdel(key, "2")
    elif damage == "chunk of another snapshot":
        raw.hset(key, "0", b"\x00" * 8 + parts["0"][8:])
    elif damage == "rows out of order":
        seqs = parts["q"]
        high, low = seqs[8 : 8 + 8 * ROWS], seqs[8 + 8 * ROWS :]
        low = low[8:16] + low[0:8] + low[16:]  # swap the first two sequence numbers
        high = high[8:16] + high[0:8] + high[16:]
        raw.hset(key, "q", seqs[:8] + high + low)
    elif damage == "truncated seqs":
        raw.hset(key, "q", parts["q"][:-8])
    elif damage == "seqs of another snapshot":
        raw.hset(key, "q", b"\x00" * 8 + parts["q"][8:])
    elif damage == "truncated sketches":
        raw.hset(key, "s", parts["s"][:-8])
    elif damage == "sketches of other hyperplanes":
        raw.hset(key, "s", parts["s"][:8] + b"\xff" * 8 + parts["s"][16:])
    elif damage == "no sketches":
        raw.hdel(key, "s")
    elif damage == "bad sketches and a truncated chunk":
        raw.hdel(key, "s")
        raw.hset(key, "1", parts["1"][: 8 + rows * 4 * DIM - 4])
    elif damage == "duplicate ids":
        raw.hset(key, "i", parts["i"][:8] + b"\n".join([b"r0"] * ROWS))
    elif damage == "an empty id":
        raw.hset(key, "i", parts["i"].replace(b"\nr5\n", b"\n\n"))
    elif damage == "ids not UTF-8":
        raw.hset(key, "i", parts["i"].replace(b"r5", b"\xff5"))
    elif damage == "ids of another snapshot":
        raw.hset(key, "i", b"\x00" * 8 + parts["i"][8:])
    else:
        meta = parts["m"]
        raw.hset(key, "m", meta[:8] + meta[8:].replace(b'"tags":{}', b'"tags":{"0":[1]}'))


@pytest.mark.parametrize("damage", IGNORED + LAZY + RESKETCHED)
def test_a_hostile_snapshot_is_ignored(
    redis_url: str,
    raw: redis.Redis,
    namespace: str,
    small_snapshots: None,
    loads: list[int],
    damage: str,
) -> None:
    matrix = vectors(ROWS, seed=3)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        key = snapshot_key(namespace)
        parts = {k.decode(): bytes(v) for k, v in raw.hgetall(key).items()}
        assert set(parts) == {"h", "i", "m", "q", "s", "0", "1", "2"}
        _damage(raw, key, parts, damage)
        late = client(redis_url, background="inline")
        try:
            assert found(late, namespace, matrix[0]) == [("r0", b"v0")]
            assert loads == ([] if damage in IGNORED else [ROWS])
            # A damaged chunk is never taken: the rows it covers are read from the log.
            assert mirror_of(late, namespace).vectors_complete == (damage not in LAZY)
            for i in range(ROWS):
                assert found(late, namespace, matrix[i]) == [(f"r{i}", f"v{i}".encode())]
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_the_snapshot_expires_with_its_partition(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None
) -> None:
    matrix = vectors(ROWS, seed=4)
    writer, reader = client(redis_url), client(redis_url)
    try:
        records = [VectorRecord(f"r{i}", matrix[i], b"x") for i in range(ROWS)]
        writer.add_vectors(namespace, "p", records, ttl=60)
        found(reader, namespace, matrix[0])
        ttl = raw.pttl(snapshot_key(namespace))
        assert 0 < ttl <= 60_000
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()
    assert not raw.exists(snapshot_key(namespace))  # clear() removes it too


def _as_version_1(raw: redis.Redis, key: str, parts: dict[str, bytes]) -> None:
    """Rewrite a snapshot as a client of format 1 wrote it: chunks of sequence numbers and
    vectors, ids and tags in one JSON part, no ``i``, ``q`` or ``s`` part."""
    header = log_mirror.SNAPSHOT_HEADER
    fields = list(header.unpack(parts["h"]))
    fields[1] = 1
    count, chunk_rows = fields[3], fields[4]
    prefix, seqs = parts["q"][:8], parts["q"][8:]
    high, low = seqs[: 8 * count], seqs[8 * count :]
    raw.delete(key)
    for index, start in enumerate(range(0, count, chunk_rows)):
        rows = min(chunk_rows, count - start)
        vectors = parts[str(index)][8:]
        chunk = high[8 * start : 8 * (start + rows)] + low[8 * start : 8 * (start + rows)]
        raw.hset(key, str(index), prefix + chunk + vectors)
    ids = parts["i"][8:].decode().split("\n")
    tags = json.loads(parts["m"][8:])["tags"]
    raw.hset(key, "m", prefix + json.dumps({"ids": ids, "tags": tags}).encode())
    raw.hset(key, "h", header.pack(*fields))


def late_snapshot_version(raw: redis.Redis, key: str) -> int:
    return int(log_mirror.SNAPSHOT_HEADER.unpack(raw.hget(key, "h"))[1])


def test_a_snapshot_of_the_previous_format_still_loads(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(ROWS, seed=5)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        key = snapshot_key(namespace)
        _as_version_1(raw, key, {k.decode(): bytes(v) for k, v in raw.hgetall(key).items()})
        late = client(redis_url)
        try:
            for i in range(ROWS):
                assert found(late, namespace, matrix[i]) == [(f"r{i}", f"v{i}".encode())]
            assert loads == [ROWS]
            assert mirror_of(late, namespace).vectors_complete  # format 1: read at once
            # ... and rewritten in the current format, sketches included.
            assert {k.decode() for k in raw.hkeys(key)} == {"h", "i", "m", "q", "s", "0", "1", "2"}
            newest = late_snapshot_version(raw, key)
            assert newest == log_mirror.SNAPSHOT_VERSION
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def nearest(matrix: np.ndarray, query: np.ndarray, ids: list[str], k: int) -> list[str]:
    order = np.argsort(1.0 - matrix @ query, kind="stable")
    return [ids[row] for row in order[:k]]


@pytest.mark.parametrize("fill_limit", [512, 4])
def test_searches_answer_from_the_sketches_before_the_vectors_arrive(
    redis_url: str,
    raw: redis.Redis,
    namespace: str,
    small_snapshots: None,
    loads: list[int],
    monkeypatch: pytest.MonkeyPatch,
    fill_limit: int,
) -> None:
    """A client that adopted a snapshot's sketches (its vectors never read in the
    background here) reads the vectors of the rows it scores from the log: exact answers,
    including writes, deletions and replacements after the snapshot, and a threshold too
    wide for sketches (every row scored: more than ``FILL_LIMIT`` reads the vectors)."""
    monkeypatch.setattr(log_mirror, "FILL_LIMIT", fill_limit)
    matrix = vectors(ROWS + 2, seed=6)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        late = client(redis_url, background="never")
        try:
            assert found(late, namespace, matrix[3]) == [("r3", b"v3")]
            assert loads == [ROWS]
            mirror = mirror_of(late, namespace)
            assert not mirror.vectors_complete
            writer.add_vectors(namespace, "p", [VectorRecord("new", matrix[ROWS], b"new")])
            writer.delete_vectors(namespace, ["r1"])
            writer.add_vectors(namespace, "p", [VectorRecord("r2", matrix[ROWS + 1], b"moved")])
            assert found(late, namespace, matrix[ROWS]) == [("new", b"new")]
            assert found(late, namespace, matrix[1]) == []
            assert found(late, namespace, matrix[2]) == []
            assert found(late, namespace, matrix[ROWS + 1]) == [("r2", b"moved")]
            live = [i for i in range(ROWS + 2) if i not in (1, 2)]
            ids = [f"r{i}" for i in range(ROWS)] + ["new", "r2"]
            query = matrix[5]
            hits = late.search_vectors(namespace, "p", query, k=3, max_distance=1.9)
            expected = nearest(matrix[live], query, [ids[i] for i in live], 3)
            assert [hit.id for hit in hits] == expected
            assert mirror.vectors_complete  # every live row was scored: all were read
            for i in range(3, ROWS):
                assert found(late, namespace, matrix[i]) == [(f"r{i}", f"v{i}".encode())]
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_the_vectors_load_after_the_first_lookup(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(ROWS, seed=7)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        late = client(redis_url, background="inline")
        try:
            assert found(late, namespace, matrix[0]) == [("r0", b"v0")]
            assert loads == [ROWS] and mirror_of(late, namespace).vectors_complete
            for i in range(ROWS):
                assert found(late, namespace, matrix[i]) == [(f"r{i}", f"v{i}".encode())]
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_ids_with_line_breaks_are_mirrored_without_a_snapshot(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(ROWS, seed=8)
    ids = [f"r{i}" if i else "line\nbreak" for i in range(ROWS)]
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace, "p", [VectorRecord(ids[i], matrix[i], b"x") for i in range(ROWS)]
        )
        assert found(reader, namespace, matrix[0]) == [("line\nbreak", b"x")]
        assert not raw.exists(snapshot_key(namespace))
        late = client(redis_url)
        try:
            for i in range(ROWS):
                assert found(late, namespace, matrix[i]) == [(ids[i], b"x")]
            assert loads == []
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


async def test_an_async_client_adopts_the_sketches_and_loads_the_vectors_in_a_thread(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None, loads: list[int]
) -> None:
    matrix = vectors(ROWS, seed=9)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        late = client(redis_url)  # the default: a thread with the sync client reads the chunks
        try:
            for i in range(ROWS):
                hits = await late.asearch_vectors(namespace, "p", matrix[i], k=1, max_distance=0.01)
                assert [(hit.id, hit.payload) for hit in hits] == [(f"r{i}", f"v{i}".encode())]
            assert loads == [ROWS]
        finally:
            await late.aclose()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_threads_search_while_the_vectors_load(
    redis_url: str, raw: redis.Redis, namespace: str, small_snapshots: None
) -> None:
    """Lookups from several threads, the first of which adopts the sketches and starts the
    background read of the chunks: every answer is exact, whatever the interleaving."""
    matrix = vectors(ROWS, seed=10)
    writer, reader = client(redis_url), client(redis_url)
    try:
        writer.add_vectors(
            namespace,
            "p",
            [VectorRecord(f"r{i}", matrix[i], f"v{i}".encode()) for i in range(ROWS)],
        )
        found(reader, namespace, matrix[0])
        late = client(redis_url)
        start = threading.Barrier(4, timeout=30)
        wrong: list[object] = []

        def search_all(offset: int) -> None:
            try:
                start.wait()
                for step in range(3 * ROWS):
                    i = (offset + step) % ROWS
                    if found(late, namespace, matrix[i]) != [(f"r{i}", f"v{i}".encode())]:
                        wrong.append(i)
            except Exception as exc:  # reported below: a failed worker fails the test
                wrong.append(exc)

        workers = [threading.Thread(target=search_all, args=(n * 6,)) for n in range(4)]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=60)
            assert not any(worker.is_alive() for worker in workers)
            assert wrong == []
        finally:
            late.close()
    finally:
        writer.clear(namespace)
        writer.close()
        reader.close()


def test_a_background_read_stops_when_the_backend_is_closed(redis_url: str) -> None:
    """A read started before close() must not open a new client after it (nobody would
    close that one)."""
    from semcache_core.backends.redis.commands import Round
    from semcache_core.errors import BackendError

    backend = RedisBackend.from_url(redis_url)
    go, finished = threading.Event(), threading.Event()
    seen: list[object] = []

    def flow() -> Any:
        go.wait(timeout=30)
        try:
            seen.append((yield Round([("PING",)])))
        except BackendError as exc:
            seen.append(exc)
        finally:
            finished.set()

    backend._run_in_background(flow())
    backend.close()
    go.set()
    assert finished.wait(timeout=30)
    assert len(seen) == 1 and isinstance(seen[0], BackendError)
    assert backend._client is None  # no client was opened after close()
