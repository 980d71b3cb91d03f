"""``max_entries`` on the embedded backend: least-recently-used eviction per namespace."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from semcache_core import (
    Backend,
    Prompt,
    ResponseCache,
    SemcacheInputError,
    connect,
    persisted_stats,
)
from semcache_core.backends import lru
from semcache_core.backends.embedded import EmbeddedBackend
from semcache_core.cli import main as cli_main
from semcache_core.testing import HashingEmbedder

EMBEDDED = ["memory", "sqlite"]


@pytest.fixture(autouse=True)
def exact_recency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read is a use: these tests run within one second, the default resolution."""
    monkeypatch.setattr(lru, "USE_RESOLUTION", 0.0)


def limited(kind: str, tmp_path: Path, max_entries: int) -> Backend:
    if kind == "memory":
        return connect("memory://", max_entries=max_entries)
    return connect(f"sqlite:///{tmp_path / 'lru.db'}?max_entries={max_entries}")


def present(backend: Backend, namespace: str, keys: list[str]) -> list[str]:
    values = backend.get_many(namespace, keys)
    return [key for key, value in zip(keys, values, strict=True) if value is not None]


def rows(path: Path, table: str, namespace: str) -> int:
    with sqlite3.connect(path) as raw:
        return int(
            raw.execute(f"SELECT count(*) FROM {table} WHERE ns = ?", (namespace,)).fetchone()[0]
        )


@pytest.mark.parametrize("kind", EMBEDDED)
def test_a_read_counts_as_use_and_the_least_recently_used_goes(
    kind: str, tmp_path: Path, namespace: str
) -> None:
    backend = limited(kind, tmp_path, 3)
    for key in ("a", "b", "c"):
        backend.set_many(namespace, [(key, key.encode())])
    assert backend.get_many(namespace, ["a"]) == [b"a"]  # a is now used after b and c
    backend.set_many(namespace, [("d", b"d")])
    assert present(backend, namespace, ["a", "b", "c", "d"]) == ["a", "c", "d"]
    # That read of a, c, d used them all: c is read last, then e is written.
    assert backend.get_many(namespace, ["c"]) == [b"c"]
    backend.set_many(namespace, [("e", b"e")])
    assert present(backend, namespace, ["a", "c", "d", "e"]) == ["c", "d", "e"]
    assert backend.namespace_counts(namespace) == {"evictions": 2}
    assert persisted_stats(backend, namespace)["evictions"] == 2


@pytest.mark.parametrize("kind", EMBEDDED)
async def test_async_reads_count_as_use(kind: str, tmp_path: Path, namespace: str) -> None:
    backend = limited(kind, tmp_path, 2)
    await backend.aset_many(namespace, [("a", b"a")])
    await backend.aset_many(namespace, [("b", b"b")])
    assert await backend.aget_many(namespace, ["a"]) == [b"a"]
    await backend.aset_many(namespace, [("c", b"c")])
    assert await backend.aget_many(namespace, ["a", "b", "c"]) == [b"a", None, b"c"]


@pytest.mark.parametrize("kind", EMBEDDED)
def test_one_batch_larger_than_the_limit_keeps_the_limit(
    kind: str, tmp_path: Path, namespace: str
) -> None:
    backend = limited(kind, tmp_path, 4)
    backend.set_many(namespace, [(f"k{i}", b"v") for i in range(10)])
    assert len(present(backend, namespace, [f"k{i}" for i in range(10)])) == 4
    assert persisted_stats(backend, namespace)["evictions"] == 6


@pytest.mark.parametrize("kind", EMBEDDED)
def test_the_limit_is_per_namespace(kind: str, tmp_path: Path, namespace: str) -> None:
    backend = limited(kind, tmp_path, 2)
    other = namespace + "-other"
    backend.set_many(other, [("x", b"x"), ("y", b"y")])
    for key in ("a", "b", "c", "d"):
        backend.set_many(namespace, [(key, b"v")])
    assert present(backend, other, ["x", "y"]) == ["x", "y"]
    assert present(backend, namespace, ["a", "b", "c", "d"]) == ["c", "d"]
    assert persisted_stats(backend, other)["evictions"] == 0


