"""``semcache demo``: a small LangChain app, a slow fake LLM, the embedded backend, a table.

The LLM is a stand-in that sleeps like a remote model would (no API key, no network). The
embedding model is all-MiniLM-L6-v2 when the ``[models]`` extra is installed, and otherwise a
small deterministic word-hashing embedder, so the demo always runs offline.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_semcache.cache import SemanticCache
from langchain_semcache.store import BackendByteStore
from semcache_core import connect
from semcache_core.testing import HashingEmbedder


class SlowFakeChatModel(BaseChatModel):
    """Pretends to be a remote chat model: waits ``latency`` seconds, then answers."""

    latency: float = 0.4
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "slow-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        time.sleep(self.latency)
        question = str(messages[-1].content)
        usage = {"input_tokens": 20, "output_tokens": 60, "total_tokens": 80}
        message = AIMessage(content=f"(answer to: {question})", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


class WordHashingEmbeddings(Embeddings):
    """Offline fallback embedder: :class:`semcache_core.testing.HashingEmbedder` (hashed bag
    of lower-cased words, no model download) as LangChain ``Embeddings``."""

    model = "semcache-word-hashing-256"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self._hashing = HashingEmbedder(dim, name=self.model)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._hashing.vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._hashing.vector(text)


def load_embeddings() -> tuple[Embeddings, str]:
    """all-MiniLM-L6-v2 from the ``[models]`` extra if installed, else the fallback."""
    try:
        from semcache_core.models import MiniLMEmbedder
    except ImportError:
        return WordHashingEmbeddings(), "word hashing (install semcache[models] for MiniLM)"
    try:
        return _MiniLMEmbeddings(MiniLMEmbedder()), "all-MiniLM-L6-v2 (local, CPU)"
    except Exception:
        return WordHashingEmbeddings(), "word hashing (MiniLM failed to load)"


class _MiniLMEmbeddings(Embeddings):
    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self.model = "sentence-transformers/all-MiniLM-L6-v2"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(map(float, row)) for row in self._embedder.embed_many(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class CountingEmbeddings(Embeddings):
    """Counts the texts that reach the real embedder (to show embedding-cache hits)."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.texts = 0
        self.model = getattr(inner, "model", "embeddings")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


QUESTIONS: Sequence[tuple[str, str]] = (
    ("cold", "What is the capital of France?"),
    ("cold", "How do I reverse a list in Python?"),
    ("cold", "What is the boiling point of water at sea level in Celsius?"),
    ("cold", "Who wrote the novel Pride and Prejudice?"),
    ("exact repeat", "What is the capital of France?"),
    ("exact repeat", "How do I reverse a list in Python?"),
    ("paraphrase", "What's the capital city of France?"),
    ("paraphrase", "how can I reverse a list in python"),
    ("paraphrase", "Who is the author of the novel Pride and Prejudice?"),
    ("trap", "What is the boiling point of water at sea level in Fahrenheit?"),
    ("trap", "How do I reverse a list in JavaScript?"),
    ("new", "Which planet is closest to the sun?"),
)


def run_demo(*, latency: float = 0.4) -> dict[str, Any]:
    """Run the demo and return its rows and summary (the CLI prints them)."""
    from langchain_classic.embeddings import CacheBackedEmbeddings

    backend = connect("memory://")
    embeddings, embeddings_label = load_embeddings()
    cache = SemanticCache(backend, embeddings=embeddings, namespace="demo-llm")
    set_llm_cache(cache)
    model = SlowFakeChatModel(latency=latency)
    rows: list[dict[str, Any]] = []
    try:
        for expected, question in QUESTIONS:
            before = cache.stats()
            started = time.perf_counter()
            model.invoke(question)
            elapsed = time.perf_counter() - started
            after = cache.stats()
            if after["exact_hits"] > before["exact_hits"]:
                outcome = "exact hit"
            elif after["semantic_hits"] > before["semantic_hits"]:
                outcome = "semantic hit"
            else:
                outcome = (
                    "miss (guard)"
                    if after["guard_rejections"] > before["guard_rejections"]
                    else "miss"
                )
            rows.append(
                {"kind": expected, "prompt": question, "outcome": outcome, "ms": 1000 * elapsed}
            )
    finally:
        set_llm_cache(None)

    counting = CountingEmbeddings(embeddings)
    store = BackendByteStore(backend, namespace="demo-embeddings")
    cached_embedder = CacheBackedEmbeddings.from_bytes_store(
        counting, store, namespace=counting.model, key_encoder="sha256"
    )
    documents = [question for _, question in QUESTIONS[:8]]
    cached_embedder.embed_documents(documents)
    first_pass = counting.texts
    cached_embedder.embed_documents(documents)
    cold = [r["ms"] for r in rows if r["outcome"].startswith("miss")]
    warm = [r["ms"] for r in rows if r["outcome"].endswith("hit")]
    summary = {
        "embeddings": embeddings_label,
        "llm_calls": model.calls,
        "cold_median_ms": statistics.median(cold) if cold else None,
        "cached_median_ms": statistics.median(warm) if warm else None,
        "embedding_texts_first_pass": first_pass,
        "embedding_texts_second_pass": counting.texts - first_pass,
        "embedding_cache_hits": store.stats()["kv_hits"],
        "stats": cache.stats(),
    }
    return {"rows": rows, "summary": summary}


def format_demo(result: dict[str, Any]) -> str:
    rows = result["rows"]
    summary = result["summary"]
    width = max(len(r["prompt"]) for r in rows)
    lines = [
        f"semcache demo: SemanticCache on the embedded backend, embeddings: {summary['embeddings']}",
        "",
        f"{'kind':<13} {'prompt':<{width}}  {'outcome':<13} {'latency':>10}",
        f"{'-' * 13} {'-' * width}  {'-' * 13} {'-' * 10}",
    ]
    for r in rows:
        lines.append(
            f"{r['kind']:<13} {r['prompt']:<{width}}  {r['outcome']:<13} {r['ms']:>8.1f}ms"
        )
    stats = summary["stats"]
    cold, warm = summary["cold_median_ms"], summary["cached_median_ms"]
    lines += [
        "",
        (
            f"LLM calls: {summary['llm_calls']} for {len(rows)} prompts; "
            f"exact hits {stats['exact_hits']}, semantic hits {stats['semantic_hits']}, "
            f"misses {stats['misses']}, guard rejections {stats['guard_rejections']}, "
            f"tokens saved {stats['tokens_saved']}"
        ),
    ]
    if cold and warm:
        lines.append(
            f"median latency: cold {cold:.1f} ms, cached {warm:.2f} ms ({cold / warm:,.0f}x faster)"
        )
    lines.append(
        f"embedding cache (CacheBackedEmbeddings + BackendByteStore): first pass embedded "
        f"{summary['embedding_texts_first_pass']} texts, second pass "
        f"{summary['embedding_texts_second_pass']} ({summary['embedding_cache_hits']} cache hits)"
    )
    return "\n".join(lines)
