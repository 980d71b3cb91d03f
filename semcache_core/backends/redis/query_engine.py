"""Semantic search in the server: the Redis Query Engine (RediSearch >= 2.4: Redis Stack, 8).

One index per namespace and dimension (HNSW, COSINE, created lazily): ``<ns>:idx``
for the namespace's first dimension (``<ns>:vdim``), ``<ns>:idx:d<dim>`` for each other one
(an embedding model of another dimension: a new partition, so it starts its own index). All
cover the ``<ns>:vec:`` hashes; RediSearch does not index a hash whose vector has another
length (an indexing failure in ``FT.INFO``; the hash is stored), so each index holds its
dimension's entries and a search uses the query vector's (none yet: no hits). The hashes
carry every partition's slot tag (keys.KeyLayout). The partition and every tag are indexed as TAG
tokens (hex digests of the partition / of ``name``+``value``, so any value works without query
escaping, case folding or whitespace trimming).

Vectors: an index created by this version stores FLOAT16 (hash field ``vector16``, half the
memory of the hash's vector and of the index's copy); an index created as FLOAT32 by an
earlier version (hash field ``vector``) keeps being read and written as FLOAT32, so an upgrade
loses nothing. The two types read different hash fields, so an index of one type never reads
the other's vectors (a FLOAT16 vector of dimension 2d has the byte length of a FLOAT32 one of
dimension d).

A lookup is first a range query restricted to the partition and tags,
``(@ptag:{p} @ttag:{t}... @vector:[VECTOR_RANGE $R $BLOB])`` (DIALECT 2): over HNSW a small
radius explores a small region of the graph, which at 1k-10k entries is several times cheaper
than the filtered KNN (RediSearch runs that as a scan of the partition); when it finds
nothing within the threshold (a miss, or the approximate range search missed the region: it
does on large partitions of random vectors), the lookup is a KNN restricted the same way,
``(...)=>[KNN k @vector $BLOB]``. Distances are recomputed from the returned vectors as the
mirror and the embedded backend compute them (float32 ``1 - v.q``): on a FLOAT32 index one
threshold gives one decision everywhere; on a FLOAT16 index the stored vector carries fp16
rounding, so the distance is reported as an upper bound, the fp16 one plus that rounding's
bound (:func:`fp16_distance_error`, ~5e-4 at 384-d): an entry that close below the threshold
misses there, none beyond it ever hits.

TTLs are ``PEXPIRE`` on the hashes; Redis drops expired hashes from the index. An existing
index whose schema differs raises ``SchemaConflictError`` (an index named for one dimension
but created for another: ``IndexDimensionError``, also a ``VectorDimensionError``) unless
``recreate_index=True``, which drops and recreates it once per backend.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from semcache_core import keys as keyspace
from semcache_core.backends.base import VectorHit, VectorSearch, VectorWrite
from semcache_core.backends.redis.commands import (
    Command,
    Round,
    as_text,
    is_error,
    missing_index,
    one,
    pairs,
    refused,
)
from semcache_core.backends.redis.keys import (
    KeyLayout,
    dimension_of,
    index_name,
    partition_token,
    record_id,
    tag_token,
    vector_prefix,
)
from semcache_core.backends.redis.lua import write_records
from semcache_core.backends.redis.strategy import VectorStrategy
from semcache_core.codecs import Vector
from semcache_core.errors import SchemaConflictError, VectorDimensionError
from semcache_core.flow import Flow
from semcache_core.mirror import EXTRA_CANDIDATES

#: Lower bound of the HNSW candidate list per KNN query (``EF_RUNTIME``): at 100k random
#: 384-d vectors 200 found 99.5% of the near queries on FLOAT32, 98.8% on FLOAT16; 300: 100%.
HNSW_EF_RUNTIME = 300
#: HNSW graph degree (RediSearch's default) and build-time candidate list: 100 instead of
#: RediSearch's 200 halves the server's work per insert (bulk loads were 2.4x RedisVL's FLAT
#: index), and with ``EF_RUNTIME`` 300 at query time 100k random 384-d vectors are still found
#: (80 and 64: 98.8% found with ``EF_RUNTIME`` 300 on FLOAT16).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
#: Range queries first up to this threshold; above it the region a range search explores
#: grows towards the whole partition, and the KNN is cheaper.
RANGE_MAX_DISTANCE = 0.25
#: Relative slack of the HNSW range search's boundary (RediSearch's default 0.01 found 49% of
#: the near queries at 10k random 384-d vectors; 0.1: 99.5-100% at 1k and 10k, ~80% at 100k,
#: whose misses the KNN then finds; 0.15: 100% but 10x slower there).
RANGE_EPSILON = 0.1
#: The range query's radius exceeds the threshold by this much: the server's distances on a
#: FLOAT16 index (query rounded too) differ from the client's by up to ~1e-3.
RANGE_MARGIN = 2e-3


@dataclass(frozen=True, slots=True)
class VectorType:
    """How an index stores its vectors: the RediSearch type, the hash field, numpy's dtype."""

    name: str
    field: str
    dtype: str

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


