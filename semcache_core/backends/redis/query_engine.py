"""Semantic search in the server: the Redis Query Engine (RediSearch >= 2.4: Redis Stack, 8).

One index per namespace (``<ns>:idx``, HNSW, COSINE, FLOAT32, dimension of the first vector,
created lazily) over the ``<ns>:vec:`` hashes (every partition's slot tag: keys.KeyLayout). The partition and every tag are indexed as TAG
tokens (hex digests of the partition / of ``name``+``value``, so any value works without query
escaping, case folding or whitespace trimming), and the query is
``(@ptag:{p} @ttag:{t}...)=>[KNN k @vector $vec]`` with DIALECT 2: the KNN runs only over
matching entries. Distances are recomputed from the returned vectors exactly as the mirror and
the embedded backend compute them (float32 ``1 - v.q``), so one threshold gives one decision
everywhere. TTLs are ``PEXPIRE`` on the hashes; Redis drops expired hashes from the index. An
existing index whose schema differs raises ``SchemaConflictError`` (a different dimension:
``IndexDimensionError``, which is also a ``VectorDimensionError``) unless
``recreate_index=True``, which drops and recreates it once per backend.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

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
from semcache_core.backends.redis.lua import KnownDimensions, write_records
from semcache_core.backends.redis.strategy import VectorStrategy
from semcache_core.codecs import Vector
from semcache_core.errors import SchemaConflictError, VectorDimensionError
from semcache_core.flow import Flow
from semcache_core.mirror import EXTRA_CANDIDATES

#: Lower bound of the HNSW candidate list per KNN query (``EF_RUNTIME``).
HNSW_EF_RUNTIME = 200


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
        self._indexes: dict[str, int] = {}  # namespace -> dimension of its checked index
        self._recreated: set[str] = set()
        self._state = threading.Lock()
        self.dims = KnownDimensions()

    def add(self, namespace: str, write: VectorWrite, layout: KeyLayout) -> Flow[None]:
        yield from self._ensure_index(namespace, write.dim, layout, create=True, adding=True)
        yield from write_records(namespace, write, layout, use_log=False, known=self.dims)

    def drop_namespace(self, namespace: str) -> None:
        self.dims.drop(namespace)
        with self._state:
            self._indexes.pop(namespace, None)

    def forget(self) -> None:
        self.dims.clear()
        with self._state:
            self._indexes.clear()

    def _ensure_index(
        self, namespace: str, dim: int, layout: KeyLayout, *, create: bool, adding: bool
    ) -> Flow[bool]:
        """Check (once per client) or create the namespace's index; False if none exists."""
        with self._state:
            known = self._indexes.get(namespace)
        if known is not None:
            if known != dim:
                raise _dimension_error(namespace, dim, known, adding=adding)
            return True
        name = index_name(namespace)
        info, stored_dim = yield Round(
            (("FT.INFO", name), ("GET", layout.dim_key(namespace))), tolerate=True
        )
        if is_error(stored_dim):
            raise refused("GET", stored_dim)
        stored_dim = dimension_of(stored_dim)  # garbage: as if absent (the write replaces it)
        if is_error(info) and not missing_index(info):
            raise refused("FT.INFO", info)
        if is_error(info):  # no index yet
            if stored_dim is not None:
                # Vectors exist (written before the index, or the index was dropped by a
                # clear elsewhere): index them with their dimension.
                dim_in_store = stored_dim
                if dim_in_store != dim:
                    raise _dimension_error(namespace, dim, dim_in_store, adding=adding)
            elif not create:
                return False
            yield from self._create_index(namespace, dim, layout, replace=False)
        else:
            problems, index_dim = _schema_problems(info, namespace, layout)
            if index_dim is None and stored_dim is not None:
                index_dim = stored_dim
            conflict = bool(problems) or (index_dim is not None and index_dim != dim)
            if conflict and self.recreate_index and namespace not in self._recreated:
                yield Round((("FT.DROPINDEX", name),))
                yield from self._create_index(namespace, dim, layout, replace=True)
                with self._state:
                    self._recreated.add(namespace)
            elif problems:
                raise SchemaConflictError(
                    f"Redis index {name!r} exists with a schema semcache did not create "
                    f"({'; '.join(problems)}); drop it, use another namespace, or pass "
                    "recreate_index=True"
                )
            elif index_dim is not None and index_dim != dim:
                raise _dimension_error(namespace, dim, index_dim, adding=adding)
        with self._state:
            self._indexes[namespace] = dim
        return True

    def _create_index(
        self, namespace: str, dim: int, layout: KeyLayout, *, replace: bool
    ) -> Flow[None]:
        commands: list[Command] = [
            (
                "FT.CREATE", index_name(namespace), "ON", "HASH",
                "PREFIX", 1, vector_prefix(namespace),
                "SCHEMA",
                "ptag", "TAG", "SEPARATOR", ",",
                "ttag", "TAG", "SEPARATOR", ",",
                "vector", "VECTOR", "HNSW", 6,
                "TYPE", "FLOAT32", "DIM", dim, "DISTANCE_METRIC", "COSINE",
            )
        ]  # fmt: skip
        if replace:
            commands.append(("SET", layout.dim_key(namespace), dim))
        replies = yield Round(commands, tolerate=True)
        created = replies[0]
        if is_error(created) and "already exists" not in str(created).lower():
            raise refused("FT.CREATE", created)
        if is_error(created):  # another client created it meanwhile: check it like ours
            info = yield from one(("FT.INFO", index_name(namespace)))
            problems, index_dim = _schema_problems(info, namespace, layout)
            if problems:
                raise SchemaConflictError(
                    f"Redis index {index_name(namespace)!r} was just created by another "
                    f"client with another schema ({'; '.join(problems)})"
                )
            if index_dim is not None and index_dim != dim:
                raise _dimension_error(namespace, dim, index_dim, adding=True)

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
        command: Command = (
            "FT.SEARCH", index_name(namespace), query,
            "PARAMS", 6, "K", wanted, "EF", max(HNSW_EF_RUNTIME, 10 * wanted),
            "BLOB", np.asarray(vector, dtype="<f4").tobytes(),
            "SORTBY", "__dist", "ASC",
            "RETURN", 2, "payload", "vector",
            "LIMIT", 0, wanted,
            "DIALECT", 2,
        )  # fmt: skip
        for attempt in range(2):
            ready = yield from self._ensure_index(
                namespace, dim, layout, create=False, adding=False
            )
            if not ready:
                return []
            reply = yield from one(command, tolerate=True)
            if not is_error(reply):
                hits = _search_results(reply, namespace)
                return _rank(hits, vector, k, max_distance)
            if not missing_index(reply) or attempt:
                raise refused("FT.SEARCH", reply)
            with self._state:  # dropped elsewhere (clear): check again, recreate if needed
                self._indexes.pop(namespace, None)
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


def _dimension_error(
    namespace: str, dim: int, stored: int, *, adding: bool
) -> VectorDimensionError:
    message = (
        f"vector has dimension {dim}, but the Redis index of namespace {namespace!r} holds "
        f"vectors of dimension {stored}; use one embedding model per namespace, clear it"
    )
    if adding:
        return IndexDimensionError(message + ", or pass recreate_index=True")
    return VectorDimensionError(message)
