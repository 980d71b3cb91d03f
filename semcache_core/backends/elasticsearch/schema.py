"""Elasticsearch backend: the index layout, and checking or creating the index.

Document layout (one index, or an alias: of one index, or of several with a write index;
mapping in :func:`mapping`):

* a value: id ``<namespace>:<key>`` (the key already starts with its kind, ``kv:`` or
  ``llm:``); fields ``ns``, ``kind="value"``, ``key``, ``value`` (base64, ``binary``),
  ``expires_at``;
* a vector record: id ``<namespace>:vec:<id>``; ``kind="vector"``, ``key`` = the record id,
  ``part``, ``tags`` (``name=value`` keywords), ``value`` (the payload, base64), ``vector``
  (float32 little-endian, base64, ``binary``: the stored copy) and ``knn_<dims>`` (the
  ``dense_vector`` searched by kNN, left out of ``_source``), ``expires_at``;
* a counter group: id ``<namespace>:ctr:<name>``; ``kind="counter"``, ``counters`` (an object
  that is stored, not indexed);
* each partition's vector dimension: id ``<namespace>:meta:dims:<partition>``; ``kind="meta"``,
  ``dims`` (a new embedding model, a new partition, starts its own).

Ids longer than Elasticsearch's 512 bytes, and ids of keys holding ``#``, keep a readable head
and end in ``#<hash of the key>`` (so no plain id can equal a hashed one). Every read checks ``ns``, ``kind`` and ``key`` of what it got, so a document is only
ever returned for the key that wrote it.
"""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from semcache_core.backends.elasticsearch.calls import Call, error_of
from semcache_core.codecs import bytes_from_base64
from semcache_core.errors import SchemaConflictError, SemcacheInputError
from semcache_core.flow import Flow
from semcache_core.keys import stable_hash

logger = logging.getLogger("semcache")

Refresh = Literal[True, False, "wait_for"]

#: Bump when the layout changes incompatibly; stored in the mapping's ``_meta``.
SCHEMA_VERSION = 1
#: Elasticsearch refuses document ids longer than this many bytes.
MAX_ID_BYTES = 512
#: Lucene refuses indexed terms longer than this many bytes (the ``key`` keyword).
MAX_KEY_BYTES = 32766
#: Upper bound Elasticsearch puts on ``num_candidates`` and on a search page.
MAX_WINDOW = 10_000

