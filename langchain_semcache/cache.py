"""LangChain ``BaseCache`` implementations: :class:`ExactCache` and :class:`SemanticCache`.

Use either with ``langchain_core.globals.set_llm_cache(cache)`` or a model's ``cache=``.
Both are thin: they translate LangChain's ``(prompt, llm_string, generations)`` into the
core's :class:`~semcache_core.ResponseCache`, which owns keys, TTL, matching and error policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.embeddings import Embeddings
from langchain_core.outputs import Generation

from langchain_semcache._prompts import split_prompt
from langchain_semcache._serialization import (
    GENERATIONS,
    count_tokens,
    generations_from_json,
    generations_to_json,
)
from langchain_semcache.embeddings import LangChainEmbedder
from semcache_core import DEFAULT_DISTANCE_THRESHOLD, Backend, CacheEntry, Prompt, ResponseCache
from semcache_core.conversation.match import DEFAULT_CONTEXT_MATCH, ContextMatch
from semcache_core.explain import Explanation
from semcache_core.resilience import ErrorPolicy


class _CoreBackedCache(BaseCache):
    _core: ResponseCache

    @staticmethod
    def _prompt(prompt: str) -> Prompt:
        """The core's view of a prompt; an exact cache keys by the whole text only."""
        return Prompt.plain(prompt)

    @staticmethod
    def _check(prompt: object, llm_string: object) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if not isinstance(llm_string, str):
            raise TypeError(f"llm_string must be a str, got {type(llm_string).__name__}")

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        self._check(prompt, llm_string)
        result = self._core.lookup(llm_string, self._prompt(prompt))
        return generations_from_json(result.body["value"]) if result.body else None

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        self._check(prompt, llm_string)
        result = await self._core.alookup(llm_string, self._prompt(prompt))
        return generations_from_json(result.body["value"]) if result.body else None

    def update(
        self,
        prompt: str,
        llm_string: str,
        return_val: Sequence[Generation],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store ``return_val``; ``ttl`` overrides the cache's default for this entry."""
        self._check(prompt, llm_string)
        body = generations_to_json(return_val)
        self._core.update(
            llm_string, self._prompt(prompt), body, tokens=count_tokens(return_val), ttl=ttl
        )

    async def aupdate(
        self,
        prompt: str,
        llm_string: str,
        return_val: Sequence[Generation],
        *,
        ttl: float | None = None,
    ) -> None:
        self._check(prompt, llm_string)
        body = generations_to_json(return_val)
        await self._core.aupdate(
            llm_string, self._prompt(prompt), body, tokens=count_tokens(return_val), ttl=ttl
        )

    def _entries(
        self, entries: Iterable[tuple[str, str, Sequence[Generation]]]
    ) -> list[tuple[str, Prompt, dict[str, Any], float]]:
        converted = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, tuple) or len(entry) != 3:
                raise TypeError(
                    f"update_many: entry {index} must be a (prompt, llm_string, generations) "
                    f"tuple, got {type(entry).__name__}"
                )
            prompt, llm_string, return_val = entry
            self._check(prompt, llm_string)
            body = generations_to_json(return_val)
            converted.append((llm_string, self._prompt(prompt), body, count_tokens(return_val)))
        return converted

    def update_many(
        self,
        entries: Iterable[tuple[str, str, Sequence[Generation]]],
        *,
        ttl: float | None = None,
    ) -> None:
        """Store many ``(prompt, llm_string, generations)`` at once (warm-up, imports): one
        embedding call for the batch (``embed_documents``) and one pipelined backend write."""
        self._core.update_many(self._entries(entries), ttl=ttl)

    async def aupdate_many(
        self,
        entries: Iterable[tuple[str, str, Sequence[Generation]]],
        *,
        ttl: float | None = None,
    ) -> None:
        await self._core.aupdate_many(self._entries(entries), ttl=ttl)

    def explain(self, prompt: str, llm_string: str, *, k: int = 5) -> Explanation:
        """Why ``lookup(prompt, llm_string)`` would hit or miss, without writing or counting a
        lookup (:mod:`semcache_core.explain`); ``print()`` it for a table."""
        self._check(prompt, llm_string)
        return self._core.explain(llm_string, self._prompt(prompt), k=k)

    async def aexplain(self, prompt: str, llm_string: str, *, k: int = 5) -> Explanation:
        self._check(prompt, llm_string)
        return await self._core.aexplain(llm_string, self._prompt(prompt), k=k)

    # -- operator controls (semcache_core.controls) ---------------------------------------------
    def entries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> Iterator[CacheEntry]:
        """The cached entries of this namespace (an iterator of ``CacheEntry``: id, prompt,
        query, llm_string, created, expires, scope, metadata)."""
        return self._core.entries(filters=filters, limit=limit)

    def aentries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> AsyncIterator[CacheEntry]:
        return self._core.aentries(filters=filters, limit=limit)

    def entry(self, entry_id: str) -> CacheEntry | None:
        return self._core.entry(entry_id)

    async def aentry(self, entry_id: str) -> CacheEntry | None:
        return await self._core.aentry(entry_id)

    def drop(self, ids: Sequence[str]) -> None:
        """Remove the entries ``ids`` (from ``entries()`` or ``explain()``)."""
        self._core.drop(ids)

    async def adrop(self, ids: Sequence[str]) -> None:
        await self._core.adrop(ids)

    def drop_prompt(self, prompt: str, llm_string: str) -> str | None:
        """Remove the entry ``lookup(prompt, llm_string)`` would serve now; its id, or
        ``None`` when the lookup would miss."""
        self._check(prompt, llm_string)
        return self._core.drop_prompt(llm_string, self._prompt(prompt))

    async def adrop_prompt(self, prompt: str, llm_string: str) -> str | None:
        self._check(prompt, llm_string)
        return await self._core.adrop_prompt(llm_string, self._prompt(prompt))

    def expire(self, ids: Sequence[str], ttl: float | None) -> None:
        """Let the entries ``ids`` expire ``ttl`` seconds from now (``None``: never)."""
        self._core.expire(ids, ttl)

    async def aexpire(self, ids: Sequence[str], ttl: float | None) -> None:
        await self._core.aexpire(ids, ttl)

    def set_ttl(self, ttl: float | None) -> None:
        """The lifetime of entries written from now on (``None``: forever)."""
        self._core.set_ttl(ttl)

    def clear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache's namespace (other namespaces are untouched)."""
        self._core.clear()

    async def aclear(self, **kwargs: Any) -> None:
        await self._core.aclear()

    def stats(self) -> dict[str, Any]:
        """Hits, misses, guard rejections, distances, latency and tokens saved (this process)."""
        return self._core.stats_snapshot()

    def flush_stats(self) -> None:
        """Write this process's unflushed counters to the backend now (they are otherwise
        flushed every few seconds during use), so ``semcache stats`` sees them."""
        self._core.flush_stats()

    @property
    def backend(self) -> Backend:
        return self._core.backend

    @property
    def namespace(self) -> str:
        return self._core.namespace


