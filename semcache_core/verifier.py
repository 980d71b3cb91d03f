"""An optional verifier for semantic candidates the trap guard passes.

The guard's rules catch what is lexically visible; a user who wants more can add a judge.
:func:`make_verifier` accepts

- a callable ``(new_prompt, cached_prompt) -> bool`` (sync, or ``async def``);
- a LangChain chat model (anything with ``.invoke(str)`` / ``.ainvoke(str)`` returning a
  message with ``.content``), or
- a LlamaIndex LLM (``.complete(str)`` / ``.acomplete(str)`` returning an object with
  ``.text``),

and returns a :class:`Verifier`. A model is asked a fixed question (:data:`JUDGE_PROMPT`: "do
these two requests have the same answer? answer yes or no") and its reply parsed for a leading
yes or no. Nothing here imports LangChain or LlamaIndex: models are recognized by their
methods.

The verifier **fails closed**: an exception, a timeout (``timeout`` seconds, default 10) or a
reply that is neither yes nor no is a rejection (the lookup becomes a miss; the LLM is called
as without a cache). Verdicts are cached per (new, cached) pair in a bounded LRU, so a repeated
query costs one judge call. :attr:`Verifier.stats` counts calls, rejections, failures and the
judge's latency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from semcache_core.flow import Flow, Step, arun, run

__all__ = [
    "JUDGE_PROMPT",
    "Verifier",
    "VerifierStats",
    "VerifierVerdict",
    "make_verifier",
    "parse_yes_no",
]

#: The question put to a model judge; ``{new}`` and ``{cached}`` are the two prompts.
JUDGE_PROMPT = (
    "You decide whether a cached answer can be reused.\n"
    "Request A: {cached}\n"
    "Request B: {new}\n"
    "Do these two requests have the same answer? Answer yes or no."
)
DEFAULT_TIMEOUT = 10.0
DEFAULT_CACHE_SIZE = 4096

_YES_NO_RE = re.compile(r"^\W*(yes|no)\b", re.I)


def parse_yes_no(reply: str) -> bool | None:
    """True for a reply starting with "yes", False for "no", None for anything else."""
    match = _YES_NO_RE.match(reply or "")
    if match is None:
        return None
    return match.group(1).lower() == "yes"


@dataclass
class VerifierStats:
    """What the verifier did: judge calls, cache hits, rejections, failures, latency."""

    calls: int = 0
    cache_hits: int = 0
    accepted: int = 0
    rejections: int = 0
    failures: int = 0
    timeouts: int = 0
    latency_seconds_total: float = 0.0
    latency_seconds_max: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            mean = self.latency_seconds_total / self.calls if self.calls else 0.0
            return {
                "verifier_calls": self.calls,
                "verifier_cache_hits": self.cache_hits,
                "verifier_accepted": self.accepted,
                "verifier_rejections": self.rejections,
                "verifier_failures": self.failures,
                "verifier_timeouts": self.timeouts,
                "verifier_latency_mean_seconds": mean,
                "verifier_latency_max_seconds": self.latency_seconds_max,
            }


Outcome = Literal["accepted", "rejected", "failed", "timeout"]
_TIMEOUT = "timeout: no verdict in"


@dataclass(frozen=True, slots=True)
class VerifierVerdict:
    """One decision of the verifier: ``ok`` serves the candidate.

    ``outcome``: ``"accepted"``, ``"rejected"`` (the judge said no), ``"failed"`` (an error or
    a reply that is neither yes nor no) or ``"timeout"``; ``cached``: the verdict came from the
    verdict cache (no judge call); ``seconds``: the judge call's duration (0 when cached);
    ``detail``: why a failure failed.
    """

    ok: bool
    outcome: Outcome
    cached: bool = False
    seconds: float = 0.0
    detail: str = ""


Judge = Callable[[str, str], Any]


class Verifier:
    """Consulted for a candidate the guard passed: :meth:`verify` / :meth:`averify` return
    True to serve the cached answer. Fails closed; caches verdicts; thread-safe."""

    def __init__(
        self,
        judge: Judge,
        *,
        ajudge: Callable[[str, str], Awaitable[Any]] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        cache_size: int = DEFAULT_CACHE_SIZE,
        name: str = "callable",
    ) -> None:
        self._judge = judge
        self._ajudge = ajudge
        self.timeout = timeout
        self.cache_size = cache_size
        self.name = name
        self.stats = VerifierStats()
        self._verdicts: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"Verifier({self.name}, timeout={self.timeout})"

    # -- the verdict cache -------------------------------------------------------------------

    def _cached(self, key: tuple[str, str]) -> VerifierVerdict | None:
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is not None:
                self._verdicts.move_to_end(key)
        if verdict is None:
            return None
        with self.stats._lock:
            self.stats.cache_hits += 1
        return VerifierVerdict(verdict, "accepted" if verdict else "rejected", cached=True)

    def _record(
        self, key: tuple[str, str], reply: Any, started: float, *, error: str = ""
    ) -> VerifierVerdict:
        """Count one judge call. A reply that is no verdict, or an ``error`` (the call failed
        or timed out), is a rejection and is not cached, so a passing outage does not stick."""
        seconds = time.perf_counter() - started
        verdict = None if error else _as_verdict(reply)
        timed_out = error.startswith(_TIMEOUT)
        with self.stats._lock:
            self.stats.calls += 1
            self.stats.latency_seconds_total += seconds
            self.stats.latency_seconds_max = max(self.stats.latency_seconds_max, seconds)
            self.stats.timeouts += timed_out
            if verdict is None:
                self.stats.failures += 1
            if verdict:
                self.stats.accepted += 1
            else:
                self.stats.rejections += 1
        if verdict is None:
            detail = error or f"the judge gave no yes or no: {_shorten(reply)}"
            outcome: Outcome = "timeout" if timed_out else "failed"
            return VerifierVerdict(False, outcome, False, seconds, detail)
        if self.cache_size > 0:
            with self._lock:
                self._verdicts[key] = verdict
                self._verdicts.move_to_end(key)
                while len(self._verdicts) > self.cache_size:
                    self._verdicts.popitem(last=False)
        return VerifierVerdict(verdict, "accepted" if verdict else "rejected", False, seconds)

    # -- sync and async ------------------------------------------------------------------------

    def verify(self, new_prompt: str, cached_prompt: str) -> bool:
        """Whether the answer cached for ``cached_prompt`` may be served for ``new_prompt``."""
        return self.verdict(new_prompt, cached_prompt).ok

    async def averify(self, new_prompt: str, cached_prompt: str) -> bool:
        """:meth:`verify` for async code."""
        return (await self.averdict(new_prompt, cached_prompt)).ok

    def verdict(self, new_prompt: str, cached_prompt: str) -> VerifierVerdict:
        """:meth:`verify` with what happened: the outcome, whether the verdict came from the
        cache, the judge's latency and, for a failure, why."""
        return run(self._verdict_flow(new_prompt, cached_prompt), _JudgeTransport(self))

    async def averdict(self, new_prompt: str, cached_prompt: str) -> VerifierVerdict:
        """:meth:`verdict` for async code: the async judge if there is one, else the sync
        judge in a worker thread; the timeout applies either way."""
        return await arun(self._verdict_flow(new_prompt, cached_prompt), _JudgeTransport(self))

    def _verdict_flow(self, new_prompt: str, cached_prompt: str) -> Flow[VerifierVerdict]:
        """The verdict policy, written once: the cache, one judge call, what a failure means."""
        key = (new_prompt, cached_prompt)
        cached = self._cached(key)
        if cached is not None:
            return cached
        started = time.perf_counter()
        try:
            reply = yield AskJudge(new_prompt, cached_prompt)
        except (concurrent.futures.TimeoutError, asyncio.TimeoutError):
            return self._record(key, None, started, error=f"{_TIMEOUT} {self.timeout}s")
        except Exception as exc:
            return self._record(key, None, started, error=f"{type(exc).__name__}: {exc}")
        return self._record(key, reply, started)

    def _ask(self, step: AskJudge) -> Any:
        if self.timeout is None:
            return self._judge(step.new_prompt, step.cached_prompt)
        future = self._executor().submit(self._judge, step.new_prompt, step.cached_prompt)
        return future.result(timeout=self.timeout)

    async def _aask(self, step: AskJudge) -> Any:
        if self._ajudge is not None:
            call = self._ajudge(step.new_prompt, step.cached_prompt)
        else:
            call = asyncio.get_running_loop().run_in_executor(
                self._executor(), self._judge, step.new_prompt, step.cached_prompt
            )
        return await asyncio.wait_for(call, self.timeout)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        # A timed-out judge keeps its thread until it returns; a small pool bounds them.
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="semcache-verifier"
                )
            return self._pool

    def close(self) -> None:
        """Release the worker threads (judges still running are not waited for)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _shorten(reply: Any, limit: int = 60) -> str:
    text = repr(reply)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_verdict(value: Any) -> bool | None:
    """A judge's result as a verdict: a bool is itself, a string is parsed; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_yes_no(value)
    return None


