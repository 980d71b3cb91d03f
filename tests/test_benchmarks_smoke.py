"""Smoke test of the benchmark harness (``benchmarks/run.py``), so it cannot rot.

Runs the embedded-only quick subset (no servers, small N) and checks that both result files
exist and hold every section. No timing is asserted: numbers from a test run mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import run


def test_quick_embedded_run_writes_every_section(tmp_path: Path) -> None:
    assert run.main(["--quick", "--only", "embedded", "--out", str(tmp_path)]) == 0

    markdown = (tmp_path / "latest.md").read_text(encoding="utf-8")
    data = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))

    assert markdown.startswith("# semcache benchmarks")
    assert "## Targets" in markdown
    for title, _ in run.SECTIONS.values():
        assert f"## {title}" in markdown
    assert [s["key"] for s in data["sections"]] == list(run.SECTIONS)
    assert data["meta"]["quick"] is True
    assert data["meta"]["kinds"] == ["embedded"]

    sections = {s["key"]: s for s in data["sections"]}
    for section in sections.values():
        assert "The section failed" not in section["description"], section["notes"]
    # Server-backed contenders are recorded as skipped, with the reason, not dropped.
    skipped = [r["data"]["skipped"] for r in sections["exact"]["rows"] if "skipped" in r["data"]]
    assert any("not selected" in reason for reason in skipped)
    # The embedded contenders did run, and returned what they should.
    semantic = [
        r["data"] for r in sections["semantic"]["rows"] if r["data"].get("backend") == "embedded"
    ]
    assert semantic and semantic[0]["correct_rate"] == 1.0
    calls = [r["data"] for r in sections["calls"]["rows"] if r["data"].get("backend") == "embedded"]
    assert calls and calls[0]["calls_per_miss"] == 1
    statuses = {t["status"] for s in data["sections"] for t in s["targets"]}
    assert statuses <= {"met", "missed", "skipped"}
