"""Semantic search in the server: the Redis Query Engine (RediSearch >= 2.4: Redis Stack, 8).

One index per namespace and dimension (HNSW, COSINE, FLOAT32, created lazily): ``<ns>:idx``
for the namespace's first dimension (``<ns>:vdim``), ``<ns>:idx:d<dim>`` for each other one
(an embedding model of another dimension: a new partition, so it starts its own index). All
cover the ``<ns>:vec:`` hashes; RediSearch does not index a hash whose vector has another
length (an indexing failure in ``FT.INFO``; the hash is stored), so each index holds its
dimension's entries and a search uses the query vector's (none yet: no hits). The hashes
carry every partition's slot tag (keys.KeyLayout). The partition and every tag are indexed as TAG
tokens (hex digests of the partition / of ``name``+``value``, so any value works without query
escaping, case folding or whitespace trimming), and the query is
``(@ptag:{p} @ttag:{t}...)=>[KNN k @vector $vec]`` with DIALECT 2: the KNN runs only over
matching entries. Distances are recomputed from the returned vectors exactly as the mirror and
the embedded backend compute them (float32 ``1 - v.q``), so one threshold gives one decision
everywhere. TTLs are ``PEXPIRE`` on the hashes; Redis drops expired hashes from the index. An
existing index whose schema differs raises ``SchemaConflictError`` (an index named for one
dimension but created for another: ``IndexDimensionError``, also a ``VectorDimensionError``)
unless ``recreate_index=True``, which drops and recreates it once per backend.
"""

from __future__ import annotations

import threading
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

