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

from collections.abc import Callable, Generator
from typing import Any, Generic, Protocol, TypeVar

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


class _Driving(Generic[T]):
    """The state of one flow being driven: its current step, or its result once it ended."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self.step: Step | None = None
        self.result: T
        self.answer(None)

    def answer(self, reply: Any) -> None:
        """Send ``reply`` to the flow and take its next step."""
        try:
            self.step = self._flow.send(reply)
        except StopIteration as stop:
            self.step, self.result = None, stop.value

    def fail(self, error: Exception) -> None:
        """Throw the failure of the current step into the flow and take its next step."""
        try:
            self.step = self._flow.throw(error)
        except StopIteration as stop:
            self.step, self.result = None, stop.value

    def perform(self, execute: Callable[[Step], Any], step: Step) -> None:
        try:
            reply = execute(step)
        except Exception as exc:
            self.fail(exc)
        else:
            self.answer(reply)


def run(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to its result, performing each step with ``transport.execute``."""
    driving = _Driving(flow)
    while driving.step is not None:
        driving.perform(transport.execute, driving.step)
    return driving.result


async def arun(flow: Flow[T], transport: Transport) -> T:
    """Drive ``flow`` to its result, performing each step with ``await transport.aexecute``."""
    driving = _Driving(flow)
    while driving.step is not None:
        try:
            reply = await transport.aexecute(driving.step)
        except Exception as exc:
            driving.fail(exc)
        else:
            driving.answer(reply)
    return driving.result