FLOAT32 = VectorType("FLOAT32", "vector", "<f4")
FLOAT16 = VectorType("FLOAT16", "vector16", "<f2")
#: The type of the indexes this version creates.
NEW_INDEX_TYPE = FLOAT16
VECTOR_TYPES = {t.name: t for t in (FLOAT32, FLOAT16)}


def fp16_distance_error(dim: int) -> float:
    """A bound on ``|(1 - w.q) - (1 - v.q)|`` for unit float32 ``v``, ``q`` of dimension
    ``dim`` and ``w`` = ``v`` rounded to float16, both computed in float32.

    Rounding to nearest: ``|w_i - v_i| <= 2^-11 |v_i|`` (normal range) or ``<= 2^-25``
    (subnormal), so ``|q.(w - v)| <= 2^-11 + 2^-25 sqrt(dim)`` (Cauchy-Schwarz); each float32
    dot product adds at most ``dim 2^-24`` (a worst-case bound: both are computed).
    """
    return 2.0**-11 + 2.0**-25 * math.sqrt(dim) + 2 * dim * 2.0**-24


class IndexDimensionError(VectorDimensionError, SchemaConflictError):
    """The namespace's existing search index was created for vectors of another dimension.

    Both a :class:`VectorDimensionError` (like every backend's dimension check) and a
    :class:`SchemaConflictError` (an existing index that does not fit): clear the namespace,
    use another one, or pass ``recreate_index=True``.
    """


