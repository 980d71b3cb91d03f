"""Semantic-hit quality harness, from a checkout: ``python benchmarks/quality.py --help``.

The harness itself is :mod:`semcache_core.quality` (also ``semcache eval``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semcache_core.quality import main

if __name__ == "__main__":
    raise SystemExit(main())
