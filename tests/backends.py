"""Which backends the tests run on, and how to get a fresh, isolated one.

Every adapter test is parametrized over :data:`BACKEND_KINDS` through the ``backend`` fixture
of ``conftest.py``. A backend issue adds its kind here (and a server fixture), not new tests.
Isolation between tests comes from a fresh namespace per test, never from flushing a server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from semcache_core import Backend, connect

EMBEDDED_KINDS = ["memory", "sqlite"]
BACKEND_KINDS = [*EMBEDDED_KINDS]


def fresh_namespace(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_backend(kind: str, tmp_path: Path, server_urls: dict[str, str]) -> Backend:
    if kind == "memory":
        return connect("memory://")
    if kind == "sqlite":
        return connect(f"sqlite:///{tmp_path / 'cache.db'}")
    return connect(server_urls[kind])