class QueryEngineSearch(VectorStrategy):
    """Vector records indexed and searched by the server."""

    def __init__(self, *, recreate_index: bool) -> None:
        self.recreate_index = recreate_index
        # (namespace, dimension) -> the name and vector type of its checked index
        self._indexes: dict[tuple[str, int], tuple[str, VectorType]] = {}
        self._recreated: set[str] = set()  # index names recreated once by this backend
        self._state = threading.Lock()

    def add(self, namespace: str, write: VectorWrite, layout: KeyLayout) -> Flow[None]:
        index = yield from self._ensure_index(namespace, write.dim, layout, create=True)
        assert index is not None  # created if missing
        vector_type = index[1]
        yield from write_records(
            namespace, write, layout, use_log=False,
            vector_field=vector_type.field, vector_dtype=vector_type.dtype,
        )  # fmt: skip

    def drop_namespace(self, namespace: str) -> None:
        with self._state:
            for key in [key for key in self._indexes if key[0] == namespace]:
                del self._indexes[key]

    def forget(self) -> None:
        with self._state:
            self._indexes.clear()

    def _ensure_index(
        self, namespace: str, dim: int, layout: KeyLayout, *, create: bool
    ) -> Flow[tuple[str, VectorType] | None]:
        """The name and vector type of the index of ``dim``-vectors, checked (once per client)
        or created; None if there is none (and ``create`` is false, or nothing of ``dim`` was
        written).

        ``<ns>:idx`` indexes the namespace's first dimension (``<ns>:vdim``), ``<ns>:idx:d<dim>``
        each other one (a switched embedding model), all over the same prefix: RediSearch
        does not index a hash whose vector has another length, so each holds its dimension's.
        """
        with self._state:
            known = self._indexes.get((namespace, dim))
        if known is not None:
            return known
        primary, other = index_name(namespace), index_name(namespace, dim)
        info, other_info, stored = yield Round(
            (("FT.INFO", primary), ("FT.INFO", other), ("GET", layout.dim_key(namespace))),
            tolerate=True,
        )
        if is_error(stored):
            raise refused("GET", stored)
        for reply in (info, other_info):
            if is_error(reply) and not missing_index(reply):
                raise refused("FT.INFO", reply)
        primary_dim = dimension_of(stored)  # garbage: as if absent (the first write replaces it)
        schema: IndexSchema | None = None
        if not is_error(info):
            schema = _schema_of(info, namespace, layout)
            primary_dim = schema.dim if schema.dim is not None else primary_dim
        if (schema is not None and schema.problems) or primary_dim in (None, dim):
            if schema is not None:
                schema = IndexSchema(schema.problems, primary_dim, schema.vector_type)
            index = yield from self._check_or_create(
                namespace, primary, dim, schema, layout, create=create or primary_dim == dim
            )
        else:
            checked = None
            if not is_error(other_info):
                checked = _schema_of(other_info, namespace, layout)
            index = yield from self._check_or_create(
                namespace, other, dim, checked, layout, create=create
            )
        if index is not None:
            with self._state:
                self._indexes[(namespace, dim)] = index
        return index

    def _check_or_create(
        self,
        namespace: str,
        name: str,
        dim: int,
        checked: IndexSchema | None,
        layout: KeyLayout,
        *,
        create: bool,
    ) -> Flow[tuple[str, VectorType] | None]:
        """Check the existing index ``name`` (``checked``: its schema; None: no such index) or
        create it; recreate it once if it conflicts and ``recreate_index`` is set."""
        primary = name == index_name(namespace)
        if checked is None:
            if not create:
                return None
            if primary:  # claim the namespace's first dimension (another client may win)
                _set, stored = yield Round(
                    (
                        ("SET", layout.dim_key(namespace), dim, "NX"),
                        ("GET", layout.dim_key(namespace)),
                    )
                )
                stored_dim = dimension_of(stored)
                if stored_dim is None:  # garbage: replaced
                    yield Round((("SET", layout.dim_key(namespace), dim),))
                elif stored_dim != dim:
                    name = index_name(namespace, dim)
            created = yield from self._create_index(
                namespace, name, dim, NEW_INDEX_TYPE, layout, replace=False
            )
            return name, created
        problems, index_dim = checked.problems, checked.dim
        conflict = bool(problems) or (index_dim is not None and index_dim != dim)
        if conflict and self.recreate_index and name not in self._recreated:
            yield Round((("FT.DROPINDEX", name),))
            # The replaced index's vector type if it was one semcache writes: its hashes
            # (of this dimension) are indexed again, not lost.
            vector_type = checked.vector_type or NEW_INDEX_TYPE
            vector_type = yield from self._create_index(
                namespace, name, dim, vector_type, layout, replace=primary
            )
            with self._state:
                self._recreated.add(name)
            return name, vector_type
        if problems:
            raise SchemaConflictError(
                f"Redis index {name!r} exists with a schema semcache did not create "
                f"({'; '.join(problems)}); drop it, use another namespace, or pass "
                "recreate_index=True"
            )
        if conflict and index_dim is not None:
            raise _dimension_error(name, dim, index_dim)
        assert checked.vector_type is not None  # no problems: a type semcache writes
        return name, checked.vector_type

    def _create_index(
        self,
        namespace: str,
        name: str,
        dim: int,
        vector_type: VectorType,
        layout: KeyLayout,
        *,
        replace: bool,
    ) -> Flow[VectorType]:
        """Create the index (``vector_type``); the type of the index another client created
        meanwhile, if it did."""
        commands: list[Command] = [
            (
                "FT.CREATE", name, "ON", "HASH",
                "PREFIX", 1, vector_prefix(namespace),
                "SCHEMA",
                "ptag", "TAG", "SEPARATOR", ",",
                "ttag", "TAG", "SEPARATOR", ",",
                # The query names the vector attribute "vector" whatever hash field holds it.
                *_vector_field(vector_type), "VECTOR", "HNSW", 10,
                "TYPE", vector_type.name, "DIM", dim, "DISTANCE_METRIC", "COSINE",
                "M", HNSW_M, "EF_CONSTRUCTION", HNSW_EF_CONSTRUCTION,
            )
        ]  # fmt: skip
        if replace:
            commands.append(("SET", layout.dim_key(namespace), dim))
        replies = yield Round(commands, tolerate=True)
        created = replies[0]
        if is_error(created) and "already exists" not in str(created).lower():
            raise refused("FT.CREATE", created)
        if not is_error(created):
            return vector_type
        # Another client created it meanwhile: check it like ours.
        info = yield from one(("FT.INFO", name))
        schema = _schema_of(info, namespace, layout)
        if schema.problems:
            raise SchemaConflictError(
                f"Redis index {name!r} was just created by another "
                f"client with another schema ({'; '.join(schema.problems)})"
            )
        if schema.dim is not None and schema.dim != dim:
            raise _dimension_error(name, dim, schema.dim)
        assert schema.vector_type is not None  # no problems: a type semcache writes
        return schema.vector_type

    def search(
        self, namespace: str, search: VectorSearch, layout: KeyLayout
    ) -> Flow[list[VectorHit]]:
        partition, vector, k = search.partition, search.vector, search.k
        max_distance, tags = search.max_distance, search.tags
        dim = int(vector.shape[0])
        wanted = k + EXTRA_CANDIDATES
        # Pre-filter: the search runs only over entries of the partition holding every tag.
        terms = [f"@ptag:{{{partition_token(partition)}}}"]
        terms += [f"@ttag:{{{tag_token(n, v)}}}" for n, v in sorted((tags or {}).items())]
        ranged = max_distance <= RANGE_MAX_DISTANCE
        dim_key = layout.partition_dim_key(namespace, partition)
        for attempt in range(2):
            index = yield from self._ensure_index(namespace, dim, layout, create=False)
            if index is None:  # nothing of this dimension indexed yet
                (stored,) = yield Round((("GET", dim_key),))
                _check_partition_dim(namespace, dim, stored)
                return []
            name, vector_type = index
            blob = np.asarray(vector, dtype=vector_type.dtype).tobytes()
            reply: Any = None
            if ranged:
                (reply,) = yield Round(
                    (_range_query(name, terms, blob, max_distance, wanted, vector_type),),
                    tolerate=True,
                )
                if not is_error(reply):
                    hits = _rank(_search_results(reply, namespace), vector, k, max_distance,
                                 vector_type)  # fmt: skip
                    if hits:
                        return hits
            if not is_error(reply):
                # The KNN: no range query (a large threshold), or it found nothing within
                # the threshold (a miss, or the approximate range search missed the region).
                # A vector of another dimension than the partition's is an error, as on every
                # backend. Found entries are of this dimension (its index) and this partition:
                # the check is needed only when none was found, and after a range query that
                # found none it is likely, so it rides along.
                knn = _knn_query(name, terms, blob, wanted, vector_type)
                if ranged:
                    reply, stored = yield Round((knn, ("GET", dim_key)), tolerate=True)
                else:
                    (reply,) = yield Round((knn,), tolerate=True)
                if not is_error(reply):
                    results = _search_results(reply, namespace)
                    if not results:
                        if not ranged:
                            (stored,) = yield Round((("GET", dim_key),))
                        if is_error(stored):
                            raise refused("GET", stored)
                        _check_partition_dim(namespace, dim, stored)
                    return _rank(results, vector, k, max_distance, vector_type)
            if not missing_index(reply) or attempt:
                raise refused("FT.SEARCH", reply)
            with self._state:  # dropped elsewhere (clear): check again, recreate if needed
                self._indexes.pop((namespace, dim), None)
        return []


