"""LangChain's own standard suites, for every adapter on every backend kind."""

from __future__ import annotations

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import (
    AsyncCacheTestSuite,
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    SyncCacheTestSuite,
)

from langchain_semcache import BackendByteStore, ExactCache, SemanticCache
from semcache_core import Backend
from tests.fakes import WordHashEmbeddings


class TestExactCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, backend: Backend, namespace: str) -> BaseCache:
        return ExactCache(backend, namespace=namespace)


class TestExactCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, backend: Backend, namespace: str) -> BaseCache:
        return ExactCache(backend, namespace=namespace)


class TestSemanticCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, backend: Backend, namespace: str) -> BaseCache:
        return SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace)


class TestSemanticCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, backend: Backend, namespace: str) -> BaseCache:
        return SemanticCache(backend, embeddings=WordHashEmbeddings(), namespace=namespace)


class TestByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"bar", b"buzz"

    @pytest.fixture
    def kv_store(self, backend: Backend, namespace: str) -> BackendByteStore:
        return BackendByteStore(backend, namespace=namespace)


class TestByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", b"bar", b"buzz"

    @pytest.fixture
    async def kv_store(self, backend: Backend, namespace: str) -> BackendByteStore:
        return BackendByteStore(backend, namespace=namespace)
