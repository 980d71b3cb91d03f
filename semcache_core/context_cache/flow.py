"""The registry's own steps, and the transport that performs every step of a registry flow.

The policy in :mod:`semcache_core.context_cache.registry` is written once as flows of
:mod:`semcache_core.flow`, driven by :func:`semcache_core.flow.run` and
:func:`~semcache_core.flow.arun` (the one sync and the one async driver of semcache). A flow
reads and writes its records with ``yield from backend.ops.<operation>(...)``, whose steps go
to the backend; the steps here are the rest: a provider call (:class:`Remote`), a pause while
another worker creates a cache (:class:`Pause`) and the caller's own model call
(:class:`Attempt`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semcache_core.backends import Backend
from semcache_core.flow import Step
from semcache_core.resilience import BackendGuard

#: What a stream's first attempt returns when the stream had no chunk at all.
END = object()


@dataclass(frozen=True, slots=True)
class Remote(Step):
    """A provider operation (``create``, ``update``, ``delete``, ``list``; ``a``-twin async)."""

    op: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Pause(Step):
    """Wait ``seconds`` before looking at another worker's create again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Attempt(Step):
    """The caller's model call with cache ``name`` (``None``: the context goes inline)."""

    name: str | None


class RegistryTransport:
    """Routes a registry flow's steps: :class:`Remote` to the provider, :class:`Pause` to the
    clock, :class:`Attempt` to the caller's call, and every other step to the backend, behind
    the circuit breaker (``guard.check``). ``attempt`` is sync for :func:`~semcache_core.flow.
    run` and async for :func:`~semcache_core.flow.arun`."""

    def __init__(
        self,
        backend: Backend,
        provider: Any,
        guard: BackendGuard,
        attempt: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.backend, self.provider, self.guard = backend, provider, guard
        self.attempt = attempt

    def _call(self, step: Attempt) -> Any:
        assert self.attempt is not None, "a flow with Attempt steps needs an attempt callable"
        return self.attempt(step.name)

    def execute(self, step: Step) -> Any:
        if isinstance(step, Remote):
            return getattr(self.provider, step.op)(*step.args)
        if isinstance(step, Pause):
            return time.sleep(step.seconds)
        if isinstance(step, Attempt):
            return self._call(step)
        self.guard.check()
        return self.backend.execute(step)

    async def aexecute(self, step: Step) -> Any:
        if isinstance(step, Remote):
            return await getattr(self.provider, "a" + step.op)(*step.args)
        if isinstance(step, Pause):
            return await asyncio.sleep(step.seconds)
        if isinstance(step, Attempt):
            return await self._call(step)
        self.guard.check()
        return await self.backend.aexecute(step)
