"""The key scheme, written once for every backend and adapter.

Physical layout (what a Redis user sees in ``SCAN``): ``<namespace>:<kind>:<rest>``.

* ``kind`` is a short tag: ``kv`` for ByteStore / KV values, ``llm`` for exact LLM entries,
  ``vec`` for semantic entries (vector records: :func:`vector_key`). Backends keep their own
  records (logs, counters, metadata) under the :data:`RESERVED_KINDS`, listed here once.
* Hashes are BLAKE2b-128 over *length-prefixed* parts. Concatenating raw strings
  (``md5(prompt + llm_string)``) is ambiguous: ``("ab", "c")`` and ``("a", "bc")`` would
  collide, and a cache must never serve one prompt's answer for another.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from semcache_core.codecs import canonical_json

if TYPE_CHECKING:
    from semcache_core.backends.base import VectorRecord

NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")  # whole string: fullmatch
DEFAULT_NAMESPACE = "semcache"
_VALID_NAMESPACES: set[str] = set()


def validate_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is usable in every backend, else raise a clear error.

    The character set excludes ``:`` (our key separator: namespace ``a`` must never clear the
    keys of namespace ``a:b``), glob characters (Redis ``SCAN MATCH``) and whitespace.
    """
    if type(namespace) is str and namespace in _VALID_NAMESPACES:
        return namespace  # every operation validates: remember the ones already checked
    from semcache_core.errors import SemcacheInputError

    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
    if not NAMESPACE_PATTERN.fullmatch(namespace):  # `$` would accept a trailing newline
        raise SemcacheInputError(
            f"invalid namespace {namespace!r}: use 1 to 128 characters from "
            "letters, digits, '_', '.', '-' and '/' (no ':', spaces or glob characters)"
        )
    if len(_VALID_NAMESPACES) < 4096:
        _VALID_NAMESPACES.add(namespace)
    return namespace


