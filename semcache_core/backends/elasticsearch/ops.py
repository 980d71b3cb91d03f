"""Elasticsearch backend: every operation, written once as a flow of :class:`Call` steps.

Nothing here does I/O: :class:`~semcache_core.backends.elasticsearch.backend.
ElasticsearchBackend` is the transport that performs the calls with the sync or the async
client. Every read checks ``ns``, ``kind`` and ``key`` of what it got, so a document is only
ever returned for the key that wrote it (layout: :mod:`.schema`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from semcache_core import keys as keyspace
from semcache_core.backends.base import (
    KeyPage,
    Operations,
    VectorHit,
    VectorSearch,
    VectorWrite,
    counters_of,
)
from semcache_core.backends.elasticsearch.bulk import BulkWriter
from semcache_core.backends.elasticsearch.calls import Call, Reply, error_of
from semcache_core.backends.elasticsearch.schema import (
    COUNTER,
    COUNTER_SCRIPT,
    MAX_WINDOW,
    META,
    VALUE,
    VECTOR,
    Refresh,
    decode_b64,
    doc_id,
    encode_tag,
    expiry_ms,
    is_live,
    key_bytes,
    live_filter,
    now_ms,
    vector_field,
)
from semcache_core.codecs import bytes_to_base64, vector_from_base64, vector_to_base64
from semcache_core.errors import BackendError, SemcacheInputError
from semcache_core.flow import Flow

logger = logging.getLogger("semcache")


class ElasticsearchOperations(BulkWriter, Operations):
    """Configuration, per-process knowledge of the index, and the flows of every operation."""

    label = "the Elasticsearch"

    def __init__(
        self,
        *,
        index: str,
        refresh: Refresh,
        purge_interval: float | None,
        num_candidates: int,
        page_size: int,
        vector_index_options: Mapping[str, Any],
        index_settings: Mapping[str, Any] | None,
    ) -> None:
        self.index = index
        self.refresh = refresh
        self.purge_interval = purge_interval
        self.num_candidates = num_candidates
        self.page_size = page_size
        self.vector_index_options = dict(vector_index_options)
        self.index_settings = dict(index_settings) if index_settings else None
        #: Whether ``index`` names an alias (writes then pass ``require_alias=True``).
        self.is_alias = False
        self.read_indices = []
        self._ready = False
        self._fields = {}
        self._vector_fields_ready = set()
        self._namespace_dims = {}
        self._last_purge = -math.inf

    def _document(self, reply: Reply) -> dict[str, Any] | None:
        """The ``_source`` of a ``get`` reply (``ignore=(404,)``), None when not found."""
        if reply.status == 404 and "error" in reply.body:
            self.forget_index()
            error_type, reason = error_of(reply.body)
            raise BackendError(
                f"Elasticsearch index {self.index!r} is gone: {error_type}: {reason}"
            )
        if not reply.body.get("found"):
            return None
        source = reply.body.get("_source")
        return dict(source) if isinstance(source, Mapping) else None

    def _mget(self, ids: list[str], fields: list[str] | None = None) -> Call:
        if self.read_indices:  # an alias over several indices: every id in every index
            docs = [{"_index": name, "_id": i} for i in ids for name in self.read_indices]
            return Call("mget", {"docs": docs, **({"source": fields} if fields else {})})
        kwargs: dict[str, Any] = {"index": self.index, "ids": ids}
        if fields is not None:
            kwargs["source"] = fields
        return Call("mget", kwargs)

    def _found(
        self, reply: Reply, namespace: str, kind: str, keys_by_id: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Live documents of ``kind`` in an mget reply, by key (checked field by field)."""
        now = now_ms()
        found: dict[str, dict[str, Any]] = {}
        for doc in reply.body.get("docs", ()):
            if "error" in doc:
                error_type, reason = error_of(doc)
                if error_type == "index_not_found_exception":
                    self.forget_index()
                raise BackendError(
                    f"Elasticsearch mget of {doc.get('_id')!r} in {self.index!r} failed: "
                    f"{error_type}: {reason}"
                )
            if not doc.get("found"):
                continue
            key = keys_by_id.get(doc.get("_id", ""))
            if key in found:
                continue  # an older copy in another index of the alias (the newest came first)
            source = doc.get("_source") or {}
            if (
                key is None
                or source.get("ns") != namespace
                or source.get("kind") != kind
                or source.get("key") != key
                or not is_live(source, now)
            ):
                continue
            found[key] = {
                **source,
                "_seq_no": doc.get("_seq_no"),
                "_pt": doc.get("_primary_term"),
                "_in": doc.get("_index"),
            }
        return found

    # -- values ----------------------------------------------------------------------------
    @staticmethod
    def _value_id(namespace: str, key: str) -> str:
        key_bytes(key, "key")
        return doc_id(namespace, "", key)

    def _ids_by_kind(
        self, namespace: str, keys: list[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """``{document id: key}`` of the value keys, ``{document id: record id}`` of the
        vector records (``vec:<id>`` keys)."""
        value_ids: dict[str, str] = {}
        vector_ids: dict[str, str] = {}
        for key in keys:
            entry_id = keyspace.vector_id(key)
            if entry_id is None:
                value_ids[self._value_id(namespace, key)] = key
            else:
                vector_ids[self._vector_id(namespace, entry_id)] = entry_id
        return value_ids, vector_ids

    def _get_many(self, namespace: str, keys: list[str]) -> Flow[list[bytes | None]]:
        value_ids, vector_ids = self._ids_by_kind(namespace, list(dict.fromkeys(keys)))
        yield from self.ensure_index()
        fields = ["ns", "kind", "key", "value", "expires_at"]
        reply = yield self._mget([*value_ids, *vector_ids], fields)
        values = {
            key: decode_b64(doc.get("value"), "value")
            for key, doc in self._found(reply, namespace, VALUE, value_ids).items()
        }
        for entry_id, doc in self._found(reply, namespace, VECTOR, vector_ids).items():
            values[keyspace.vector_key(entry_id)] = decode_b64(doc.get("value"), "payload")
        return [values.get(key) for key in keys]

    def _set_many(
        self, namespace: str, items: list[tuple[str, bytes]], ttl_ms: int | None
    ) -> Flow[None]:
        expires_at, created = expiry_ms(ttl_ms), now_ms()
        operations: list[dict[str, Any]] = []
        for key, value in items:
            value_id = self._value_id(namespace, key)
            source: dict[str, Any] = {
                "ns": namespace,
                "kind": VALUE,
                "key": key,
                "value": bytes_to_base64(value),
                "created": created,
            }
            if expires_at is not None:
                source["expires_at"] = expires_at
            operations += [self._action("index", value_id), source]
        yield from self.ensure_index()
        # No refresh: values are read by id (realtime); iter_keys refreshes before scanning.
        yield from self._send_bulk(operations)
        yield from self._maybe_purge()

    def _delete_many(self, namespace: str, keys: list[str]) -> Flow[None]:
        value_ids, vector_ids = self._ids_by_kind(namespace, keys)
        # Through an alias over several indices, in each of them: an older copy must not be
        # read again once the newest is gone.
        operations = [
            {"delete": {"_index": name, "_id": i}}
            for i in [*value_ids, *vector_ids]
            for name in (self.read_indices or [self.index])
        ]
        yield from self.ensure_index()
        # Deleted records must not be found by a search right after: vector deletes use the
        # configured refresh; values are read by id (realtime) and need none.
        refresh = self.refresh if vector_ids else None
        yield from self._send_bulk(operations, refresh, tolerate=(404,))

    def _scan_keys(self, namespace: str, prefix: str, cursor: str | None) -> Flow[KeyPage]:
        """One page of keys in key order, continuing after ``cursor`` (the last key seen).

        Pages never repeat or skip a key (the sort key is unique); a scan sees writes made
        during it, as any paged scan without a point in time does.
        """
        yield from self.ensure_index()
        if cursor is None and self.refresh:
            # Keys written since the last scheduled refresh must be listed too. One refresh per
            # scan instead of one per write; a user without the refresh privilege gets keys
            # up to the index's refresh interval old.
            yield Call("indices.refresh", {"index": self.index}, admin=True, soft=True)
        vectors = prefix.startswith(keyspace.VECTOR_PREFIX)
        if vectors:  # vector records: their key field is the record id
            prefix = prefix[len(keyspace.VECTOR_PREFIX) :]
        clauses: list[dict[str, Any]] = [
            {"term": {"ns": namespace}},
            {"term": {"kind": VECTOR if vectors else VALUE}},
            live_filter(now_ms()),
        ]
        if prefix:
            # A prefix query on a keyword field matches the characters literally.
            clauses.append({"prefix": {"key": {"value": prefix}}})
        kwargs: dict[str, Any] = {
            "index": self.index,
            "query": {"bool": {"filter": clauses}},
            "sort": [{"key": "asc"}],
            "size": self.page_size,
            "source": False,
            "track_total_hits": False,
        }
        if cursor is not None:
            kwargs["search_after"] = [cursor]
        reply = yield Call("search", kwargs)
        hits = reply.body["hits"]["hits"]
        keys = [str(hit["sort"][0]) for hit in hits]
        following = keys[-1] if len(hits) == self.page_size else None
        if vectors:
            keys = [keyspace.vector_key(entry_id) for entry_id in keys]
        return KeyPage(keys, following)

    def _get_expiries(self, namespace: str, keys: list[str]) -> Flow[dict[str, float | None]]:
        value_ids, vector_ids = self._ids_by_kind(namespace, keys)
        yield from self.ensure_index()
        reply = yield self._mget([*value_ids, *vector_ids], ["ns", "kind", "key", "expires_at"])
        found: dict[str, float | None] = {}
        documents = [
            *self._found(reply, namespace, VALUE, value_ids).items(),
            *(
                (keyspace.vector_key(entry_id), doc)
                for entry_id, doc in self._found(reply, namespace, VECTOR, vector_ids).items()
            ),
        ]
        for key, doc in documents:
            expires_at = doc.get("expires_at")
            found[key] = None if expires_at is None else float(expires_at) / 1000
        return found

    def _expire_many(self, namespace: str, keys: list[str], ttl_ms: int | None) -> Flow[None]:
        """Reset the TTL of live values and vector records (one mget, one bulk)."""
        value_ids, vector_ids = self._ids_by_kind(namespace, keys)
        yield from self.ensure_index()
        reply = yield self._mget([*value_ids, *vector_ids])
        values = self._found(reply, namespace, VALUE, value_ids)
        vectors = self._found(reply, namespace, VECTOR, vector_ids)
        expires_at = expiry_ms(ttl_ms)
        operations: list[dict[str, Any]] = []
        for key, doc in values.items():
            guard = {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_pt"]}
            operations += [
                self._action("update", self._value_id(namespace, key), **guard),
                {"doc": {"expires_at": expires_at}},
            ]
        for key, doc in vectors.items():
            # The kNN field is not in _source, so a partial update would drop it from the
            # index: write the whole document again, rebuilding it from the base64 copy.
            source = {k: v for k, v in doc.items() if not k.startswith("_")}
            try:
                vector = vector_from_base64(source["vector"])
            except (KeyError, TypeError, SemcacheInputError):
                logger.warning("semcache: not refreshing the TTL of a corrupt vector document")
                continue
            source[vector_field(int(vector.shape[0]))] = vector.tolist()
            source["expires_at"] = expires_at
            guard = {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_pt"]}
            operations += [self._action("index", self._vector_id(namespace, key), **guard), source]
        if not operations:
            return
        # 409: rewritten meanwhile (the newer write has its own TTL); 404: deleted meanwhile.
        yield from self._send_bulk(operations, tolerate=(404, 409))

    # -- atomic values (semcache_core.context_cache) -----------------------------------------
    # Elasticsearch has no TTL: a document may exist but be expired, so both read the document
    # (realtime get, with its sequence number) and then write with ``op_type=create`` (no
    # document) or ``if_seq_no``/``if_primary_term`` (replacing exactly what was read); a 409
    # means another writer got there first.
    def _set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        return (yield from self._compare_and_set(namespace, key, None, value, ttl_ms))

    def _compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl_ms: int | None
    ) -> Flow[bool]:
        value_id = self._value_id(namespace, key)
        yield from self.ensure_index()
        reply = yield Call("get", {"index": self.single_index, "id": value_id}, ignore=(404,))
        source = self._document(reply)
        current: bytes | None = None
        if (
            source
            and (source.get("ns"), source.get("kind"), source.get("key")) == (namespace, VALUE, key)
            and is_live(source, now_ms())
        ):
            current = decode_b64(source.get("value"), "value")
        if current != expected:
            return False
        document: dict[str, Any] = {
            "ns": namespace,
            "kind": VALUE,
            "key": key,
            "value": bytes_to_base64(new),
            "created": now_ms(),
        }
        expires_at = expiry_ms(ttl_ms)
        if expires_at is not None:
            document["expires_at"] = expires_at
        kwargs = self._write_kwargs()
        kwargs.update(id=value_id, document=document)
        if source is None and not reply.body.get("found"):
            kwargs["op_type"] = "create"
        else:
            kwargs["if_seq_no"] = reply.body["_seq_no"]
            kwargs["if_primary_term"] = reply.body["_primary_term"]
        written = yield Call("index", kwargs, ignore=(409,))
        return bool(written.status != 409)

    # -- vectors ---------------------------------------------------------------------------
    @staticmethod
    def _vector_id(namespace: str, record_id: str) -> str:
        key_bytes(record_id, "vector record id")
        return doc_id(namespace, "vec:", record_id)

    def _partition_dim(self, namespace: str, partition: str, dim: int) -> Flow[bool]:
        """Check ``dim`` against the partition's; True when the partition has none yet.

        The dimension is per partition (its ``meta:dims:<partition>`` document), not per
        namespace: a new embedding model is a new partition (its name is part of it) and
        simply starts its own, in the ``knn_<dim>`` field of its dimension.
        """
        if self._namespace_dims.get((namespace, partition)) == dim:
            return False
        # Unknown, or a different dimension cached (perhaps stale): ask the index (realtime).
        reply = yield Call(
            "get",
            {"index": self.single_index, "id": doc_id(namespace, "meta:", "dims:" + partition)},
            ignore=(404,),
        )
        source = self._document(reply)
        stored = source.get("dims") if source and source.get("kind") == META else None
        if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
            if stored is not None:
                logger.warning("semcache: ignoring a malformed dimension marker: %r", stored)
            self._namespace_dims.pop((namespace, partition), None)
            return stored is None
        self._namespace_dims[(namespace, partition)] = stored
        if stored != dim:
            raise keyspace.dimension_error(namespace, dim, stored)
        return False

    def _add_vectors(self, namespace: str, write: VectorWrite) -> Flow[None]:
        partition, records, dim, ttl_ms = write.partition, write.records, write.dim, write.ttl_ms
        key_bytes(partition, "partition")
        ids = [self._vector_id(namespace, record.id) for record in records]
        yield from self.ensure_index()
        yield from self._ensure_vector_field(dim)
        first = yield from self._partition_dim(namespace, partition, dim)
        expires_at, created = expiry_ms(ttl_ms), now_ms()
        operations: list[dict[str, Any]] = []
        if first:
            marker = "dims:" + partition
            meta = {"ns": namespace, "kind": META, "key": marker, "dims": dim}
            operations += [self._action("create", doc_id(namespace, "meta:", marker)), meta]
        knn = vector_field(dim)
        for record, record_id in zip(records, ids, strict=True):
            source: dict[str, Any] = {
                "ns": namespace,
                "kind": VECTOR,
                "key": record.id,
                "part": partition,
                "tags": sorted(encode_tag(k, v) for k, v in record.tags.items()),
                "value": bytes_to_base64(record.payload),
                "vector": vector_to_base64(record.vector),
                knn: record.vector.tolist(),
                "created": created,
            }
            if expires_at is not None:
                source["expires_at"] = expires_at
            operations += [self._action("index", record_id), source]
        # A semantic lookup must see this write: the configured refresh applies here.
        # 409: the meta document exists already.
        yield from self._send_bulk(operations, self.refresh, tolerate=(409,))
        self._namespace_dims[(namespace, partition)] = dim
        yield from self._maybe_purge()

    def _search_vectors(self, namespace: str, search: VectorSearch) -> Flow[list[VectorHit]]:
        partition, vector, k = search.partition, search.vector, search.k
        max_distance, tags = search.max_distance, search.tags
        dim = int(vector.shape[0])
        yield from self.ensure_index()
        yield from self._partition_dim(namespace, partition, dim)
        if not (yield from self._has_vector_field(dim)):
            return []  # no vector of this dimension was ever stored in the index
        now = now_ms()
        filters: list[dict[str, Any]] = [
            {"term": {"ns": namespace}},
            {"term": {"kind": VECTOR}},
            {"term": {"part": partition}},
            live_filter(now),
        ]
        for name, value in sorted(tags.items()):
            filters.append({"term": {"tags": encode_tag(name, value)}})
        k = min(k, MAX_WINDOW)
        knn = {
            "field": vector_field(dim),
            "query_vector": vector.tolist(),
            "k": k,
            "num_candidates": min(MAX_WINDOW, max(k, self.num_candidates)),
            # Pre-filter: candidates are chosen among matching documents only.
            "filter": filters,
            # Raw cosine similarity floor (not the score); a hair lower than the threshold so
            # float rounding never drops a hit the exact check below keeps.
            "similarity": max(-1.0, 1.0 - max_distance - 1e-6),
        }
        reply = yield Call(
            "search",
            {
                "index": self.index,
                "knn": knn,
                "size": k,
                "source": ["ns", "kind", "key", "value", "expires_at"],
                "track_total_hits": False,
            },
        )
        hits: list[VectorHit] = []
        found = reply.body["hits"]["hits"]
        if self.read_indices:  # through several indices: the write index's copy of a key wins
            found = sorted(found, key=lambda hit: hit.get("_index") != self.read_indices[0])
        seen: set[str] = set()
        for hit in found:
            source = hit.get("_source") or {}
            if source.get("key") in seen:
                continue
            seen.add(str(source.get("key")))
            # Elasticsearch's cosine score is (1 + cos) / 2; our distance is 1 - cos.
            distance = min(2.0, max(0.0, 2.0 - 2.0 * float(hit["_score"])))
            if distance > max_distance or source.get("ns") != namespace:
                continue
            if not is_live(source, now):
                continue
            payload = decode_b64(source.get("value"), "payload")
            if payload is None or not isinstance(source.get("key"), str):
                continue
            hits.append(VectorHit(source["key"], distance, payload))
        hits.sort(key=lambda h: h.distance)
        return hits

    # -- namespace-wide --------------------------------------------------------------------
    def _clear(self, namespace: str) -> Flow[None]:
        yield from self.ensure_index()
        # delete_by_query deletes what a search sees: make recent writes visible first.
        yield Call("indices.refresh", {"index": self.index}, admin=True, soft=True)
        yield Call(
            "delete_by_query",
            {
                "index": self.index,
                "query": {"bool": {"filter": [{"term": {"ns": namespace}}]}},
                "conflicts": "proceed",
                "refresh": True,
            },
            admin=True,
        )
        for known in [k for k in self._namespace_dims if k[0] == namespace]:
            self._namespace_dims.pop(known, None)

    def _incr_counters(self, namespace: str, name: str, deltas: dict[str, float]) -> Flow[None]:
        key_bytes(name, "counter group name")
        clean = deltas
        yield from self.ensure_index()
        kwargs = self._write_kwargs()
        kwargs.pop("refresh", None)
        yield Call(
            "update",
            {
                **kwargs,
                "id": doc_id(namespace, "ctr:", name),
                # One atomic update per group: the script adds on the server.
                "script": {"source": COUNTER_SCRIPT, "lang": "painless", "params": {"d": clean}},
                "upsert": {"ns": namespace, "kind": COUNTER, "key": name, "counters": clean},
                "retry_on_conflict": 5,
            },
        )

    def _get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        key_bytes(name, "counter group name")
        yield from self.ensure_index()
        reply = yield Call(
            "get",
            {"index": self.single_index, "id": doc_id(namespace, "ctr:", name)},
            ignore=(404,),
        )
        source = self._document(reply)
        if (
            not source
            or source.get("ns") != namespace
            or source.get("kind") != COUNTER
            or source.get("key") != name
        ):
            return {}
        counters = source.get("counters")
        return counters_of(counters.items()) if isinstance(counters, Mapping) else {}
