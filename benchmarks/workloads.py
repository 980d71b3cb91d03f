"""Realistic payloads, vectors and fake embedders shared by the sections."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration

from semcache_core.codecs import encode_entry

DIM = 384

#: What LangChain passes as ``llm_string`` for a ChatOpenAI-like model (model + parameters).
LLM_STRING = (
    '{"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": {"model_name": '
    '"gpt-4o-mini", "openai_api_key": {"id": ["OPENAI_API_KEY"], "lc": 1, "type": "secret"}, '
    '"temperature": 0.0}, "lc": 1, "name": "ChatOpenAI", "type": "constructor"}---'
    "[('_type', 'openai-chat'), ('model_name', 'gpt-4o-mini'), ('stop', None), "
    "('temperature', 0.0)]"
)

_SYSTEM = (
    "You are a concise assistant for a travel company. Answer in plain English, cite the "
    "policy section when you use one, and never invent prices."
)

_ANSWER = (
    "Our standard cancellation policy lets you cancel any booking free of charge up to 48 "
    "hours before departure. Between 48 and 24 hours before departure we refund 50% of the "
    "fare, and within 24 hours the fare is not refundable, although taxes and airport fees "
    "are always returned. Bookings made with a flexible fare can be changed once without a "
    "fee, provided the new date is within twelve months of the original one. If your flight "
    "is cancelled by the airline, you are entitled to a full refund or a free rebooking, "
    "whichever you prefer (policy section 4.2)."
)


def chat_prompt(i: int) -> str:
    """The prompt string LangChain's chat models hand a cache: ``dumps(messages)``."""
    messages = [
        SystemMessage(content=_SYSTEM),
        HumanMessage(content=f"Question {i}: what is your cancellation policy for booking {i}?"),
    ]
    return dumps(messages)


def chat_generation(i: int = 0) -> ChatGeneration:
    """A ChatGeneration of ~500 characters with usage and response metadata."""
    message = AIMessage(
        content=f"[{i}] {_ANSWER}",
        usage_metadata={"input_tokens": 62, "output_tokens": 118, "total_tokens": 180},
        response_metadata={
            "model_name": "gpt-4o-mini-2024-07-18",
            "finish_reason": "stop",
            "system_fingerprint": "fp_0ba0d124f1",
        },
        id=f"run-{hashlib.blake2b(str(i).encode(), digest_size=16).hexdigest()}",
    )
    return ChatGeneration(message=message)


def response_payload(query: str, i: int = 0) -> bytes:
    """The bytes semcache stores for one semantic (``query`` set) or exact entry."""
    body: dict[str, Any] = {
        "value": {"generations": [dumpd(chat_generation(i))]},
        "tokens": 180,
        "created": time.time(),
    }
    if query:
        body["query"] = query
    return encode_entry("response", body)


# -- vectors -------------------------------------------------------------------------------------


def unit_vectors(n: int, dim: int = DIM, *, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def near(vectors: npt.NDArray[np.float32], *, seed: int, sigma: float = 0.012) -> Any:
    """Unit vectors close to ``vectors`` (cosine distance ~0.03 in dimension 384)."""
    rng = np.random.default_rng(seed)
    noisy = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(sigma)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return noisy


# -- embedders -------------------------------------------------------------------------------------


class PrecomputedEmbedder:
    """A core :class:`~semcache_core.embedder.Embedder` answering from a dict: embedding time
    is excluded from semantic lookups (a dict lookup)."""

    name = "bench-precomputed-384"

    def __init__(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        self.vectors = vectors

    def embed(self, text: str) -> Sequence[float]:
        return self.vectors[text]  # type: ignore[return-value]

    async def aembed(self, text: str) -> Sequence[float]:
        return self.embed(text)


class FastFakeEmbeddings(Embeddings):
    """A trivially fast embedder (a list copy per text): cache overhead dominates."""

    model = "fast-fake-384"

    def __init__(self, dim: int = DIM) -> None:
        self._base = [float(x) for x in unit_vectors(1, dim, seed=7)[0]]
        self.texts = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return [list(self._base) for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class CountingEmbeddings(Embeddings):
    """Counts every embedding call; distinct texts get unrelated vectors (hash-seeded)."""

    model = "counting-64"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls = 0

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
        return [float(x) for x in unit_vectors(1, self.dim, seed=seed)[0]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return self._vector(text)
