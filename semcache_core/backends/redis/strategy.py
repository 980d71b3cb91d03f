"""How a Redis backend searches vectors: one strategy, chosen once per backend.

:class:`~semcache_core.backends.redis.query_engine.QueryEngineSearch` lets the server's
Query Engine index and search the records; :class:`~semcache_core.backends.redis.log_mirror.
LogMirrorSearch` keeps a numpy mirror per client, fed by a per-partition log stream, and
verifies its candidates against the records. Both store records the same way (the write
script in :mod:`~semcache_core.backends.redis.lua`), so values, reads by key, deletes and TTL
refreshes do not depend on the strategy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from semcache_core.backends.base import VectorHit, VectorSearch, VectorWrite
from semcache_core.backends.redis.keys import KeyLayout
from semcache_core.flow import Flow


class VectorStrategy(ABC):
    """Writes and searches of vector records; everything else is strategy-independent."""

    @abstractmethod
    def add(self, namespace: str, write: VectorWrite, layout: KeyLayout) -> Flow[None]: ...

    @abstractmethod
    def search(
        self, namespace: str, search: VectorSearch, layout: KeyLayout
    ) -> Flow[list[VectorHit]]: ...

    @abstractmethod
    def drop_namespace(self, namespace: str) -> None:
        """Forget client-side state of a cleared namespace."""

    @abstractmethod
    def forget(self) -> None:
        """Forget all client-side state (the backend is closed)."""
