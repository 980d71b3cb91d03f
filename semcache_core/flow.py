"""One trampoline for the whole package: flows yield steps, a transport performs them.

A *flow* is a generator that never does I/O. It yields :class:`Step` objects (plain data: the
commands of one Redis round trip, one Elasticsearch API call, one SQL statement, one text to
embed), receives each step's reply, and returns its result. A *transport* performs steps:
``execute`` with a blocking client, ``aexecute`` with an asyncio one. :func:`run` and
:func:`arun` are the only two drivers in semcache, so every operation is written once and its
sync and async paths cannot drift apart (the sans-I/O pattern of hishel and h11).

A step that fails is thrown back into the flow at the ``yield`` that asked for it, so a flow
may handle a failure itself (a failed Redis log compaction does not fail the write that
triggered it) or let it propagate to the caller.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Step:
    """Base class of every step: one I/O action described as data."""

    __slots__ = ()


#: A flow: yields steps, receives their replies, returns a ``T``.
Flow = Generator[Step, Any, T]


class Transport(Protocol):
    """Performs the steps of a flow, blocking or with ``await``."""

    def execute(self, step: Step) -> Any: ...

    async def aexecute(self, step: Step) -> Any: ...


def done(value: T) -> Flow[T]:
    """A flow that needs no step and returns ``value``."""
    return value
    yield  # pragma: no cover - makes this function a generator


def run(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to its result, performing each step with ``transport.execute``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            reply, error = transport.execute(step), None
        except Exception as exc:
            reply, error = None, exc


async def arun(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to its result, performing each step with ``await transport.aexecute``."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            reply, error = await transport.aexecute(step), None
        except Exception as exc:
            reply, error = None, exc
