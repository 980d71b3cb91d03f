"""A registry of provider context caches shared by every worker that uses one backend.

Records live in the backend's values under ``namespace`` (default ``semcache-context``):

=====================  ===========================================================================
``ctx:<key>``          the cache of a context: name, model, tokens, expiry (JSON); a refresh
                       claim; or a tombstone after the provider refused it
``lease:<key>``        held (set-if-absent, expires after ``create_wait``) while one worker
                       creates the cache; ``failed`` for a few seconds after a failed create
``small:<key>``        the context is under the model's minimum: send it inline (``min_size_memory``)
``min:<model>``        the minimum the provider reported for a model (``min_size_memory``)
=====================  ===========================================================================

The policy, written once as generator *flows* that yield steps (a backend operation, a provider
operation, a pause, or the caller's own model call) and driven by
:func:`~semcache_core.context_cache.flow.run` (sync) and
:func:`~semcache_core.context_cache.flow.arun` (async), the same shape as
:mod:`semcache_core.engine`:

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
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from semcache_core.backends import Backend, connect
from semcache_core.context_cache.errors import ProviderError, is_refused_cache
from semcache_core.context_cache.flow import (
    END,
    Attempt,
    Flow,
    Pause,
    Remote,
    Store,
    Transport,
    arun,
    run,
)
from semcache_core.context_cache.provider import cached_tokens_of
from semcache_core.context_cache.spec import ContextSpec, first_guess_min_tokens
from semcache_core.context_cache.usage import COUNTER_GROUP, per_model, summarize, validate_prices
from semcache_core.errors import BackendError, SemcacheInputError
from semcache_core.keys import stable_hash, validate_namespace
from semcache_core.resilience import BackendGuard

logger = logging.getLogger("semcache")

T = TypeVar("T")

DISPLAY_PREFIX = "semcache:"
_KEY_CHARS = 32  # stable_hash hex digest

_REC, _LEASE, _SMALL, _MIN = "ctx:", "lease:", "small:", "min:"
_FAILED_LEASE = b"failed"
_TOMBSTONE_TTL = 60.0
_FIRST_PAUSE, _MAX_PAUSE = 0.02, 0.25


@dataclass(frozen=True)
class CachedContext:
    """A provider cache to use for one call: pass :attr:`name` as ``cached_content``."""

    key: str
    name: str
    model: str
    expire_time: float
    tokens: int
    record: bytes = field(repr=False, default=b"")


@dataclass(frozen=True)
class SweepReport:
    records: int
    live: int
    stale_records_removed: list[str]
    orphans: list[str]
    orphans_deleted: list[str]


@dataclass
class _Outcome:
    result: Any
    context: CachedContext | None
    counts: Counter[str]


def _encode(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _decode(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        logger.warning("semcache: ignoring a corrupt context-cache record")
        return None
    return value if isinstance(value, dict) else None


def _model_id(model: str) -> str:
    return model.removeprefix("models/")


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
        for op in ("set_if_absent", "compare_and_set"):
            if getattr(type(self.backend), op) is getattr(Backend, op):
                raise SemcacheInputError(
                    f"{type(self.backend).__name__} has no atomic {op}: a context-cache registry "
                    "needs the memory, SQLite, Redis or Elasticsearch backend"
                )
        self.provider = provider
        self.namespace = validate_namespace(namespace)
        self.ttl = float(ttl)
        self.refresh_margin = float(refresh_margin)
        self.create_wait = float(create_wait)
        self.min_size_memory = float(min_size_memory)
        self.failure_backoff = float(failure_backoff)
        self.prices = validate_prices(prices)
        self._clock = clock
        self._transport = Transport(self.backend, provider, BackendGuard("warn"))
        self._local: Counter[str] = Counter()
        self._local_lock = threading.Lock()

    # -- drivers ------------------------------------------------------------------------------
    def _run(self, flow: Flow[T], attempt: Callable[[str | None], Any] | None = None) -> T:
        return run(flow, self._transport, attempt)

    async def _arun(self, flow: Flow[T], attempt: Callable[[str | None], Any] | None = None) -> T:
        return await arun(flow, self._transport, attempt)

    # -- keys --------------------------------------------------------------------------------
    def key(self, spec: ContextSpec) -> str:
        """The context's key: stable across workers, scoped by the provider's endpoint."""
        return spec.key(self.provider.scope)

    def display_name(self, key: str) -> str:
        """What the cache is called at the provider: semcache, the key, the namespace."""
        return f"{DISPLAY_PREFIX}{key}:{self.namespace}"[:128]

    def _model_key(self, model: str) -> str:
        return _MIN + stable_hash(self.provider.scope, _model_id(model))

    # -- public API (sync) -------------------------------------------------------------------
    def acquire(self, spec: ContextSpec) -> CachedContext | None:
        """The cache to use for ``spec`` (created if needed), or ``None``: send it inline."""
        context, counts = self._run(self._acquire(spec, self.key(spec)))
        self._run(self._flush(counts))
        return context  # type: ignore[no-any-return]

    def call(
        self,
        spec: ContextSpec,
        send: Callable[[str | None], T],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> T:
        """``send(cache_name)`` with this context's cache, recreating it once if refused;
        ``send(None)`` means: send the context inline. Returns what ``send`` returned."""
        outcome: _Outcome = self._run(self._call(spec), send)
        self._countper_model(outcome, usage(outcome.result) if outcome.context else 0)
        self._run(self._flush(outcome.counts))
        return outcome.result  # type: ignore[no-any-return]

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

        outcome: _Outcome = self._run(self._call(spec), first)
        chunks, head = outcome.result
        tokens = 0
        try:
            if head is not END:
                tokens = max(tokens, usage(head))
                yield head
            for chunk in chunks:
                tokens = max(tokens, usage(chunk))
                yield chunk
        finally:
            self._countper_model(outcome, tokens if outcome.context else 0)
            self._run(self._flush(outcome.counts))

    def release(self, spec: ContextSpec) -> bool:
        """Delete the provider cache of ``spec`` and its records; True if a cache was deleted."""
        return self._run(self._release(spec, self.key(spec)))  # type: ignore[no-any-return]

    def sweep(self, *, delete_orphans: bool = False) -> SweepReport:
        """Drop records whose cache is gone; report (and with ``delete_orphans`` delete)
        provider caches named by this registry that no record points to."""
        return self._run(self._sweep(delete_orphans))  # type: ignore[no-any-return]

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
        return context  # type: ignore[no-any-return]

    async def acall(
        self,
        spec: ContextSpec,
        send: Callable[[str | None], Awaitable[T]],
        *,
        usage: Callable[[Any], int] = cached_tokens_of,
    ) -> T:
        outcome: _Outcome = await self._arun(self._call(spec), send)
        self._countper_model(outcome, usage(outcome.result) if outcome.context else 0)
        await self._arun(self._flush(outcome.counts))
        return outcome.result  # type: ignore[no-any-return]

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

        outcome: _Outcome = await self._arun(self._call(spec), first)
        chunks, head = outcome.result
        tokens = 0
        try:
            if head is not END:
                tokens = max(tokens, usage(head))
                yield head
                async for chunk in chunks:
                    tokens = max(tokens, usage(chunk))
                    yield chunk
        finally:
            self._countper_model(outcome, tokens if outcome.context else 0)
            await self._arun(self._flush(outcome.counts))

    async def arelease(self, spec: ContextSpec) -> bool:
        return await self._arun(self._release(spec, self.key(spec)))  # type: ignore[no-any-return]

    async def asweep(self, *, delete_orphans: bool = False) -> SweepReport:
        return await self._arun(self._sweep(delete_orphans))  # type: ignore[no-any-return]

    async def astats(self) -> dict[str, Any]:
        try:
            counters = await self._arun(self._counters())
        except BackendError:
            with self._local_lock:
                counters = dict(self._local)
        return summarize(counters, self.prices)

    # -- the flows ---------------------------------------------------------------------------
    def _live(self, key: str, raw: bytes | None, now: float) -> CachedContext | None:
        record = _decode(raw)
        if not record or "name" not in record or float(record.get("expire_time", 0)) <= now + 1:
            return None
        return CachedContext(
            key=key,
            name=str(record["name"]),
            model=str(record.get("model", "")),
            expire_time=float(record["expire_time"]),
            tokens=int(record.get("tokens", 0)),
            record=raw or b"",
        )

    def _call(self, spec: ContextSpec) -> Flow[_Outcome]:
        key = self.key(spec)
        context, counts = yield from self._acquire(spec, key)
        for retry in (False, True):
            if context is None:
                break
            try:
                result = yield Attempt(context.name)
                return _Outcome(result, context, counts)
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
        return _Outcome(result, None, counts)

    def _acquire(
        self, spec: ContextSpec, key: str
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        ns = self.namespace
        model = _model_id(spec.model)
        inline = Counter({"inline_calls": 1})
        try:
            raw, small, lease, minimum = yield Store(
                "get_many", (ns, [_REC + key, _SMALL + key, _LEASE + key, self._model_key(model)])
            )
        except BackendError:
            return None, inline
        if small is not None:
            return None, inline
        context = self._live(key, raw, self._clock())
        if context is not None:
            context, counts = yield from self._maybe_refresh(context)
            if context is not None:
                counts["reuses"] += 1
                return context, counts
        known_min = _decode(minimum) or {}
        guess = known_min.get("min_tokens") or first_guess_min_tokens(model)
        if guess and spec.estimated_tokens() < guess / 2:
            return None, inline
        return (yield from self._create_or_wait(spec, key, lease))

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
                try:
                    won = yield Store(
                        "set_if_absent",
                        (ns, _LEASE + key, token),
                        {"ttl": max(1.0, self.create_wait)},
                    )
                except BackendError:
                    return None, inline
                if won:
                    return (yield from self._create(spec, key))
            elif lease == _FAILED_LEASE:
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
            try:
                raw, small, lease = yield Store(
                    "get_many", (ns, [_REC + key, _SMALL + key, _LEASE + key])
                )
            except BackendError:
                return None, inline
            if small is not None:
                return None, inline
            context = self._live(key, raw, self._clock())
            if context is not None:
                return context, Counter({"reuses": 1})

    def _create(
        self, spec: ContextSpec, key: str
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        ns = self.namespace
        model = _model_id(spec.model)
        lease_key = _LEASE + key
        try:
            # A creator may have finished between our read and our lease: look once more.
            raw, small = yield Store("get_many", (ns, [_REC + key, _SMALL + key]))
        except BackendError:
            raw = small = None
        context = self._live(key, raw, self._clock())
        if context is not None or small is not None:
            yield from self._soft(Store("delete_many", (ns, [lease_key])))
            if context is None:
                return None, Counter({"inline_calls": 1})
            return context, Counter({"reuses": 1})
        try:
            remote = yield Remote("create", (spec, self.ttl, self.display_name(key)))
        except ProviderError as exc:
            if exc.kind == "too_small":
                note = {"tokens": exc.tokens, "min_tokens": exc.min_tokens}
                logger.info(
                    "semcache: context %s is under the minimum of %s for caching (%s tokens, "
                    "minimum %s); sending it inline for %.0fs",
                    key,
                    model,
                    exc.tokens,
                    exc.min_tokens,
                    self.min_size_memory,
                )
                yield from self._soft(
                    Store(
                        "set_many",
                        (
                            ns,
                            [
                                (_SMALL + key, _encode(note)),
                                (self._model_key(model), _encode(note)),
                            ],
                        ),
                        {"ttl": self.min_size_memory},
                    )
                )
                yield from self._soft(Store("delete_many", (ns, [lease_key])))
            else:
                logger.warning(
                    "semcache: could not create a Gemini context cache, sending the context "
                    "inline for %.0fs: %s",
                    self.failure_backoff,
                    exc,
                )
                yield from self._soft(
                    Store(
                        "set_many",
                        (ns, [(lease_key, _FAILED_LEASE)]),
                        {"ttl": max(1.0, self.failure_backoff)},
                    )
                )
            return None, Counter({"inline_calls": 1})
        now = self._clock()
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
        raw = _encode(record)
        # The record first, then the lease: a waiter never sees neither.
        yield from self._soft(
            Store("set_many", (ns, [(_REC + key, raw)]), {"ttl": max(1.0, expire - now)})
        )
        yield from self._soft(Store("delete_many", (ns, [lease_key])))
        counts = Counter({"creates": 1})
        counts.update(per_model(model, storage_token_hours=remote.tokens * (expire - now) / 3600))
        return CachedContext(key, remote.name, model, expire, remote.tokens, raw), counts

    def _maybe_refresh(
        self, context: CachedContext
    ) -> Flow[tuple[CachedContext | None, Counter[str]]]:
        now = self._clock()
        remaining = context.expire_time - now
        record = _decode(context.record) or {}
        if remaining >= self.refresh_margin or record.get("claim") == context.expire_time:
            return context, Counter()
        ns, rec_key = self.namespace, _REC + context.key
        claimed = _encode({**record, "claim": context.expire_time})
        try:
            won = yield Store(
                "compare_and_set",
                (ns, rec_key, context.record, claimed),
                {"ttl": max(1.0, remaining)},
            )
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
        now = self._clock()
        expire = remote.expire_time or now + self.ttl
        raw = _encode({**record, "expire_time": expire, "claim": None})
        yield from self._soft(
            Store("compare_and_set", (ns, rec_key, claimed, raw), {"ttl": max(1.0, expire - now)})
        )
        counts = Counter({"refreshes": 1})
        added = max(0.0, expire - context.expire_time)
        counts.update(per_model(context.model, storage_token_hours=context.tokens * added / 3600))
        return CachedContext(
            context.key, context.name, context.model, expire, context.tokens, raw
        ), counts

    def _invalidate(self, context: CachedContext) -> Flow[None]:
        """Replace the record by a tombstone only if it still is the one we used."""
        tombstone = _encode({"v": 1, "gone": context.name})
        yield from self._soft(
            Store(
                "compare_and_set",
                (self.namespace, _REC + context.key, context.record, tombstone),
                {"ttl": _TOMBSTONE_TTL},
            )
        )

    def _soft(self, step: Store) -> Flow[Any]:
        """A backend step whose failure is not the caller's problem (logged by the guard)."""
        try:
            return (yield step)
        except BackendError:
            return None

    def _flush(self, counts: Mapping[str, float]) -> Flow[None]:
        clean = {name: float(value) for name, value in counts.items() if value}
        if not clean:
            return
        with self._local_lock:
            self._local.update(clean)
        yield from self._soft(Store("incr_counters", (self.namespace, COUNTER_GROUP, clean)))

    def _countper_model(self, outcome: _Outcome, cached_tokens: int) -> None:
        if outcome.context is not None and cached_tokens:
            outcome.counts.update(per_model(outcome.context.model, cached_tokens=cached_tokens))

    def _counters(self) -> Flow[dict[str, float]]:
        counters = yield Store("get_counters", (self.namespace, COUNTER_GROUP))
        return dict(counters)

    def _release(self, spec: ContextSpec, key: str) -> Flow[bool]:
        ns = self.namespace
        (raw,) = yield Store("get_many", (ns, [_REC + key]))
        record = _decode(raw) or {}
        deleted = False
        counts: Counter[str] = Counter()
        if "name" in record:
            try:
                yield Remote("delete", (record["name"],))
                deleted = True
                left = max(0.0, float(record.get("expire_time", 0)) - self._clock())
                counts.update(
                    per_model(
                        str(record.get("model", "")),
                        storage_token_hours=-int(record.get("tokens", 0)) * left / 3600,
                    )
                )
            except ProviderError as exc:
                if exc.kind != "refused":
                    raise
        yield Store("delete_many", (ns, [_REC + key, _LEASE + key, _SMALL + key]))
        yield from self._flush(counts)
        return deleted

    def _sweep(self, delete_orphans: bool) -> Flow[SweepReport]:
        ns = self.namespace
        keys: list[str] = yield Store("iter_keys", (ns, _REC))
        raws = (yield Store("get_many", (ns, keys))) if keys else []
        remote = yield Remote("list")
        live = {cache.name for cache in remote}
        now = self._clock()
        stale: list[str] = []
        known: set[str] = set()
        for record_key, raw in zip(keys, raws, strict=True):
            record = _decode(raw) or {}
            name = record.get("name")
            if name in live and float(record.get("expire_time", 0)) > now:
                known.add(str(name))
            else:
                stale.append(record_key)
        if stale:
            yield Store("delete_many", (ns, stale))
        suffix = f":{self.namespace}"[: 128 - len(DISPLAY_PREFIX) - _KEY_CHARS]
        ours = [
            cache
            for cache in remote
            if cache.display_name.startswith(DISPLAY_PREFIX)
            and cache.display_name[len(DISPLAY_PREFIX) + _KEY_CHARS :] == suffix
            and cache.name not in known
        ]
        # A cache whose lease is held may be one a worker is creating right now.
        held: list[bytes | None] = []
        if ours:
            lease_keys = [
                _LEASE + c.display_name[len(DISPLAY_PREFIX) : len(DISPLAY_PREFIX) + _KEY_CHARS]
                for c in ours
            ]
            held = yield Store("get_many", (ns, lease_keys))
        orphans = [c.name for c, lease in zip(ours, held, strict=True) if lease is None]
        deleted: list[str] = []
        if delete_orphans:
            for name in orphans:
                try:
                    yield Remote("delete", (name,))
                    deleted.append(name)
                except ProviderError as exc:
                    if exc.kind != "refused":
                        raise
        return SweepReport(
            records=len(keys),
            live=len(known),
            stale_records_removed=[k.removeprefix(_REC) for k in stale],
            orphans=orphans,
            orphans_deleted=deleted,
        )
