"""The ``semcache`` command: ``demo``, ``stats``, ``explain``, ``trim``, ``eval``, and the
operator's ``entries``, ``show``, ``drop``, ``expire`` and ``clear``
(:mod:`semcache_core.cli_operator`).

``demo`` lives in ``langchain_semcache.demo`` (it is a LangChain app); it is imported by name
only when asked for, so the core itself never imports LangChain.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcache_core.cli_operator import add_commands
from semcache_core.context_cache.usage import context_stats
from semcache_core.embedder import Embedder
from semcache_core.engine import DEFAULT_DISTANCE_THRESHOLD, ResponseCache, persisted_stats
from semcache_core.prompt import Prompt


def _demo(args: argparse.Namespace) -> int:
    demo = importlib.import_module("langchain_semcache.demo")
    result = demo.run_demo(latency=args.latency)
    print(json.dumps(result, indent=2) if args.json else demo.format_demo(result))
    return 0


def _stats(args: argparse.Namespace) -> int:
    stats = persisted_stats(args.url, args.namespace)
    # A context-cache registry's namespace (semcache_core.context_cache) has its own counters.
    prices = json.loads(Path(args.prices).read_text()) if args.prices else None
    context = context_stats(args.url, args.namespace, prices)
    if context is not None:
        stats["context_cache"] = context
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"semcache stats for namespace {args.namespace!r} at {args.url}")
    for name, value in stats.items():
        if isinstance(value, dict):
            print(f"  {name}:")
            for key, item in value.items():
                print(f"    {key}: {item}")
        elif isinstance(value, float):
            print(f"  {name}: {value:.3f}")
        else:
            print(f"  {name}: {value}")
    return 0


def _trim(args: argparse.Namespace) -> int:
    from semcache_core.backends import connect

    backend = connect(args.url)
    try:
        trim = getattr(backend, "trim", None)
        if trim is None:
            print(
                f"semcache trim: {backend!r} has no trim; Redis evicts by itself under "
                "maxmemory (see the README's Redis section)",
                file=sys.stderr,
            )
            return 2
        evicted = trim(args.namespace, args.max_entries)
    finally:
        backend.close()
    print(f"evicted {evicted} entries from namespace {args.namespace!r} at {args.url}")
    return 0


class _Renamed:
    """An embedder under another name: the partition includes the embedder's name, so explain
    must use the name the entries were stored with (e.g. a LangChain model's)."""

    def __init__(self, embedder: Embedder, name: str) -> None:
        self._embedder, self.name = embedder, name

    def embed(self, text: str) -> Sequence[float]:
        return self._embedder.embed(text)

    async def aembed(self, text: str) -> Sequence[float]:
        return await self._embedder.aembed(text)


def _embedder(kind: str | None, name: str | None) -> Embedder | None:
    embedder: Embedder
    if kind is None:
        return None
    if kind == "minilm":
        from semcache_core.models import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    else:
        from semcache_core.testing import HashingEmbedder

        embedder = HashingEmbedder()
    return embedder if name is None else _Renamed(embedder, name)


def _explain(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.threshold is not None:
        options["distance_threshold"] = args.threshold
    cache = ResponseCache(
        args.url,
        namespace=args.namespace,
        embedder=_embedder(args.embedder, args.embedder_name),
        trap_guard=not args.no_trap_guard,
        on_backend_error="raise",
        **options,
    )
    try:
        explanation = cache.explain(args.llm_string, Prompt.plain(args.prompt), k=args.k)
    finally:
        cache.backend.close()
    print(json.dumps(explanation.as_dict(), indent=2) if args.json else explanation)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["eval"]:
        # The harnesses own their options (and --help); hand them over untouched. Conversation
        # pair files ({"a": [messages], "b": [messages], ...}) go to the conversation harness.
        from semcache_core.quality_chat import wants_conversations

        if wants_conversations(arguments[1:]):
            from semcache_core.quality_chat import main as conversation_main

            return int(conversation_main(arguments[1:]))
        from semcache_core.quality import main as quality_main

        return int(quality_main(arguments[1:]))
    parser = argparse.ArgumentParser(prog="semcache", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the LangChain demo on the embedded backend")
    demo.add_argument("--latency", type=float, default=0.4, help="fake LLM latency in seconds")
    demo.add_argument("--json", action="store_true", help="print JSON instead of a table")
    demo.set_defaults(run=_demo)
    stats = sub.add_parser("stats", help="print the persisted stats of a namespace")
    stats.add_argument("url", help="backend URL, e.g. redis://localhost:6379/0")
    stats.add_argument("--namespace", required=True)
    stats.add_argument("--json", action="store_true")
    stats.add_argument(
        "--prices", help='JSON file {model: {"input", "cached_input", "storage_per_hour"}}'
    )
    stats.set_defaults(run=_stats)
    explain = sub.add_parser(
        "explain",
        help="why a prompt hits or misses: its nearest stored queries and each stage's verdict",
        description="Explain a lookup without writing or counting it. The semantic partition "
        "includes the embedder's name: use the embedder the entries were stored with "
        "(--embedder-name for another name, e.g. a LangChain model's). Without --embedder, an "
        "exact cache is explained.",
    )
    explain.add_argument("url", help="backend URL, e.g. redis://localhost:6379/0")
    explain.add_argument("prompt", help="the prompt (a plain prompt, compared as a whole)")
    explain.add_argument("--namespace", required=True)
    explain.add_argument("--llm-string", required=True, help="the scope: model and parameters")
    explain.add_argument(
        "--embedder",
        choices=["minilm", "hash"],
        help="minilm: all-MiniLM-L6-v2 (semcache_core.models.MiniLMEmbedder); hash: "
        "semcache_core.testing.HashingEmbedder; omit for an exact cache",
    )
    explain.add_argument("--embedder-name", help="the name the entries' embedder had")
    explain.add_argument(
        "--threshold",
        type=float,
        help=f"distance threshold (default {DEFAULT_DISTANCE_THRESHOLD})",
    )
    explain.add_argument("--k", type=int, default=5, help="nearest candidates shown (5)")
    explain.add_argument("--no-trap-guard", action="store_true", help="as a cache without guard")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(run=_explain)
    trim = sub.add_parser(
        "trim",
        help="delete the oldest entries of a namespace beyond a size (Elasticsearch: oldest "
        "written first; embedded: least recently used first), counted as evictions",
    )
    trim.add_argument("url", help="backend URL, e.g. elasticsearch+http://localhost:9200")
    trim.add_argument("--namespace", required=True)
    trim.add_argument("--max-entries", required=True, type=int, help="entries to keep")
    trim.set_defaults(run=_trim)
    sub.add_parser(
        "eval",
        help="semantic-hit quality over labelled pairs, single prompts or conversations "
        "(semcache eval --help, semcache eval --conversations --help)",
    )
    add_commands(sub)
    args = parser.parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