@pytest.mark.parametrize("kind", EMBEDDED)
def test_semantic_entries_are_evicted_with_their_vector(
    kind: str, tmp_path: Path, namespace: str
) -> None:
    backend = limited(kind, tmp_path, 2)
    cache = ResponseCache(backend, namespace=namespace, embedder=HashingEmbedder())
    questions = [
        "how do I repot a fern",
        "what is the capital of peru",
        "who wrote the brothers karamazov",
    ]
    cache.update("model", Prompt.plain(questions[0]), {"text": "fern"}, tokens=0)
    cache.update("model", Prompt.plain(questions[1]), {"text": "lima"}, tokens=0)
    hit = cache.lookup("model", Prompt.plain(questions[0]))  # the fern entry is used
    assert hit.body is not None and hit.body["value"] == {"text": "fern"}
    cache.update("model", Prompt.plain(questions[2]), {"text": "dostoevsky"}, tokens=0)

    assert cache.lookup("model", Prompt.plain(questions[1])).outcome == "miss"
    for question, answer in ((questions[0], "fern"), (questions[2], "dostoevsky")):
        found = cache.lookup("model", Prompt.plain(question))
        assert found.body is not None and found.body["value"] == {"text": answer}
    if kind == "sqlite":
        assert rows(tmp_path / "lru.db", "vec", namespace) == 2
    # The evicted record is gone from vector search too, not only from reads by id.
    assert cache.stats_snapshot()["evictions"] == 1


def test_vector_search_hits_count_as_use(tmp_path: Path, namespace: str) -> None:
    backend = limited("sqlite", tmp_path, 2)
    cache = ResponseCache(backend, namespace=namespace, embedder=HashingEmbedder())
    cache.update("model", Prompt.plain("how do I repot a fern"), {"text": "fern"}, tokens=0)
    cache.update("model", Prompt.plain("what is the capital of peru"), {"text": "lima"}, tokens=0)
    # A paraphrase: not the exact fast path, a semantic hit through the vector search.
    hit = cache.lookup("model", Prompt.plain("how do I repot a fern please"))
    assert hit.outcome in ("semantic", "exact") and hit.body is not None
    cache.update("model", Prompt.plain("who painted guernica"), {"text": "picasso"}, tokens=0)
    kept = cache.lookup("model", Prompt.plain("how do I repot a fern"))
    assert kept.body is not None and kept.body["value"] == {"text": "fern"}
    assert cache.lookup("model", Prompt.plain("what is the capital of peru")).outcome == "miss"


def test_semcache_stats_prints_evictions(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'lru.db'}"
    backend = connect(url + "?max_entries=1")
    backend.set_many(namespace, [("a", b"a")])
    backend.set_many(namespace, [("b", b"b")])
    backend.set_many(namespace, [("c", b"c")])
    assert cli_main(["stats", url, "--namespace", namespace]) == 0
    assert "  evictions: 2\n" in capsys.readouterr().out


def test_connections_sharing_a_file_share_the_limit(tmp_path: Path, namespace: str) -> None:
    url = f"sqlite:///{tmp_path / 'lru.db'}?max_entries=5"
    first, second = connect(url), connect(url)
    errors: list[BaseException] = []

    def write(backend: Backend, prefix: str) -> None:
        try:
            for i in range(40):
                backend.set_many(namespace, [(f"{prefix}{i}", b"v")])
                backend.get_many(namespace, [f"{prefix}{i}"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(first, "a")),
        threading.Thread(target=write, args=(second, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rows(tmp_path / "lru.db", "kv", namespace) == 5
    assert persisted_stats(first, namespace)["evictions"] == 75
    # Whichever writer finished last wrote the newest entry: it is kept.
    assert len(present(first, namespace, ["a39", "b39"])) >= 1


def test_uses_recorded_by_one_connection_protect_from_another(
    tmp_path: Path, namespace: str
) -> None:
    url = f"sqlite:///{tmp_path / 'lru.db'}?max_entries=2"
    reader, writer = connect(url), connect(url)
    reader.set_many(namespace, [("old", b"1")])
    reader.set_many(namespace, [("newer", b"2")])
    assert reader.get_many(namespace, ["old"]) == [b"1"]
    reader.set_many(namespace + "-x", [("k", b"v")])  # any write flushes the reader's uses
    writer.set_many(namespace, [("newest", b"3")])
    assert present(writer, namespace, ["old", "newer", "newest"]) == ["old", "newest"]


def test_a_file_from_before_limits_is_upgraded(tmp_path: Path, namespace: str) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(
            "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
            "expires_at REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
            "CREATE TABLE vec (seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, "
            "id TEXT NOT NULL, part TEXT NOT NULL, vector BLOB NOT NULL, payload BLOB NOT NULL, "
            "tags TEXT NOT NULL, expires_at REAL, UNIQUE (ns, id));"
        )
        raw.execute("INSERT INTO kv VALUES (?, 'kv:legacy', x'01', NULL)", (namespace,))
    backend = connect(f"sqlite:///{path}", max_entries=2)
    assert backend.get_many(namespace, ["kv:legacy"]) == [b"\x01"]
    backend.set_many(namespace, [("kv:a", b"a")])
    backend.set_many(namespace, [("kv:b", b"b")])
    # The legacy row has no use time (NULL): it goes first, even though it was just read.
    assert present(backend, namespace, ["kv:legacy", "kv:a", "kv:b"]) == ["kv:a", "kv:b"]
    connect(f"sqlite:///{path}").close()  # a second upgrade is a no-op


def test_without_a_limit_nothing_is_evicted(tmp_path: Path, namespace: str) -> None:
    backend = connect(f"sqlite:///{tmp_path / 'lru.db'}")
    backend.set_many(namespace, [(f"k{i}", b"v") for i in range(50)])
    assert len(present(backend, namespace, [f"k{i}" for i in range(50)])) == 50
    assert backend.namespace_counts(namespace) == {"evictions": 0}


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, SemcacheInputError, "at least 1"),
        (-3, SemcacheInputError, "at least 1"),
        ("abc", SemcacheInputError, "whole number"),
        ("1.5", SemcacheInputError, "whole number"),
        (2.5, TypeError, "int or None, got float"),
        (True, TypeError, "int or None, got bool"),
    ],
)
def test_bad_limits_are_rejected_clearly(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        connect("memory://", max_entries=value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?max_entries=0", "at least 1"),
        ("memory://?max_entries=", "whole number"),
        ("memory://?max_entries=ten", "whole number"),
        ("memory://?max_entries=2&max_entries=3", "given twice"),
        ("memory://?max_entry=2", "unknown option 'max_entry'"),
    ],
)
def test_bad_url_options_are_rejected_clearly(url: str, message: str) -> None:
    with pytest.raises(SemcacheInputError, match=message):
        connect(url)


