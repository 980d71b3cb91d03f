"""LangChain adapters of semcache: LLM caches and a ByteStore on any semcache backend."""

from langchain_semcache.cache import ExactCache, SemanticCache
from langchain_semcache.store import BackendByteStore

__all__ = ["BackendByteStore", "ExactCache", "SemanticCache"]
