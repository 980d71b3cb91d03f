"""The cache policy, written once for every adapter and backend.

:class:`ResponseCache` caches LLM responses (exact, and semantic when given an embedder);
:class:`KeyValueCache` holds the values of ByteStore/KV adapters. Both take care of keys,
namespaces, TTL, input validation, stats and backend errors, and delegate storage to a
:class:`~semcache_core.backends.base.Backend`.

Each operation is written once, as a flow (:mod:`semcache_core.flow`) that composes the
backend's operations (``yield from self.ops.get_many(...)``), :class:`Embed` steps and the
verifier's :class:`~semcache_core.stages.Verify` steps; the public sync and async methods are
``run``/``arun`` of that flow over the engine's transport, so the two paths cannot drift apart.
The one exception is the lookup of an exact cache, a single backend read: it runs without a
flow of its own (:meth:`ResponseCache._exact`; the backend's steps, breaker and error policy
are the same), and :meth:`ResponseCache.lookup_value` serves its hits through the per-cache
memo of :mod:`semcache_core.memo` (validated once per distinct stored entry, new objects for
every caller).

A semantic lookup, in order: the query without padding (greetings, thanks, urgency, emoji:
:func:`~semcache_core.stages.compared_query`; it keys the entry and is what is embedded, while
the body keeps the query as asked, for auditing and for the guard); the exact entry of that
query (no embedding); else one embedding, the nearest stored queries of the
partition, and for each, nearest first, the candidate stages of :mod:`semcache_core.stages`
(threshold, trap guard, verifier); the first candidate that passes them all is served.
:meth:`ResponseCache.explain` runs the same stages and reports each one's verdict.
A conversation (``context_match="semantic"``, the default) goes the same way with the keys,
vectors and ``context`` stage of :class:`~semcache_core.conversation.stage.ConversationMatching`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from semcache_core import keys
from semcache_core.backends import Backend, VectorHit, VectorRecord, connect
from semcache_core.codecs import (
    Vector,
    as_vector,
    decode_entry,
    encode_entry,
    normalize,
    validate_ttl,
)
from semcache_core.controls import OperatorControls
from semcache_core.conversation import stage as chat
from semcache_core.embedder import Embedder
from semcache_core.errors import BackendError, SemcacheInputError, VectorDimensionError
from semcache_core.flow import Flow, Step, arun, run
from semcache_core.memo import EntryMemo, Rebuild
from semcache_core.prompt import Prompt
from semcache_core.resilience import HANDLED, BackendGuard, ErrorPolicy, breaker_of
from semcache_core.scope import (
    ScopeFields,
    check_fields,
    current_scope,
    current_scope_now,
    merged,
    validate_filterable_fields,
    validate_filters,
)
from semcache_core.semantic_keys import SemanticKeys
from semcache_core.stages import (
    Candidate,
    Query,
    Verify,
    decide,
    pipeline,
)
from semcache_core.stats import COUNTER_GROUP, CacheStats, from_counters
from semcache_core.verifier import Verifier, make_verifier

if TYPE_CHECKING:
    from semcache_core.explain import Explanation
    from semcache_core.neutral import Match

logger = logging.getLogger("semcache")
R = TypeVar("R")
#: A response entry's value: a JSON object the adapter builds.
Body = dict[str, Any]
#: A lifetime in seconds; ``None`` = never expires.
Ttl = float | None

#: Default cosine-distance threshold of semantic lookups (0 = identical, 2 = opposite).
#: Chosen on the *tuning* data, each group on its own (tuning_pairs + _2; _3, _4a + _4b,
#: _5a + _5b, _6a + _6b and _7a + _7b, the retired first to fifth blind sets; ``semcache
#: eval``, see the README's quality section): with all-MiniLM-L6-v2, padding stripped and the
#: trap guard on, 0.18 is the widest threshold that keeps traps served within 3% overall and
#: 8% per trap class on every group separately (at 0.20 the intent class of _7a/_7b is at
#: 10%); 0.16 keeps one sweep step of margin. The blind set's numbers at this value are in the
#: README. Other embedding models spread distances differently: run the harness on your model
#: before changing it.
DEFAULT_DISTANCE_THRESHOLD = 0.16
MAX_DISTANCE_THRESHOLD = 2.0
#: The least search radius of a lookup given its vector (which finds an exact repeat by
#: search, not by its key): above any backend's rounding of a distance of 0.
FOLDED_RADIUS = 0.01
#: Nearest candidates fetched per semantic lookup; the guard may reject the closest ones.
SEMANTIC_CANDIDATES = 4
STATS_FLUSH_SECONDS = 5.0


def callers_dimension(operation: Flow[R]) -> Flow[R]:
    """``operation`` with a vector the *caller* gave (``vector=``): one of another dimension
    than its partition's is the caller's bad input, raised whatever the error policy (a
    mismatch of the cache's own embedder is a configuration problem, warned under "warn")."""
    try:
        return (yield from operation)
    except VectorDimensionError as exc:
        raise SemcacheInputError(f"vector= does not fit this cache: {exc}") from None


def validate_threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"distance_threshold must be a number, got {type(value).__name__}")
    if not 0.0 <= float(value) <= MAX_DISTANCE_THRESHOLD:
        raise SemcacheInputError(
            f"distance_threshold must be a cosine distance between 0 (identical) and 2 "
            f"(opposite), got {value!r}"
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class LookupResult:
    body: dict[str, Any] | None
    outcome: Literal["exact", "semantic", "miss"]
    distance: float | None = None


_MISS = LookupResult(None, "miss")


@dataclass(frozen=True, slots=True)
class ResponseCodec(Generic[R]):
    """How a framework's responses are cached by :meth:`ResponseCache.get_or_create`.

    ``encode``: a response as a JSON object, ``None`` when it cannot be cached; ``decode``: a
    cached object back into a response, ``None`` when it does not rebuild (cached data is
    untrusted: a miss); ``tokens``: what the response cost (for the stats).
    """

    encode: Callable[[R], dict[str, Any] | None]
    decode: Callable[[dict[str, Any]], R | None]
    tokens: Callable[[dict[str, Any]], float] = lambda body: 0.0


@dataclass(frozen=True, slots=True)
class Create(Step):
    """Call the model on a miss: ``produce()`` returns the response (or, async, an awaitable)."""

    produce: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Embed(Step):
    """Embed ``text`` with the engine's embedder: the one step kind that is not storage."""

    text: str


@dataclass(frozen=True, slots=True)
class EmbedMany(Step):
    """Embed ``texts`` in one call when the embedder has ``embed_many`` (else one by one)."""

    texts: tuple[str, ...]


#: One entry of :meth:`ResponseCache.update_many`: ``(scope, prompt, value)`` or
#: ``(scope, prompt, value, tokens)``.
UpdateEntry = tuple[str, Prompt, dict[str, Any]] | tuple[str, Prompt, dict[str, Any], float]

_OUTCOME_COUNTERS = {"exact": "exact_hits", "semantic": "semantic_hits", "miss": "misses"}


class EngineTransport:
    """Routes a flow's steps: :class:`Embed` to the embedder, :class:`Verify` to the verifier,
    the rest to the backend.

    The circuit breaker wraps every backend step (``guard.check``). A failed step is thrown
    back into the flow, which applies the error policy (:meth:`BackendGuard.shield`,
    :meth:`CacheEngine._embed`).
    """

    def __init__(self, engine: CacheEngine) -> None:
        self._engine = engine

    def execute(self, step: Step) -> Any:
        if isinstance(step, Create):
            return step.produce()
        if isinstance(step, Embed):
            return self._engine.require_embedder().embed(step.text)
        if isinstance(step, EmbedMany):
            embedder = self._engine.require_embedder()
            embed_many = getattr(embedder, "embed_many", None)
            if embed_many is not None:
                return embed_many(list(step.texts))
            return [embedder.embed(text) for text in step.texts]
        if isinstance(step, Verify):
            return self._engine.require_verifier().verdict(step.new, step.cached)
        return self._engine.backend_steps.execute(step)

    async def aexecute(self, step: Step) -> Any:
        if isinstance(step, Create):
            produced = step.produce()
            return await produced if inspect.isawaitable(produced) else produced
        if isinstance(step, Embed):
            return await self._engine.require_embedder().aembed(step.text)
        if isinstance(step, EmbedMany):
            embedder = self._engine.require_embedder()
            aembed_many = getattr(embedder, "aembed_many", None)
            if aembed_many is not None:
                return await aembed_many(list(step.texts))
            return [await embedder.aembed(text) for text in step.texts]
        if isinstance(step, Verify):
            return await self._engine.require_verifier().averdict(step.new, step.cached)
        return await self._engine.backend_steps.aexecute(step)


class GuardedBackend:
    """The backend as a transport, each step under the circuit breaker: the backend steps of
    :class:`EngineTransport`, and the whole transport of the exact read, whose flow has no
    other kind of step. While the breaker is closed (the normal case) that costs one
    attribute read per step (:attr:`~semcache_core.resilience.Breaker.tripped`)."""

    def __init__(self, guard: BackendGuard, backend: Backend) -> None:
        self._guard = guard
        self._breaker = guard.breaker
        self._backend = backend

    def execute(self, step: Step) -> Any:
        if self._breaker.tripped:
            self._guard.check()
        reply = self._backend.execute(step)
        if self._breaker.tripped:
            self._guard.succeeded()
        return reply

    async def aexecute(self, step: Step) -> Any:
        if self._breaker.tripped:
            self._guard.check()
        reply = await self._backend.aexecute(step)
        if self._breaker.tripped:
            self._guard.succeeded()
        return reply


class CacheEngine:
    """Shared plumbing: backend, namespace, guard, stats, and the engine's transport."""

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = keys.DEFAULT_NAMESPACE,
        ttl: float | None = None,
        on_backend_error: ErrorPolicy = "warn",
        retry_after: float = 5.0,
    ) -> None:
        self.namespace = keys.validate_namespace(namespace)
        self.ttl = validate_ttl(ttl)
        self.backend = connect(backend)
        self.ops = self.backend.ops
        self.guard = BackendGuard(
            on_backend_error, retry_after=retry_after, breaker=breaker_of(self.backend)
        )
        self.stats = CacheStats()
        self.guard.on_error = lambda: self.stats.add(backend_errors=1)
        self.embedder: Embedder | None = None
        self.verifier: Verifier | None = None
        self.backend_steps = GuardedBackend(self.guard, self.backend)
        self.transport = EngineTransport(self)

    def require_embedder(self) -> Embedder:
        if self.embedder is None:
            raise SemcacheInputError("this cache has no embedder")
        return self.embedder

    def require_verifier(self) -> Verifier:
        if self.verifier is None:
            raise SemcacheInputError("this cache has no verifier")
        return self.verifier

    def _embed(self, text: str) -> Flow[Vector | None]:
        """The unit vector of ``text``; ``None`` when the embedder failed (policy "warn")."""
        try:
            embedded = yield Embed(text)
        except (TypeError, SemcacheInputError):
            raise
        except Exception as exc:
            if self.guard.policy == "raise":
                raise BackendError(f"embedding the prompt failed: {exc}") from exc
            self.stats.add(backend_errors=1)
            logger.warning("semcache: embedding the prompt failed, treating it as a miss: %s", exc)
            return None
        if embedded is None:
            # A bad embedder, not a failed call: the failure fallback above would hide it as
            # a miss that is never stored.
            raise SemcacheInputError(
                f"the embedder {getattr(self.embedder, 'name', '?')!r} returned None instead "
                "of a vector"
            )
        return normalize(as_vector(embedded))

    def _embed_many(self, texts: list[str]) -> Flow[list[Vector] | None]:
        """The unit vectors of ``texts`` (one embedder call when it has ``embed_many``);
        ``None`` when the embedder failed (policy "warn")."""
        if not texts:
            return []
        try:
            embedded = yield EmbedMany(tuple(texts))
        except (TypeError, SemcacheInputError):
            raise
        except Exception as exc:
            if self.guard.policy == "raise":
                raise BackendError(f"embedding {len(texts)} prompts failed: {exc}") from exc
            self.stats.add(backend_errors=1)
            logger.warning("semcache: embedding %d prompts failed, not stored: %s", len(texts), exc)
            return None
        if embedded is None or len(embedded) != len(texts):
            raise SemcacheInputError(
                f"the embedder {getattr(self.embedder, 'name', '?')!r} returned "
                f"{'None' if embedded is None else len(embedded)} vectors for "
                f"{len(texts)} texts"
            )
        return [normalize(as_vector(vector)) for vector in embedded]

    def _maybe_flush(self, *, force: bool = False) -> Flow[None]:
        deltas = (
            self.stats.take_all_unflushed()
            if force
            else self.stats.take_unflushed(every=STATS_FLUSH_SECONDS)
        )
        if deltas:
            counters = self.ops.incr_counters(self.namespace, COUNTER_GROUP, deltas)
            yield from self.guard.shield("incr_counters", counters, None)

    # -- shared public API ---------------------------------------------------------------------
    def stats_snapshot(self) -> dict[str, Any]:
        """This object's stats (this process only); see :func:`persisted_stats` for totals."""
        counts = self.backend.namespace_counts(self.namespace)
        return {**self.stats.snapshot(), **counts, **self.backend.describe()}

    def set_ttl(self, ttl: Ttl) -> None:
        """The lifetime of entries written from now on (``None``: forever); entries already
        stored keep theirs."""
        self.ttl = validate_ttl(ttl)

    def flush_stats(self) -> None:
        run(self._maybe_flush(force=True), self.transport)

    async def aflush_stats(self) -> None:
        await arun(self._maybe_flush(force=True), self.transport)


