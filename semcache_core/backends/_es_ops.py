"""Elasticsearch backend, part 1: the index layout and every operation, written once.

Nothing here does I/O. Each backend operation is a generator (a *flow*) that yields the
client calls it needs as data (:class:`Call`: the API name and its keyword arguments) and
receives each answer (:class:`Reply`). :class:`~semcache_core.backends.elasticsearch.
ElasticsearchBackend` drives a flow with the sync client (``_run``) or with ``await`` on the
async client (``_arun``), so the request building, the result checking and the policy live in
one place and the sync and async paths cannot drift apart (the same pattern as
``semcache_core.engine``'s ``_drive``/``_adrive``). ``iter_keys`` also yields :class:`Emit`
pages of keys, which the drivers hand to their caller.

Document layout (one index, or one alias pointing at one index; mapping in :func:`mapping`):

* a value: id ``<namespace>:<key>`` (the key already starts with its kind, ``kv:`` or
  ``llm:``); fields ``ns``, ``kind="value"``, ``key``, ``value`` (base64, ``binary``),
  ``expires_at``;
* a vector record: id ``<namespace>:vec:<id>``; ``kind="vector"``, ``key`` = the record id,
  ``part``, ``tags`` (``name=value`` keywords), ``value`` (the payload, base64), ``vector``
  (float32 little-endian, base64, ``binary``: the stored copy) and ``knn_<dims>`` (the
  ``dense_vector`` searched by kNN, left out of ``_source``), ``expires_at``;
* a counter group: id ``<namespace>:ctr:<name>``; ``kind="counter"``, ``counters`` (an object
  that is stored, not indexed);
* the namespace's vector dimension: id ``<namespace>:meta:dims``; ``kind="meta"``, ``dims``.

Ids longer than Elasticsearch's 512 bytes keep a readable head and end in ``#<hash of the
key>``. Every read checks ``ns``, ``kind`` and ``key`` of what it got, so a document is only
ever returned for the key that wrote it.
"""

from __future__ import annotations

import binascii
import logging
import math
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from semcache_core.backends.base import VectorHit, VectorRecord
from semcache_core.codecs import (
    Vector,
    bytes_from_base64,
    bytes_to_base64,
    vector_from_base64,
    vector_to_base64,
)
from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheInputError,
    VectorDimensionError,
)
from semcache_core.keys import stable_hash, validate_namespace

logger = logging.getLogger("semcache")

T = TypeVar("T")
Refresh = Literal[True, False, "wait_for"]

#: Bump when the layout changes incompatibly; stored in the mapping's ``_meta``.
SCHEMA_VERSION = 1
#: Elasticsearch refuses document ids longer than this many bytes.
MAX_ID_BYTES = 512
#: Lucene refuses indexed terms longer than this many bytes (the ``key`` keyword).
MAX_KEY_BYTES = 32766
#: Keep-alive of the point in time that ``iter_keys`` pages through.
PIT_KEEP_ALIVE = "1m"
#: Upper bound Elasticsearch puts on ``num_candidates`` and on a search page.
MAX_WINDOW = 10_000
#: Value keys may not start with these: they name the backend's own documents.
RESERVED_PREFIXES = ("vec:", "ctr:", "meta:")

_VALUE, _VECTOR, _COUNTER, _META = "value", "vector", "counter", "meta"
_FIELDS: dict[str, dict[str, Any]] = {
    "ns": {"type": "keyword"},
    "kind": {"type": "keyword"},
    "key": {"type": "keyword"},
    "part": {"type": "keyword"},
    "tags": {"type": "keyword"},
    "value": {"type": "binary", "doc_values": False},
    "vector": {"type": "binary", "doc_values": False},
    "expires_at": {"type": "date", "format": "epoch_millis"},
    "counters": {"type": "object", "enabled": False},
    "dims": {"type": "integer", "index": False},
}
# Field types an existing index may use for our fields without conflicting.
_COMPATIBLE_TYPES: dict[str, set[str]] = {
    "ns": {"keyword"},
    "kind": {"keyword"},
    "key": {"keyword"},
    "part": {"keyword"},
    "tags": {"keyword"},
    "value": {"binary"},
    "vector": {"binary"},
    "expires_at": {"date"},
    "counters": {"object"},
    "dims": {"integer", "long", "short"},
}
# Errors that mean "the index does not have the layout we write", not "the server failed".
SCHEMA_ERRORS = frozenset(
    {
        "strict_dynamic_mapping_exception",
        "mapper_parsing_exception",
        "document_parsing_exception",
    }
)
_COUNTER_SCRIPT = (
    "for (k in params.d.keySet()) { "
    "if (ctx._source.counters.containsKey(k)) { ctx._source.counters[k] += params.d[k] } "
    "else { ctx._source.counters[k] = params.d[k] } }"
)


