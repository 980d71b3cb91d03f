"""Deterministic stand-ins for paid remote models (no network, no model download)."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from semcache_core.testing import HashingEmbedder


class WordHashEmbeddings(Embeddings):
    """:class:`semcache_core.testing.HashingEmbedder` as LangChain ``Embeddings``: same words,
    same vector; paraphrases that share most words land close, unrelated text far."""

    def __init__(self, dim: int = 64, *, model: str = "word-hash-v1") -> None:
        self.dim = dim
        self.model = model
        self.calls = 0
        self._hashing = HashingEmbedder(dim, name=model)

    def _vector(self, text: str) -> list[float]:
        return self._hashing.vector(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += len(texts)
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._vector(text)


class CountingChatModel(BaseChatModel):
    """Answers ``"<model>: answer #n to <question>"`` and counts how often it was called."""

    model: str = "fake-model"
    temperature: float = 0.0
    calls: int = 0
    usage_tokens: int = 42

    @property
    def _llm_type(self) -> str:
        return "counting-fake"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        text = f"{self.model}: answer #{self.calls} to {messages[-1].content}"
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": self.usage_tokens // 2,
                "output_tokens": self.usage_tokens - self.usage_tokens // 2,
                "total_tokens": self.usage_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