class ResponseCache(SemanticKeys, OperatorControls, CacheEngine):
    """Exact and semantic caching of LLM responses, framework-neutral.

    ``scope`` (e.g. LangChain's ``llm_string``) names the model and its parameters; entries of
    different scopes never answer each other. Bodies are JSON dicts the adapter builds.
    Applications without a framework use :meth:`check` and :meth:`store`
    (:mod:`semcache_core.neutral`).

    ``filterable_fields`` (e.g. ``["tenant", "user"]``) are the cache scope fields this cache
    is partitioned by (:mod:`semcache_core.scope`): every lookup and update uses the fields of
    the active :func:`~semcache_core.scope.cache_scope` (or explicit ``fields=``) and matches
    entries stored under exactly the same ones; a field not declared here is an error.

    ``verifier`` (semantic only): a callable ``(new_query, cached_query) -> bool`` (or ``async
    def``), a LangChain chat model, a LlamaIndex LLM, or a
    :class:`~semcache_core.verifier.Verifier` (built by
    :func:`~semcache_core.verifier.make_verifier`: 10 s timeout, 4,096 verdicts cached). It is the last stage: asked only about candidates within the threshold that the
    guard passed, it fails closed (an error, a timeout or a reply that is neither yes nor no is
    a miss), and costs one judge call per new (query, candidate) pair; counted in the stats
    (``verifier_calls``, ``verifier_rejections``, ``verifier_failures``, latency). With a
    verifier the threshold may be wider (e.g. 0.25) than the guard alone supports.

    The operator's controls (:mod:`semcache_core.controls`): ``entries``, ``entry``, ``drop``,
    ``drop_prompt``, ``expire`` and their async forms; ``set_threshold`` and ``set_ttl`` tune
    a running cache.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = keys.DEFAULT_NAMESPACE,
        ttl: float | None = None,
        embedder: Embedder | None = None,
        distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
        trap_guard: bool | Any = True,
        verifier: Any = None,
        context_match: chat.ContextMatch = chat.DEFAULT_CONTEXT_MATCH,
        context_threshold: float = chat.DEFAULT_CONTEXT_THRESHOLD,
        refresh_ttl_on_hit: bool = False,
        filterable_fields: Iterable[str] | None = None,
        on_backend_error: ErrorPolicy = "warn",
        retry_after: float = 5.0,
    ) -> None:
        self.filterable_fields: tuple[str, ...] = validate_filterable_fields(filterable_fields)
        super().__init__(
            backend,
            namespace=namespace,
            ttl=ttl,
            on_backend_error=on_backend_error,
            retry_after=retry_after,
        )
        self.embedder = embedder
        self.distance_threshold = validate_threshold(distance_threshold)
        if refresh_ttl_on_hit and self.ttl is None:
            raise SemcacheInputError("refresh_ttl_on_hit needs a ttl to refresh to")
        self.refresh_ttl_on_hit = refresh_ttl_on_hit
        if embedder is None:
            self.trap_guard: Any = None  # exact matches need no guard
        elif trap_guard is True:
            from semcache_core.guard import TrapGuard

            self.trap_guard = TrapGuard()
        else:
            self.trap_guard = trap_guard or None
        if verifier is not None:
            if embedder is None:
                raise SemcacheInputError("a verifier judges semantic hits: it needs an embedder")
            self.verifier = make_verifier(verifier)
        #: The candidate pipeline (:mod:`semcache_core.stages`), in order.
        self.stages = pipeline(guard=self.trap_guard, verifier=self.verifier is not None)
        self.context_match: chat.ContextMatch = chat.validate_context_match(context_match)
        self.context_threshold = validate_threshold(context_threshold)
        self.conversations = chat.ConversationMatching(
            embed=self._embed,
            threshold=lambda: self.distance_threshold,
            guard=self.trap_guard,
            stages=self.stages,
            context_threshold=self.context_threshold,
        )
        # Vectors computed by a missed lookup, reused by the update that follows it.
        self._pending: OrderedDict[tuple[str, str], Vector] = OrderedDict()
        self._pending_lock = threading.Lock()
        #: What :meth:`lookup_value` validated of the last distinct exact entries, each valid
        #: for its exact bytes (:mod:`semcache_core.memo`): this cache's own, shared with none.
        self.memo: EntryMemo[tuple[float, Any]] = EntryMemo()

    @property
    def semantic(self) -> bool:
        return self.embedder is not None

    def _remember_vector(self, partition: str, query: str, vector: Vector) -> None:
        with self._pending_lock:
            self._pending[(partition, query)] = vector
            self._pending.move_to_end((partition, query))
            while len(self._pending) > 1024:
                self._pending.popitem(last=False)

    def _take_vector(self, partition: str, query: str) -> Vector | None:
        with self._pending_lock:
            return self._pending.pop((partition, query), None)

    # -- scope fields --------------------------------------------------------------------------
    def scope_fields(self, filters: ScopeFields | None = None) -> dict[str, str]:
        """The scope fields this cache's lookups and updates use here and now: those of the
        active :func:`~semcache_core.scope.cache_scope`, overridden field by field by
        ``filters`` (a value ``None`` removes the field); a field not in
        :attr:`filterable_fields` is a :class:`SemcacheInputError`."""
        active = current_scope()
        if not active and not filters:
            return {}
        fields = merged(active, validate_filters(filters))
        check_fields(fields, self.filterable_fields, self.namespace)
        return fields

    def _resolved(self, fields: ScopeFields | None) -> dict[str, str]:
        """``fields`` exactly (checked), or the active scope's when ``None``: an adapter that
        stores later than it looked up (a stream) passes the fields it captured."""
        if fields is None:
            return self.scope_fields()
        exact = merged({}, validate_filters(fields, what="fields"))
        check_fields(exact, self.filterable_fields, self.namespace)
        return exact

    # -- flows ---------------------------------------------------------------------------------
    def _lookup_flow(
        self, scope: str, prompt: Prompt, fields: ScopeFields | None, vector: Any = None
    ) -> Flow[LookupResult]:
        _check_text(scope, prompt)
        where = self._resolved(fields)
        given = self._given_vector(vector)
        started = time.perf_counter()
        result = yield from self._find(scope, prompt, where, given)
        self._count_lookup(result, started)
        yield from self._maybe_flush()
        return result

    # -- the exact path ---------------------------------------------------------------------
    # An exact cache's lookup is one backend read: it runs here without the flow of
    # _lookup_flow (no generators of its own, no engine transport; the read's steps still go
    # through backend.execute under the breaker, and a failure through the same error policy,
    # BackendGuard.recover), and stats are counted with one lock and no dict of deltas.
    # lookup()/alookup() and lookup_value()/alookup_value() of exact caches come here.

    def _exact_key(self, scope: str, prompt: Prompt | str, fields: ScopeFields | None) -> str:
        """The exact entry's key, after :func:`_check_text`'s checks (inlined: a lone
        surrogate fails ``encode``, and ``_check_text`` then raises its error). A ``str``
        prompt is ``Prompt.plain`` of it (without making one)."""
        if isinstance(prompt, str):
            text = query = prompt
        else:
            text, query = prompt.text, prompt.query
        try:
            scope.encode()
            text.encode()
        except UnicodeEncodeError:
            _check_text(scope, Prompt.plain(text))
        if query is not text:
            keys.require_text(query, "prompt")
        where = None if fields is None and not current_scope_now() else self._resolved(fields)
        return keys.exact_entry_key(self.namespace, scope, text, where)

    def _read_now(self, key: str) -> bytes | None:
        """The bytes under ``key``, ``None`` when missing or when the read failed ("warn"):
        the backend's one step of it where it has one (``Operations.one_step_get``), else its
        ``get_many`` flow; both over :class:`GuardedBackend`."""
        try:
            plan = self.ops.one_step_get(self.namespace, key)
            if plan is None:
                return run(self.ops.get_many(self.namespace, [key]), self.backend_steps)[0]
            step, value_of = plan
            # GuardedBackend.execute, inlined: the breaker costs one attribute read when closed.
            breaker = self.guard.breaker
            if breaker.tripped:
                self.guard.check()
            reply = self.backend.execute(step)
            if breaker.tripped:
                breaker.succeeded()
            return reply if value_of is None else value_of(reply)
        except HANDLED as exc:
            return self.guard.recover("get_many", exc, None)

    async def _aread_now(self, key: str) -> bytes | None:
        try:
            plan = self.ops.one_step_get(self.namespace, key)
            if plan is None:
                found = await arun(self.ops.get_many(self.namespace, [key]), self.backend_steps)
                return found[0]
            step, value_of = plan
            reply = await self.backend_steps.aexecute(step)
            return reply if value_of is None else value_of(reply)
        except HANDLED as exc:
            return self.guard.recover("get_many", exc, None)

    def _exact(
        self,
        scope: str,
        prompt: Prompt | str,
        fields: ScopeFields | None,
        rebuild: Rebuild[Any, Any] | None,
    ) -> Any:
        """An exact cache's lookup: the entry's body (``rebuild`` ``None``: decoded anew), or
        what ``rebuild`` builds of its value; ``None`` on a miss."""
        started = time.perf_counter()
        key = self._exact_key(scope, prompt, fields)
        raw = self._read_now(key)
        served = None if raw is None else self._serve(key, raw, rebuild)
        if served is None:
            flush = self.stats.record_exact(
                False, time.perf_counter() - started, flush_every=STATS_FLUSH_SECONDS
            )
        else:
            if self.ops.counts_hits or self.refresh_ttl_on_hit:
                run(self._served(key), self.transport)
            seconds = time.perf_counter() - started
            flush = self.stats.record_exact(
                True, seconds, served[0], flush_every=STATS_FLUSH_SECONDS
            )
        if flush:
            run(self._maybe_flush(), self.transport)
        return None if served is None else served[1]

    async def _aexact(
        self,
        scope: str,
        prompt: Prompt | str,
        fields: ScopeFields | None,
        rebuild: Rebuild[Any, Any] | None,
    ) -> Any:
        started = time.perf_counter()
        key = self._exact_key(scope, prompt, fields)
        raw = await self._aread_now(key)
        served = None if raw is None else self._serve(key, raw, rebuild)
        if served is None:
            flush = self.stats.record_exact(
                False, time.perf_counter() - started, flush_every=STATS_FLUSH_SECONDS
            )
        else:
            if self.ops.counts_hits or self.refresh_ttl_on_hit:
                await arun(self._served(key), self.transport)
            seconds = time.perf_counter() - started
            flush = self.stats.record_exact(
                True, seconds, served[0], flush_every=STATS_FLUSH_SECONDS
            )
        if flush:
            await arun(self._maybe_flush(), self.transport)
        return None if served is None else served[1]

    def _serve(
        self, key: str, raw: bytes, rebuild: Rebuild[Any, Any] | None
    ) -> tuple[float, Any] | None:
        """``(tokens, what the caller gets)`` of the stored ``raw``, ``None`` when it does not
        decode or rebuild (a miss). With ``rebuild``, the template comes from the memo when
        these very bytes were validated before, else they are decoded, checked and validated
        (and memoized); the caller's objects are built new either way."""
        if rebuild is None:
            body = decode_entry(raw, "response")
            return None if body is None else (float(body.get("tokens", 0)), body)
        validated = self.memo.get(key, raw, rebuild)
        if validated is None:
            body = decode_entry(raw, "response")
            if body is None:
                return None
            template = rebuild.validate(body["value"])
            if template is None:
                return None
            validated = (float(body.get("tokens", 0)), template)
            self.memo.put(key, raw, rebuild, validated)
        built = rebuild.build(validated[1])
        return None if built is None else (validated[0], built)

    def _count_lookup(self, result: LookupResult, started: float) -> None:
        tokens = float(result.body.get("tokens", 0)) if result.body else 0.0
        self.stats.record_lookup(
            _OUTCOME_COUNTERS[result.outcome],
            time.perf_counter() - started,
            distance=result.distance,
            tokens=tokens,
        )

    def _read_one(self, key: str) -> Flow[dict[str, Any] | None]:
        """The response entry stored under ``key`` (a value or a vector record), if any."""
        missing: list[bytes | None] = [None]
        read = self.ops.get_many(self.namespace, [key])
        raw = yield from self.guard.shield("get_many", read, missing)
        return decode_entry(raw[0], "response")

    def _served(self, key: str) -> Flow[None]:
        """The entry under ``key`` is served (an exact hit, or a semantic hit that passed every
        stage): its hit is counted where the backend counts hits (no write of its own), and
        its TTL refreshed if ``refresh_ttl_on_hit``."""
        if self.ops.counts_hits:
            noted = self.ops.note_hits(self.namespace, [key])
            yield from self.guard.shield("note_hits", noted, None)
        if self.refresh_ttl_on_hit:
            assert self.ttl is not None
            refresh = self.ops.expire_many(self.namespace, [key], ttl=self.ttl)
            yield from self.guard.shield("expire_many", refresh, None)

    def _given_vector(self, vector: Any) -> Vector | None:
        """A caller's query vector (``lookup(vector=)``), checked and unit length."""
        if vector is None:
            return None
        if not self.semantic:
            raise SemcacheInputError("vector= is for semantic lookups: this cache has no embedder")
        return normalize(as_vector(vector))

    def _find(
        self, scope: str, prompt: Prompt, fields: ScopeFields, given: Vector | None = None
    ) -> Flow[LookupResult]:
        ns = self.namespace
        if not self.semantic:
            key = keys.exact_entry_key(ns, scope, prompt.text, fields)
            body = yield from self._read_one(key)
            if body is None:
                return LookupResult(None, "miss")
            yield from self._served(key)
            return LookupResult(body, "exact", None)

        query = self.query(prompt)
        partition = self.partition(scope, prompt, fields)
        entry_id = self.entry_id(partition, query)
        entry_key = keys.vector_key(entry_id)
        # The exact probe saves the embedding of an exact repeat. With the vector given it
        # saves nothing: the search itself finds the exact entry (the same query, the same
        # vector), in one round trip instead of two (conversations keep the probe: their
        # entries' vectors are not the query's alone).
        folded = given is not None and not self.conversational(prompt)
        if not folded:
            body = yield from self._read_one(entry_key)
            if self.is_exact_entry(body, query):
                yield from self._served(entry_key)
                return LookupResult(body, "exact", 0.0)

        vector = given if given is not None else (yield from self._embed(query.compared))
        if vector is None:
            return LookupResult(None, "miss")
        self._remember_vector(partition, query.compared, vector)
        if self.conversational(prompt):
            self.conversations.searched(query.compared, vector)
        # Folded, the search must reach the exact entry (distance 0) even under a threshold
        # at or near 0: a backend storing rounded vectors (the Query Engine's FLOAT16 index)
        # serves only what is within the threshold by more than its rounding. What lies
        # beyond the threshold is still refused by the threshold stage.
        radius = max(query.threshold, FOLDED_RADIUS) if folded else query.threshold
        search = self.ops.search_vectors(
            ns, partition, vector, k=SEMANTIC_CANDIDATES, max_distance=radius
        )
        if given is not None:
            search = callers_dimension(search)
        hits = yield from self.guard.shield("search_vectors", search, [])
        if folded:
            for hit in hits:
                if hit.id == entry_id:
                    body = decode_entry(hit.payload, "response")
                    if self.is_exact_entry(body, query):
                        yield from self._served(entry_key)
                        return LookupResult(body, "exact", 0.0)
            if radius > query.threshold:
                hits = [hit for hit in hits if hit.distance <= query.threshold]
        return (yield from self._serve_candidate(query, hits))

    def _serve_candidate(self, query: Query, hits: list[VectorHit]) -> Flow[LookupResult]:
        """The semantic decision of a lookup: the first candidate that passes every stage."""
        served = yield from self._accepted(query, hits, limit=1)
        if not served:
            return LookupResult(None, "miss")
        return LookupResult(served[0].body, "semantic", served[0].distance)

    def _accepted(
        self, query: Query, hits: list[VectorHit], *, limit: int
    ) -> Flow[list[Candidate]]:
        """The semantic decision, in one place: nearest first, the first ``limit`` candidates
        that pass every stage of :attr:`stages` (threshold, guard, verifier) are served."""
        served: list[Candidate] = []
        for hit in hits:
            if len(served) >= limit:
                break
            candidate = self.candidate(hit)
            if candidate is None:
                continue
            decision = yield from decide(query, candidate, self.stages_for(query))
            for verdict in decision.verdicts:
                if verdict.counts:
                    self.stats.add(**verdict.counts)
            if (rejection := decision.rejection) is not None:
                logger.debug(
                    "semcache: %s rejected a hit at distance %.3f: %s",
                    rejection.stage,
                    hit.distance,
                    rejection.detail,
                )
                continue
            yield from self._served(keys.vector_key(hit.id))
            served.append(candidate)
        return served

    def _update_flow(
        self,
        scope: str,
        prompt: Prompt,
        value: dict[str, Any],
        *,
        tokens: float,
        ttl: float | None,
        fields: ScopeFields | None,
        metadata: dict[str, Any] | None = None,
        vector: Vector | None = None,
    ) -> Flow[str]:
        """Write the entry and return its id (what :meth:`store` returns; also when the write
        was skipped: embedding or the backend failed under "warn"). ``vector``: the caller's
        (checked, unit length), else the lookup's or a new embedding."""
        ns = self.namespace
        _check_text(scope, prompt)
        where = self._resolved(fields)
        callers_vector = vector is not None
        entry_ttl = self.ttl if ttl is None else validate_ttl(ttl)
        created = time.time()
        body: dict[str, Any] = {
            "value": value,
            "tokens": tokens,
            "created": created,
            # For auditing (semcache_core.entries): what was asked, of which model, until when.
            "prompt": prompt.text,
            "llm_string": scope,
            "expires": None if entry_ttl is None else created + entry_ttl,
        }
        if where:
            body["scope"] = where
        if metadata is not None:
            body["metadata"] = metadata
        if not self.semantic:
            payload = encode_entry("response", body)
            entry_id = keys.exact_entry_key(ns, scope, prompt.text, where)
            write = self.ops.set_many(ns, [(entry_id, payload)], ttl=entry_ttl)
        else:
            partition = self.partition(scope, prompt, where)
            query = self.query(prompt)
            entry_id = self.entry_id(partition, query)
            body["query"] = prompt.query  # as asked: for auditing, and for the guard
            if vector is None:
                vector = self._take_vector(partition, query.compared)
            if vector is None:
                vector = yield from self._embed(query.compared)
                if vector is None:
                    return entry_id
            if self.conversational(prompt):
                added = yield from self.conversations.fields(prompt, query, vector)
                if added is None:
                    return entry_id
                body.update(added)
            payload = encode_entry("response", body)
            record = VectorRecord(entry_id, vector, payload)
            write = self.ops.add_vectors(ns, partition, [record], ttl=entry_ttl)
        if callers_vector:
            write = callers_dimension(write)
        yield from self.guard.shield("write", write, None)
        self.stats.add(writes=1)
        yield from self._maybe_flush()
        return entry_id

    def _update_many_flow(
        self, entries: Sequence[UpdateEntry], *, ttl: float | None, fields: ScopeFields | None
    ) -> Flow[None]:
        """Store many entries as :meth:`_update_flow` would, with one embedder call for the
        texts to embed and one pipelined write per partition (conversation turns, which embed
        their context, go one by one)."""
        ns = self.namespace
        checked = [_checked_entry(i, entry) for i, entry in enumerate(entries)]
        where = self._resolved(fields)
        entry_ttl = self.ttl if ttl is None else validate_ttl(ttl)
        created = time.time()

        def body_of(scope: str, prompt: Prompt, value: dict[str, Any], tokens: float) -> Body:
            body: dict[str, Any] = {
                "value": value,
                "tokens": tokens,
                "created": created,
                "prompt": prompt.text,
                "llm_string": scope,
                "expires": None if entry_ttl is None else created + entry_ttl,
            }
            if where:
                body["scope"] = where
            return body

        if not self.semantic:
            items = [
                (
                    keys.exact_entry_key(ns, scope, prompt.text, where),
                    encode_entry("response", body_of(scope, prompt, value, tokens)),
                )
                for scope, prompt, value, tokens in checked
            ]
            if items:
                write = self.ops.set_many(ns, items, ttl=entry_ttl)
                yield from self.guard.shield("write", write, None)
                self.stats.add(writes=len(items))
                yield from self._maybe_flush()
            return None
        plain: list[tuple[str, Query, Prompt, Body, Vector | None]] = []
        for scope, prompt, value, tokens in checked:
            if self.conversational(prompt):
                yield from self._update_flow(
                    scope, prompt, value, tokens=tokens, ttl=ttl, fields=where
                )
                continue
            partition = self.partition(scope, prompt, where)
            query = self.query(prompt)
            body = body_of(scope, prompt, value, tokens)
            body["query"] = prompt.query  # as asked: for auditing, and for the guard
            plain.append(
                (partition, query, prompt, body, self._take_vector(partition, query.compared))
            )
        missing = list(dict.fromkeys(q.compared for _, q, _, _, v in plain if v is None))
        embedded = yield from self._embed_many(missing)
        if embedded is None:
            return None
        vectors = dict(zip(missing, embedded, strict=True))
        by_partition: dict[str, dict[str, VectorRecord]] = {}
        for partition, query, _prompt, body, known in plain:
            vector = known if known is not None else vectors[query.compared]
            record = VectorRecord(
                self.entry_id(partition, query), vector, encode_entry("response", body)
            )
            by_partition.setdefault(partition, {})[record.id] = record  # the last one wins
        for partition, records in by_partition.items():
            write = self.ops.add_vectors(ns, partition, list(records.values()), ttl=entry_ttl)
            yield from self.guard.shield("write", write, None)
        self.stats.add(writes=len(plain))
        yield from self._maybe_flush()
        return None

    def _read_through(
        self,
        scope: str,
        prompt: Prompt,
        produce: Callable[[], Any],
        codec: ResponseCodec[R],
        fields: ScopeFields | None,
    ) -> Flow[R]:
        """Serve from the cache, or create the response, store it and return it."""
        where = self._resolved(fields)  # once: the write goes where the lookup looked
        result = yield from self._lookup_flow(scope, prompt, where)
        if result.body is not None and isinstance(result.body.get("value"), dict):
            cached = codec.decode(result.body["value"])
            if cached is not None:
                return cached
        response: R = yield Create(produce)
        yield from self._store_flow(scope, prompt, response, codec, where)
        return response

    def _store_flow(
        self,
        scope: str,
        prompt: Prompt,
        response: R,
        codec: ResponseCodec[R],
        fields: ScopeFields | None,
    ) -> Flow[None]:
        body = codec.encode(response)
        if body is not None:
            tokens = codec.tokens(body)
            yield from self._update_flow(
                scope, prompt, body, tokens=tokens, ttl=None, fields=fields
            )

    def _clear_flow(self) -> Flow[None]:
        yield from self.guard.shield("clear", self.ops.clear(self.namespace), None)
        self.memo.clear()
        with self._pending_lock:
            self._pending.clear()
        self.conversations.clear()

    # -- public API ----------------------------------------------------------------------------
    def set_threshold(self, distance_threshold: float) -> None:
        """Serve semantic hits within ``distance_threshold`` from now on (validated as in the
        constructor); conversations follow it too."""
        if not self.semantic:
            raise SemcacheInputError("an exact cache (no embedder) has no distance threshold")
        self.distance_threshold = validate_threshold(distance_threshold)

    def set_ttl(self, ttl: Ttl) -> None:
        """The lifetime of entries written from now on (``None``: forever); entries already
        stored keep theirs (``expire`` changes those)."""
        if validate_ttl(ttl) is None and self.refresh_ttl_on_hit:
            raise SemcacheInputError("refresh_ttl_on_hit needs a ttl to refresh to")
        super().set_ttl(ttl)

    # ``fields``: the cache scope fields to use (exactly these); ``None``: the active
    # cache_scope's (see :meth:`scope_fields`).
    def lookup(
        self,
        scope: str,
        prompt: Prompt,
        *,
        fields: ScopeFields | None = None,
        vector: Any = None,
    ) -> LookupResult:
        """The cached entry for ``prompt`` (exact, else semantic), or a miss.

        ``vector``: the query's embedding when the caller already has it (e.g. the vector a
        RAG step embedded the question with), from this cache's embedding model: no
        embedding call, and the exact entry is found by the same search (one backend round
        trip on Redis instead of two)."""
        if vector is None and self.embedder is None:
            body = self._exact(scope, prompt, fields, None)
            return _MISS if body is None else LookupResult(body, "exact", None)
        return run(self._lookup_flow(scope, prompt, fields, vector), self.transport)

    async def alookup(
        self,
        scope: str,
        prompt: Prompt,
        *,
        fields: ScopeFields | None = None,
        vector: Any = None,
    ) -> LookupResult:
        if vector is None and self.embedder is None:
            body = await self._aexact(scope, prompt, fields, None)
            return _MISS if body is None else LookupResult(body, "exact", None)
        return await arun(self._lookup_flow(scope, prompt, fields, vector), self.transport)

    def lookup_value(
        self,
        scope: str,
        prompt: Prompt | str,
        rebuild: Rebuild[Any, R],
        *,
        fields: ScopeFields | None = None,
    ) -> R | None:
        """The cached entry's value as ``rebuild`` turns it into the caller's objects (an
        adapter's framework objects), or ``None`` on a miss (also when the value does not
        rebuild: untrusted data). A ``str`` prompt is ``Prompt.plain`` of it.

        On an exact cache the value is validated once per distinct stored entry and the memo
        (:attr:`memo`, :mod:`semcache_core.memo`) keeps the template, keyed by the entry's
        exact bytes; every hit still reads the backend and builds new objects. A semantic
        cache validates on every hit."""
        if self.embedder is not None:
            plain = Prompt.plain(prompt) if isinstance(prompt, str) else prompt
            result = self.lookup(scope, plain, fields=fields)
            return None if result.body is None else _rebuilt(rebuild, result.body)
        found: R | None = self._exact(scope, prompt, fields, rebuild)
        return found

    async def alookup_value(
        self,
        scope: str,
        prompt: Prompt | str,
        rebuild: Rebuild[Any, R],
        *,
        fields: ScopeFields | None = None,
    ) -> R | None:
        if self.embedder is not None:
            plain = Prompt.plain(prompt) if isinstance(prompt, str) else prompt
            result = await self.alookup(scope, plain, fields=fields)
            return None if result.body is None else _rebuilt(rebuild, result.body)
        found: R | None = await self._aexact(scope, prompt, fields, rebuild)
        return found

    def update_many(
        self, entries: Sequence[UpdateEntry], *, ttl: Ttl = None, fields: ScopeFields | None = None
    ) -> None:
        """Store many ``(scope, prompt, value[, tokens])`` entries at once (warm-up, imports):
        the semantic cache embeds their queries with one ``embed_many`` call (when the
        embedder has one) and writes each partition's entries in one pipelined backend
        call. A later entry of the same scope and query replaces an earlier one. ``fields``:
        the cache scope fields of the whole batch (``None``: the active ``cache_scope``'s)."""
        run(self._update_many_flow(entries, ttl=ttl, fields=fields), self.transport)

    async def aupdate_many(
        self, entries: Sequence[UpdateEntry], *, ttl: Ttl = None, fields: ScopeFields | None = None
    ) -> None:
        await arun(self._update_many_flow(entries, ttl=ttl, fields=fields), self.transport)

    def update(
        self,
        scope: str,
        prompt: Prompt,
        value: Body,
        *,
        tokens: float = 0,
        ttl: Ttl = None,
        fields: ScopeFields | None = None,
    ) -> None:
        flow = self._update_flow(scope, prompt, value, tokens=tokens, ttl=ttl, fields=fields)
        run(flow, self.transport)

    async def aupdate(
        self,
        scope: str,
        prompt: Prompt,
        value: Body,
        *,
        tokens: float = 0,
        ttl: Ttl = None,
        fields: ScopeFields | None = None,
    ) -> None:
        flow = self._update_flow(scope, prompt, value, tokens=tokens, ttl=ttl, fields=fields)
        await arun(flow, self.transport)

    def get_or_create(
        self,
        scope: str,
        prompt: Prompt,
        create: Callable[[], R],
        codec: ResponseCodec[R],
        *,
        fields: ScopeFields | None = None,
    ) -> R:
        """The cached response for ``prompt``, else ``create()``'s, stored (read-through)."""
        return run(self._read_through(scope, prompt, create, codec, fields), self.transport)

    async def aget_or_create(
        self,
        scope: str,
        prompt: Prompt,
        create: Callable[[], Awaitable[R]],
        codec: ResponseCodec[R],
        *,
        fields: ScopeFields | None = None,
    ) -> R:
        flow = self._read_through(scope, prompt, create, codec, fields)
        return await arun(flow, self.transport)

    def store_response(
        self,
        scope: str,
        prompt: Prompt,
        response: R,
        codec: ResponseCodec[R],
        *,
        fields: ScopeFields | None = None,
    ) -> None:
        """Store ``response`` (e.g. a stream's last chunk, once it was consumed)."""
        run(self._store_flow(scope, prompt, response, codec, fields), self.transport)

    async def astore_response(
        self,
        scope: str,
        prompt: Prompt,
        response: R,
        codec: ResponseCodec[R],
        *,
        fields: ScopeFields | None = None,
    ) -> None:
        await arun(self._store_flow(scope, prompt, response, codec, fields), self.transport)

    def check(
        self,
        prompt: str,
        *,
        scope: str = "",
        num_results: int = 1,
        filters: ScopeFields | None = None,
        distance_threshold: float | None = None,
        vector: Any = None,
    ) -> list[Match]:
        """The stored entries that answer ``prompt``, best first (empty on a miss): the
        framework-neutral lookup, see :mod:`semcache_core.neutral`."""
        from semcache_core.neutral import check_flow

        flow = check_flow(
            self,
            prompt,
            scope=scope,
            num_results=num_results,
            filters=filters,
            threshold=distance_threshold,
            vector=vector,
        )
        return run(flow, self.transport)

    async def acheck(
        self,
        prompt: str,
        *,
        scope: str = "",
        num_results: int = 1,
        filters: ScopeFields | None = None,
        distance_threshold: float | None = None,
        vector: Any = None,
    ) -> list[Match]:
        from semcache_core.neutral import check_flow

        flow = check_flow(
            self,
            prompt,
            scope=scope,
            num_results=num_results,
            filters=filters,
            threshold=distance_threshold,
            vector=vector,
        )
        return await arun(flow, self.transport)

    def store(
        self,
        prompt: str,
        response: Any,
        *,
        scope: str = "",
        metadata: dict[str, Any] | None = None,
        filters: ScopeFields | None = None,
        ttl: Ttl = None,
        vector: Any = None,
    ) -> str:
        """Store ``response`` (a str or a JSON-safe value) for ``prompt`` and return the
        entry's id: the framework-neutral update, see :mod:`semcache_core.neutral`."""
        from semcache_core.neutral import store_flow

        flow = store_flow(
            self,
            prompt,
            response,
            scope=scope,
            metadata=metadata,
            filters=filters,
            ttl=ttl,
            vector=vector,
        )
        return run(flow, self.transport)

    async def astore(
        self,
        prompt: str,
        response: Any,
        *,
        scope: str = "",
        metadata: dict[str, Any] | None = None,
        filters: ScopeFields | None = None,
        ttl: Ttl = None,
        vector: Any = None,
    ) -> str:
        from semcache_core.neutral import store_flow

        flow = store_flow(
            self,
            prompt,
            response,
            scope=scope,
            metadata=metadata,
            filters=filters,
            ttl=ttl,
            vector=vector,
        )
        return await arun(flow, self.transport)

    def clear(self) -> None:
        run(self._clear_flow(), self.transport)

    async def aclear(self) -> None:
        await arun(self._clear_flow(), self.transport)

    def explain(
        self,
        scope: str,
        prompt: Prompt,
        *,
        k: int = 5,
        threshold: float | None = None,
        fields: ScopeFields | None = None,
    ) -> Explanation:
        """Why ``prompt`` would hit or miss, without writing or counting a lookup: see
        :mod:`semcache_core.explain`. ``k`` nearest candidates are shown (searched within
        any distance); ``threshold`` overrides the cache's to try another."""
        from semcache_core.explain import explain_flow

        flow = explain_flow(self, scope, prompt, k=k, threshold=threshold, fields=fields)
        return run(flow, self.transport)

    async def aexplain(
        self,
        scope: str,
        prompt: Prompt,
        *,
        k: int = 5,
        threshold: float | None = None,
        fields: ScopeFields | None = None,
    ) -> Explanation:
        from semcache_core.explain import explain_flow

        flow = explain_flow(self, scope, prompt, k=k, threshold=threshold, fields=fields)
        return await arun(flow, self.transport)


