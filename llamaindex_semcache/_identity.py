"""Names of LlamaIndex models: what must differ for two models' cached data to stay apart."""

from __future__ import annotations

import re
from typing import Any

from semcache_core import keys

#: Fields that change the shape of an embedding model's vectors without changing its
#: ``model_name`` (e.g. OpenAI's ``dimensions``, ``MockEmbedding(embed_dim=...)``).
_SHAPE_FIELDS = ("dimensions", "embed_dim", "output_dimensionality", "dimension")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def class_path(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def embedding_identity(embed_model: Any) -> str:
    """``package.Class:model_name`` plus any dimension field (see the public wrapper,
    :func:`llamaindex_semcache.embedding.embedding_identity`)."""
    parts = [class_path(embed_model), str(getattr(embed_model, "model_name", "") or "")]
    for field in _SHAPE_FIELDS:
        value = getattr(embed_model, field, None)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            parts.append(f"{field}={value}")
    return ":".join(parts)


def model_slug(identity: str, readable: str) -> str:
    """A namespace/key segment for ``identity``: readable part plus a short hash of the whole
    identity (so two identities never share a segment, whatever their readable parts)."""
    slug = _UNSAFE.sub("-", readable).strip("-.")[:48] or "model"
    return f"{slug}-{keys.stable_hash('model', identity)[:12]}"
