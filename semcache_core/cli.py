"""The ``semcache`` command: ``demo``, ``stats`` and ``eval``.

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

from semcache_core.context_cache.usage import context_stats
from semcache_core.engine import persisted_stats


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


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["eval"]:
        # The harness owns its options (and --help); hand them over untouched.
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
    sub.add_parser(
        "eval", help="semantic-hit quality over labelled pairs (semcache eval --help for options)"
    )
    args = parser.parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
