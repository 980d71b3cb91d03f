"""The ``semcache`` command: demo and stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.outputs import Generation

from langchain_semcache import ExactCache
from semcache_core import DEFAULT_DISTANCE_THRESHOLD
from semcache_core.cli import main


def test_demo_shows_hits_misses_and_embedding_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--latency", "0.01", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    kinds: dict[str, list[str]] = {row["kind"]: [] for row in result["rows"]}
    for row in result["rows"]:
        kinds[row["kind"]].append(row["outcome"])
    assert set(kinds["cold"]) == {"miss"}
    assert set(kinds["exact repeat"]) == {"exact hit"}
    assert "semantic hit" in kinds["paraphrase"]
    assert all(outcome.startswith("miss") for outcome in kinds["trap"])
    summary = result["summary"]
    assert summary["embedding_texts_second_pass"] == 0
    assert summary["embedding_cache_hits"] == summary["embedding_texts_first_pass"]


def test_demo_table_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--latency", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "exact hit" in out and "semantic hit" in out and "embedding cache" in out


def test_stats_reads_persisted_counters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    cache = ExactCache(url, namespace="app")
    cache.lookup("p", "llm")
    cache.update("p", "llm", [Generation(text="x")])
    cache.lookup("p", "llm")
    cache.flush_stats()
    assert main(["stats", url, "--namespace", "app", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["lookups"], stats["exact_hits"], stats["misses"]) == (2, 1, 1)


async def test_stats_flush_from_async_path(tmp_path: Path) -> None:
    from semcache_core import ResponseCache, persisted_stats
    from semcache_core.engine import Prompt

    url = f"sqlite:///{tmp_path / 'stats.db'}"
    core = ResponseCache(url, namespace="app")
    await core.alookup("llm", Prompt.plain("p"))
    await core.aflush_stats()
    assert persisted_stats(url, "app")["misses"] == 1


def test_eval_runs_the_harness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {
            "a": "What is the capital of France?",
            "b": "capital of France?",
            "same_answer": True,
            "category": "paraphrase",
        },
        {
            "a": "Is Python 3 fast?",
            "b": "Is Python 2 fast?",
            "same_answer": False,
            "category": "version",
        },
    ]
    pairs.write_text("\n".join(json.dumps(row) for row in rows))
    out = tmp_path / "out"
    assert main(["eval", str(pairs), "--embedder", "hash", "--out", str(out)]) == 0
    assert "recommended threshold" in capsys.readouterr().out
    report = json.loads((out / "quality.json").read_text())
    assert report["threshold"] == DEFAULT_DISTANCE_THRESHOLD
    assert (out / "quality.md").read_text().startswith("# Semantic hit quality")