def _reply_text(reply: Any) -> str | None:
    """The text of a LangChain message (``.content``), a LlamaIndex response (``.text``), or
    a plain string."""
    if isinstance(reply, str):
        return reply
    for attribute in ("content", "text"):
        value = getattr(reply, attribute, None)
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # LangChain content blocks
            parts = [p if isinstance(p, str) else p.get("text", "") for p in value]
            return "".join(p for p in parts if isinstance(p, str))
    return None


def _model_judges(
    model: Any, call: str, acall: str, prompt: str
) -> tuple[Judge, Callable[[str, str], Awaitable[Any]] | None]:
    def judge(new_prompt: str, cached_prompt: str) -> bool | None:
        reply = getattr(model, call)(prompt.format(new=new_prompt, cached=cached_prompt))
        text = _reply_text(reply)
        return parse_yes_no(text) if text is not None else None

    async def ajudge(new_prompt: str, cached_prompt: str) -> bool | None:
        reply = await getattr(model, acall)(prompt.format(new=new_prompt, cached=cached_prompt))
        text = _reply_text(reply)
        return parse_yes_no(text) if text is not None else None

    return judge, (ajudge if callable(getattr(model, acall, None)) else None)


def make_verifier(
    obj: Any,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    cache_size: int = DEFAULT_CACHE_SIZE,
    prompt: str = JUDGE_PROMPT,
) -> Verifier:
    """A :class:`Verifier` from a callable, a LangChain chat model or a LlamaIndex LLM (or an
    existing :class:`Verifier`, returned as is). Raises TypeError for anything else."""
    if isinstance(obj, Verifier):
        return obj
    options: dict[str, Any] = {"timeout": timeout, "cache_size": cache_size}
    if callable(getattr(obj, "invoke", None)):  # LangChain Runnable / chat model
        judge, ajudge = _model_judges(obj, "invoke", "ainvoke", prompt)
        return Verifier(judge, ajudge=ajudge, name=type(obj).__name__, **options)
    if callable(getattr(obj, "complete", None)):  # LlamaIndex LLM
        judge, ajudge = _model_judges(obj, "complete", "acomplete", prompt)
        return Verifier(judge, ajudge=ajudge, name=type(obj).__name__, **options)
    if callable(obj):
        if inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(
            getattr(obj, "__call__", None)  # noqa: B004
        ):

            def sync_judge(new_prompt: str, cached_prompt: str) -> Any:
                return asyncio.run(obj(new_prompt, cached_prompt))

            return Verifier(sync_judge, ajudge=obj, name="async callable", **options)
        return Verifier(obj, name=getattr(obj, "__name__", "callable"), **options)
    raise TypeError(
        "verifier must be a callable (new_prompt, cached_prompt) -> bool, a LangChain chat "
        f"model (.invoke) or a LlamaIndex LLM (.complete); got {type(obj).__name__}"
    )


@dataclass(frozen=True, slots=True)
class AskJudge(Step):
    """One judge call: do ``new_prompt`` and ``cached_prompt`` have the same answer?"""

    new_prompt: str
    cached_prompt: str


class _JudgeTransport:
    """Performs :class:`AskJudge` steps with the verifier's sync or async judge."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    def execute(self, step: Step) -> Any:
        assert isinstance(step, AskJudge)
        return self._verifier._ask(step)

    async def aexecute(self, step: Step) -> Any:
        assert isinstance(step, AskJudge)
        return await self._verifier._aask(step)