def test_url_and_keyword_limits_do_not_combine(tmp_path: Path) -> None:
    with pytest.raises(SemcacheInputError, match="given twice"):
        connect(f"sqlite:///{tmp_path / 'x.db'}?max_entries=2", max_entries=3)


def test_the_url_query_is_not_part_of_the_file_name(tmp_path: Path) -> None:
    backend = connect(f"sqlite:///{tmp_path / 'named.db'}?max_entries=7")
    assert isinstance(backend, EmbeddedBackend)
    assert backend.path == str(tmp_path / "named.db")
    assert backend.ops.max_entries == 7


def test_a_row_used_within_the_resolution_is_not_written_again(
    tmp_path: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lru, "USE_RESOLUTION", 3600.0)
    path = tmp_path / "lru.db"
    backend = limited("sqlite", tmp_path, 10)
    backend.set_many(namespace, [("a", b"a")])
    with sqlite3.connect(path) as raw:
        written = raw.execute("SELECT used FROM kv WHERE key = 'a'").fetchone()[0]
    for _ in range(3):
        assert backend.get_many(namespace, ["a"]) == [b"a"]
    backend.set_many(namespace, [("b", b"b")])  # would carry pending uses
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT used FROM kv WHERE key = 'a'").fetchone()[0] == written


_LIMITED_WORKER = """
import sys
from semcache_core import Prompt, ResponseCache, connect
from semcache_core.testing import HashingEmbedder
path, who, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
backend = connect(f"sqlite:///{path}?max_entries=20")
exact = ResponseCache(backend, namespace="exact", on_backend_error="raise")
semantic = ResponseCache(
    backend, namespace="semantic", embedder=HashingEmbedder(), on_backend_error="raise"
)
for i in range(count):
    for cache in (exact, semantic):
        prompt = Prompt.plain(f"process {who} question {i} about item {i * 7}")
        cache.update("s", prompt, {"who": who, "i": i})
        # Other processes may have evicted it since (it is the least recently used once 20
        # newer entries exist): a miss is fine, another entry's answer is not. (A neighbour's
        # prompt differs by one digit: on the semantic cache it may be a semantic hit.)
        for other in (who, (who + 1) % 4) if cache is exact else (who,):
            asked = Prompt.plain(f"process {other} question {i} about item {i * 7}")
            body = cache.lookup("s", asked).body
            if body is not None and body["value"] != {"who": other, "i": i}:
                sys.exit(f"foreign answer: {body}")
"""


def test_processes_sharing_a_limited_file(tmp_path: Path) -> None:
    path, processes, count = tmp_path / "lru.db", 4, 40
    connect(f"sqlite:///{path}").close()  # create the schema once
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _LIMITED_WORKER, str(path), str(who), str(count)], env=env
        )
        for who in range(processes)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0] * processes
    written = processes * count
    for namespace in ("exact", "semantic"):
        stored = rows(path, "kv" if namespace == "exact" else "vec", namespace)
        assert stored == 20
        assert persisted_stats(connect(f"sqlite:///{path}"), namespace)["evictions"] == (
            written - 20
        )