def require_text(value: str, name: str) -> str:
    """``value`` if it can be stored as UTF-8; a lone surrogate (``"\\ud800"``, from a bad
    decode) is an error that names the argument instead of a bare UnicodeEncodeError deep in a
    backend client."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        from semcache_core.errors import SemcacheInputError

        raise SemcacheInputError(
            f"{name} is not valid Unicode text: a lone surrogate {value[exc.start]!r} at "
            f"position {exc.start}"
        ) from None
    return value


def _feed(digest: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest


def stable_hash(*parts: str) -> str:
    """Hex digest (32 chars) of ``parts``, each length-prefixed so no two tuples collide."""
    return str(_feed(hashlib.blake2b(digest_size=16), parts).hexdigest())


#: Hash states after a leading tuple of parts (namespace and scope of exact entries): an LLM
#: string is hundreds of characters, the same on every lookup; a state is copied, never changed.
_PREFIX_STATES: dict[tuple[str, ...], Any] = {}


def _prefixed_hash(prefix: tuple[str, ...], *rest: str) -> str:
    """``stable_hash(*prefix, *rest)``, hashing ``prefix`` once per process."""
    state = _PREFIX_STATES.get(prefix)
    if state is None:
        state = _feed(hashlib.blake2b(digest_size=16), prefix)
        if len(_PREFIX_STATES) < 1024:
            _PREFIX_STATES[prefix] = state
    return str(_feed(state.copy(), rest).hexdigest())


def scope_text(fields: Mapping[str, str] | None) -> str:
    """The canonical text of a cache scope's fields (:mod:`semcache_core.scope`): sorted
    canonical JSON, ``""`` for no fields.

    Keys append it as one more length-prefixed hash part only when it is not empty, so an
    unscoped entry keeps the key it had before scopes existed (stored data stays readable), and
    no scoped key equals an unscoped one (a different number of parts never collides)."""
    return canonical_json(dict(fields)) if fields else ""


def _scoped(parts: tuple[str, ...], fields: Mapping[str, str] | None) -> tuple[str, ...]:
    return (*parts, "scope fields", scope_text(fields)) if fields else parts


def exact_entry_key(
    namespace: str, scope: str, prompt: str, fields: Mapping[str, str] | None = None
) -> str:
    """Backend key (within ``namespace``) of the exact entry for ``prompt`` under ``scope``.

    ``scope`` is everything that must be identical for an answer to be reusable: for
    LangChain the ``llm_string`` (model and parameters). ``fields`` are the cache scope's
    fields (:func:`scope_text`): an entry is only read back under the same ones.
    """
    # stable_hash(*_scoped(("exact", namespace, scope, prompt), fields)), the scope's part once
    if fields:
        return "llm:" + _prefixed_hash(("exact", namespace, scope), *_scoped((prompt,), fields))
    # No fields (the common case): _prefixed_hash and _feed of one part, written out (this is
    # on every exact lookup).
    prefix = ("exact", namespace, scope)
    state = _PREFIX_STATES.get(prefix)
    if state is None:
        state = _feed(hashlib.blake2b(digest_size=16), prefix)
        if len(_PREFIX_STATES) < 1024:
            _PREFIX_STATES[prefix] = state
    digest = state.copy()
    raw = prompt.encode("utf-8", "surrogatepass")
    digest.update(len(raw).to_bytes(8, "big"))
    digest.update(raw)
    hexdigest: str = digest.hexdigest()
    return "llm:" + hexdigest


def partition_key(
    namespace: str, scope: str, context: str, fields: Mapping[str, str] | None = None
) -> str:
    """The semantic partition: entries are only compared with entries of the same partition.

    It covers the model and its parameters (``scope``), the exact conversation context
    (system prompt, tools, earlier turns) and the cache scope's ``fields`` (tenant, user...;
    :func:`scope_text`): a semantic match never crosses any of them.
    """
    return stable_hash(*_scoped(("partition", namespace, scope, context), fields))


#: What :func:`partition_key` returns (a :func:`stable_hash`): such a partition has a tag.
_PARTITION_HASH = re.compile(r"^[0-9a-f]{32}$")
#: A partition's tag: the first 16 hex digits of its hash.
_TAG = re.compile(r"^[0-9a-f]{16}$")
PARTITION_TAG_LENGTH = 16
#: Between the partition tag and the rest of a semantic entry id.
ENTRY_ID_SEPARATOR = "."


def partition_tag(partition: str) -> str | None:
    """The tag a semantic entry id carries for ``partition``: the first 16 hex digits of a
    partition made by :func:`partition_key`; ``None`` for any other partition string.

    A backend can place an entry by its id alone, with its partition (Redis: the partition's
    log and its entries share one hash slot, and partitions spread over a cluster's shards).
    """
    return partition[:PARTITION_TAG_LENGTH] if _PARTITION_HASH.match(partition) else None


def split_entry_id(entry_id: str) -> tuple[str | None, str]:
    """``(tag, rest)`` of an id ``<tag>.<rest>`` (see :func:`semantic_entry_id`), else
    ``(None, entry_id)``: ids of another form carry no partition tag."""
    tag, dot, rest = entry_id.partition(ENTRY_ID_SEPARATOR)
    if dot and rest and _TAG.match(tag):
        return tag, rest
    return None, entry_id


def semantic_entry_id(namespace: str, partition: str, query: str) -> str:
    """Id of the semantic entry for ``query`` in ``partition``; stable so updates overwrite.

    ``<partition tag>.<hash>`` (:func:`partition_tag`): the id tells its partition's place,
    so a backend can read, delete or refresh the entry by id alone. A partition that
    :func:`partition_key` did not make has no tag: the id is then the hash alone.
    """
    entry = stable_hash("semantic", namespace, partition, query)
    tag = partition_tag(partition)
    return entry if tag is None else f"{tag}{ENTRY_ID_SEPARATOR}{entry}"


KV_PREFIX = "kv:"
#: Keys of vector records: ``get_many``/``delete_many``/``expire_many`` address a vector
#: record by ``vector_key(id)``; only ``add_vectors`` writes them.
VECTOR_PREFIX = "vec:"
#: Kinds no value key may use: vector records, and the backends' own records (Redis logs,
#: log metadata, compaction locks, the namespace's dimension, counters; Elasticsearch
#: counters and metadata). Written once here; every backend checks against it.
RESERVED_KINDS = frozenset(
    {"vec", "vlog", "vmeta", "vlock", "vdim", "vsnap", "stats", "ctr", "meta"}
)


def kv_key(user_key: str) -> str:
    """Backend key of a ByteStore / KV entry: the user's key stays readable."""
    return KV_PREFIX + user_key


_UNSAFE_IN_KEYS = re.compile(r"[^A-Za-z0-9_.\-]+")


def model_segment(model_name: str) -> str:
    """A readable key segment for ``model_name``: its last 48 safe characters and a short hash
    of the whole name (two names never share a segment, whatever their readable parts)."""
    readable = _UNSAFE_IN_KEYS.sub("-", model_name).strip("-.")[-48:].strip("-.") or "model"
    return f"{readable}-{stable_hash('model', model_name)[:12]}"


def embedding_entry_key(model_name: str, text: str) -> str:
    """Key (a ``kv`` user key) of the embedding of ``text`` by ``model_name``: the layout of
    :class:`semcache_core.EmbeddingsCache` and of LlamaIndex ``CachedEmbedding`` (which keys
    its query embeddings under another model name, see its ``cache_model_name``)."""
    return f"{model_segment(model_name)}/{stable_hash('embedding', model_name, text)}"


#: LangChain ``CacheBackedEmbeddings`` key encoders (``from_bytes_store(key_encoder=...)``).
LANGCHAIN_KEY_ENCODERS = ("sha1", "blake2b", "sha256", "sha512")
# LangChain's sha1 encoder wraps the hex digest in a uuid5 of this namespace.
_LANGCHAIN_UUID_NAMESPACE = uuid.UUID(int=1985)


def langchain_embedding_key(prefix: str, text: str, key_encoder: str) -> str:
    """The key LangChain's ``CacheBackedEmbeddings.from_bytes_store(namespace=prefix,
    key_encoder=...)`` writes for ``text`` (``prefix`` is that ``namespace``, usually the
    model name): ``prefix`` followed by the text's digest, as ``langchain_classic`` builds it."""
    raw = text.encode("utf-8")
    if key_encoder == "sha1":
        digest = hashlib.sha1(raw, usedforsecurity=False).hexdigest()
        return f"{prefix}{uuid.uuid5(_LANGCHAIN_UUID_NAMESPACE, digest)}"
    if key_encoder == "blake2b":
        return f"{prefix}{hashlib.blake2b(raw).hexdigest()}"
    if key_encoder == "sha256":
        return f"{prefix}{hashlib.sha256(raw).hexdigest()}"
    if key_encoder == "sha512":
        return f"{prefix}{hashlib.sha512(raw).hexdigest()}"
    from semcache_core.errors import SemcacheInputError

    raise SemcacheInputError(
        f"key_encoder must be one of {', '.join(LANGCHAIN_KEY_ENCODERS)} (as in LangChain's "
        f"CacheBackedEmbeddings.from_bytes_store), got {key_encoder!r}"
    )


def collection_prefix(collection: str) -> str:
    """Key prefix of a KV collection (LlamaIndex ``BackendKVStore``): ``%`` and ``/`` are
    percent-escaped, so the first unescaped ``/`` ends the collection and no collection is
    a prefix of another."""
    if not isinstance(collection, str):
        raise TypeError(f"collection must be a str, got {type(collection).__name__}")
    return collection.replace("%", "%25").replace("/", "%2F") + "/"


def vector_key(entry_id: str) -> str:
    """The key (within a namespace) of the vector record ``entry_id``."""
    return VECTOR_PREFIX + entry_id


def vector_id(key: str) -> str | None:
    """The record id if ``key`` names a vector record, else ``None``."""
    return key[len(VECTOR_PREFIX) :] if key.startswith(VECTOR_PREFIX) else None


def is_reserved(key: str) -> bool:
    """Whether ``key`` uses a kind that value writes may not use."""
    return key.split(":", 1)[0] in RESERVED_KINDS


def ttl_ms(ttl: float | None) -> int | None:
    """The one TTL rounding rule: whole milliseconds, rounded up, at least 1 (None = never)."""
    return None if ttl is None else max(1, math.ceil(ttl * 1000))


def single_dimension(records: Sequence[VectorRecord]) -> int:
    """The dimension shared by every vector of one batch (the only copy of this rule)."""
    from semcache_core.errors import VectorDimensionError

    dims = {int(record.vector.shape[0]) for record in records}
    if len(dims) != 1:
        raise VectorDimensionError(f"one batch holds vectors of dimensions {sorted(dims)}")
    return dims.pop()


def dimension_error(namespace: str, dim: int, stored: int) -> Exception:
    """The error of a vector whose dimension is not its partition's (one message)."""
    from semcache_core.errors import VectorDimensionError

    return VectorDimensionError(
        f"vector has dimension {dim}, but this partition of namespace {namespace!r} stores "
        f"vectors of dimension {stored}; a model of another dimension needs another name "
        "(the embedder's name is part of the partition) or a cleared namespace"
    )
