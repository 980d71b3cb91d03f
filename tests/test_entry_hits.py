"""Hit counts and the last hit of each entry (issue 14, item 3): counted on the embedded
backends (``memory://``, ``sqlite://``) with ``track_hits``, for served hits only; ``None`` (not
tracked) without it, and on Redis and Elasticsearch, where a count would cost a write per hit."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from semcache_core import Backend, Prompt, ResponseCache, SemcacheInputError, connect
from semcache_core.cli import main
from semcache_core.testing import HashingEmbedder, fresh_namespace

SCOPE = "fake-llm"
COUNTING = ("memory", "sqlite")
LEND = "Can I lend money to a friend?"
BORROW = "Can I borrow money from a friend?"  # within 0.5 of LEND; the guard rejects it
FRANCE = "What is the capital of France?"


def semantic_cache(backend: Backend | str, namespace: str) -> ResponseCache:
    return ResponseCache(
        backend, namespace=namespace, embedder=HashingEmbedder(), distance_threshold=0.5
    )


def counting(kind: str, tmp_path: Path) -> Backend:
    """A backend of ``kind`` that counts hits."""
    if kind == "memory":
        return connect("memory://?track_hits=1")
    return connect(f"sqlite:///{tmp_path / 'hits.db'}?track_hits=1")


def hits_by_query(cache: ResponseCache) -> dict[str | None, tuple[int | None, float | None]]:
    return {entry.query: (entry.hits, entry.last_hit) for entry in cache.entries()}


async def test_served_hits_are_counted_and_rejected_candidates_are_not(
    backend: Backend, backend_kind: str, namespace: str, tmp_path: Path
) -> None:
    counted = backend_kind in COUNTING
    cache = semantic_cache(counting(backend_kind, tmp_path) if counted else backend, namespace)
    for query in (LEND, FRANCE):
        cache.update(SCOPE, Prompt.plain(query), {"text": query})
    before = time.time()
    assert cache.lookup(SCOPE, Prompt.plain(LEND)).outcome == "exact"
    assert (await cache.alookup(SCOPE, Prompt.plain(LEND))).outcome == "exact"
    paraphrase = Prompt.plain("hi! what's the capital city of france? thanks")
    assert cache.lookup(SCOPE, paraphrase).outcome == "semantic"
    assert [m.prompt for m in cache.check(FRANCE, scope=SCOPE)] == [FRANCE]
    # Proposed by the search, then rejected by the guard (and a miss): no hit of LEND's.
    assert cache.lookup(SCOPE, Prompt.plain(BORROW)).outcome == "miss"
    assert cache.explain(SCOPE, Prompt.plain(LEND)).served is not None  # explain serves nothing
    after = time.time()

    listed = hits_by_query(cache)
    if not counted:
        assert listed == {LEND: (None, None), FRANCE: (None, None)}
        return
    assert {query: hits for query, (hits, _) in listed.items()} == {LEND: 2, FRANCE: 2}
    for _, last_hit in listed.values():
        assert last_hit is not None and before <= last_hit <= after
    one = next(e for e in cache.entries() if e.query == LEND)
    again = await cache.aentry(one.id)
    assert again is not None and (again.hits, again.last_hit) == (one.hits, one.last_hit)


async def test_hits_are_not_tracked_by_default(backend: Backend, namespace: str) -> None:
    cache = semantic_cache(backend, namespace)
    cache.update(SCOPE, Prompt.plain(LEND), {"text": LEND})
    cache.lookup(SCOPE, Prompt.plain(LEND))
    assert hits_by_query(cache) == {LEND: (None, None)}


@pytest.mark.parametrize("kind", COUNTING)
def test_an_exact_cache_counts_and_a_rewrite_starts_again(
    kind: str, tmp_path: Path, namespace: str
) -> None:
    cache = ResponseCache(counting(kind, tmp_path), namespace=namespace)
    cache.update(SCOPE, Prompt.plain("a"), {"text": "1"})
    cache.update(SCOPE, Prompt.plain("b"), {"text": "2"})
    for _ in range(5):
        cache.lookup(SCOPE, Prompt.plain("a"))
    cache.lookup(SCOPE, Prompt.plain("never stored"))
    assert {e.prompt: e.hits for e in cache.entries()} == {"a": 5, "b": 0}
    assert {e.prompt: e.last_hit is None for e in cache.entries()} == {"a": False, "b": True}
    cache.update(SCOPE, Prompt.plain("a"), {"text": "new answer"})  # a new entry
    assert {e.prompt: e.hits for e in cache.entries()} == {"a": 0, "b": 0}
    cache.lookup(SCOPE, Prompt.plain("a"))
    assert {e.prompt: e.hits for e in cache.entries()} == {"a": 1, "b": 0}


def test_other_connections_see_the_hits_once_they_are_written(
    tmp_path: Path, namespace: str
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}?track_hits=1"
    serving = ResponseCache(url, namespace=namespace)
    serving.update(SCOPE, Prompt.plain("q"), {"text": "a"})
    for _ in range(3):
        serving.lookup(SCOPE, Prompt.plain("q"))
    serving.update(SCOPE, Prompt.plain("other"), {"text": "b"})  # a write flushes the hits
    for _ in range(2):
        serving.lookup(SCOPE, Prompt.plain("q"))
    serving.backend.close()  # so does closing
    auditing = ResponseCache(url, namespace=namespace)
    assert {e.prompt: e.hits for e in auditing.entries()} == {"q": 5, "other": 0}


def test_a_file_from_before_hit_counts_is_upgraded(tmp_path: Path, namespace: str) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:  # the layout before limits and hits (no used, no hits)
        raw.executescript(
            "CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
            "expires_at REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;"
            "CREATE TABLE vec (seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, "
            "id TEXT NOT NULL, part TEXT NOT NULL, vector BLOB NOT NULL, payload BLOB NOT NULL, "
            "tags TEXT NOT NULL, expires_at REAL, UNIQUE (ns, id));"
        )
    old = ResponseCache(f"sqlite:///{path}?track_hits=1", namespace=namespace)
    old.update(SCOPE, Prompt.plain("q"), {"text": "a"})
    assert [e.hits for e in old.entries()] == [0]
    old.lookup(SCOPE, Prompt.plain("q"))
    assert [e.hits for e in old.entries()] == [1]
    old.backend.close()
    with sqlite3.connect(path) as raw:
        columns = {row[1] for row in raw.execute("PRAGMA table_info(vec)")}
        assert {"used", "hits", "last_hit"} <= columns
        raw.execute("UPDATE kv SET hits = 'many', last_hit = x'00'")  # planted garbage
    planted = ResponseCache(f"sqlite:///{path}?track_hits=1", namespace=namespace)
    assert [(e.hits, e.last_hit) for e in planted.entries()] == [(0, None)]
    planted.lookup(SCOPE, Prompt.plain("q"))  # still served, and counted from there
    assert planted.lookup(SCOPE, Prompt.plain("q")).outcome == "exact"
    assert [e.hits for e in planted.entries()] == [2]


@pytest.mark.parametrize(
    "url", ["memory://?track_hits=0", "sqlite:///{dir}/off.db?track_hits=false"]
)
def test_hit_counting_is_a_switch(url: str, tmp_path: Path, namespace: str) -> None:
    off = ResponseCache(connect(url.format(dir=tmp_path)), namespace=namespace)
    off.update(SCOPE, Prompt.plain("q"), {"text": "a"})
    off.lookup(SCOPE, Prompt.plain("q"))
    assert [(e.hits, e.last_hit) for e in off.entries()] == [(None, None)]
    keyword = connect(url.format(dir=tmp_path).split("?")[0], track_hits=True)
    on = ResponseCache(keyword, namespace=fresh_namespace())
    on.update(SCOPE, Prompt.plain("q"), {"text": "a"})
    on.lookup(SCOPE, Prompt.plain("q"))
    assert [e.hits for e in on.entries()] == [1]


@pytest.mark.parametrize("value", ["yes", "2", ""])
def test_bad_track_hits_values_are_rejected_clearly(value: str) -> None:
    with pytest.raises(SemcacheInputError, match="track_hits must be 1, 0, true or false"):
        connect(f"memory://?track_hits={value}")
    with pytest.raises(TypeError, match="track_hits must be a bool, got int"):
        connect("memory://", track_hits=1)


def test_cli_shows_hits_and_the_last_hit(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}?track_hits=1"
    cache = ResponseCache(url, namespace=namespace)
    cache.update(SCOPE, Prompt.plain("served"), {"text": "a"})
    cache.update(SCOPE, Prompt.plain("never served"), {"text": "b"})
    for _ in range(7):
        cache.lookup(SCOPE, Prompt.plain("served"))
    cache.backend.close()
    assert main(["entries", url, "--namespace", namespace, "--json"]) == 0
    listed = {e["prompt"]: e for e in json.loads(capsys.readouterr().out)}
    assert listed["served"]["hits"] == 7 and listed["served"]["last_hit"] is not None
    assert (listed["never served"]["hits"], listed["never served"]["last_hit"]) == (0, None)
    served = listed["served"]["id"]
    assert main(["show", url, "--namespace", namespace, served]) == 0
    shown = capsys.readouterr().out
    assert "hits: 7" in shown and "last_hit: " in shown and "ago" in shown
    assert main(["show", url, "--namespace", namespace, listed["never served"]["id"]]) == 0
    assert "last_hit: never" in capsys.readouterr().out
