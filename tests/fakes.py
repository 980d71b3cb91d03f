"""Deterministic stand-ins for paid remote models (no network, no model download)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

# Words a paraphrase may swap; mapping them to one token keeps paraphrases close.
_SYNONYMS = {
    "city": "",
    "whats": "what",
    "what's": "what",
    "is": "",
    "the": "",
    "a": "",
    "please": "",
    "tell": "",
    "me": "",
    "of": "",
    "main": "capital",
}


class WordHashEmbeddings(Embeddings):
    """Bag of words hashed into ``dim`` buckets: same words, same vector; paraphrases that
    share most words land close (cosine distance well under 0.2), unrelated text far."""

    def __init__(self, dim: int = 64, *, model: str = "word-hash-v1") -> None:
        self.dim = dim
        self.model = model
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        vector = np.zeros(self.dim, dtype=np.float64)
        for word in re.findall(r"[a-z0-9']+", text.lower()):
            word = _SYNONYMS.get(word, word)
            if not word:
                continue
            digest = hashlib.sha256(f"{self.model}:{word}".encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % self.dim] += 1 if digest[4] % 2 else -1
        if not vector.any():
            vector[0] = 1.0
        return list(vector / np.linalg.norm(vector))

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