def _vector_field(vector_type: VectorType) -> tuple[str, ...]:
    """The schema's vector attribute: ``vector``, read from the type's hash field."""
    if vector_type.field == "vector":
        return ("vector",)
    return (vector_type.field, "AS", "vector")


def _range_query(
    name: str, terms: list[str], blob: bytes, max_distance: float, wanted: int,
    vector_type: VectorType,
) -> Command:  # fmt: skip
    """The partition's entries within ``max_distance`` (plus the margin), nearest first."""
    attributes = f"$EPSILON: {RANGE_EPSILON}; $YIELD_DISTANCE_AS: __dist"
    query = f"({' '.join(terms)} @vector:[VECTOR_RANGE $R $BLOB]=>{{{attributes}}})"
    return (
        "FT.SEARCH", name, query,
        "PARAMS", 4, "R", max_distance + RANGE_MARGIN, "BLOB", blob,
        "SORTBY", "__dist", "ASC",
        "RETURN", 2, "payload", vector_type.field,
        "LIMIT", 0, wanted,
        "DIALECT", 2,
    )  # fmt: skip


def _knn_query(
    name: str, terms: list[str], blob: bytes, wanted: int, vector_type: VectorType
) -> Command:
    """The partition's ``wanted`` nearest entries (HNSW: approximate).

    EF_RUNTIME: with RediSearch's default (10) the HNSW graph misses near entries of large
    partitions (100k random vectors: 40% of near queries found; 98% at 100). A miss is no wrong
    answer, but a paid LLM call. Small partitions are searched exhaustively.
    """
    query = f"({' '.join(terms)})=>[KNN $K @vector $BLOB EF_RUNTIME $EF AS __dist]"
    return (
        "FT.SEARCH", name, query,
        "PARAMS", 6, "K", wanted, "EF", max(HNSW_EF_RUNTIME, 10 * wanted), "BLOB", blob,
        "SORTBY", "__dist", "ASC",
        "RETURN", 2, "payload", vector_type.field,
        "LIMIT", 0, wanted,
        "DIALECT", 2,
    )  # fmt: skip


