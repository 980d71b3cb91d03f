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
    """Drive ``flow`` to its result, performing each step with ``transport.execute``.

    A failed step is thrown into the flow; the flow's ``StopIteration`` carries its result.
    Written as one tight loop: an exact hit on the in-memory backend is a few microseconds of
    work, and a driver object's method calls were a measurable share of it.
    """
    execute = transport.execute
    try:
        step = flow.send(None)
        while True:
            try:
                reply = execute(step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def arun(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to its result, performing each step with ``await transport.aexecute``."""
    aexecute = transport.aexecute
    try:
        step = flow.send(None)
        while True:
            try:
                reply = await aexecute(step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result
