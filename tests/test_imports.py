"""What importing semcache loads: the exact-cache path never imports numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_EXACT_HIT = """
import sys
import semcache_core, langchain_semcache
from langchain_core.outputs import Generation
from langchain_semcache import ExactCache

cache = ExactCache({url!r})
cache.update("prompt", "llm", [Generation(text="answer")])
assert cache.lookup("prompt", "llm") == [Generation(text="answer")]
assert cache.lookup("another prompt", "llm") is None
print("numpy" in sys.modules)
"""


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_exact_cache_path_does_not_import_numpy(where: str, tmp_path: Path) -> None:
    url = "memory://" if where == "memory" else f"sqlite:///{tmp_path / 'exact.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _EXACT_HIT.format(url=url)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.strip() == "False", done.stderr