def _search_results(reply: Any, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """FT.SEARCH replies (RESP2 list or RESP3 map) as ``[(entry id, fields)]``; keys of
    another layout (untagged records of earlier versions) are skipped: they miss."""
    found: list[tuple[str, Any]] = []
    if isinstance(reply, dict):
        for item in pairs(reply).get("results", ()):
            fields = pairs(item)
            found.append((as_text(fields.get("id", "")), fields.get("extra_attributes", {})))
    else:
        for i in range(1, len(reply) - 1, 2):
            found.append((as_text(reply[i]), reply[i + 1]))
    results: list[tuple[str, dict[str, Any]]] = []
    for key, fields in found:
        entry_id = record_id(namespace, key)
        if entry_id is not None:
            results.append((entry_id, pairs(fields)))
    return results


def _rank(
    results: list[tuple[str, dict[str, Any]]],
    query: Vector,
    k: int,
    max_distance: float,
    vector_type: VectorType,
) -> list[VectorHit]:
    """Distances recomputed like the mirror does (float32 ``1 - v.q``): one decision rule.

    A FLOAT16 vector is the stored one rounded: its distance is reported as an upper bound of
    the float32 one (plus the rounding's bound), so every threshold compared with it, here
    and in the engine's stages, refuses what may lie beyond the threshold (an entry that close
    below the threshold misses instead)."""
    dim = int(query.shape[0])
    width = vector_type.itemsize * dim
    field = vector_type.field
    found = [
        (doc, bytes(fields[field]), bytes(fields["payload"]))
        for doc, fields in results
        if fields.get("payload") is not None
        and fields.get(field) is not None
        and len(fields[field]) == width
    ]
    if not found:
        return []
    stored = np.frombuffer(b"".join(v for _, v, _ in found), dtype=vector_type.dtype)
    matrix = stored.astype(np.float32, copy=False).reshape(len(found), dim)
    distances = 1.0 - matrix @ query
    if vector_type is FLOAT16:
        distances += np.float32(fp16_distance_error(dim))
    order = np.argsort(distances, kind="stable")
    hits = [
        VectorHit(found[i][0], min(2.0, max(0.0, float(distances[i]))), found[i][2])
        for i in order
        if distances[i] <= max_distance
    ]
    return hits[:k]


@dataclass(frozen=True, slots=True)
class IndexSchema:
    """An existing index as semcache reads it: how it differs from the ones semcache creates
    (``problems``), its dimension and its vector type (None: not one semcache writes)."""

    problems: list[str]
    dim: int | None
    vector_type: VectorType | None


def _schema_of(info: Any, namespace: str, layout: KeyLayout) -> IndexSchema:
    """An ``FT.INFO`` reply checked against the indexes semcache creates."""
    fields = pairs(info)
    problems: list[str] = []
    definition = pairs(fields.get("index_definition", ()))
    key_type = as_text(definition.get("key_type", "HASH")).upper()
    if key_type != "HASH":
        problems.append(f"indexes {key_type} instead of HASH")
    prefixes = [as_text(p) for p in definition.get("prefixes", ()) or ()]
    expected_prefix = vector_prefix(namespace)
    if prefixes and prefixes != [expected_prefix]:
        problems.append(f"prefixes {prefixes} instead of [{expected_prefix!r}]")
    attributes: dict[str, dict[str, str]] = {}
    for attribute in fields.get("attributes", ()) or ():
        described = {key.lower(): value for key, value in pairs(attribute).items()}
        identifier = as_text(described.get("identifier", ""))
        name = as_text(described.get("attribute", identifier))
        attributes[name] = {
            key: as_text(value)
            for key, value in described.items()
            if not isinstance(value, (list, tuple, dict))
        }
        attributes[name]["identifier"] = identifier or name
    dim: int | None = None
    expected = {"ptag": "TAG", "ttag": "TAG", "vector": "VECTOR"}
    for name, kind in expected.items():
        found = attributes.get(name)
        if found is None:
            problems.append(f"no {kind} field {name!r}")
            continue
        if str(found.get("type", "")).upper() != kind:
            problems.append(f"field {name!r} is {found.get('type')} instead of {kind}")
        if kind == "TAG" and str(found.get("separator", ",")) != ",":
            problems.append(f"TAG field {name!r} uses separator {found.get('separator')!r}")
        if kind == "TAG" and found.get("identifier", name) != name:
            problems.append(f"TAG field {name!r} reads the hash field {found['identifier']!r}")
    vector = attributes.get("vector", {})
    metric = str(vector.get("distance_metric", "COSINE")).upper()
    if metric != "COSINE":
        problems.append(f"distance metric {metric} instead of COSINE")
    data_type = str(vector.get("data_type", "FLOAT32")).upper()
    vector_type = VECTOR_TYPES.get(data_type)
    if vector_type is None:
        problems.append(f"vector type {data_type} instead of FLOAT16 or FLOAT32")
    elif vector and vector.get("identifier", "vector") != vector_type.field:
        problems.append(
            f"{data_type} vectors read from the hash field {vector.get('identifier')!r} "
            f"instead of {vector_type.field!r}"
        )
        vector_type = None
    if "dim" in vector:
        dim = int(vector["dim"])
    extra = sorted(set(attributes) - set(expected))
    if extra:
        problems.append(f"unexpected fields {extra}")
    return IndexSchema(problems, dim, vector_type)


def _check_partition_dim(namespace: str, dim: int, stored: object) -> None:
    """Raise when the partition holds vectors of another dimension (garbage: none recorded)."""
    stored_dim = dimension_of(stored) if stored is not None else None
    if stored_dim is not None and stored_dim != dim:
        raise keyspace.dimension_error(namespace, dim, stored_dim)


def _dimension_error(name: str, dim: int, stored: int) -> VectorDimensionError:
    """An index semcache names for ``dim``-vectors that was created for another dimension."""
    return IndexDimensionError(
        f"the Redis index {name!r} for vectors of dimension {dim} exists for vectors of "
        f"dimension {stored}; drop it, clear the namespace, or pass recreate_index=True"
    )
