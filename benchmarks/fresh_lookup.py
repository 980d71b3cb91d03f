"""The first semantic lookup of a new process, timed inside that process.

Run by the semantic-lookup section as ``python benchmarks/fresh_lookup.py '<json>'``: it
imports the library (not timed), then times opening the cache and its first lookup of one
query vector (embedding excluded), which includes whatever the library must load first (the
plain-Redis mirror). Prints ``{"seconds": ..., "hit": ...}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def semcache(spec: dict[str, Any], vector: list[float]) -> tuple[float, bool]:
    import semcache_core.backends.redis  # noqa: F401 - imports are not timed
    from semcache_core import Prompt, ResponseCache, connect

    class Given:
        name = spec["embedder"]

        def embed(self, text: str) -> Sequence[float]:
            return vector

        async def aembed(self, text: str) -> Sequence[float]:
            return vector

    started = time.perf_counter()
    backend = connect(spec["url"], vector_search=spec["vector_search"])
    cache = ResponseCache(
        backend,
        namespace=spec["namespace"],
        embedder=Given(),
        trap_guard=False,
        distance_threshold=spec["threshold"],
    )
    result = cache.lookup(spec["scope"], Prompt.plain(spec["text"]))
    return time.perf_counter() - started, result.outcome == "semantic"


def redisvl(spec: dict[str, Any], vector: list[float]) -> tuple[float, bool]:
    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import CustomVectorizer

    started = time.perf_counter()
    cache = SemanticCache(
        name=spec["name"],
        distance_threshold=spec["threshold"],
        vectorizer=CustomVectorizer(embed=lambda _text: vector),
        redis_url=spec["url"],
    )
    found = cache.check(vector=vector)
    return time.perf_counter() - started, bool(found)


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    spec = json.loads(sys.argv[1])
    vector = [float(x) for x in spec["vector"]]
    run = {"semcache": semcache, "redisvl": redisvl}[spec["library"]]
    seconds, hit = run(spec, vector)
    print(json.dumps({"seconds": seconds, "hit": hit}))


if __name__ == "__main__":
    main()
