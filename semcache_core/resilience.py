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
from collections.abc import Callable
from typing import Literal, TypeVar

from semcache_core.errors import BackendError, SemcacheInputError
from semcache_core.flow import Flow

logger = logging.getLogger("semcache")

T = TypeVar("T")
ErrorPolicy = Literal["warn", "raise"]


class BackendGuard:
    """The error policy and a simple circuit breaker around backend steps.

    The engine's transport calls :meth:`check` before each backend step (the breaker wraps
    steps, not methods); the engine's flows run each operation under :meth:`shield`, which
    turns a failure into the operation's fallback (a miss, a skipped write) or re-raises it.
    """

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

    def check(self) -> None:
        """Called before every backend step: while the breaker is open, no I/O happens."""
        if self._skipping():
            raise CircuitOpen("the backend is skipped after a recent failure")

    def shield(self, what: str, operation: Flow[T], fallback: T) -> Flow[T]:
        """``operation`` under the error policy: its result, or ``fallback`` when it failed."""
        try:
            return (yield from operation)
        except CircuitOpen:
            return fallback
        except BackendError as exc:
            self._failed(what, exc)
            return fallback


class CircuitOpen(BackendError):
    """A step refused without I/O because the breaker is open (see :class:`BackendGuard`)."""
