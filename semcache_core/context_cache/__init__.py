"""Provider context caches (Gemini explicit caching) shared by every worker of a backend.

``ContextSpec`` describes the cached prefix, ``GeminiProvider`` talks to ``google-genai`` (the
``semcache[gemini]`` extra), ``ContextCacheRegistry`` decides what to create, reuse, refresh,
recreate and when to send the context inline. No framework is imported here; the adapters in
``langchain_semcache.gemini`` and ``llamaindex_semcache.gemini`` use these.
"""

from semcache_core.context_cache.errors import ProviderError, is_refused_cache, too_small
from semcache_core.context_cache.provider import GeminiProvider, RemoteCache, cached_tokens_of
from semcache_core.context_cache.records import CachedContext, SweepReport
from semcache_core.context_cache.registry import ContextCacheRegistry
from semcache_core.context_cache.spec import MIN_TOKENS_FIRST_GUESS, ContextSpec
from semcache_core.context_cache.usage import context_stats, summarize

__all__ = [
    "MIN_TOKENS_FIRST_GUESS",
    "CachedContext",
    "ContextCacheRegistry",
    "ContextSpec",
    "GeminiProvider",
    "ProviderError",
    "RemoteCache",
    "SweepReport",
    "cached_tokens_of",
    "context_stats",
    "is_refused_cache",
    "summarize",
    "too_small",
]