class ExactCache(_CoreBackedCache):
    """Serves a response only for the identical prompt and model configuration.

    Args:
        backend: ``None`` (in-process), a URL (``"sqlite:///cache.db"``, ``"redis://..."``,
            ``"elasticsearch+https://..."``), a redis/Elasticsearch client, or a semcache
            ``Backend`` shared with other caches.
        namespace: isolates this cache; ``clear()`` removes only this namespace.
        ttl: seconds an entry lives (``None`` = forever); ``update(..., ttl=)`` overrides it.
        refresh_ttl_on_hit: restart an entry's TTL each time it is served.
        filterable_fields: the cache scope fields this cache is partitioned by (e.g.
            ``["tenant", "user"]``): inside ``with cache_scope(tenant=..., user=...)`` lookups
            and updates see that scope's entries only (see the README, "Scopes").
        on_backend_error: ``"warn"`` (default: a failing backend is a miss, the app goes on)
            or ``"raise"``.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        namespace: str = "semcache-exact",
        ttl: float | None = None,
        refresh_ttl_on_hit: bool = False,
        filterable_fields: Sequence[str] | None = None,
        on_backend_error: ErrorPolicy = "warn",
    ) -> None:
        self._core = ResponseCache(
            backend,
            namespace=namespace,
            ttl=ttl,
            refresh_ttl_on_hit=refresh_ttl_on_hit,
            filterable_fields=filterable_fields,
            on_backend_error=on_backend_error,
        )

    # A hit's generations are validated once per distinct stored entry and built new for
    # every caller (ResponseCache.lookup_value, semcache_core.memo).
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if not (isinstance(prompt, str) and isinstance(llm_string, str)):
            self._check(prompt, llm_string)  # raises the TypeError that names the argument
        return self._core.lookup_value(llm_string, prompt, GENERATIONS)  # str: Prompt.plain

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        self._check(prompt, llm_string)
        return await self._core.alookup_value(llm_string, prompt, GENERATIONS)


class SemanticCache(_CoreBackedCache):
    """Serves a cached response for a prompt that means the same, not only the identical one.

    A lookup first tries the exact key (no embedding), then embeds the prompt's query (the
    last human message of a chat, or the whole plain prompt) once and searches the nearest
    stored query by cosine distance, only among entries with the same ``llm_string``, the same
    configuration (system prompt, tools, tool results, non-text parts) and the same embedding
    model. In a chat, ``context_match`` decides how the earlier turns are compared:
    ``"semantic"`` (default) by meaning and by the facts the answer can depend on (numbers,
    dates, names, what "it" in the last message refers to; greetings and "ok thanks" turns do
    not count), with one vector of the last message in its context searched;
    ``"exact"``: every earlier message must be identical (see the README, "Multi-turn
    conversations").
    A candidate within ``distance_threshold`` is served unless the trap guard sees that the
    two prompts differ in a detail that changes the answer (negation, opposites, numbers,
    dates, names, roles, audience...), or the optional ``verifier`` says no. Padding
    (greetings, thanks, urgency, emoji) is removed from the query before it is embedded and
    keyed, so a padded repeat is an exact hit. The vector computed by a missed lookup is
    reused by the ``update`` that follows it, so a miss costs one embedding call.

    ``distance_threshold`` defaults to :data:`semcache_core.DEFAULT_DISTANCE_THRESHOLD`,
    measured with all-MiniLM-L6-v2 (see the README). ``verifier``: a callable ``(new, cached)
    -> bool``, a chat model used as a yes/no judge, or a ``semcache_core.verifier.Verifier``;
    asked only about candidates the threshold and the guard passed, fail-closed, verdicts
    cached (see :class:`semcache_core.ResponseCache`). Other arguments as in
    :class:`ExactCache`.
    """

    def __init__(
        self,
        backend: Backend | str | Any | None = None,
        *,
        embeddings: Embeddings,
        distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
        namespace: str = "semcache-semantic",
        ttl: float | None = None,
        trap_guard: bool = True,
        verifier: Any = None,
        context_match: ContextMatch = DEFAULT_CONTEXT_MATCH,
        refresh_ttl_on_hit: bool = False,
        filterable_fields: Sequence[str] | None = None,
        on_backend_error: ErrorPolicy = "warn",
        embeddings_name: str | None = None,
    ) -> None:
        self._core = ResponseCache(
            backend,
            namespace=namespace,
            ttl=ttl,
            embedder=LangChainEmbedder(embeddings, name=embeddings_name),
            distance_threshold=distance_threshold,
            trap_guard=trap_guard,
            verifier=verifier,
            context_match=context_match,
            refresh_ttl_on_hit=refresh_ttl_on_hit,
            filterable_fields=filterable_fields,
            on_backend_error=on_backend_error,
        )

    @staticmethod
    def _prompt(prompt: str) -> Prompt:
        # The last human turn is compared; the rest of the conversation must match exactly.
        return split_prompt(prompt)

    @property
    def distance_threshold(self) -> float:
        return self._core.distance_threshold

    def set_threshold(self, distance_threshold: float) -> None:
        """Serve semantic hits within ``distance_threshold`` from now on."""
        self._core.set_threshold(distance_threshold)