def _rebuilt(rebuild: Rebuild[Any, R], body: Body) -> R | None:
    template = rebuild.validate(body["value"])
    return None if template is None else rebuild.build(template)


def _checked_entry(index: int, entry: object) -> tuple[str, Prompt, dict[str, Any], float]:
    """An ``update_many`` entry as ``(scope, prompt, value, tokens)``, or a clear error."""
    if not isinstance(entry, tuple) or len(entry) not in (3, 4):
        raise TypeError(
            f"update_many: entry {index} must be a (scope, prompt, value) or (scope, prompt, "
            f"value, tokens) tuple, got {type(entry).__name__}"
        )
    scope, prompt, value, *rest = entry
    if not isinstance(scope, str):
        raise TypeError(
            f"update_many: entry {index}: scope must be a str, got {type(scope).__name__}"
        )
    if not isinstance(prompt, Prompt):
        raise TypeError(
            f"update_many: entry {index}: prompt must be a semcache_core.Prompt, got "
            f"{type(prompt).__name__}"
        )
    if not isinstance(value, dict):
        raise TypeError(
            f"update_many: entry {index}: value must be a dict, got {type(value).__name__}"
        )
    tokens = rest[0] if rest else 0.0
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)):
        raise TypeError(
            f"update_many: entry {index}: tokens must be a number, got {type(tokens).__name__}"
        )
    _check_text(scope, prompt)
    return scope, prompt, value, float(tokens)


def _check_text(scope: str, prompt: Prompt) -> None:
    keys.require_text(scope, "scope (llm_string)")
    keys.require_text(prompt.text, "prompt")
    if prompt.query is not prompt.text:
        keys.require_text(prompt.query, "prompt")


def persisted_stats(backend: Backend | str | Any | None, namespace: str) -> dict[str, Any]:
    """Totals of every process that used ``namespace`` on ``backend`` (as flushed so far)."""
    store = connect(backend)
    namespace = keys.validate_namespace(namespace)
    return from_counters(store.get_counters(namespace, COUNTER_GROUP))
