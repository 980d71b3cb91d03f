"""What happens when the backend is slow or gone: the cache degrades, the application runs.

Policy (``on_backend_error``):

* ``"warn"`` (default): a failed read is a miss, a failed write is skipped, each logged as a
  warning on the ``semcache`` logger and counted in ``backend_errors``. After a failure the
  backend is not called again for ``retry_after`` seconds (default 5), so an unreachable server
  costs one timeout per window instead of one per LLM call; calls in that window go straight
  to the model. The breaker (:class:`Breaker`) is shared by every cache on the same backend
  object, and after the window a single probe tests the backend while the others skip it.
  Storage that does not fit the configuration (vectors of another dimension under the same
  model name, an Elasticsearch index or alias semcache cannot use: ``SchemaConflictError``) is
  also skipped, warned once per message, under ``"warn"``; ``"raise"`` raises it.
* ``"raise"``: the :class:`~semcache_core.errors.BackendError` propagates.

Only :class:`BackendError` (and those two configuration errors) is handled this way. Bad input
(``TypeError``/``ValueError``) always propagates. Connect and socket timeouts are set by each backend (see its docstring).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Literal, TypeVar

from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheInputError,
    StorageFullError,
    VectorDimensionError,
)
from semcache_core.flow import Flow

logger = logging.getLogger("semcache")

T = TypeVar("T")
ErrorPolicy = Literal["warn", "raise"]


class Breaker:
    """The circuit state of one backend, shared by every cache of the process that uses it.

    Closed: steps go through. After a failure it is open for ``retry_after`` seconds: no step
    goes through. Then it is half-open: exactly one step (the probe) goes through while every
    other caller skips the backend; the probe's success closes it, its failure opens it again.
    So a hung server costs one timeout per window for the whole process, however many threads
    call (callers already waiting when it hung time out together, once).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until = 0.0
        #: Opened at least once and not closed by a success since. Read without the lock: while
        #: it is False (the normal case) a step needs no other check, so the hot paths of the
        #: engine read this attribute instead of calling :meth:`allow` and :meth:`succeeded`.
        self.tripped = False
        self._probe_until = 0.0  # a probe is in flight until then (or until it reports)

    def allow(self, retry_after: float) -> bool:
        """Whether a step may go to the backend now (taking the probe when half-open)."""
        if not self.tripped:
            return True
        now = time.monotonic()
        with self._lock:
            if not self.tripped:
                return True
            if now < self._open_until or now < self._probe_until:
                return False
            self._probe_until = now + max(retry_after, 1.0)  # a probe that never reports
            return True

    def succeeded(self) -> None:
        if self.tripped:
            with self._lock:
                self.tripped, self._probe_until = False, 0.0

    def failed(self, retry_after: float) -> bool:
        """Open the breaker; whether it was closed (False: a concurrent failure of a burst)."""
        now = time.monotonic()
        with self._lock:
            was_closed = now >= self._open_until
            self.tripped = True
            self._open_until = now + retry_after
            self._probe_until = 0.0
        return was_closed


_BREAKERS: weakref.WeakKeyDictionary[object, Breaker] = weakref.WeakKeyDictionary()
_BREAKERS_LOCK = threading.Lock()


def breaker_of(backend: object) -> Breaker:
    """The process-wide :class:`Breaker` of ``backend`` (one per backend object)."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(backend)
        if breaker is None:
            breaker = _BREAKERS[backend] = Breaker()
        return breaker


class BackendGuard:
    """The error policy and a circuit breaker around backend steps.

    The engine's transport calls :meth:`check` before each backend step (the breaker wraps
    steps, not methods) and :meth:`succeeded` after it; the engine's flows run each operation
    under :meth:`shield`, which turns a failure into the operation's fallback (a miss, a
    skipped write) or re-raises it.
    """

    def __init__(
        self,
        on_backend_error: ErrorPolicy = "warn",
        *,
        retry_after: float = 5.0,
        breaker: Breaker | None = None,
    ) -> None:
        if on_backend_error not in ("warn", "raise"):
            raise SemcacheInputError(
                f"on_backend_error must be 'warn' or 'raise', got {on_backend_error!r}"
            )
        if retry_after < 0:
            raise SemcacheInputError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        self.policy: ErrorPolicy = on_backend_error
        self.retry_after = retry_after
        self.breaker = breaker or Breaker()
        self.on_error: Callable[[], None] | None = None
        self._warned: set[str] = set()

    def _failed(self, what: str, exc: BackendError) -> None:
        if self.policy == "raise":
            raise exc
        opened = self.breaker.failed(self.retry_after)
        if self.on_error is not None:
            self.on_error()
        # One warning per outage window: the callers that were waiting together fail together.
        logger.log(
            logging.WARNING if opened else logging.DEBUG,
            "semcache: %s failed, continuing without the cache for %.3gs: %s",
            what,
            self.retry_after,
            exc,
        )

    def check(self) -> None:
        """Called before every backend step: while the breaker is open, no I/O happens."""
        if self.policy == "warn" and not self.breaker.allow(self.retry_after):
            raise CircuitOpen("the backend is skipped after a recent failure")

    def succeeded(self) -> None:
        """Called after every backend step that answered."""
        self.breaker.succeeded()

    def shield(self, what: str, operation: Flow[T], fallback: T) -> Flow[T]:
        """``operation`` under the error policy: its result, or ``fallback`` when it failed."""
        try:
            return (yield from operation)
        except HANDLED as exc:
            return self.recover(what, exc, fallback)

    def recover(self, what: str, exc: Exception, fallback: T) -> T:
        """The error policy for ``exc``, one of :data:`HANDLED`, raised by the operation
        ``what``: ``fallback`` (a miss, a skipped write), or ``exc`` raised again. The one
        place of the policy: :meth:`shield` and the engine's direct exact read both use it."""
        if isinstance(exc, CircuitOpen):
            return fallback
        if isinstance(exc, StorageFullError):
            # The server answers (reads work) but takes no more writes: skip this write and
            # keep the breaker closed, warned once per message kind.
            if self.policy == "raise":
                raise exc
            if self.on_error is not None:
                self.on_error()
            if "storage full" not in self._warned:
                self._warned.add("storage full")
                logger.warning("semcache: %s skipped, the backend is full: %s", what, exc)
            return fallback
        if isinstance(exc, BackendError):
            self._failed(what, exc)
            return fallback
        if isinstance(exc, (VectorDimensionError, SchemaConflictError)):
            # Storage that does not fit this configuration (vectors of another dimension under
            # the same model name, an index or alias semcache cannot use): the configuration,
            # not this call, is at fault; under "warn" the call goes on without the cache,
            # warned once per message, and the breaker stays closed.
            if self.policy == "raise":
                raise exc
            if self.on_error is not None:
                self.on_error()
            if str(exc) not in self._warned and len(self._warned) < 64:
                self._warned.add(str(exc))
                logger.warning("semcache: %s skipped: %s", what, exc)
            return fallback
        raise exc


class CircuitOpen(BackendError):
    """A step refused without I/O because the breaker is open (see :class:`BackendGuard`)."""


#: The failures the error policy handles (:meth:`BackendGuard.recover`); anything else (bad
#: input, a bug) propagates whatever the policy.
HANDLED: tuple[type[Exception], ...] = (BackendError, VectorDimensionError, SchemaConflictError)
