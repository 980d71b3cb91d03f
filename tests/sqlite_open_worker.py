"""A child process for test_reliability: kept apart so that a spawned child imports only
the embedded backend, not the test module and the frameworks behind it."""

from __future__ import annotations

from typing import Any

from semcache_core.backends.embedded import EmbeddedBackend


def open_new_sqlite_file(path: str, start: Any, outcomes: Any) -> None:
    try:
        start.wait(timeout=60)
        EmbeddedBackend(path).close()
        outcomes.put("ok")
    except BaseException as exc:  # reported to the parent, which fails
        outcomes.put(f"{type(exc).__name__}: {exc}")
