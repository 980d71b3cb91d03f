"""What a cached response entry holds, as an operator sees it: :class:`CacheEntry`.

An entry is listed by :meth:`ResponseCache.entries <semcache_core.engine.ResponseCache.entries>`
under its **id**, the handle every operator control takes (``drop``, ``expire``, ``entry``;
``explain`` shows the same ids):

* an exact entry (a cache without embedder): ``llm:<32 hex digits>``, its key;
* a semantic entry: ``<16 hex digits>.<32 hex digits>``, its vector record's id (the partition
  tag, then the hash of its query: :func:`semcache_core.keys.semantic_entry_id`).

The body an entry was read from is untrusted: :func:`semcache_core.codecs.decode_entry` checks
every field shown here, and an entry whose fields do not hold what they should is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from semcache_core import keys
from semcache_core.backends.base import EntryHits
from semcache_core.errors import SemcacheInputError

__all__ = ["CacheEntry", "entry_id_of", "entry_key"]

_EXACT_ID = re.compile(r"llm:[0-9a-f]{32}")
_SEMANTIC_ID = re.compile(r"(?:[0-9a-f]{16}\.)?[0-9a-f]{32}")
#: The key prefixes an entry listing scans: exact entries, then semantic vector records.
LISTED_PREFIXES = ("llm:", keys.VECTOR_PREFIX)


@dataclass(frozen=True)
class CacheEntry:
    """One cached response, for auditing.

    ``id``: the handle of ``drop``/``expire``/``entry`` (see the module docstring); ``kind``:
    ``"exact"`` or ``"semantic"``; ``prompt``: the whole prompt as stored (a conversation: its
    serialized messages); ``query``: what a lookup compares (a semantic entry: the query as
    asked, e.g. the last user message; an exact entry: the whole prompt); ``llm_string``: the
    scope the adapter passed (model and parameters); ``created`` and ``expires``: epoch
    seconds (``expires`` is the backend's, so it follows ``expire()`` and refreshes on hit;
    ``None``: never); ``scope``: the declared filter fields it was stored under; ``metadata``:
    user metadata; ``value``: the cached response as JSON; ``hits``: how often it was served
    since it was written and ``last_hit`` when last (epoch seconds; ``None``: never), where the
    backend counts hits (``memory://`` and ``sqlite://`` with ``track_hits=True``; ``hits`` is
    ``None`` elsewhere: not tracked).
    ``prompt`` and ``llm_string`` are ``None`` for entries written before semcache stored them.
    """

    id: str
    kind: Literal["exact", "semantic"]
    prompt: str | None
    query: str | None
    llm_string: str | None
    created: float | None
    expires: float | None
    scope: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    value: Mapping[str, Any] = field(default_factory=dict)
    hits: int | None = None
    last_hit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON types only (``semcache entries --json``)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "prompt": self.prompt,
            "query": self.query,
            "llm_string": self.llm_string,
            "created": self.created,
            "expires": self.expires,
            "scope": dict(self.scope),
            "metadata": dict(self.metadata),
            "value": dict(self.value),
            "hits": self.hits,
            "last_hit": self.last_hit,
        }


def entry_key(entry_id: object) -> str:
    """The backend key of the entry ``entry_id``; anything that is not an entry id is a clear
    error (a typo must not silently drop nothing)."""
    if not isinstance(entry_id, str):
        raise TypeError(f"an entry id must be a str, got {type(entry_id).__name__}")
    if _EXACT_ID.fullmatch(entry_id):
        return entry_id
    if _SEMANTIC_ID.fullmatch(entry_id):
        return keys.vector_key(entry_id)
    raise SemcacheInputError(
        f"{entry_id!r} is not an entry id: ids are 'llm:<32 hex digits>' (exact entries) or "
        "'<16 hex digits>.<32 hex digits>' (semantic entries), as listed by entries() and "
        "shown by explain()"
    )


def entry_keys(ids: Iterable[str]) -> list[str]:
    """The keys of ``ids`` (a list of ids: a single str is refused, it is not a list)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a list of entry ids, not a single str: drop([entry_id])")
    return [entry_key(entry_id) for entry_id in ids]


def entry_id_of(key: str) -> str | None:
    """The id of the entry stored under ``key``; ``None`` for a key that is no entry's."""
    if _EXACT_ID.fullmatch(key):
        return key
    record = keys.vector_id(key)
    return record if record is not None and _SEMANTIC_ID.fullmatch(record) else None


def checked_filters(filters: Mapping[str, str] | None) -> dict[str, str]:
    """``filters`` as a dict of str to str (``None``: no filter)."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters must be a mapping of str to str, got {type(filters).__name__}")
    for name, value in filters.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"filters must map str to str, got {name!r}: {value!r}")
    return dict(filters)


def checked_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SemcacheInputError(f"limit must be None or a positive int, got {limit!r}")
    return limit


def entry_of(
    entry_id: str, body: Mapping[str, Any], expires: float | None, hits: EntryHits | None = None
) -> CacheEntry:
    """The entry of a ``response`` body that :func:`~semcache_core.codecs.decode_entry`
    accepted (it checked the type of every field read here); ``hits``: its counted hits
    (``None``: not tracked by the backend)."""
    exact = entry_id.startswith("llm:")
    prompt = body.get("prompt")
    query = body.get("query")
    created = body.get("created")
    return CacheEntry(
        id=entry_id,
        kind="exact" if exact else "semantic",
        prompt=prompt,
        query=prompt if exact else query,
        llm_string=body.get("llm_string"),
        created=None if created is None else float(created),
        expires=expires,
        scope=body.get("scope", {}),
        metadata=body.get("metadata", {}),
        value=body["value"],
        hits=None if hits is None else hits.hits,
        last_hit=None if hits is None else hits.last_hit,
    )


def matches(entry: CacheEntry, filters: Mapping[str, str]) -> bool:
    """Whether each filter field is exactly the entry's scope value of that name."""
    return all(entry.scope.get(name) == value for name, value in filters.items())