def vector_field(dim: int) -> str:
    """Name of the ``dense_vector`` field holding vectors of dimension ``dim``."""
    return f"knn_{dim}"


def mapping() -> dict[str, Any]:
    """The mapping of a new index. ``knn_<dims>`` fields are added when first needed."""
    return {
        "dynamic": "strict",
        "_meta": {"semcache": {"schema": SCHEMA_VERSION}},
        # The kNN fields are indexed but not kept in _source: the base64 ``vector`` is the
        # stored copy (float32 base64 is ~3x smaller than a JSON float array).
        "_source": {"excludes": ["knn_*"]},
        "properties": {name: dict(spec) for name, spec in _FIELDS.items()},
    }


def vector_mapping(dim: int, vector_index_options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "dense_vector",
        "dims": dim,
        "index": True,
        "similarity": "cosine",
        "index_options": dict(vector_index_options),
    }


#: Bulk bodies are cut at about this many bytes (see ``_send_bulk``).
BULK_MAX_BYTES = 16 * 1024 * 1024
#: A bulk body larger than this gets the admin timeout instead of the request timeout.
BULK_LARGE_BYTES = 1024 * 1024


def _estimated_bytes(line: dict[str, Any]) -> int:
    """Rough JSON size of a bulk line: its strings, plus ~12 bytes per vector component."""
    total = 64
    for value in line.values():
        if isinstance(value, str):
            total += len(value) + 8
        elif isinstance(value, list):
            total += 12 * len(value)
        elif isinstance(value, dict):
            total += _estimated_bytes(value)
        else:
            total += 16
    return total


# -- the steps a flow yields -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Call:
    """One client API call: ``api`` is the method path (``"mget"``, ``"indices.refresh"``).

    ``ignore`` lists HTTP statuses returned as a :class:`Reply` instead of raised; ``admin``
    selects the longer admin timeout; a ``soft`` call never raises (its failure is a
    ``Reply(0, None)``): used for housekeeping that must not fail the operation around it.
    """

    api: str
    kwargs: dict[str, Any]
    ignore: tuple[int, ...] = ()
    admin: bool = False
    soft: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class Emit:
    """A page of results for the caller of an iterating flow."""

    items: list[str]


Flow = Generator[Call, Reply, T]
#: An iterating flow; after an :class:`Emit` the driver sends ``Reply(0, None)`` back.
KeyFlow = Generator["Call | Emit", Reply, None]


@dataclass
class Cleanup:
    """Calls the driver runs once an iterating flow is done or abandoned (best effort)."""

    calls: list[Call] = field(default_factory=list)


# -- small helpers -----------------------------------------------------------------------------
def now_ms() -> int:
    return int(time.time() * 1000)


def expiry_ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    return now_ms() + max(1, round(ttl * 1000))


def is_live(source: Mapping[str, Any], now: int) -> bool:
    expires_at = source.get("expires_at")
    if expires_at is None:
        return True
    try:
        return float(expires_at) > now
    except (TypeError, ValueError):
        return False


def live_filter(now: int) -> dict[str, Any]:
    """Documents without ``expires_at`` or expiring after ``now``."""
    return {
        "bool": {
            "should": [
                {"bool": {"must_not": [{"exists": {"field": "expires_at"}}]}},
                {"range": {"expires_at": {"gt": now}}},
            ],
            "minimum_should_match": 1,
        }
    }


def encode_tag(name: str, value: str) -> str:
    """``name=value`` with ``\\`` and ``=`` escaped in the name, so the split is unambiguous."""
    return name.replace("\\", "\\\\").replace("=", "\\=") + "=" + value


def _key_bytes(key: object, what: str) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, got {type(key).__name__}")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SemcacheInputError(f"{what} {key!r} is not valid UTF-8 text: {exc}") from exc
    if len(raw) > MAX_KEY_BYTES:
        raise SemcacheInputError(
            f"{what} is {len(raw)} bytes long; Elasticsearch indexes at most {MAX_KEY_BYTES}"
        )
    return raw


