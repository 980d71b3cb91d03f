"""LangChain generations to and from JSON, with LangChain's own serializer and an allowlist.

``dumpd`` keeps every generation of a result (n > 1) and every field of a chat message (tool
calls, usage metadata, response metadata). ``load`` rebuilds them, but only from the classes in
:data:`ALLOWED_CLASSES`: cached data is untrusted, and a payload naming any other class (a
chat model with an endpoint, a prompt template) is refused and treated as a miss.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.load import dumpd, load
from langchain_core.load.load import Reviver
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


def _make_reviver() -> Callable[[Any], Any] | None:
    """LangChain's own ``load()`` walk with one :class:`Reviver` built once.

    ``load()`` rebuilds its allowlist (a scan of every serialization mapping) on each call,
    which cost more than the Redis round trip of a cache hit. The walk below is ``load()``'s:
    escaped user dicts are unescaped, everything else goes through the same ``Reviver`` and
    its allowlist. It needs two private helpers of ``langchain_core.load``; where a future
    langchain-core moves them, this returns ``None`` and the public ``load()`` is used.
    """
    try:
        from langchain_core.load._validation import _is_escaped_dict, _unescape_value
    except ImportError:  # pragma: no cover - depends on the installed langchain-core
        return None
    reviver = Reviver(ALLOWED_CLASSES, secrets_from_env=False)

    def revive(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _is_escaped_dict(obj):
                return _unescape_value(obj)
            return reviver({key: revive(value) for key, value in obj.items()})
        if isinstance(obj, list):
            return [revive(item) for item in obj]
        return obj

    return revive


_REVIVE = _make_reviver()


def _load_allowed(item: Any) -> Any:
    if _REVIVE is not None:
        return _REVIVE(item)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # load() is marked beta
        return load(item, allowed_objects=ALLOWED_CLASSES, secrets_from_env=False)


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
        generations = [_load_allowed(item) for item in raw]
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
