"""A LangChain ``Embeddings`` model as the core's :class:`~semcache_core.embedder.Embedder`."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.embeddings import Embeddings


def embeddings_name(embeddings: Embeddings) -> str:
    """Identify the model: class plus its ``model``/``model_name`` when it has one."""
    model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
    kind = f"{type(embeddings).__module__}.{type(embeddings).__qualname__}"
    return f"{kind}:{model}" if model else kind


class LangChainEmbedder:
    """Adapter: ``embed`` -> ``embed_query``, ``aembed`` -> ``aembed_query``; a batch
    (``embed_many``) -> ``embed_documents``."""

    def __init__(self, embeddings: Embeddings, *, name: str | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                "embeddings must be a langchain_core.embeddings.Embeddings, "
                f"got {type(embeddings).__name__}"
            )
        self.embeddings = embeddings
        self.name = name or embeddings_name(embeddings)

    def embed(self, text: str) -> Sequence[float]:
        return self.embeddings.embed_query(text)

    async def aembed(self, text: str) -> Sequence[float]:
        return await self.embeddings.aembed_query(text)

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        """A batch (``update_many``) in one ``embed_documents`` call."""
        return self.embeddings.embed_documents(texts)

    async def aembed_many(self, texts: list[str]) -> list[list[float]]:
        return await self.embeddings.aembed_documents(texts)
