"""The steps a registry flow yields, and the two drivers that run a flow (sync and async).

A flow is a generator that yields :data:`Step` values and receives each step's result (or has
its exception thrown in, so the flow decides what a failure means). The policy in
:mod:`semcache_core.context_cache.registry` is written once as flows; :func:`run` drives one
with the sync backend, provider and caller, :func:`arun` with their async twins. This is the
``run(flow, transport)`` / ``arun(flow, transport)`` shape of the rest of semcache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from semcache_core.backends import Backend
from semcache_core.errors import BackendError
from semcache_core.resilience import BackendGuard

T = TypeVar("T")

#: What a stream's first step returns when the stream had no chunk at all.
END = object()


@dataclass(frozen=True, slots=True)
class Store:
    """A backend operation (``get_many``, ``set_if_absent``, ...; its ``a``-twin when async).
    ``iter_keys`` returns a list."""

    op: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Remote:
    """A provider operation (``create``, ``update``, ``delete``, ``list``)."""

    op: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """The caller's model call with cache ``name`` (``None``: the context goes inline)."""

    name: str | None


Step = Store | Remote | Pause | Attempt
Flow = Generator[Step, Any, T]


@dataclass
class Transport:
    """Where steps go: the registry's backend (under the error policy), its provider, and
    the caller's model call for :class:`Attempt` steps."""

    backend: Backend
    provider: Any
    guard: BackendGuard = field(default_factory=lambda: BackendGuard("warn"))

    def execute(self, step: Step, attempt: Callable[[str | None], Any] | None) -> Any:
        if isinstance(step, Store):
            method = getattr(self.backend, step.op)
            if step.op == "iter_keys":
                return self._checked(
                    step, self.guard.call(_what(step), lambda: list(method(*step.args)), END)
                )
            return self._checked(
                step, self.guard.call(_what(step), lambda: method(*step.args, **step.kwargs), END)
            )
        if isinstance(step, Remote):
            return getattr(self.provider, step.op)(*step.args)
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            return None
        assert attempt is not None, "a flow with Attempt steps needs an attempt callable"
        return attempt(step.name)

    async def aexecute(self, step: Step, attempt: Callable[[str | None], Any] | None) -> Any:
        if isinstance(step, Store):
            if step.op == "iter_keys":

                async def keys() -> list[str]:
                    return [k async for k in self.backend.aiter_keys(*step.args)]

                return self._checked(step, await self.guard.acall(_what(step), keys, END))
            method = getattr(self.backend, "a" + step.op)
            value = await self.guard.acall(
                _what(step), lambda: method(*step.args, **step.kwargs), END
            )
            return self._checked(step, value)
        if isinstance(step, Remote):
            return await getattr(self.provider, "a" + step.op)(*step.args)
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
            return None
        assert attempt is not None, "a flow with Attempt steps needs an attempt callable"
        return await attempt(step.name)

    @staticmethod
    def _checked(step: Store, value: Any) -> Any:
        # The guard logged the failure (or skips the backend for a while): the flow decides.
        if value is END:
            raise BackendError(f"context registry: backend {step.op} unavailable")
        return value


def _what(step: Store) -> str:
    return f"context registry {step.op}"


def run(
    flow: Flow[T], transport: Transport, attempt: Callable[[str | None], Any] | None = None
) -> T:
    """Drive ``flow`` to its result with the sync side of ``transport``."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        try:
            reply = transport.execute(step, attempt)
        except Exception as exc:  # thrown into the flow: handled there or re-raised
            error = exc


async def arun(
    flow: Flow[T], transport: Transport, attempt: Callable[[str | None], Any] | None = None
) -> T:
    """Drive ``flow`` to its result with the async side of ``transport``."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        try:
            reply = await transport.aexecute(step, attempt)
        except Exception as exc:
            error = exc
