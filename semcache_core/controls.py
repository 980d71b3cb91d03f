"""The operator's controls of a :class:`~semcache_core.engine.ResponseCache`: list, read, drop
and expire single entries (the tuning of thresholds and TTLs is on the cache itself).

Each control is one flow, run sync or async over the cache's transport. Unlike lookups and
updates, which a failing backend turns into misses and skipped writes, these are not on the
application's request path: a backend error raises :class:`~semcache_core.errors.BackendError`
(a drop that silently did nothing would leave the wrong answer served).

Listing pages through the namespace with the backend's key scan (exact entries, ``llm:``,
then semantic vector records, ``vec:``), one page of keys, their bodies, their expiries and
(where the backend counts them) their hits at a time, so a big namespace never sits in memory; corrupt and foreign rows are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from semcache_core.backends.base import EntryHits, KeyScan, Operations
from semcache_core.codecs import decode_entry, validate_ttl
from semcache_core.entries import (
    LISTED_PREFIXES,
    CacheEntry,
    checked_filters,
    checked_limit,
    entry_id_of,
    entry_key,
    entry_keys,
    entry_of,
    matches,
)
from semcache_core.flow import Flow, arun, run
from semcache_core.prompt import Prompt
from semcache_core.scope import ScopeFields

if TYPE_CHECKING:
    from semcache_core.engine import ResponseCache

__all__ = ["OperatorControls"]


class OperatorControls:
    """Mixin of :class:`~semcache_core.engine.ResponseCache` (which sets these attributes)."""

    namespace: str
    ops: Operations
    transport: Any  # the engine's transport (semcache_core.engine.EngineTransport)

    # -- flows ---------------------------------------------------------------------------------
    def _entries_of(self, entry_keys: list[str]) -> Flow[list[CacheEntry]]:
        """The entries stored under ``entry_keys`` (live, decodable ones), in order."""
        if not entry_keys:
            return []
        raws = yield from self.ops.get_many(self.namespace, entry_keys)
        expiries = yield from self.ops.get_expiries(self.namespace, entry_keys)
        # Hits where the backend counts them (else every entry shows None: not tracked).
        counted = self.ops.counts_hits
        hits = yield from self.ops.get_hits(self.namespace, entry_keys)
        found: list[CacheEntry] = []
        for key, raw in zip(entry_keys, raws, strict=True):
            entry_id = entry_id_of(key)
            body = decode_entry(raw, "response")
            if body is None or entry_id is None or key not in expiries:
                continue  # corrupt, foreign, or gone between the two reads
            served = hits.get(key, EntryHits(0, None)) if counted else None
            found.append(entry_of(entry_id, body, expiries[key], served))
        return found

    def _entries_page(self, scan: KeyScan, filters: Mapping[str, str]) -> Flow[list[CacheEntry]]:
        page = yield from scan.next_page()
        listed = [key for key in scan.take(page) if entry_id_of(key) is not None]
        found = yield from self._entries_of(listed)
        return [entry for entry in found if matches(entry, filters)]

    def _entry_flow(self, entry_id: str) -> Flow[CacheEntry | None]:
        found = yield from self._entries_of([entry_key(entry_id)])
        return found[0] if found else None

    def _drop_flow(self, ids: Sequence[str]) -> Flow[None]:
        yield from self.ops.delete_many(self.namespace, entry_keys(ids))

    def _expire_flow(self, ids: Sequence[str], ttl: float | None) -> Flow[None]:
        ttl = validate_ttl(ttl)
        yield from self.ops.expire_many(self.namespace, entry_keys(ids), ttl=ttl)

    def _drop_prompt_flow(
        self, scope: str, prompt: Prompt, fields: ScopeFields | None
    ) -> Flow[str | None]:
        """Drop the entry a lookup of ``prompt`` would serve now: the exact entry, else (a
        semantic cache) the candidate the stages would serve, as :meth:`explain` finds it
        (under ``fields``, the active cache scope's when ``None``, as a lookup)."""
        from semcache_core.engine import SEMANTIC_CANDIDATES, _check_text
        from semcache_core.explain import explain_flow

        _check_text(scope, prompt)
        cache: ResponseCache = self  # type: ignore[assignment]
        explanation = yield from explain_flow(
            cache, scope, prompt, k=SEMANTIC_CANDIDATES, threshold=None, fields=fields
        )
        served = explanation.served
        if served is None:
            return None
        yield from self.ops.delete_many(self.namespace, [entry_key(served)])
        return served

    def _scans(self) -> list[KeyScan]:
        return [KeyScan(self.ops, self.namespace, prefix) for prefix in LISTED_PREFIXES]

    # -- public API ----------------------------------------------------------------------------
    def entries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> Iterator[CacheEntry]:
        """The entries of this namespace, exact ones first, a page at a time (an iterator:
        ``list(cache.entries())`` for all). ``filters``: only entries whose stored scope has
        each given field at exactly that value; ``limit``: at most that many."""
        wanted, most = checked_filters(filters), checked_limit(limit)
        return self._iter_entries(wanted, most)

    def _iter_entries(self, filters: Mapping[str, str], limit: int | None) -> Iterator[CacheEntry]:
        listed = 0
        for scan in self._scans():
            while not scan.finished:
                for entry in run(self._entries_page(scan, filters), self.transport):
                    yield entry
                    listed += 1
                    if limit is not None and listed >= limit:
                        return

    def aentries(
        self, *, filters: Mapping[str, str] | None = None, limit: int | None = None
    ) -> AsyncIterator[CacheEntry]:
        """Async iterator of :meth:`entries`: ``async for entry in cache.aentries(): ...``."""
        wanted, most = checked_filters(filters), checked_limit(limit)
        return self._aiter_entries(wanted, most)

    async def _aiter_entries(
        self, filters: Mapping[str, str], limit: int | None
    ) -> AsyncIterator[CacheEntry]:
        listed = 0
        for scan in self._scans():
            while not scan.finished:
                for entry in await arun(self._entries_page(scan, filters), self.transport):
                    yield entry
                    listed += 1
                    if limit is not None and listed >= limit:
                        return

    def entry(self, entry_id: str) -> CacheEntry | None:
        """The entry ``entry_id`` (an id of :meth:`entries` or ``explain``), ``None`` if gone."""
        return run(self._entry_flow(entry_id), self.transport)

    async def aentry(self, entry_id: str) -> CacheEntry | None:
        return await arun(self._entry_flow(entry_id), self.transport)

    def drop(self, ids: Sequence[str]) -> None:
        """Remove the entries ``ids`` (ids of :meth:`entries` or ``explain``; missing ones are
        skipped). A semantic entry leaves the vector search of every backend with it."""
        run(self._drop_flow(ids), self.transport)

    async def adrop(self, ids: Sequence[str]) -> None:
        await arun(self._drop_flow(ids), self.transport)

    def drop_prompt(
        self, scope: str, prompt: Prompt, *, fields: ScopeFields | None = None
    ) -> str | None:
        """Remove the entry a lookup of ``prompt`` under ``scope`` would serve now (the exact
        entry, else the semantic hit); its id, ``None`` when a lookup would miss. ``fields``
        as in :meth:`lookup` (``None``: the active ``cache_scope``'s)."""
        return run(self._drop_prompt_flow(scope, prompt, fields), self.transport)

    async def adrop_prompt(
        self, scope: str, prompt: Prompt, *, fields: ScopeFields | None = None
    ) -> str | None:
        return await arun(self._drop_prompt_flow(scope, prompt, fields), self.transport)

    def expire(self, ids: Sequence[str], ttl: float | None) -> None:
        """Let the entries ``ids`` expire ``ttl`` seconds from now (``None``: never)."""
        run(self._expire_flow(ids, ttl), self.transport)

    async def aexpire(self, ids: Sequence[str], ttl: float | None) -> None:
        await arun(self._expire_flow(ids, ttl), self.transport)
