"""What happens when the backend is slow or gone: the cache degrades, the application runs.

Policy (``on_backend_error``):

* ``"warn"`` (default): a failed read is a miss, a failed write is skipped, each logged as a
  warning on the ``semcache`` logger and counted in ``backend_errors``. After a failure the
  backend is not called again for ``retry_after`` seconds (default 5), so an unreachable server
  costs one timeout per window instead of one per LLM call; calls in that window go straight
  to the model.
* ``"raise"``: the :class:`~semcache_core.errors.BackendError` propagates.

Only :class:`BackendError` is handled this way. Bad input (``TypeError``/``ValueError``) always
propagates. Connect and socket timeouts are set by each backend (see its docstring).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from semcache_core.errors import BackendError, SemcacheInputError

logger = logging.getLogger("semcache")

T = TypeVar("T")
ErrorPolicy = Literal["warn", "raise"]


class BackendGuard:
    """Runs backend calls under the error policy and a simple circuit breaker."""

    def __init__(self, on_backend_error: ErrorPolicy = "warn", *, retry_after: float = 5.0) -> None:
        if on_backend_error not in ("warn", "raise"):
            raise SemcacheInputError(
                f"on_backend_error must be 'warn' or 'raise', got {on_backend_error!r}"
            )
        if retry_after < 0:
            raise SemcacheInputError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        self.policy: ErrorPolicy = on_backend_error
        self.retry_after = retry_after
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.on_error: Callable[[], None] | None = None

    def _skipping(self) -> bool:
        return self.policy == "warn" and time.monotonic() < self._open_until

    def _failed(self, what: str, exc: BackendError) -> None:
        if self.policy == "raise":
            raise exc
        with self._lock:
            self._open_until = time.monotonic() + self.retry_after
        if self.on_error is not None:
            self.on_error()
        logger.warning(
            "semcache: %s failed, continuing without the cache for %.0fs: %s",
            what,
            self.retry_after,
            exc,
        )

    def call(self, what: str, fn: Callable[[], T], fallback: T) -> T:
        if self._skipping():
            return fallback
        try:
            return fn()
        except BackendError as exc:
            self._failed(what, exc)
            return fallback

    async def acall(self, what: str, fn: Callable[[], Awaitable[T]], fallback: T) -> T:
        if self._skipping():
            return fallback
        try:
            return await fn()
        except BackendError as exc:
            self._failed(what, exc)
            return fallback