def doc_id(namespace: str, kind_prefix: str, key: str) -> str:
    """``<namespace>:<kind_prefix><key>``, or a readable head plus a hash when too long."""
    raw = f"{namespace}:{kind_prefix}{key}"
    if len(raw.encode("utf-8")) <= MAX_ID_BYTES:
        return raw
    head = key.encode("utf-8")[:200].decode("utf-8", "ignore")
    return f"{namespace}:{kind_prefix}{head}#{stable_hash(kind_prefix, key)}"


def error_of(body: Any) -> tuple[str, str]:
    """``(type, reason)`` of an error body (``{"error": {...}}`` or a bulk item's error)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("type", "")), str(error.get("reason", ""))
    if error is not None:
        return "", str(error)
    return "", ""


def _decode_b64(text: Any, what: str) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return bytes_from_base64(text)
    except (binascii.Error, ValueError):
        logger.warning("semcache: ignoring an Elasticsearch document with corrupt %s", what)
        return None


class Operations:
    """Configuration, per-process knowledge of the index, and the flows of every operation."""

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
        self._ready = False
        self._fields: dict[str, Any] = {}
        self._vector_fields_ready: set[int] = set()
        self._namespace_dims: dict[str, int] = {}
        self._last_purge = -math.inf

    def forget_index(self) -> None:
        """The index vanished or changed: check (and create) it again on the next call."""
        self._ready = False
        self._fields = {}
        self._vector_fields_ready.clear()
        self._namespace_dims.clear()

    # -- the index -------------------------------------------------------------------------
    def ensure_index(self) -> Flow[None]:
        """Once per process: find out whether ``index`` is an alias, create or check it."""
        if self._ready:
            return
        alias = yield Call("indices.get_alias", {"name": self.index}, ignore=(404,), admin=True)
        self.is_alias = alias.status == 200
        if self.is_alias:
            concrete = sorted(alias.body)
            if len(concrete) != 1:
                raise SchemaConflictError(
                    f"Elasticsearch alias {self.index!r} points to {len(concrete)} indices "
                    f"({', '.join(concrete)}); semcache reads documents by id, which needs an "
                    "alias that points to exactly one index"
                )
        reply = yield Call("indices.get_mapping", {"index": self.index}, ignore=(404,), admin=True)
        if reply.status == 404:
            kwargs: dict[str, Any] = {
                "index": self.index,
                "mappings": mapping(),
            }
            if self.index_settings:
                kwargs["settings"] = self.index_settings
            created = yield Call("indices.create", kwargs, ignore=(400,), admin=True)
            if created.status != 400:
                self._fields = {name: dict(spec) for name, spec in _FIELDS.items()}
                self._ready = True
                return
            error_type, reason = error_of(created.body)
            if error_type != "resource_already_exists_exception":
                raise SchemaConflictError(
                    f"cannot create Elasticsearch index {self.index!r}: {error_type}: {reason}"
                )
            # Another process created it meanwhile: check what it made.
            reply = yield Call("indices.get_mapping", {"index": self.index}, admin=True)
        properties = self._properties(reply.body)
        missing = self._check_properties(properties)
        if missing:
            put = yield Call(
                "indices.put_mapping",
                {"index": self.index, "properties": missing},
                ignore=(400,),
                admin=True,
            )
            if put.status == 400:
                error_type, reason = error_of(put.body)
                raise SchemaConflictError(
                    f"Elasticsearch index {self.index!r} lacks semcache's fields "
                    f"{sorted(missing)} and refuses them: {error_type}: {reason}"
                )
            properties = {**properties, **missing}
        self._fields = properties
        self._ready = True

    def _properties(self, body: Any) -> dict[str, Any]:
        mappings = [entry.get("mappings", {}) for entry in dict(body).values()]
        if len(mappings) != 1:
            raise SchemaConflictError(
                f"Elasticsearch name {self.index!r} resolves to {len(mappings)} indices; "
                "semcache needs exactly one"
            )
        return dict(mappings[0].get("properties", {}))

    def _check_properties(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Raise on a field that conflicts with ours; return our fields the index lacks."""
        missing: dict[str, Any] = {}
        for name, spec in _FIELDS.items():
            found = properties.get(name)
            if found is None:
                missing[name] = dict(spec)
                continue
            found_type = found.get("type", "object")
            problem = None
            if found_type not in _COMPATIBLE_TYPES[name]:
                problem = f"type {found_type!r}"
            elif name == "expires_at" and "format" in found:
                if "epoch_millis" not in str(found["format"]).split("||"):
                    problem = f"date format {found['format']!r}"
            elif name == "counters" and found.get("enabled", True) is not False:
                problem = "an enabled object (counter names would be mapped as fields)"
            if problem is not None:
                raise SchemaConflictError(
                    f"Elasticsearch index {self.index!r} maps field {name!r} with {problem}; "
                    f"semcache needs {spec}. Use another index (option index=...) or delete "
                    "this one."
                )
        for name, found in properties.items():
            if name.startswith("knn_") and name[4:].isdigit():
                self._check_vector_field(name, found, int(name[4:]))
        return missing

    def _check_vector_field(self, name: str, found: Mapping[str, Any], dim: int) -> None:
        if (
            found.get("type") != "dense_vector"
            or found.get("dims") != dim
            or found.get("similarity") != "cosine"
            or found.get("index") is False
        ):
            raise SchemaConflictError(
                f"Elasticsearch index {self.index!r} maps field {name!r} as {dict(found)}; "
                f"semcache needs an indexed dense_vector of {dim} dims with cosine similarity"
            )

    def _ensure_vector_field(self, dim: int) -> Flow[None]:
        """Add ``knn_<dim>`` to the mapping the first time a vector of ``dim`` is written."""
        if dim in self._vector_fields_ready:
            return
        name = vector_field(dim)
        found = self._fields.get(name)
        if found is None:
            spec = vector_mapping(dim, self.vector_index_options)
            put = yield Call(
                "indices.put_mapping",
                {"index": self.index, "properties": {name: spec}},
                ignore=(400,),
                admin=True,
            )
            if put.status == 400:
                error_type, reason = error_of(put.body)
                raise SchemaConflictError(
                    f"cannot add the vector field {name!r} to Elasticsearch index "
                    f"{self.index!r}: {error_type}: {reason}"
                )
            self._fields[name] = spec
        else:
            self._check_vector_field(name, found, dim)
        self._vector_fields_ready.add(dim)

    def _has_vector_field(self, dim: int) -> Flow[bool]:
        """Whether the index can hold vectors of ``dim`` (re-reads the mapping if unknown)."""
        name = vector_field(dim)
        if name not in self._fields:
            reply = yield Call("indices.get_mapping", {"index": self.index}, admin=True)
            self._fields = self._properties(reply.body)
        found = self._fields.get(name)
        if found is None:
            return False
        self._check_vector_field(name, found, dim)
        return True

    def _write_kwargs(self, refresh: Refresh | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"index": self.index}
        if self.is_alias:
            kwargs["require_alias"] = True
        if refresh:
            kwargs["refresh"] = refresh
        return kwargs

    def _action(self, op: str, document_id: str, **extra: Any) -> dict[str, Any]:
        """A bulk action line. It names the index itself (rather than the request path):
        noida-db refuses ``require_alias`` with the alias in the path (see the tests)."""
        return {op: {"_index": self.index, "_id": document_id, **extra}}

    def _bulk(
        self,
        operations: list[dict[str, Any]],
        refresh: Refresh | None = None,
        *,
        admin: bool = False,
    ) -> Call:
        kwargs = self._write_kwargs(refresh)
        del kwargs["index"]
        return Call("bulk", {**kwargs, "operations": operations}, admin=admin)

    def _send_bulk(
        self,
        operations: list[dict[str, Any]],
        refresh: Refresh | None = None,
        tolerate: Iterable[int] = (),
    ) -> Flow[None]:
        """Send ``operations`` as one bulk request, or several when the body would be large.

        Elasticsearch refuses request bodies over ``http.max_content_length`` (100 MB by
        default), and a large body cannot finish within the short request timeout: batches
        are cut at :data:`BULK_MAX_BYTES` (a 1,000-key ByteStore batch of embeddings stays one
        request), and a body over :data:`BULK_LARGE_BYTES` gets the admin timeout. Only the
        last request carries ``refresh``: refreshing once makes every earlier one visible.
        """
        batches: list[tuple[list[dict[str, Any]], int]] = []
        batch: list[dict[str, Any]] = []
        size = 0
        index = 0
        while index < len(operations):
            action = operations[index]
            # A delete action has no source line; every other action has one.
            width = 1 if "delete" in action else 2
            item = operations[index : index + width]
            item_size = sum(_estimated_bytes(part) for part in item)
            if batch and size + item_size > BULK_MAX_BYTES:
                batches.append((batch, size))
                batch, size = [], 0
            batch += item
            size += item_size
            index += width
        if batch:
            batches.append((batch, size))
        for number, (body, body_size) in enumerate(batches, start=1):
            last = number == len(batches)
            reply = yield self._bulk(
                body, refresh if last else None, admin=body_size > BULK_LARGE_BYTES
            )
            self._check_bulk(reply, tolerate=tolerate)

    def _check_bulk(self, reply: Reply, tolerate: Iterable[int] = ()) -> None:
        """Raise for the first failed item whose status is not tolerated."""
        tolerated = set(tolerate)
        for item in reply.body.get("items", ()):
            (op, result), *_ = item.items()
            if "error" not in result or result.get("status") in tolerated:
                continue
            error_type, reason = error_of(result)
            if error_type == "index_not_found_exception":
                self.forget_index()
            message = (
                f"Elasticsearch bulk {op} of {result.get('_id')!r} in {self.index!r} failed "
                f"(HTTP {result.get('status')}): {error_type}: {reason}"
            )
            if error_type in SCHEMA_ERRORS or error_type == "index_not_found_exception":
                raise SchemaConflictError(message)
            raise BackendError(message)

    def _maybe_purge(self) -> Flow[None]:
        """At most every ``purge_interval`` seconds per process, delete expired documents."""
        if not self.purge_interval:
            return
        now = time.monotonic()
        if now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        yield Call(
            "delete_by_query",
            {
                "index": self.index,
                "query": self._expired_query(None),
                "conflicts": "proceed",
                "wait_for_completion": False,
            },
            admin=True,
            soft=True,
        )

    @staticmethod
    def _expired_query(namespace: str | None) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [
            {"terms": {"kind": [_VALUE, _VECTOR]}},
            {"range": {"expires_at": {"lte": now_ms()}}},
        ]
        if namespace is not None:
            clauses.append({"term": {"ns": namespace}})
        return {"bool": {"filter": clauses}}

    def purge_expired(self, namespace: str | None) -> Flow[int]:
        """Delete expired values and vectors now (of ``namespace``, or of every namespace)."""
        if namespace is not None:
            validate_namespace(namespace)
        yield from self.ensure_index()
        # delete_by_query deletes what a search sees: make recent writes visible first.
        yield Call("indices.refresh", {"index": self.index}, admin=True, soft=True)
        reply = yield Call(
            "delete_by_query",
            {
                "index": self.index,
                "query": self._expired_query(namespace),
                "conflicts": "proceed",
                "refresh": True,
            },
            admin=True,
        )
        self._last_purge = time.monotonic()
        return int(reply.body.get("deleted", 0))

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
            source = doc.get("_source") or {}
            if (
                key is None
                or source.get("ns") != namespace
                or source.get("kind") != kind
                or source.get("key") != key
                or not is_live(source, now)
            ):
                continue
            found[key] = {**source, "_seq_no": doc.get("_seq_no"), "_pt": doc.get("_primary_term")}
        return found

    # -- values ----------------------------------------------------------------------------
    @staticmethod
    def _value_id(namespace: str, key: str) -> str:
        _key_bytes(key, "key")
        return doc_id(namespace, "", key)

    def get_many(self, namespace: str, keys: Sequence[str]) -> Flow[list[bytes | None]]:
        validate_namespace(namespace)
        ids = {self._value_id(namespace, key): key for key in dict.fromkeys(keys)}
        if not ids:
            return []
        yield from self.ensure_index()
        reply = yield self._mget(list(ids), ["ns", "kind", "key", "value", "expires_at"])
        found = self._found(reply, namespace, _VALUE, ids)
        values = {key: _decode_b64(doc.get("value"), "value") for key, doc in found.items()}
        return [values.get(key) for key in keys]

    def set_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], ttl: float | None
    ) -> Flow[None]:
        validate_namespace(namespace)
        expires_at = expiry_ms(ttl)
        operations: list[dict[str, Any]] = []
        for key, value in items:
            value_id = self._value_id(namespace, key)
            if key.startswith(RESERVED_PREFIXES):
                raise SemcacheInputError(
                    f"value key {key!r} starts with a prefix the Elasticsearch backend reserves "
                    f"for its own documents ({', '.join(RESERVED_PREFIXES)})"
                )
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"values must be bytes, got {type(value).__name__}")
            source: dict[str, Any] = {
                "ns": namespace,
                "kind": _VALUE,
                "key": key,
                "value": bytes_to_base64(bytes(value)),
            }
            if expires_at is not None:
                source["expires_at"] = expires_at
            operations += [self._action("index", value_id), source]
        if not operations:
            return
        yield from self.ensure_index()
        # No refresh: values are read by id (realtime); iter_keys refreshes before scanning.
        yield from self._send_bulk(operations)
        yield from self._maybe_purge()

    def delete_many(self, namespace: str, keys: Sequence[str]) -> Flow[None]:
        validate_namespace(namespace)
        operations = [
            self._action("delete", self._value_id(namespace, key)) for key in dict.fromkeys(keys)
        ]
        if not operations:
            return
        yield from self.ensure_index()
        yield from self._send_bulk(operations, tolerate=(404,))

    def iter_keys(self, namespace: str, prefix: str, cleanup: Cleanup) -> KeyFlow:
        validate_namespace(namespace)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        yield from self.ensure_index()
        if self.refresh:
            # Keys written since the last scheduled refresh must be listed too. One refresh per
            # scan instead of one per write; a user without the refresh privilege gets keys
            # up to the index's refresh interval old.
            yield Call("indices.refresh", {"index": self.index}, admin=True, soft=True)
        clauses: list[dict[str, Any]] = [
            {"term": {"ns": namespace}},
            {"term": {"kind": _VALUE}},
            live_filter(now_ms()),
        ]
        if prefix:
            # A prefix query on a keyword field matches the characters literally.
            clauses.append({"prefix": {"key": {"value": prefix}}})
        opened = yield Call(
            "open_point_in_time",
            {"index": self.index, "keep_alive": PIT_KEEP_ALIVE},
            soft=True,
        )
        pit = opened.body.get("id") if opened.status == 200 and opened.body else None
        search_after: list[Any] | None = None
        try:
            while True:
                kwargs: dict[str, Any] = {
                    "query": {"bool": {"filter": clauses}},
                    "sort": [{"key": "asc"}],
                    "size": self.page_size,
                    "source": False,
                    "track_total_hits": False,
                }
                if pit is not None:
                    kwargs["pit"] = {"id": pit, "keep_alive": PIT_KEEP_ALIVE}
                else:
                    # No point in time (an older or restricted server): pages still never
                    # repeat or skip a key (the sort key is unique), but see writes made
                    # during the scan.
                    kwargs["index"] = self.index
                if search_after is not None:
                    kwargs["search_after"] = search_after
                reply = yield Call("search", kwargs)
                pit = reply.body.get("pit_id", pit)
                hits = reply.body["hits"]["hits"]
                if hits:
                    yield Emit([str(hit["sort"][0]) for hit in hits])
                if len(hits) < self.page_size:
                    return
                search_after = hits[-1]["sort"]
        finally:
            if pit is not None:
                cleanup.calls.append(
                    Call("close_point_in_time", {"id": pit}, ignore=(404,), soft=True)
                )

    def expire_many(self, namespace: str, keys: Sequence[str], ttl: float) -> Flow[None]:
        """Reset the TTL of live values and vector records (one mget, one bulk)."""
        validate_namespace(namespace)
        unique = list(dict.fromkeys(keys))
        if not unique:
            return
        value_ids = {self._value_id(namespace, key): key for key in unique}
        vector_ids = {self._vector_id(namespace, key): key for key in unique}
        yield from self.ensure_index()
        reply = yield self._mget([*value_ids, *vector_ids])
        values = self._found(reply, namespace, _VALUE, value_ids)
        vectors = self._found(reply, namespace, _VECTOR, vector_ids)
        expires_at = expiry_ms(ttl)
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

    # -- vectors ---------------------------------------------------------------------------
    @staticmethod
    def _vector_id(namespace: str, record_id: str) -> str:
        _key_bytes(record_id, "vector record id")
        return doc_id(namespace, "vec:", record_id)

    def _namespace_dim(self, namespace: str, dim: int) -> Flow[bool]:
        """Check ``dim`` against the namespace's; True when the namespace has none yet."""
        if self._namespace_dims.get(namespace) == dim:
            return False
        # Unknown, or a different dimension cached (perhaps stale): ask the index (realtime).
        reply = yield Call(
            "get",
            {"index": self.index, "id": doc_id(namespace, "meta:", "dims")},
            ignore=(404,),
        )
        source = self._document(reply)
        stored = source.get("dims") if source and source.get("kind") == _META else None
        if not isinstance(stored, int):
            self._namespace_dims.pop(namespace, None)
            return True
        self._namespace_dims[namespace] = stored
        if stored != dim:
            raise VectorDimensionError(
                f"vector has dimension {dim}, but namespace {namespace!r} stores vectors of "
                f"dimension {stored}; use one embedding model per namespace or clear it"
            )
        return False

    def add_vectors(
        self,
        namespace: str,
        partition: str,
        records: Sequence[VectorRecord],
        ttl: float | None,
    ) -> Flow[None]:
        validate_namespace(namespace)
        if not records:
            return
        dims = {int(record.vector.shape[0]) for record in records}
        if len(dims) != 1:
            raise VectorDimensionError(f"one batch holds vectors of dimensions {sorted(dims)}")
        dim = dims.pop()
        _key_bytes(partition, "partition")
        ids = [self._vector_id(namespace, record.id) for record in records]
        yield from self.ensure_index()
        yield from self._ensure_vector_field(dim)
        first = yield from self._namespace_dim(namespace, dim)
        expires_at = expiry_ms(ttl)
        operations: list[dict[str, Any]] = []
        if first:
            meta = {"ns": namespace, "kind": _META, "key": "dims", "dims": dim}
            operations += [self._action("create", doc_id(namespace, "meta:", "dims")), meta]
        knn = vector_field(dim)
        for record, record_id in zip(records, ids, strict=True):
            source: dict[str, Any] = {
                "ns": namespace,
                "kind": _VECTOR,
                "key": record.id,
                "part": partition,
                "tags": sorted(encode_tag(k, v) for k, v in record.tags.items()),
                "value": bytes_to_base64(record.payload),
                "vector": vector_to_base64(record.vector),
                knn: record.vector.tolist(),
            }
            if expires_at is not None:
                source["expires_at"] = expires_at
            operations += [self._action("index", record_id), source]
        # A semantic lookup must see this write: the configured refresh applies here.
        # 409: the meta document exists already.
        yield from self._send_bulk(operations, self.refresh, tolerate=(409,))
        self._namespace_dims[namespace] = dim
        yield from self._maybe_purge()

    def search_vectors(
        self,
        namespace: str,
        partition: str,
        vector: Vector,
        k: int,
        max_distance: float,
        tags: Mapping[str, str] | None,
    ) -> Flow[list[VectorHit]]:
        validate_namespace(namespace)
        if k <= 0:
            return []
        dim = int(vector.shape[0])
        yield from self.ensure_index()
        yield from self._namespace_dim(namespace, dim)
        if not (yield from self._has_vector_field(dim)):
            return []  # no vector of this dimension was ever stored in the index
        now = now_ms()
        filters: list[dict[str, Any]] = [
            {"term": {"ns": namespace}},
            {"term": {"kind": _VECTOR}},
            {"term": {"part": partition}},
            live_filter(now),
        ]
        for name, value in sorted((tags or {}).items()):
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
        for hit in reply.body["hits"]["hits"]:
            source = hit.get("_source") or {}
            # Elasticsearch's cosine score is (1 + cos) / 2; our distance is 1 - cos.
            distance = min(2.0, max(0.0, 2.0 - 2.0 * float(hit["_score"])))
            if distance > max_distance or source.get("ns") != namespace:
                continue
            if not is_live(source, now):
                continue
            payload = _decode_b64(source.get("value"), "payload")
            if payload is None or not isinstance(source.get("key"), str):
                continue
            hits.append(VectorHit(source["key"], distance, payload))
        hits.sort(key=lambda h: h.distance)
        return hits

    def get_vector_payloads(self, namespace: str, ids: Sequence[str]) -> Flow[list[bytes | None]]:
        validate_namespace(namespace)
        by_id = {
            self._vector_id(namespace, record_id): record_id for record_id in dict.fromkeys(ids)
        }
        if not by_id:
            return []
        yield from self.ensure_index()
        reply = yield self._mget(list(by_id), ["ns", "kind", "key", "value", "expires_at"])
        found = self._found(reply, namespace, _VECTOR, by_id)
        payloads = {key: _decode_b64(doc.get("value"), "payload") for key, doc in found.items()}
        return [payloads.get(record_id) for record_id in ids]

    def delete_vectors(self, namespace: str, ids: Sequence[str]) -> Flow[None]:
        validate_namespace(namespace)
        operations = [
            self._action("delete", self._vector_id(namespace, record_id))
            for record_id in dict.fromkeys(ids)
        ]
        if not operations:
            return
        yield from self.ensure_index()
        # A search right after must not find them: the configured refresh applies here.
        yield from self._send_bulk(operations, self.refresh, tolerate=(404,))

    # -- namespace-wide --------------------------------------------------------------------
    def clear(self, namespace: str) -> Flow[None]:
        validate_namespace(namespace)
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
        self._namespace_dims.pop(namespace, None)

    def incr_counters(self, namespace: str, name: str, deltas: Mapping[str, float]) -> Flow[None]:
        validate_namespace(namespace)
        _key_bytes(name, "counter group name")
        clean = {str(k): float(v) for k, v in deltas.items()}
        if not clean:
            return
        yield from self.ensure_index()
        kwargs = self._write_kwargs()
        kwargs.pop("refresh", None)
        yield Call(
            "update",
            {
                **kwargs,
                "id": doc_id(namespace, "ctr:", name),
                # One atomic update per group: the script adds on the server.
                "script": {"source": _COUNTER_SCRIPT, "lang": "painless", "params": {"d": clean}},
                "upsert": {"ns": namespace, "kind": _COUNTER, "key": name, "counters": clean},
                "retry_on_conflict": 5,
            },
        )

    def get_counters(self, namespace: str, name: str) -> Flow[dict[str, float]]:
        validate_namespace(namespace)
        _key_bytes(name, "counter group name")
        yield from self.ensure_index()
        reply = yield Call(
            "get", {"index": self.index, "id": doc_id(namespace, "ctr:", name)}, ignore=(404,)
        )
        source = self._document(reply)
        if (
            not source
            or source.get("ns") != namespace
            or source.get("kind") != _COUNTER
            or source.get("key") != name
        ):
            return {}
        return {str(k): float(v) for k, v in (source.get("counters") or {}).items()}

    # -- atomic values (semcache_core.context_cache) ---------------------------------------
    # Elasticsearch has no TTL: a document may exist but be expired, so both read the document
    # (realtime get, with its sequence number) and then write with ``op_type=create`` (no
    # document) or ``if_seq_no``/``if_primary_term`` (replacing exactly what was read); a 409
    # means another writer got there first.
    def set_if_absent(
        self, namespace: str, key: str, value: bytes, ttl: float | None
    ) -> Flow[bool]:
        stored = yield from self.compare_and_set(namespace, key, None, value, ttl)
        return stored

    def compare_and_set(
        self, namespace: str, key: str, expected: bytes | None, new: bytes, ttl: float | None
    ) -> Flow[bool]:
        validate_namespace(namespace)
        value_id = self._value_id(namespace, key)
        if key.startswith(RESERVED_PREFIXES):
            raise SemcacheInputError(
                f"value key {key!r} starts with a prefix the Elasticsearch backend reserves "
                f"for its own documents ({', '.join(RESERVED_PREFIXES)})"
            )
        yield from self.ensure_index()
        reply = yield Call("get", {"index": self.index, "id": value_id}, ignore=(404,))
        source = self._document(reply)
        current: bytes | None = None
        if (
            source
            and (source.get("ns"), source.get("kind"), source.get("key"))
            == (namespace, _VALUE, key)
            and is_live(source, now_ms())
        ):
            current = _decode_b64(source.get("value"), "value")
        if current != expected:
            return False
        document: dict[str, Any] = {
            "ns": namespace,
            "kind": _VALUE,
            "key": key,
            "value": bytes_to_base64(bytes(new)),
        }
        expires_at = expiry_ms(ttl)
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
        return written.status != 409
