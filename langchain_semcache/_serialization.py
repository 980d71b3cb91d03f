"""LangChain generations to and from JSON, with LangChain's own serializer and an allowlist.

``dumpd`` keeps every generation of a result (n > 1) and every field of a chat message (tool
calls, usage metadata, response metadata). ``load`` rebuilds them, but only from the classes in
:data:`ALLOWED_CLASSES`: cached data is untrusted, and a payload naming any other class (a
chat model with an endpoint, a prompt template) is refused and treated as a miss.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

logger = logging.getLogger("semcache")

ALLOWED_CLASSES = (
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
)


def generations_to_json(generations: Sequence[Generation]) -> dict[str, Any]:
    """The body stored for a LangChain result: all generations, in order."""
    if isinstance(generations, Generation) or not isinstance(generations, Sequence):
        raise TypeError(
            f"return_val must be a sequence of Generation, got {type(generations).__name__}"
        )
    for generation in generations:
        if not isinstance(generation, Generation):
            raise TypeError(
                f"return_val must hold Generation objects, got {type(generation).__name__}"
            )
    return {"generations": [dumpd(generation) for generation in generations]}


def generations_from_json(body: dict[str, Any]) -> list[Generation] | None:
    """Rebuild generations; ``None`` (a miss) if the body is not what we wrote."""
    raw = body.get("generations")
    if not isinstance(raw, list) or not raw:
        logger.warning("semcache: ignoring a cache entry without generations")
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # load() is marked beta
            generations = [
                load(item, allowed_objects=ALLOWED_CLASSES, secrets_from_env=False) for item in raw
            ]
    except Exception as exc:
        logger.warning("semcache: ignoring a cache entry that does not deserialize: %s", exc)
        return None
    if not all(isinstance(generation, Generation) for generation in generations):
        logger.warning("semcache: ignoring a cache entry holding non-Generation objects")
        return None
    return generations


def count_tokens(generations: Sequence[Generation]) -> int:
    """Tokens the cached result cost, from chat usage metadata or LLM token_usage info."""
    total = 0
    for generation in generations:
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None)
        if usage:
            total += int(usage.get("total_tokens", 0))
            continue
        info = generation.generation_info or {}
        token_usage = info.get("token_usage") or {}
        if isinstance(token_usage, dict):
            total += int(token_usage.get("total_tokens", 0) or 0)
    return total
