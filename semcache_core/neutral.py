"""The framework-neutral API of :class:`~semcache_core.engine.ResponseCache`: ``check`` and
``store`` (and ``acheck``/``astore``), for applications that call their model themselves::

    cache = ResponseCache("redis://localhost:6379", embedder=my_embedder,
                          filterable_fields=["tenant"])
    entry_id = cache.store("What is the capital of France?", "Paris",
                           metadata={"source": "faq"}, filters={"tenant": "acme"})
    for match in cache.check("what's the capital of France?", filters={"tenant": "acme"}):
        print(match.response, match.distance, match.metadata, match.id)

The rules, in one place:

* ``response`` is a str or any JSON-safe value (dicts with str keys, lists, str, finite
  numbers, bool, ``None``; at most :data:`MAX_VALUE_DEPTH` levels deep), stored as the entry's
  value ``{"response": ...}``; ``metadata`` a JSON-safe dict, returned as it was stored. An
  entry written by an adapter (LangChain generations, a LlamaIndex response) comes back with
  its stored JSON object as ``.response``.
* ``scope`` names what must be identical for an answer to be reused (the model and its
  parameters: LangChain's ``llm_string``); ``""`` by default. Entries of another scope never
  match.
* ``filters`` are cache scope fields (the cache's ``filterable_fields``, see
  :mod:`semcache_core.scope`), combined with the active :func:`~semcache_core.scope.cache_scope`
  field by field: an explicit filter overrides the context's value of that field, ``None``
  removes it, the context's other fields stay. Matching is exact on every declared field.
* ``check`` runs the lookup's stages (the exact entry of the query, then the nearest entries
  within the threshold that the trap guard and the verifier pass) and returns up to
  ``num_results`` :class:`Match` es, best first; ``distance_threshold`` overrides the cache's
  for this call. It counts as one lookup in the stats (a hit when it returned a match).
* ``vector=``: the caller's embedding of the prompt (its query as compared: the prompt without
  padding), instead of an embedding call. It must come from the model the cache's embedder
  names (the name is part of the partition); a vector of another dimension than the stored
  ones is a :class:`~semcache_core.errors.SemcacheInputError`. An exact cache (no embedder)
  takes no ``vector`` and no ``distance_threshold``.
* ``.id`` is what ``drop(ids)`` takes: the exact entry key of an exact cache, the vector record
  id (``keys.vector_key(id)`` is its key) of a semantic one. ``store`` returns it also when the
  write was skipped (a failing backend or embedder under ``on_backend_error="warn"``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcache_core import keys
from semcache_core.codecs import Vector, as_vector, normalize
from semcache_core.engine import (
    SEMANTIC_CANDIDATES,
    LookupResult,
    ResponseCache,
    _check_text,
    callers_dimension,
    validate_threshold,
)
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow
from semcache_core.prompt import Prompt
from semcache_core.scope import ScopeFields
from semcache_core.stages import Candidate

__all__ = ["MAX_NUM_RESULTS", "MAX_VALUE_DEPTH", "Match", "check_flow", "store_flow"]

#: The value key of an entry written by :meth:`ResponseCache.store`.
RESPONSE_FIELD = "response"
#: Most candidates one ``check`` returns.
MAX_NUM_RESULTS = 100
#: Deepest nesting of a response or metadata value: well inside what decoding accepts
#: (:data:`semcache_core.codecs.MAX_JSON_DEPTH`, which counts the entry's envelope too), so
#: what is stored can be read back.
MAX_VALUE_DEPTH = 100


@dataclass(frozen=True)
class Match:
    """A stored entry that answers a :meth:`~ResponseCache.check`.

    ``id``: what ``drop(ids)`` takes; ``prompt``: the stored prompt (as it was asked);
    ``response``: the stored response; ``distance``: cosine distance to the checked prompt
    (``0.0`` for its exact entry); ``metadata``: the user metadata stored with it (``{}`` if
    none); ``scope``: the cache scope fields it was stored under (``{}`` if unscoped).
    """

    id: str
    prompt: str
    response: Any
    distance: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    scope: Mapping[str, str] = field(default_factory=dict)


def _json_problem(value: Any, where: str, depth: int = 0) -> str | None:
    """Why ``value`` is not JSON-safe (would not come back equal), or ``None``."""
    if depth > MAX_VALUE_DEPTH:
        return f"{where} is nested deeper than {MAX_VALUE_DEPTH} levels"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r} (not finite)"
    if isinstance(value, list):
        for i, item in enumerate(value):
            if problem := _json_problem(item, f"{where}[{i}]", depth + 1):
                return problem
        return None
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                return f"{where} has a key {name!r} that is not a str"
            if problem := _json_problem(item, f"{where}[{name!r}]", depth + 1):
                return problem
        return None
    return f"{where} is a {type(value).__name__}"


_JSON_SAFE = "a str or a JSON-safe value (dict with str keys, list, str, finite number, bool, None)"


def response_value(response: Any) -> dict[str, Any]:
    """The entry value of a :meth:`~ResponseCache.store` response (checked)."""
    if problem := _json_problem(response, "response"):
        raise TypeError(f"response must be {_JSON_SAFE}: {problem}")
    return {RESPONSE_FIELD: response}


def response_of(value: dict[str, Any]) -> Any:
    """The response of a stored value: what :func:`response_value` wrapped, else (an adapter's
    entry) the value itself."""
    if len(value) == 1 and RESPONSE_FIELD in value:
        return value[RESPONSE_FIELD]
    return value


def checked_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    if problem := _json_problem(metadata, "metadata"):
        raise TypeError(f"metadata must be a JSON-safe dict: {problem}")
    return metadata


def _checked_prompt(scope: Any, prompt: Any) -> Prompt:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not isinstance(scope, str):
        raise TypeError(f"scope must be a str, got {type(scope).__name__}")
    plain = Prompt.plain(prompt)
    _check_text(scope, plain)
    return plain


def _checked_num_results(num_results: Any) -> int:
    if isinstance(num_results, bool) or not isinstance(num_results, int):
        raise TypeError(f"num_results must be an int, got {type(num_results).__name__}")
    if not 1 <= num_results <= MAX_NUM_RESULTS:
        raise SemcacheInputError(
            f"num_results must be between 1 and {MAX_NUM_RESULTS}, got {num_results}"
        )
    return num_results


def _callers_vector(cache: ResponseCache, vector: Any) -> Vector | None:
    if vector is None:
        return None
    if not cache.semantic:
        raise SemcacheInputError("vector= needs a semantic cache: this cache has no embedder")
    return normalize(as_vector(vector))


def _match(candidate: Candidate) -> Match:
    body = candidate.body
    return Match(
        candidate.entry_id,
        candidate.query,
        response_of(body["value"]),
        candidate.distance,
        body.get("metadata", {}),
        body.get("scope", {}),
    )


def check_flow(
    cache: ResponseCache,
    prompt: str,
    *,
    scope: str,
    num_results: int,
    filters: ScopeFields | None,
    threshold: float | None,
    vector: Any,
) -> Flow[list[Match]]:
    """The flow of :meth:`ResponseCache.check` (see the module docstring)."""
    plain = _checked_prompt(scope, prompt)
    limit = _checked_num_results(num_results)
    fields = cache.scope_fields(filters)
    callers = _callers_vector(cache, vector)
    if threshold is not None:
        if not cache.semantic:
            raise SemcacheInputError(
                "distance_threshold= applies to semantic caches: this cache has no embedder"
            )
        threshold = validate_threshold(threshold)
    started = time.perf_counter()
    if cache.semantic:
        found, exact = yield from _semantic(cache, scope, plain, fields, limit, threshold, callers)
    else:
        key = keys.exact_entry_key(cache.namespace, scope, plain.text, fields)
        body = yield from cache._read_one(key)
        found, exact = ([], False) if body is None else ([Candidate(key, 0.0, prompt, body)], True)
        if found:
            yield from cache._served(key)
    if not found:
        result = LookupResult(None, "miss")
    else:
        result = LookupResult(found[0].body, "exact" if exact else "semantic", found[0].distance)
    cache._count_lookup(result, started)
    yield from cache._maybe_flush()
    return [_match(candidate) for candidate in found]


def _semantic(
    cache: ResponseCache,
    scope: str,
    prompt: Prompt,
    fields: ScopeFields,
    limit: int,
    threshold: float | None,
    callers: Vector | None,
) -> Flow[tuple[list[Candidate], bool]]:
    """The candidates of a semantic check, and whether the best is the query's exact entry."""
    query = cache.query(prompt, threshold)
    partition = cache.partition(scope, prompt, fields)
    entry_id = cache.entry_id(partition, query)
    body = yield from cache._read_one(keys.vector_key(entry_id))
    found: list[Candidate] = []
    if body is not None and cache.is_exact_entry(body, query):
        yield from cache._served(keys.vector_key(entry_id))
        found.append(Candidate(entry_id, 0.0, str(body["query"]), body))
    exact = bool(found)
    if len(found) >= limit:
        return found, exact
    vector = callers
    if vector is None:
        vector = yield from cache._embed(query.compared)
        if vector is None:
            return found, exact
        cache._remember_vector(partition, query.compared, vector)  # for a store() that follows
    search = cache.ops.search_vectors(
        cache.namespace,
        partition,
        vector,
        k=limit + SEMANTIC_CANDIDATES - 1,
        max_distance=query.threshold,
    )
    if callers is not None:
        search = callers_dimension(search)
    hits = yield from cache.guard.shield("search_vectors", search, [])
    others = [hit for hit in hits if hit.id != entry_id] if exact else hits
    found += yield from cache._accepted(query, others, limit=limit - len(found))
    return found, exact


def store_flow(
    cache: ResponseCache,
    prompt: str,
    response: Any,
    *,
    scope: str,
    metadata: Any,
    filters: ScopeFields | None,
    ttl: Any,
    vector: Any,
) -> Flow[str]:
    """The flow of :meth:`ResponseCache.store` (see the module docstring)."""
    plain = _checked_prompt(scope, prompt)
    value = response_value(response)
    stored_metadata = checked_metadata(metadata)
    fields = cache.scope_fields(filters)
    callers = _callers_vector(cache, vector)
    entry_id = yield from cache._update_flow(
        scope,
        plain,
        value,
        tokens=0,
        ttl=ttl,
        fields=fields,
        metadata=stored_metadata,
        vector=callers,
    )
    return entry_id
