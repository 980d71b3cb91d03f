"""Test helpers shipped with semcache, for our tests and for third-party backends.

* :class:`HashingEmbedder`: the one deterministic, offline embedder (tests, the demo's
  fallback, benchmarks): no model, no network, paraphrases that share words land close.
* :mod:`semcache_core.testing.contract`: the backend contract suite (needs pytest); a
  third-party backend subclasses :class:`~semcache_core.testing.contract.BackendContract`.
* :func:`fresh_namespace`: isolation between tests comes from a fresh namespace per test,
  never from flushing a server.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["PARAPHRASE_WORDS", "FedTransport", "HashingEmbedder", "fresh_namespace"]

#: Words a paraphrase may swap or drop: mapped to one token ("" = dropped), so paraphrases of
#: the test questions land close (cosine distance well under 0.2) and unrelated text far.
PARAPHRASE_WORDS: Mapping[str, str] = {
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
_WORD = re.compile(r"[a-z0-9']+")


class HashingEmbedder:
    """A bag of words hashed into ``dim`` signed buckets, unit length.

    Same words, same vector; the vector depends on ``name`` too, so two instances with
    different names are different models. A core :class:`~semcache_core.embedder.Embedder`;
    the LangChain and LlamaIndex test fakes wrap :meth:`vector`.
    """

    def __init__(
        self,
        dim: int = 64,
        *,
        name: str = "word-hash-v1",
        synonyms: Mapping[str, str] = PARAPHRASE_WORDS,
    ) -> None:
        self.dim = dim
        self.name = name
        self.synonyms = dict(synonyms)
        self.calls = 0

    def vector(self, text: str) -> list[float]:
        vector = np.zeros(self.dim, dtype=np.float64)
        for word in _WORD.findall(text.lower()):
            word = self.synonyms.get(word, word)
            if not word:
                continue
            digest = hashlib.sha256(f"{self.name}:{word}".encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % self.dim] += 1 if digest[4] % 2 else -1
        if not vector.any():
            vector[0] = 1.0
        return [float(x) for x in vector / np.linalg.norm(vector)]

    def embed(self, text: str) -> Sequence[float]:
        self.calls += 1
        return self.vector(text)

    async def aembed(self, text: str) -> Sequence[float]:
        return self.embed(text)


def fresh_namespace(prefix: str = "t") -> str:
    """A namespace no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class FedTransport:
    """A transport that performs nothing: it records every step and answers from ``replies``.

    Each reply is returned in turn; an exception instance is raised instead (a failed step).
    Drives flows and operations in unit tests, with no server.
    """

    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.steps: list[object] = []

    def execute(self, step: object) -> object:
        self.steps.append(step)
        if not self.replies:
            raise AssertionError(f"no reply fed for step {step!r}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aexecute(self, step: object) -> object:
        return self.execute(step)