VALUE, VECTOR, COUNTER, META = "value", "vector", "counter", "meta"
FIELDS: dict[str, dict[str, Any]] = {
    "ns": {"type": "keyword"},
    "kind": {"type": "keyword"},
    "key": {"type": "keyword"},
    "part": {"type": "keyword"},
    "tags": {"type": "keyword"},
    "value": {"type": "binary", "doc_values": False},
    "vector": {"type": "binary", "doc_values": False},
    "expires_at": {"type": "date", "format": "epoch_millis"},
    # When a value or vector record was written: the order of ``trim`` (oldest first).
    "created": {"type": "date", "format": "epoch_millis"},
    "counters": {"type": "object", "enabled": False},
    "dims": {"type": "integer", "index": False},
}
# Field types an existing index may use for our fields without conflicting.
COMPATIBLE_TYPES: dict[str, set[str]] = {
    "ns": {"keyword"},
    "kind": {"keyword"},
    "key": {"keyword"},
    "part": {"keyword"},
    "tags": {"keyword"},
    "value": {"binary"},
    "vector": {"binary"},
    "expires_at": {"date"},
    "created": {"date"},
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
COUNTER_SCRIPT = (
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
        "properties": {name: dict(spec) for name, spec in FIELDS.items()},
    }


def vector_mapping(dim: int, vector_index_options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "dense_vector",
        "dims": dim,
        "index": True,
        "similarity": "cosine",
        "index_options": dict(vector_index_options),
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def expiry_ms(ttl_ms: int | None) -> int | None:
    return None if ttl_ms is None else now_ms() + ttl_ms


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


def key_bytes(key: object, what: str) -> bytes:
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
    """``<namespace>:<kind_prefix><key>``, or a readable head plus ``#<hash>`` when the key is
    too long or holds a ``#``.

    Collision-free by construction: a plain id never holds ``#`` (namespaces and kind prefixes
    cannot) and a hashed id always does, so a short key spelled like a long key's hashed id
    (``<head>#<hash>``) gets a hashed id of its own instead of overwriting that document.
    """
    raw = f"{namespace}:{kind_prefix}{key}"
    if "#" not in key and len(raw.encode("utf-8")) <= MAX_ID_BYTES:
        return raw
    head = key.encode("utf-8")[:200].decode("utf-8", "ignore").replace("#", "")
    return f"{namespace}:{kind_prefix}{head}#{stable_hash(kind_prefix, key)}"


def decode_b64(text: Any, what: str) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return bytes_from_base64(text)
    except (binascii.Error, ValueError):
        logger.warning("semcache: ignoring an Elasticsearch document with corrupt %s", what)
        return None


class IndexSchema:
    """Per-process knowledge of the index: alias or not, its fields, created when missing."""

    index: str
    vector_index_options: dict[str, Any]
    index_settings: dict[str, Any] | None
    is_alias: bool
    #: An alias over several indices (rollover): its write index first, then the others,
    #: newest name first. Empty for an index or an alias of one index.
    read_indices: list[str]
    _ready: bool
    _fields: dict[str, Any]
    _vector_fields_ready: set[int]
    _namespace_dims: dict[tuple[str, str], int]  # (namespace, partition) -> dimension

    def forget_index(self) -> None:
        """The index vanished or changed: check (and create) it again on the next call."""
        self._ready = False
        self._fields = {}
        self._vector_fields_ready.clear()
        self._namespace_dims.clear()

    def ensure_index(self) -> Flow[None]:
        """Once per process: find out whether ``index`` is an alias, create or check it."""
        if self._ready:
            return
        alias = yield Call("indices.get_alias", {"name": self.index}, ignore=(404,), admin=True)
        self.is_alias = alias.status == 200
        self.read_indices = []
        if self.is_alias and len(alias.body) > 1:
            concrete = sorted(alias.body)
            writers = [
                name
                for name in concrete
                if (alias.body[name].get("aliases", {}).get(self.index) or {}).get("is_write_index")
            ]
            if len(writers) != 1:
                raise SchemaConflictError(
                    f"Elasticsearch alias {self.index!r} points to {len(concrete)} indices "
                    f"({', '.join(concrete)}) and none is its write index; semcache writes "
                    "through the alias, which needs exactly one index or an is_write_index"
                )
            # Reads go through every index, the write index (the newest copy) first.
            others = sorted((name for name in concrete if name != writers[0]), reverse=True)
            self.read_indices = [writers[0], *others]
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
                self._fields = {name: dict(spec) for name, spec in FIELDS.items()}
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
            refused = f"Elasticsearch index {self.index!r} lacks semcache's fields {sorted(missing)} and refuses them"
            yield from self._put_mapping(missing, refused)
            properties = {**properties, **missing}
        self._fields = properties
        self._ready = True

    def _put_mapping(self, properties: dict[str, Any], refused: str) -> Flow[None]:
        """Add ``properties`` to the mapping; ``SchemaConflictError(refused: ...)`` if refused."""
        put = yield Call(
            "indices.put_mapping",
            {"index": self.single_index, "properties": properties},
            ignore=(400,),
            admin=True,
        )
        if put.status == 400:
            error_type, reason = error_of(put.body)
            raise SchemaConflictError(f"{refused}: {error_type}: {reason}")

    @property
    def single_index(self) -> str:
        """Where a single-document read or a mapping change goes: the write index of an alias
        over several indices (they refuse single-index operations), else ``index``."""
        return self.read_indices[0] if self.read_indices else self.index

    def _properties(self, body: Any) -> dict[str, Any]:
        entries = dict(body)
        if self.read_indices and self.read_indices[0] in entries:
            entries = {self.read_indices[0]: entries[self.read_indices[0]]}
        mappings = [entry.get("mappings", {}) for entry in entries.values()]
        if len(mappings) != 1:
            raise SchemaConflictError(
                f"Elasticsearch name {self.index!r} resolves to {len(mappings)} indices; "
                "semcache needs exactly one"
            )
        return dict(mappings[0].get("properties", {}))

    def _check_properties(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """Raise on a field that conflicts with ours; return our fields the index lacks."""
        missing: dict[str, Any] = {}
        for name, spec in FIELDS.items():
            found = properties.get(name)
            if found is None:
                missing[name] = dict(spec)
                continue
            found_type = found.get("type", "object")
            problem = None
            if found_type not in COMPATIBLE_TYPES[name]:
                problem = f"type {found_type!r}"
            elif name in ("expires_at", "created") and "format" in found:
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
            refused = f"cannot add the vector field {name!r} to Elasticsearch index {self.index!r}"
            yield from self._put_mapping({name: spec}, refused)
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
            if name not in self._fields and self.read_indices:  # an older index may have it
                return any(
                    name in dict(entry).get("mappings", {}).get("properties", {})
                    for entry in dict(reply.body).values()
                )
        found = self._fields.get(name)
        if found is None:
            return False
        self._check_vector_field(name, found, dim)
        return True
