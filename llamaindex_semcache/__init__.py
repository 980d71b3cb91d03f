"""LlamaIndex adapters of semcache, on the embedded store, Redis or Elasticsearch.

* :class:`BackendKVStore`: a ``BaseKVStore`` for ``IngestionCache`` and
  ``BaseEmbedding.embeddings_cache`` (and other KV-backed LlamaIndex stores);
* :class:`CachedEmbedding`: any ``BaseEmbedding`` with a batched cache in front;
* :class:`CachedLLM`: any ``LLM`` with an exact or semantic response cache in front.
"""

from llamaindex_semcache.embedding import CachedEmbedding, LlamaIndexEmbedder, embedding_identity
from llamaindex_semcache.kvstore import BackendKVStore
from llamaindex_semcache.llm import CachedLLM

__all__ = [
    "BackendKVStore",
    "CachedEmbedding",
    "CachedLLM",
    "LlamaIndexEmbedder",
    "embedding_identity",
]
