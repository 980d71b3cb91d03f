"""LangChain adapters of semcache: LLM caches and a ByteStore on any semcache backend."""

from semcache_core.extras import require

require("langchain_core", extra="langchain", what="langchain_semcache")

from langchain_semcache.cache import ExactCache, SemanticCache  # noqa: E402
from langchain_semcache.store import BackendByteStore  # noqa: E402
from semcache_core.scope import cache_scope  # noqa: E402

__all__ = ["BackendByteStore", "ExactCache", "SemanticCache", "cache_scope"]