#: Lower bound of the HNSW candidate list per KNN query (``EF_RUNTIME``).
HNSW_EF_RUNTIME = 200
#: HNSW graph degree (RediSearch's default) and build-time candidate list: 100 instead of
#: RediSearch's 200 halves the server's work per insert (bulk loads were 2.4x RedisVL's FLAT
#: index), and with ``EF_RUNTIME`` 200 at query time 100k random 384-d vectors are still found.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100


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
        # (namespace, dimension) -> the name of its checked index
        self._indexes: dict[tuple[str, int], str] = {}
        self._recreated: set[str] = set()  # index names recreated once by this backend
        self._state = threading.Lock()

    def add(self, namespace: str, write: VectorWrite, layout: KeyLayout) -> Flow[None]:
        yield from self._ensure_index(namespace, write.dim, layout, create=True)
        yield from write_records(namespace, write, layout, use_log=False)

    def drop_namespace(self, namespace: str) -> None:
        with self._state:
            for key in [key for key in self._indexes if key[0] == namespace]:
                del self._indexes[key]

    def forget(self) -> None:
        with self._state:
            self._indexes.clear()

    def _ensure_index(
        self, namespace: str, dim: int, layout: KeyLayout, *, create: bool
    ) -> Flow[str | None]:
        """The name of the index of ``dim``-vectors, checked (once per client) or created;
        None if there is none (and ``create`` is false, or nothing of ``dim`` was written).

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
        problems: list[str] = []
        if not is_error(info):
            problems, index_dim = _schema_problems(info, namespace, layout)
            primary_dim = index_dim if index_dim is not None else primary_dim
        if problems or primary_dim in (None, dim):
            name: str | None = yield from self._check_or_create(
                namespace, primary, dim, None if is_error(info) else (problems, primary_dim),
                layout, create=create or primary_dim == dim,
            )  # fmt: skip
        else:
            checked = None
            if not is_error(other_info):
                checked = _schema_problems(other_info, namespace, layout)
            name = yield from self._check_or_create(
                namespace, other, dim, checked, layout, create=create
            )
        if name is not None:
            with self._state:
                self._indexes[(namespace, dim)] = name
        return name

    def _check_or_create(
        self,
        namespace: str,
        name: str,
        dim: int,
        checked: tuple[list[str], int | None] | None,
        layout: KeyLayout,
        *,
        create: bool,
    ) -> Flow[str | None]:
        """Check the existing index ``name`` (``checked``: its schema problems and dimension;
        None: no such index) or create it; recreate it once if it conflicts and
        ``recreate_index`` is set."""
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
            yield from self._create_index(namespace, name, dim, layout, replace=False)
            return name
        problems, index_dim = checked
        conflict = bool(problems) or (index_dim is not None and index_dim != dim)
        if conflict and self.recreate_index and name not in self._recreated:
            yield Round((("FT.DROPINDEX", name),))
            yield from self._create_index(namespace, name, dim, layout, replace=primary)
            with self._state:
                self._recreated.add(name)
        elif problems:
            raise SchemaConflictError(
                f"Redis index {name!r} exists with a schema semcache did not create "
                f"({'; '.join(problems)}); drop it, use another namespace, or pass "
                "recreate_index=True"
            )
        elif conflict and index_dim is not None:
            raise _dimension_error(name, dim, index_dim)
        return name

    def _create_index(
        self, namespace: str, name: str, dim: int, layout: KeyLayout, *, replace: bool
    ) -> Flow[None]:
        commands: list[Command] = [
            (
                "FT.CREATE", name, "ON", "HASH",
                "PREFIX", 1, vector_prefix(namespace),
                "SCHEMA",
                "ptag", "TAG", "SEPARATOR", ",",
                "ttag", "TAG", "SEPARATOR", ",",
                "vector", "VECTOR", "HNSW", 10,
                "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
                "M", HNSW_M, "EF_CONSTRUCTION", HNSW_EF_CONSTRUCTION,
            )
        ]  # fmt: skip
        if replace:
            commands.append(("SET", layout.dim_key(namespace), dim))
        replies = yield Round(commands, tolerate=True)
        created = replies[0]
        if is_error(created) and "already exists" not in str(created).lower():
            raise refused("FT.CREATE", created)
        if is_error(created):  # another client created it meanwhile: check it like ours
            info = yield from one(("FT.INFO", name))
            problems, index_dim = _schema_problems(info, namespace, layout)
            if problems:
                raise SchemaConflictError(
                    f"Redis index {name!r} was just created by another "
                    f"client with another schema ({'; '.join(problems)})"
                )
            if index_dim is not None and index_dim != dim:
                raise _dimension_error(name, dim, index_dim)

    def search(
        self, namespace: str, search: VectorSearch, layout: KeyLayout
    ) -> Flow[list[VectorHit]]:
        partition, vector, k = search.partition, search.vector, search.k
        max_distance, tags = search.max_distance, search.tags
        dim = int(vector.shape[0])
        wanted = k + EXTRA_CANDIDATES
        # Pre-filter: the KNN runs only over entries of the partition holding every tag.
        terms = [f"@ptag:{{{partition_token(partition)}}}"]
        terms += [f"@ttag:{{{tag_token(n, v)}}}" for n, v in sorted((tags or {}).items())]
        # EF_RUNTIME: with RediSearch's default (10) the HNSW graph misses near entries of
        # large partitions (100k random vectors: 40% of near queries found; 98% at 100). A miss
        # is no wrong answer, but a paid LLM call. Small partitions are searched exhaustively.
        query = f"({' '.join(terms)})=>[KNN $K @vector $BLOB EF_RUNTIME $EF AS __dist]"
        dim_key = layout.partition_dim_key(namespace, partition)
        for attempt in range(2):
            name = yield from self._ensure_index(namespace, dim, layout, create=False)
            if name is None:  # nothing of this dimension indexed yet
                (stored,) = yield Round((("GET", dim_key),))
                _check_partition_dim(namespace, dim, stored)
                return []
            command: Command = (
                "FT.SEARCH", name, query,
                "PARAMS", 6, "K", wanted, "EF", max(HNSW_EF_RUNTIME, 10 * wanted),
                "BLOB", np.asarray(vector, dtype="<f4").tobytes(),
                "SORTBY", "__dist", "ASC",
                "RETURN", 2, "payload", "vector",
                "LIMIT", 0, wanted,
                "DIALECT", 2,
            )  # fmt: skip
            (reply,) = yield Round((command,), tolerate=True)
            if not is_error(reply):
                hits = _search_results(reply, namespace)
                if not hits:
                    # A vector of another dimension than the partition's is an error, as on
                    # every backend. Found entries are of this dimension (its index) and this
                    # partition: the check needs a round trip only when none was found.
                    (stored,) = yield Round((("GET", dim_key),))
                    _check_partition_dim(namespace, dim, stored)
                return _rank(hits, vector, k, max_distance)
            if not missing_index(reply) or attempt:
                raise refused("FT.SEARCH", reply)
            with self._state:  # dropped elsewhere (clear): check again, recreate if needed
                self._indexes.pop((namespace, dim), None)
        return []


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
    results: list[tuple[str, dict[str, Any]]], query: Vector, k: int, max_distance: float
) -> list[VectorHit]:
    """Distances recomputed like the mirror does (float32 ``1 - v.q``): one decision rule."""
    width = 4 * int(query.shape[0])
    found = [
        (doc, bytes(fields["vector"]), bytes(fields["payload"]))
        for doc, fields in results
        if fields.get("payload") is not None
        and fields.get("vector") is not None
        and len(fields["vector"]) == width
    ]
    if not found:
        return []
    matrix = np.frombuffer(b"".join(v for _, v, _ in found), dtype="<f4").reshape(len(found), -1)
    distances = 1.0 - matrix @ query
    order = np.argsort(distances, kind="stable")
    hits = [
        VectorHit(found[i][0], max(0.0, float(distances[i])), found[i][2])
        for i in order
        if distances[i] <= max_distance
    ]
    return hits[:k]


def _schema_problems(info: Any, namespace: str, layout: KeyLayout) -> tuple[list[str], int | None]:
    """How an existing index differs from the one semcache creates; and its dimension."""
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
        name = as_text(described.get("attribute", described.get("identifier", "")))
        attributes[name] = {
            key: as_text(value)
            for key, value in described.items()
            if not isinstance(value, (list, tuple, dict))
        }
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
    vector = attributes.get("vector", {})
    metric = str(vector.get("distance_metric", "COSINE")).upper()
    if metric != "COSINE":
        problems.append(f"distance metric {metric} instead of COSINE")
    data_type = str(vector.get("data_type", "FLOAT32")).upper()
    if data_type != "FLOAT32":
        problems.append(f"vector type {data_type} instead of FLOAT32")
    if "dim" in vector:
        dim = int(vector["dim"])
    extra = sorted(set(attributes) - set(expected))
    if extra:
        problems.append(f"unexpected fields {extra}")
    return problems, dim


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
