"""A size limit for Elasticsearch, applied on demand: :func:`trim` (``semcache trim``).

Elasticsearch has no eviction of its own and semcache does not count uses there (a write per
hit would cost more than the hit), so a namespace is trimmed by age: the expired entries go
first (:meth:`~semcache_core.backends.elasticsearch.bulk.BulkWriter.purge_expired`), then the
oldest-written values and vector records (``created``; documents written before that field
existed count as oldest) until at most ``max_entries`` remain. Counters and metadata documents
are not entries and stay. The entries removed are counted as ``evictions`` in the namespace's
stats. Run it from cron or after a batch job; concurrent writers may leave the namespace a
few entries over the limit, never under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semcache_core.backends.elasticsearch.calls import Call
from semcache_core.backends.elasticsearch.schema import MAX_WINDOW, VALUE, VECTOR
from semcache_core.backends.lru import validate_max_entries
from semcache_core.flow import Flow
from semcache_core.keys import validate_namespace
from semcache_core.stats import COUNTER_GROUP

if TYPE_CHECKING:
    from semcache_core.backends.elasticsearch.ops import ElasticsearchOperations


def _entries(namespace: str) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"ns": namespace}}, {"terms": {"kind": [VALUE, VECTOR]}}]}}


def trim(ops: ElasticsearchOperations, namespace: str, max_entries: int) -> Flow[int]:
    """Delete the oldest entries of ``namespace`` beyond ``max_entries``; returns how many
    live entries it evicted (the expired ones it purged first are not evictions)."""
    namespace = validate_namespace(namespace)
    limit = validate_max_entries(max_entries)
    if limit is None:
        raise TypeError("max_entries must be an int of at least 1, got None")
    yield from ops.purge_expired(namespace)
    counted = yield Call("count", {"index": ops.index, "query": _entries(namespace)})
    excess = int(counted.body.get("count", 0)) - limit
    evicted = 0
    while excess > 0:
        page = yield Call(
            "search",
            {
                "index": ops.index,
                "query": _entries(namespace),
                # unmapped_type: an older index behind an alias may not have the field yet.
                "sort": [
                    {"created": {"order": "asc", "missing": "_first", "unmapped_type": "date"}}
                ],
                "size": min(excess, MAX_WINDOW),
                "_source": False,
            },
        )
        hits = page.body.get("hits", {}).get("hits", [])
        if not hits:
            break
        operations = [{"delete": {"_index": hit["_index"], "_id": hit["_id"]}} for hit in hits]
        yield from ops._send_bulk(operations, True, tolerate=(404,))
        evicted += len(hits)
        excess -= len(hits)
    if evicted:
        yield from ops.incr_counters(namespace, COUNTER_GROUP, {"evictions": evicted})
    return evicted
