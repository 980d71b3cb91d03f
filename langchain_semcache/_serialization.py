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

_GENERATION_ID = ["langchain", "schema", "output", "Generation"]
_CHAT_GENERATION_ID = ["langchain", "schema", "output", "ChatGeneration"]
_AI_MESSAGE_ID = ["langchain", "schema", "messages", "AIMessage"]


def _escape_marker() -> str | None:
    try:
        from langchain_core.load._validation import _LC_ESCAPED_KEY
    except ImportError:  # pragma: no cover - depends on the installed langchain-core
        return None
    return str(_LC_ESCAPED_KEY)


_ESCAPED = _escape_marker()


def _plain_data(value: Any) -> bool:
    """Whether ``value`` holds no dict that ``load()`` treats specially (an ``lc`` object:
    constructor, secret, not-implemented; or an escaped user dict): then ``load()`` returns
    it unchanged, and only the enclosing constructor needs reviving."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "lc" in item or _ESCAPED in item:
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _constructor_kwargs(obj: Any, class_id: list[str]) -> dict[str, Any] | None:
    """The kwargs of ``obj`` if it is ``load()``'s constructor object of ``class_id``."""
    if (
        isinstance(obj, dict)
        and obj.get("lc") == 1
        and obj.get("type") == "constructor"
        and obj.get("id") == class_id
    ):
        kwargs = obj.get("kwargs", {})
        if isinstance(kwargs, dict):
            return kwargs
    return None


def _fast_generation(item: Any) -> Generation | None:
    """The common entries (a ``Generation``, a ``ChatGeneration`` of an ``AIMessage``) rebuilt
    directly, as ``load()`` would (the same classes, called with the same validated kwargs);
    ``None`` when ``item`` is anything else, which then takes the general path.

    ``load()``'s generic walk calls its reviver on every nested dict and copies each one: on
    a cache hit that cost more than decoding the JSON. Here nested values are only checked
    to be plain data (no ``lc`` object, no escaped dict), so the result is the same.
    """
    if _ESCAPED is None:
        return None
    kwargs = _constructor_kwargs(item, _GENERATION_ID)
    if kwargs is not None:
        return Generation(**kwargs) if _plain_data(kwargs) else None
    kwargs = _constructor_kwargs(item, _CHAT_GENERATION_ID)
    if kwargs is None:
        return None
    message = _constructor_kwargs(kwargs.get("message"), _AI_MESSAGE_ID)
    rest = {key: value for key, value in kwargs.items() if key != "message"}
    if message is None or not _plain_data(message) or not _plain_data(rest):
        return None
    return ChatGeneration(message=AIMessage(**message), **rest)


def _load_allowed(item: Any) -> Any:
    fast = _fast_generation(item)
    if fast is not None:
        return fast
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
