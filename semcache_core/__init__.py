"""semcache core: backends, keys, codecs, semantic matching, TTL, stats and errors.

This package imports neither LangChain nor LlamaIndex; the adapters in
``langchain_semcache`` and ``llamaindex_semcache`` translate their framework's calls into it.
"""

from semcache_core.backends import Backend, VectorHit, VectorRecord, connect, known_schemes
from semcache_core.embeddings_cache import EmbeddingEntry, EmbeddingsCache
from semcache_core.engine import (
    DEFAULT_DISTANCE_THRESHOLD,
    LookupResult,
    ResponseCache,
    persisted_stats,
)
from semcache_core.entries import CacheEntry
from semcache_core.errors import (
    BackendError,
    SchemaConflictError,
    SemcacheError,
    SemcacheInputError,
    StorageFullError,
    UnknownBackendError,
    VectorDimensionError,
)
from semcache_core.explain import CandidateReport, Explanation
from semcache_core.kv import KeyValueCache
from semcache_core.neutral import Match
from semcache_core.prompt import Prompt, Turn
from semcache_core.scope import cache_scope, current_scope

__all__ = [
    "DEFAULT_DISTANCE_THRESHOLD",
    "Backend",
    "BackendError",
    "CacheEntry",
    "CandidateReport",
    "EmbeddingEntry",
    "EmbeddingsCache",
    "Explanation",
    "KeyValueCache",
    "LookupResult",
    "Match",
    "Prompt",
    "ResponseCache",
    "SchemaConflictError",
    "SemcacheError",
    "SemcacheInputError",
    "StorageFullError",
    "Turn",
    "UnknownBackendError",
    "VectorDimensionError",
    "VectorHit",
    "VectorRecord",
    "cache_scope",
    "connect",
    "current_scope",
    "known_schemes",
    "persisted_stats",
]
