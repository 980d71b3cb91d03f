"""What the core needs from an embedding model; adapters wrap LangChain/LlamaIndex models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    """Turns a query into a vector. ``name`` identifies the model: vectors of different models
    are never compared (it is part of the semantic partition).

    Optional: ``embed_many(texts) -> list of vectors`` (and ``aembed_many``), one call for a
    batch, used by :meth:`~semcache_core.ResponseCache.update_many`; without it the batch is
    embedded text by text."""

    name: str

    def embed(self, text: str) -> Sequence[float]: ...

    async def aembed(self, text: str) -> Sequence[float]: ...
