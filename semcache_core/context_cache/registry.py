"""A registry of provider context caches shared by every worker that uses one backend.

Records live in the backend's values under ``namespace`` (default ``semcache-context``), laid
out in :mod:`~semcache_core.context_cache.records`.

The policy, written once as :mod:`semcache_core.flow` flows (backend operations, provider
operations, pauses and the caller's own model call, see
:mod:`~semcache_core.context_cache.flow`), driven by :func:`semcache_core.flow.run` and
:func:`~semcache_core.flow.arun` like every flow of :mod:`semcache_core.engine`:

* **One create per context.** A worker that finds no record takes the lease with an atomic
  ``set_if_absent``, re-reads the record (a creator may have finished in between), creates the
  cache and writes the record before it lets the lease go. The others poll the record (20 ms,
  doubling to 250 ms) for up to ``create_wait`` seconds and then use the winner's cache; only
  a wait that times out sends the context inline. A holder that crashed leaves a lease that
  expires after ``create_wait`` seconds.
* **Never a failed call because of the cache.** A call refused because of its cache (404, 403,
  400 FAILED_PRECONDITION, see :mod:`~semcache_core.context_cache.errors`) invalidates the
  record with a compare-and-set (so a worker late with the same refusal cannot erase the cache
  another one just recreated), recreates it once and retries once; if that fails too, the call
  goes inline. A stream is retried only before its first chunk. A backend that fails means
  inline, with a warning on the ``semcache`` logger and the backend left alone for 5 s
  (:class:`~semcache_core.resilience.BackendGuard`). A failed create (other than "too small")
  is logged and sends the context inline for ``failure_backoff`` seconds.
* **TTL.** A reuse that finds less than ``refresh_margin`` seconds left claims the refresh by
  compare-and-set on the record (the claim names the expiry it refreshes, so one worker per
  window wins), calls ``update(ttl=)`` and writes the new expiry. Idle caches are never touched
  and expire.
* **Minimum size.** A create refused as too small records ``small:<key>`` and ``min:<model>``;
  later calls go inline without a create. A context estimated at under half of the known (or
  documented, :data:`~semcache_core.context_cache.spec.MIN_TOKENS_FIRST_GUESS`) minimum is not
  tried.
* **Counters** (``stats()``, ``semcache stats``): ``creates``, ``reuses``, ``refreshes``,
  ``recreations``, ``inline_calls``, ``cached_tokens`` (from the responses that used a cache),
  ``storage_token_hours`` (tokens x hours of lifetime bought by creates and refreshes, less
  what ``release`` gives back), and ``estimated_savings`` from ``prices``. Flushed to the
  backend once per call (one round trip, skipped when the backend is down).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar, cast

from semcache_core.backends import Backend, connect
from semcache_core.context_cache.errors import ProviderError, is_refused_cache
from semcache_core.context_cache.flow import END, Attempt, Pause, RegistryTransport, Remote
from semcache_core.context_cache.provider import cached_tokens_of
from semcache_core.context_cache.records import (
    DISPLAY_PREFIX,
    FAILED_LEASE,
    LEASE,
    MIN,
    REC,
    SMALL,
    TOMBSTONE_TTL,
    CachedContext,
    Outcome,
    SweepReport,
    decode,
    encode,
    live_context,
    logger,
    model_id,
)
from semcache_core.context_cache.spec import ContextSpec, first_guess_min_tokens
from semcache_core.context_cache.sweep import sweep
from semcache_core.context_cache.usage import COUNTER_GROUP, per_model, summarize, validate_prices
from semcache_core.errors import BackendError, SemcacheInputError
from semcache_core.flow import Flow, arun, run
from semcache_core.keys import stable_hash, validate_namespace
from semcache_core.resilience import BackendGuard

T = TypeVar("T")

_FIRST_PAUSE, _MAX_PAUSE = 0.02, 0.25
#: What a failed backend operation returns inside :meth:`ContextCacheRegistry.guarded`.
_FAILED: Any = object()


class ContextCacheRegistry:
    """One provider context cache per unique context, shared through ``backend``.

    ``backend``: anything :func:`semcache_core.connect` takes (``None``: in-process memory,
    shared by the threads of one process only). ``provider``: a
    :class:`~semcache_core.context_cache.provider.GeminiProvider`. Durations in seconds:
    ``ttl`` of created caches, ``refresh_margin`` (refresh a cache in use when less remains),
    ``create_wait`` (how long a worker waits for another one's create; also the lease's
    lifetime), ``min_size_memory`` (how long "too small" is remembered), ``failure_backoff``
    (inline after a failed create). ``prices``: ``{model: {"input", "cached_input",
    "storage_per_hour"}}`` in any currency per million tokens (nothing is built in).
    ``clock`` (seconds since the epoch) is injectable for tests.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        provider: Any,
        namespace: str = "semcache-context",
        ttl: float = 3600,
        refresh_margin: float = 60,
        create_wait: float = 10,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        min_size_memory: float = 3600,
        failure_backoff: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (
            ("ttl", ttl),
            ("refresh_margin", refresh_margin),
            ("create_wait", create_wait),
            ("min_size_memory", min_size_memory),
            ("failure_backoff", failure_backoff),
        ):
            if not isinstance(value, (int, float)) or value < 0:
                raise SemcacheInputError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if ttl < 1:
            raise SemcacheInputError(f"ttl must be at least 1 second, got {ttl!r}")
        if refresh_margin >= ttl:
            raise SemcacheInputError(
                f"refresh_margin ({refresh_margin}) must be shorter than ttl ({ttl}), or every "
                "use would refresh"
            )
        self.backend = connect(backend)
        self.provider = provider
        self.namespace = validate_namespace(namespace)
        self.ttl = float(ttl)
        self.refresh_margin = float(refresh_margin)
        self.create_wait = float(create_wait)
        self.min_size_memory = float(min_size_memory)
        self.failure_backoff = float(failure_backoff)
        self.prices = validate_prices(prices)
        self.clock = clock
        self.ops = self.backend.ops
        self.guard = BackendGuard("warn")
        self._local: Counter[str] = Counter()
        self._local_lock = threading.Lock()

    # -- drivers: the package's one run and arun -------------------------------------------
    def _run(self, flow: Flow[T], attempt: Callable[[str | None], Any] | None = None) -> T:
        return run(flow, RegistryTransport(self.backend, self.provider, self.guard, attempt))

    async def _arun(self, flow: Flow[T], attempt: Callable[[str | None], Any] | None = None) -> T:
        return await arun(flow, RegistryTransport(self.backend, self.provider, self.guard, attempt))

    def guarded(self, what: str, operation: Flow[T]) -> Flow[T]:
        """A backend operation; a failure is logged by the guard (which then leaves the
        backend alone for 5 s) and raised as ``BackendError`` for the flow to decide."""
        result = yield from self.guard.shield(f"context registry {what}", operation, _FAILED)
        if result is _FAILED:
            raise BackendError(f"context registry: backend {what} unavailable")
        return cast(T, result)

    def _soft(self, what: str, operation: Flow[Any]) -> Flow[None]:
        """A backend write whose failure is not the caller's problem (logged by the guard)."""
        yield from self.guard.shield(f"context registry {what}", operation, None)

    # -- keys --------------------------------------------------------------------------------
    def key(self, spec: ContextSpec) -> str:
        """The context's key: stable across workers, scoped by the provider's endpoint."""
        return spec.key(self.provider.scope)

    def display_name(self, key: str) -> str:
        """What the cache is called at the provider: semcache, the key, the namespace."""
        return f"{DISPLAY_PREFIX}{key}:{self.namespace}"[:128]

    def _model_key(self, model: str) -> str:
        return MIN + stable_hash(self.provider.scope, model_id(model))

    # -- public API (sync) -------------------------------------------------------------------
    def acquire(self, spec: ContextSpec) -> CachedContext | None:
        """The cache to use for ``spec`` (created if needed), or ``None``: send it inline."""
        context, counts = self._run(self._acquire(spec, self.key(spec)))
        self._run(self._flush(counts))
        return context

    def call(
        self,
        spec: ContextSpec,
        send: Callable[[str | None], T],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> T:
        """``send(cache_name)`` with this context's cache, recreating it once if refused;
        ``send(None)`` means: send the context inline. Returns what ``send`` returned."""
        outcome: Outcome = self._run(self._call(spec), send)
        self._run(self._finish(outcome, usage(outcome.result)))
        return cast(T, outcome.result)

    def stream(
        self,
        spec: ContextSpec,
        open_stream: Callable[[str | None], Iterator[T]],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> Iterator[T]:
        """Like :meth:`call` for a stream: retried only before its first chunk."""

        def first(name: str | None) -> tuple[Iterator[T], Any]:
            chunks = iter(open_stream(name))
            return chunks, next(chunks, END)

        outcome: Outcome = self._run(self._call(spec), first)
        chunks, head = outcome.result
        seen = _Seen(usage)
        try:
            yield from map(seen, itertools.chain(() if head is END else (head,), chunks))
        finally:
            self._run(self._finish(outcome, seen.tokens))

    def release(self, spec: ContextSpec) -> bool:
        """Delete the provider cache of ``spec`` and its records; True if a cache was deleted."""
        return self._run(self._release(spec, self.key(spec)))

    def sweep(self, *, delete_orphans: bool = False) -> SweepReport:
        """Drop records whose cache is gone; report (and with ``delete_orphans`` delete)
        provider caches named by this registry that no record points to."""
        return self._run(sweep(self, delete_orphans))

    def stats(self) -> dict[str, Any]:
        """Counters of every worker (persisted), or this process's when the backend is down."""
        try:
            counters = self._run(self._counters())
        except BackendError:
            with self._local_lock:
                counters = dict(self._local)
        return summarize(counters, self.prices)

    # -- public API (async) ------------------------------------------------------------------
    async def aacquire(self, spec: ContextSpec) -> CachedContext | None:
        context, counts = await self._arun(self._acquire(spec, self.key(spec)))
        await self._arun(self._flush(counts))
        return context

    async def acall(
        self,
        spec: ContextSpec,
        send: Callable[[str | None], Awaitable[T]],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> T:
        outcome: Outcome = await self._arun(self._call(spec), send)
        await self._arun(self._finish(outcome, usage(outcome.result)))
        return cast(T, outcome.result)

    async def astream(
        self,
        spec: ContextSpec,
        open_stream: Callable[[str | None], Any],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> AsyncIterator[Any]:
        async def first(name: str | None) -> tuple[AsyncIterator[Any], Any]:
            chunks = open_stream(name)
            if asyncio.iscoroutine(chunks):
                chunks = await chunks
            chunks = chunks.__aiter__()
            try:
                return chunks, await chunks.__anext__()
            except StopAsyncIteration:
                return chunks, END

        outcome: Outcome = await self._arun(self._call(spec), first)
        chunks, head = outcome.result
        seen = _Seen(usage)
        try:
            if head is not END:
                yield seen(head)
                async for chunk in chunks:
                    yield seen(chunk)
        finally:
            await self._arun(self._finish(outcome, seen.tokens))

    async def arelease(self, spec: ContextSpec) -> bool:
        return await self._arun(self._release(spec, self.key(spec)))

    async def asweep(self, *, delete_orphans: bool = False) -> SweepReport:
        return await self._arun(sweep(self, delete_orphans))

    async def astats(self) -> dict[str, Any]:
        try:
            counters = await self._arun(self._counters())
        except BackendError:
            with self._local_lock:
                counters = dict(self._local)
        return summarize(counters, self.prices)

    # -- the flows ---------------------------------------------------------------------------
    def _call(self, spec: ContextSpec) -> Flow[Outcome]:
        key = self.key(spec)
        context, counts = yield from self._acquire(spec, key)
        for retry in (False, True):
            if context is None:
                break
            try:
                result = yield Attempt(context.name)
                return Outcome(result, context, counts)
            except Exception as exc:
                if not is_refused_cache(exc):
                    raise
                logger.info(
                    "semcache: Gemini refused cached content %s (%s)%s",
                    context.name,
                    exc,
                    "; sending the context inline" if retry else "; recreating it once",
                )
            yield from self._invalidate(context)
            if retry:
                context = None
                counts["inline_calls"] += 1
            else:
                counts["recreations"] += 1
                context, more = yield from self._acquire(spec, key)
                counts.update(more)
        result = yield Attempt(None)
        return Outcome(result, None, counts)

    def _acquire(
        self, spec: ContextSpec, key: str
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        model = model_id(spec.model)
        inline = Counter({"inline_calls": 1})
        found = yield from self._look(key, self._model_key(model))
        if found is None or found[1] is not None:  # backend down, or too small: inline
            return None, inline
        raw, _small, lease, minimum = found
        context = live_context(key, raw, self.clock())
        if context is not None:
            context, counts = yield from self._maybe_refresh(context)
            if context is not None:
                counts["reuses"] += 1
                return context, counts
        known_min = decode(minimum) or {}
        guess = known_min.get("min_tokens") or first_guess_min_tokens(model)
        if guess and spec.estimated_tokens() < guess / 2:
            return None, inline
        return (yield from self._create_or_wait(spec, key, lease))

    def _look(self, key: str, *more: str) -> Flow[list[bytes | None] | None]:
        """The record, size note and lease of ``key``, then ``more``; None: backend failed."""
        names = [REC + key, SMALL + key, LEASE + key, *more]
        try:
            return (yield from self.guarded("get_many", self.ops.get_many(self.namespace, names)))
        except BackendError:
            return None

    def _create_or_wait(
        self, spec: ContextSpec, key: str, lease: bytes | None
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        ns = self.namespace
        inline = Counter({"inline_calls": 1})
        deadline = time.monotonic() + self.create_wait
        pause = _FIRST_PAUSE
        token = uuid.uuid4().hex.encode()
        while True:
            if lease is None:
                take = self.ops.set_if_absent(
                    ns, LEASE + key, token, ttl=max(1.0, self.create_wait)
                )
                try:
                    won = yield from self.guarded("set_if_absent", take)
                except BackendError:
                    return None, inline
                if won:
                    return (yield from self._create(spec, key))
            elif lease == FAILED_LEASE:
                return None, inline
            if time.monotonic() >= deadline:
                logger.info(
                    "semcache: waited %.1fs for another worker to create context cache %s; "
                    "sending the context inline",
                    self.create_wait,
                    key,
                )
                return None, inline
            yield Pause(pause)
            pause = min(pause * 2, _MAX_PAUSE)
            found = yield from self._look(key)
            if found is None or found[1] is not None:
                return None, inline
            raw, _small, lease = found
            context = live_context(key, raw, self.clock())
            if context is not None:
                return context, Counter({"reuses": 1})

    def _create(
        self, spec: ContextSpec, key: str
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        ns = self.namespace
        model = model_id(spec.model)
        unlease = self.ops.delete_many(ns, [LEASE + key])
        try:
            # A creator may have finished between our read and our lease: look once more.
            raw, small = yield from self.guarded(
                "get_many", self.ops.get_many(ns, [REC + key, SMALL + key])
            )
        except BackendError:
            raw = small = None
        context = live_context(key, raw, self.clock())
        if context is not None or small is not None:
            yield from self._soft("delete_many", unlease)
            if context is None:
                return None, Counter({"inline_calls": 1})
            return context, Counter({"reuses": 1})
        try:
            remote = yield Remote("create", (spec, self.ttl, self.display_name(key)))
        except ProviderError as exc:
            yield from self._create_failed(key, model, exc, unlease)
            return None, Counter({"inline_calls": 1})
        now = self.clock()
        expire = remote.expire_time or now + self.ttl
        record = {
            "v": 1,
            "name": remote.name,
            "model": model,
            "tokens": remote.tokens,
            "expire_time": expire,
            "created_at": now,
            "claim": None,
        }
        raw = encode(record)
        # The record first, then the lease: a waiter never sees neither.
        write = self.ops.set_many(ns, [(REC + key, raw)], ttl=max(1.0, expire - now))
        yield from self._soft("set_many", write)
        yield from self._soft("delete_many", unlease)
        counts = Counter({"creates": 1})
        counts.update(per_model(model, storage_token_hours=remote.tokens * (expire - now) / 3600))
        return CachedContext(key, remote.name, model, expire, remote.tokens, raw), counts

    def _create_failed(
        self, key: str, model: str, exc: ProviderError, unlease: Flow[None]
    ) -> Flow[None]:
        """Remember a "too small" context (and the model's minimum), or back off after
        another failed create (the lease stays, as ``failed``, for ``failure_backoff``)."""
        ns = self.namespace
        if exc.kind == "too_small":
            note = encode({"tokens": exc.tokens, "min_tokens": exc.min_tokens})
            logger.info(
                "semcache: context %s is under the minimum of %s for caching (%s tokens, "
                "minimum %s); sending it inline for %.0fs",
                key,
                model,
                exc.tokens,
                exc.min_tokens,
                self.min_size_memory,
            )
            items = [(SMALL + key, note), (self._model_key(model), note)]
            write = self.ops.set_many(ns, items, ttl=self.min_size_memory)
            yield from self._soft("set_many", write)
            yield from self._soft("delete_many", unlease)
            return
        logger.warning(
            "semcache: could not create a Gemini context cache, sending the context "
            "inline for %.0fs: %s",
            self.failure_backoff,
            exc,
        )
        failed = [(LEASE + key, FAILED_LEASE)]
        yield from self._soft(
            "set_many", self.ops.set_many(ns, failed, ttl=max(1.0, self.failure_backoff))
        )

    def _maybe_refresh(
        self, context: CachedContext
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        now = self.clock()
        remaining = context.expire_time - now
        record = decode(context.record) or {}
        if remaining >= self.refresh_margin or record.get("claim") == context.expire_time:
            return context, Counter()
        ns, rec_key = self.namespace, REC + context.key
        claimed = encode({**record, "claim": context.expire_time})
        claim = self.ops.compare_and_set(
            ns, rec_key, context.record, claimed, ttl=max(1.0, remaining)
        )
        try:
            won = yield from self.guarded("compare_and_set", claim)
        except BackendError:
            return context, Counter()
        if not won:  # another worker refreshes this window
            return context, Counter()
        try:
            remote = yield Remote("update", (context.name, self.ttl))
        except ProviderError as exc:
            if exc.kind == "refused":
                yield from self._invalidate(
                    CachedContext(context.key, context.name, context.model, 0, 0, claimed)
                )
                return None, Counter()
            logger.warning("semcache: could not refresh Gemini cache %s: %s", context.name, exc)
            return context, Counter()
        now = self.clock()
        expire = remote.expire_time or now + self.ttl
        raw = encode({**record, "expire_time": expire, "claim": None})
        done = self.ops.compare_and_set(ns, rec_key, claimed, raw, ttl=max(1.0, expire - now))
        yield from self._soft("compare_and_set", done)
        counts = Counter({"refreshes": 1})
        added = max(0.0, expire - context.expire_time)
        counts.update(per_model(context.model, storage_token_hours=context.tokens * added / 3600))
        return CachedContext(
            context.key, context.name, context.model, expire, context.tokens, raw
        ), counts

    def _invalidate(self, context: CachedContext) -> Flow[None]:
        """Replace the record by a tombstone only if it still is the one we used."""
        tombstone = encode({"v": 1, "gone": context.name})
        swap = self.ops.compare_and_set(
            self.namespace, REC + context.key, context.record, tombstone, ttl=TOMBSTONE_TTL
        )
        yield from self._soft("compare_and_set", swap)

    def _finish(self, outcome: Outcome, cached_tokens: int) -> Flow[None]:
        """Count the cached tokens of a call that used a cache, then flush its counters."""
        if outcome.context is not None and cached_tokens:
            outcome.counts.update(per_model(outcome.context.model, cached_tokens=cached_tokens))
        yield from self._flush(outcome.counts)

    def _flush(self, counts: Mapping[str, float]) -> Flow[None]:
        clean = {name: float(value) for name, value in counts.items() if value}
        if not clean:
            return
        with self._local_lock:
            self._local.update(clean)
        yield from self._soft(
            "incr_counters", self.ops.incr_counters(self.namespace, COUNTER_GROUP, clean)
        )

    def _counters(self) -> Flow[dict[str, float]]:
        read = self.ops.get_counters(self.namespace, COUNTER_GROUP)
        return dict((yield from self.guarded("get_counters", read)))

    def _release(self, spec: ContextSpec, key: str) -> Flow[bool]:
        ns = self.namespace
        (raw,) = yield from self.guarded("get_many", self.ops.get_many(ns, [REC + key]))
        record = decode(raw) or {}
        deleted = False
        counts: Counter[str] = Counter()
        if "name" in record:
            try:
                yield Remote("delete", (record["name"],))
                deleted = True
                left = max(0.0, float(record.get("expire_time", 0)) - self.clock())
                counts.update(
                    per_model(
                        str(record.get("model", "")),
                        storage_token_hours=-int(record.get("tokens") or 0) * left / 3600,
                    )
                )
            except ProviderError as exc:
                if exc.kind != "refused":
                    raise
        names = [REC + key, LEASE + key, SMALL + key]
        yield from self.guarded("delete_many", self.ops.delete_many(ns, names))
        yield from self._flush(counts)
        return deleted


class _Seen:
    """Passes a stream's chunks through, keeping the most cached tokens any of them reports."""

    def __init__(self, usage: Callable[[Any], int]) -> None:
        self.usage = usage
        self.tokens = 0

    def __call__(self, chunk: T) -> T:
        self.tokens = max(self.tokens, self.usage(chunk))
        return chunk
