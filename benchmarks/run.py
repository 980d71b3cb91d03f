"""Run the semcache benchmarks and write ``latest.md`` and ``latest.json``.

    .venv/bin/python benchmarks/run.py [--quick] [--only KINDS] [--sections NAMES] [--out DIR]

Starts its own servers (``tests/servers.py``) for the selected kinds and stops them at the
end. A backend module not written yet, a server that does not start or an anchor package not
installed is recorded as ``skipped: reason`` instead of failing the run. ``--quick`` runs the
1k semantic size only, with fewer iterations (the smoke test uses
``--quick --only embedded``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: BLAS threads are pinned to one before numpy loads (here and in the processes the run
#: starts): vector searches are small matrix-vector products, which a BLAS thread pool makes
#: slower on a busy 2-core machine, and every contender's numpy gets the same setting.
BLAS_THREADS = {
    name: os.environ.setdefault(name, "1")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}

from benchmarks import (  # noqa: E402 - needs the repo root on sys.path first
    byte_store,
    conversation_lookup,
    embed_calls,
    embedding_cache,
    exact_cache,
    redis_memory,
    semantic_lookup,
)
from benchmarks.context import ALL_KINDS, BenchContext  # noqa: E402
from benchmarks.harness import Section, targets_markdown  # noqa: E402

SECTIONS: dict[str, tuple[str, Callable[[BenchContext], Section]]] = {
    "exact": (exact_cache.TITLE, exact_cache.run),
    "bytestore": (byte_store.TITLE, byte_store.run),
    "semantic": (semantic_lookup.TITLE, semantic_lookup.run),
    "embeddings": (embedding_cache.TITLE, embedding_cache.run),
    "memory": (redis_memory.TITLE, redis_memory.run),
    "calls": (embed_calls.TITLE, embed_calls.run),
    "conversation": (conversation_lookup.TITLE, conversation_lookup.run),
}

_PACKAGES = (
    "semcache",
    "langchain-core",
    "langchain-classic",
    "langchain-community",
    "redis",
    "elasticsearch",
    "numpy",
    "gptcache",
    "faiss-cpu",
    "redisvl",
    "langchain-redis",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="1k semantic entries only, fewer iterations"
    )
    parser.add_argument(
        "--only",
        default=",".join(ALL_KINDS),
        help=f"comma-separated backend kinds to run (default: all of {', '.join(ALL_KINDS)})",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections (default: all of {', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        parser.error(f"--only: unknown kinds {sorted(unknown)}; known: {', '.join(ALL_KINDS)}")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    args.kinds = frozenset(kinds)
    args.section_names = sections
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Warnings of semcache, anchors and clients (deprecations, node retries) are not results.
    loggers = [logging.getLogger(name) for name in ("semcache", "elastic_transport", "gptcache")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _run(args)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    ctx = BenchContext.create(quick=args.quick, kinds=args.kinds)
    sections: list[Section] = []
    started = time.perf_counter()
    load_before = _loadavg()
    try:
        for name in args.section_names:
            title, run_section = SECTIONS[name]
            print(f"[bench] {title} ...", file=sys.stderr, flush=True)
            section_started = time.perf_counter()
            try:
                section = run_section(ctx)
            except Exception as exc:
                section = Section(name, title, f"The section failed: `{exc!r}`", ["contender"])
                section.notes.append("```\n" + traceback.format_exc() + "```")
            section.sort_skips_last("entries" if "entries" in section.columns else None)
            section.seconds = time.perf_counter() - section_started
            print(f"[bench]   done in {section.seconds:.1f} s", file=sys.stderr, flush=True)
            sections.append(section)
        meta = run_metadata(args, ctx, time.perf_counter() - started)
        meta["loadavg_before"] = load_before
        meta["loadavg_after"] = _loadavg()
    finally:
        ctx.close()
    write_results(args.out, meta, sections)
    print(f"[bench] wrote {args.out / 'latest.md'} and latest.json", file=sys.stderr)
    return 0


def run_metadata(args: argparse.Namespace, ctx: BenchContext, seconds: float) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    servers = {
        kind: ctx.server_version(kind)
        for kind in ("redis", "redis-qe", "redis-cluster", "elasticsearch")
    }
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/run.py", *(sys.argv[1:] if args else [])]),
        "quick": args.quick,
        "kinds": sorted(args.kinds),
        "sections": args.section_names,
        "git": _git_revision(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}",
        "packages": versions,
        "blas_threads": BLAS_THREADS,
        "servers": {k: v for k, v in servers.items() if v},
        "seconds": round(seconds, 1),
    }


def _git_revision() -> str | None:
    with contextlib.suppress(Exception):
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    return None


def _loadavg() -> str | None:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def render_markdown(meta: dict[str, Any], sections: Sequence[Section]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if v)
    servers = ", ".join(f"{k} {v}" for k, v in meta["servers"].items()) or "none"
    lines = [
        "# semcache benchmarks",
        "",
        f"- Run: {meta['date']}, `{meta['command']}`, {meta['seconds']} s"
        + (" (**--quick**: 1k semantic entries only, fewer iterations)" if meta["quick"] else ""),
        f"- Code: {meta['git'] or 'unknown revision'}",
        (
            f"- Machine: {meta['machine']}; Python {meta['python']}; load average before / "
            f"after the run: {meta.get('loadavg_before')} / {meta.get('loadavg_after')}"
        ),
        f"- Servers (started by the run, on 127.0.0.1): {servers}",
        f"- Packages: {packages}",
        "- BLAS threads pinned for every vector search: "
        + ", ".join(f"{k}={v}" for k, v in meta.get("blas_threads", {}).items()),
        (
            "- Medians and p99 of per-call wall time; contenders of a table were interleaved "
            "round-robin in one run, so the ratios are the figures to compare (absolute "
            "numbers move with machine noise)."
        ),
        "",
        targets_markdown(sections),
    ]
    lines.extend(section.to_markdown() for section in sections)
    return "\n".join(lines)


def write_results(out: Path, meta: dict[str, Any], sections: Sequence[Section]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "sections": [s.as_json() for s in sections]}
    for name, text in (
        ("latest.md", render_markdown(meta, sections)),
        ("latest.json", json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"),
    ):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)


if __name__ == "__main__":
    raise SystemExit(main())
