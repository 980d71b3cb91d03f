"""LlamaIndex adapters of semcache (KV store, cached embedding, cached LLM)."""
