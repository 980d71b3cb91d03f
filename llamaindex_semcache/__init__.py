"""LlamaIndex adapters of semcache, on the embedded store, Redis or Elasticsearch.

* :class:`BackendKVStore`: a ``BaseKVStore`` for ``IngestionCache`` and
  ``BaseEmbedding.embeddings_cache`` (and other KV-backed LlamaIndex stores);
* :class:`CachedEmbedding`: any ``BaseEmbedding`` with a batched cache in front;
* :class:`CachedLLM`: any ``LLM`` with an exact or semantic response cache in front.
"""

from semcache_core.extras import require

require("llama_index.core", extra="llamaindex", what="llamaindex_semcache")

from llamaindex_semcache.embedding import CachedEmbedding, LlamaIndexEmbedder, embedding_identity  # noqa: E402
from llamaindex_semcache.kvstore import BackendKVStore  # noqa: E402
from llamaindex_semcache.llm import CachedLLM  # noqa: E402
from semcache_core.scope import cache_scope  # noqa: E402

__all__ = [
    "BackendKVStore",
    "CachedEmbedding",
    "CachedLLM",
    "LlamaIndexEmbedder",
    "cache_scope",
    "embedding_identity",
]
