"""The operator's commands of ``semcache``: ``entries``, ``show``, ``drop``, ``expire``, ``clear``.

Tables and progress use `rich <https://rich.readthedocs.io>`_ when it is installed (the ``cli``
extra); without it they are plain text and the progress is a count on stderr. Progress goes to
stderr, so the table (or ``--json``) on stdout stays clean for a pipe.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from semcache_core.backends.base import Backend
from semcache_core.engine import ResponseCache
from semcache_core.entries import CacheEntry
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Step, run

__all__ = ["add_commands", "format_age", "model_of"]

_MODEL = re.compile(r"""["']?model(?:_name|_id)?["']?\s*[:=]\s*["']([^"']+)["']""")
#: Entries listed between two updates of the plain-text progress count.
_PLAIN_PROGRESS_EVERY = 1000


def _rich() -> Any:
    """The ``rich`` package, or ``None`` when it is not installed (the plain fallback)."""
    try:
        import rich
    except ImportError:
        return None
    return rich


def model_of(llm_string: str | None) -> str:
    """The model an ``llm_string`` names (LangChain's ``model_name``, LlamaIndex's ``model``),
    else its start."""
    if not llm_string:
        return "?"
    found = _MODEL.search(llm_string)
    text = found.group(1) if found else " ".join(llm_string.split())
    return text if len(text) <= 24 else text[:23] + "…"


def format_age(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` (whole units, rounded down)."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _excerpt(text: str | None, width: int = 40) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(entry: CacheEntry, now: float) -> list[str]:
    age = "?" if entry.created is None else format_age(now - entry.created)
    left = "never" if entry.expires is None else format_age(entry.expires - now)
    hits = "-" if entry.hits is None else str(entry.hits)
    return [
        entry.id,
        _excerpt(entry.query or entry.prompt),
        model_of(entry.llm_string),
        age,
        left,
        hits,
    ]


_HEADERS = ["id", "prompt", "model", "age", "ttl left", "hits"]


def _progress(label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(advance(n), finish())`` of a progress count on stderr."""
    rich = _rich()
    if rich is not None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(
            SpinnerColumn(),
            TextColumn(f"{label}: {{task.completed}}"),
            console=Console(stderr=True),
            transient=True,
        )
        task = progress.add_task(label, total=None)
        progress.start()
        return (lambda n: progress.advance(task, n)), progress.stop
    counted = [0]

    def advance(n: int) -> None:
        before, counted[0] = counted[0], counted[0] + n
        if counted[0] // _PLAIN_PROGRESS_EVERY > before // _PLAIN_PROGRESS_EVERY:
            print(f"{label}: {counted[0]}...", file=sys.stderr, flush=True)

    return advance, lambda: None


def _listed(entries: Iterator[CacheEntry]) -> list[CacheEntry]:
    advance, finish = _progress("listing entries")
    listed: list[CacheEntry] = []
    try:
        for entry in entries:
            listed.append(entry)
            advance(1)
    finally:
        finish()
    return listed


def _print_table(rows: list[list[str]], title: str) -> None:
    rich = _rich()
    if rich is not None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for header in _HEADERS:
            table.add_column(header, no_wrap=header != "prompt", overflow="fold")
        for row in rows:
            table.add_row(*row)
        # A pipe gets the whole table (rich would fold it to 80 columns).
        Console(width=None if sys.stdout.isatty() else 200).print(table)
        return
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(_HEADERS)
    ]
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cache(args: argparse.Namespace) -> ResponseCache:
    # No embedder: listing, reading, dropping and expiring by id need none.
    return ResponseCache(args.url, namespace=args.namespace, on_backend_error="raise")


def _filters(pairs: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise SemcacheInputError(f"--filter takes name=value, got {pair!r}")
        filters[name] = value
    return filters


def _entries(args: argparse.Namespace) -> int:
    cache = _cache(args)
    try:
        listed = _listed(cache.entries(filters=_filters(args.filter), limit=args.limit))
    finally:
        cache.backend.close()
    if args.json:
        print(json.dumps([entry.as_dict() for entry in listed], indent=2))
        return 0
    now = time.time()
    # A listing cut by --limit says so: "2 entries" of a namespace of 3 would be a wrong count.
    shown = "first " if args.limit is not None and len(listed) >= args.limit else ""
    title = f"{shown}{len(listed)} entries in namespace {args.namespace!r}"
    _print_table([_row(entry, now) for entry in listed], title)
    return 0


def _show(args: argparse.Namespace) -> int:
    cache = _cache(args)
    try:
        entry = cache.entry(args.id)
    finally:
        cache.backend.close()
    if entry is None:
        print(f"no entry {args.id!r} in namespace {args.namespace!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(entry.as_dict(), indent=2))
        return 0
    now = time.time()
    fields = entry.as_dict()
    fields["created"] = _when(entry.created, now, "ago")
    fields["expires"] = "never" if entry.expires is None else _when(entry.expires, now, "left")
    fields["hits"] = "not tracked" if entry.hits is None else entry.hits
    if entry.hits is None:
        fields["last_hit"] = "not tracked"
    else:
        fields["last_hit"] = (
            "never" if entry.last_hit is None else _when(entry.last_hit, now, "ago")
        )
    for name, value in fields.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        print(f"{name:>10}: {shown}")
    return 0


def _when(epoch: float | None, now: float, relation: str) -> str:
    if epoch is None:
        return "?"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    return f"{stamp} ({format_age(abs(epoch - now))} {relation})"


_SKIPPED_NOTE = "(ids not stored are skipped)"


def _drop(args: argparse.Namespace) -> int:
    cache = _cache(args)
    try:
        cache.drop(args.ids)
    finally:
        cache.backend.close()
    # drop() skips ids that are not stored without saying which: claim no count it cannot know.
    print(
        f"dropped the {len(args.ids)} given id(s) from namespace {args.namespace!r} {_SKIPPED_NOTE}"
    )
    return 0


def _ttl(text: str) -> float | None:
    """``--ttl``: seconds, or ``none`` (never expires)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds nor 'none': {text!r}") from None


def _expire(args: argparse.Namespace) -> int:
    ttl = args.ttl
    cache = _cache(args)
    try:
        cache.expire(args.ids, ttl)
    finally:
        cache.backend.close()
    when = "never" if ttl is None else f"in {ttl:g} s"
    print(
        f"the {len(args.ids)} given id(s) of namespace {args.namespace!r} now expire {when}"
        f" {_SKIPPED_NOTE}"
    )
    return 0


class _Counting:
    """A backend's transport that counts its round trips (the progress of a long ``clear``)."""

    def __init__(self, backend: Backend, advance: Callable[[int], None]) -> None:
        self._backend, self._advance = backend, advance

    def execute(self, step: Step) -> Any:
        reply = self._backend.execute(step)
        self._advance(1)
        return reply

    async def aexecute(self, step: Step) -> Any:  # pragma: no cover - the CLI is sync
        reply = await self._backend.aexecute(step)
        self._advance(1)
        return reply


def _clear(args: argparse.Namespace) -> int:
    if not args.yes:
        print("clear removes every entry of the namespace: add --yes", file=sys.stderr)
        return 2
    cache = _cache(args)
    advance, finish = _progress(f"clearing {args.namespace!r}, round trips")
    try:
        run(cache.ops.clear(cache.namespace), _Counting(cache.backend, advance))
    finally:
        finish()
        cache.backend.close()
    print(f"cleared namespace {args.namespace!r}")
    return 0


def add_commands(sub: Any) -> None:
    """Add the operator's commands to the ``semcache`` argument parser's subparsers."""

    def command(name: str, help_text: str, run_it: Callable[[argparse.Namespace], int]) -> Any:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("url", help="backend URL, e.g. redis://localhost:6379/0")
        parser.add_argument("--namespace", required=True)
        parser.set_defaults(run=run_it)
        return parser

    entries = command("entries", "list the cached entries of a namespace", _entries)
    entries.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="only entries stored under this scope field value (repeatable)",
    )
    entries.add_argument("--limit", type=int, help="at most this many entries")
    entries.add_argument("--json", action="store_true")
    show = command("show", "print one entry (its id from `semcache entries`)", _show)
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    drop = command("drop", "remove entries by id", _drop)
    drop.add_argument("ids", nargs="+", metavar="ID")
    expire = command("expire", "set when entries expire", _expire)
    expire.add_argument(
        "--ttl", required=True, type=_ttl, help="seconds from now, or 'none' for never"
    )
    expire.add_argument("ids", nargs="+", metavar="ID")
    clear = command("clear", "remove every entry of a namespace", _clear)
    clear.add_argument("--yes", action="store_true", help="yes, clear it")
