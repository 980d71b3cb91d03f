"""Async clients belong to the event loop that opened them: close each one in its own loop.

``asyncio.run`` called twice gives two loops; a client built in the first is unusable in the
second, and closing it from there raises ``RuntimeError`` (its futures belong to the first
loop). So a backend keeps one async client per loop, and each client is closed *in its loop*:

* when that loop shuts down (:func:`close_at_loop_end`: an async generator the loop finalizes
  in ``shutdown_asyncgens``, which ``asyncio.run`` and pytest-asyncio call before closing it),
  so a program that never calls ``aclose()`` leaves no unclosed-session warnings;
* or by ``aclose()`` from any loop (:func:`close_in_loop`): directly in the current loop,
  via ``run_coroutine_threadsafe`` in a loop running in another thread, and not at all in a
  closed loop (it was closed when that loop ended).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

Close = Callable[[], Awaitable[object]]
#: A started async generator whose finalization closes one client (see the functions below).
Guard = AsyncGenerator[None, None]


async def _closing(close: Close) -> Guard:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await close()


async def close_at_loop_end(close: Close) -> Guard:
    """A guard that runs ``close()`` in the running loop when the loop shuts down, or when
    :func:`close_in_loop` closes it first. Keep it referenced: the loop holds it weakly."""
    guard = _closing(close)
    await guard.__anext__()
    return guard


async def close_in_loop(loop: asyncio.AbstractEventLoop, guard: Guard) -> None:
    """Close ``guard``'s client in ``loop``, from whatever loop runs now (module docstring)."""
    if loop is asyncio.get_running_loop():
        await guard.aclose()
    elif loop.is_running() and not loop.is_closed():
        future = asyncio.run_coroutine_threadsafe(_finish(guard), loop)
        await asyncio.wrap_future(future)


async def _finish(guard: Guard) -> None:
    await guard.aclose()
