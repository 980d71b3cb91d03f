"""How a LangChain prompt string splits into the semantic query and the exact context.

Chat models hand the cache ``dumps(messages)``: a JSON list of serialized messages. Each
becomes a core :class:`~semcache_core.Turn` (a ``HumanMessage`` is a user turn, an ``AIMessage``
an assistant turn ...) and the core's one rule splits them
(:meth:`semcache_core.Prompt.from_turns`): the query compared semantically is the text of the
last human message; with ``context_match="exact"`` everything else must match exactly, with
``"semantic"`` the earlier human/AI texts are compared by meaning and facts. A turn's
``extra`` (what must still match exactly then) is everything about the message but its text:
tool calls, tool call ids, names, non-empty additional kwargs, non-text content parts. Message
ids and response/usage metadata are left out of it: they differ between two runs of the same
conversation and never change what the model answers. A plain-text prompt (completion models)
is compared as a whole.
"""

from __future__ import annotations

from typing import Any

from semcache_core import Prompt, Turn
from semcache_core.codecs import loads_untrusted
from semcache_core.prompt import split_content


def _message_type(item: Any) -> str | None:
    if (
        isinstance(item, dict)
        and item.get("lc") == 1
        and item.get("type") == "constructor"
        and isinstance(item.get("id"), list)
        and isinstance(item.get("kwargs"), dict)
    ):
        return str(item["id"][-1])
    return None


_ROLES = {
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "function",
}
#: Message fields that are not part of what the model is asked.
_IGNORED = frozenset({"content", "type", "id", "response_metadata", "usage_metadata", "example"})


def _turn(message: dict[str, Any], kind: str) -> Turn:
    kwargs: dict[str, Any] = message["kwargs"]
    text, non_text = split_content(kwargs.get("content"))
    base = kind.removesuffix("Chunk")
    role = _ROLES.get(base) or str(kwargs.get("role") or base)
    answer_changing = {
        key: value
        for key, value in kwargs.items()
        if key not in _IGNORED and value not in (None, "", [], {})
    }
    if base == "ChatMessage":
        answer_changing.pop("role", None)
    extra = None
    if answer_changing or non_text:
        extra = {"kind": base, "kwargs": answer_changing, "non_text": non_text}
    return Turn(
        role=role,
        text=text,
        extra=extra,
        rest={"kwargs": {k: v for k, v in kwargs.items() if k != "content"}, "non_text": non_text},
        whole=message,
    )


def split_prompt(prompt: str) -> Prompt:
    """Build the core :class:`~semcache_core.Prompt` for a LangChain cache key."""
    if not prompt.startswith("["):
        return Prompt.plain(prompt)
    try:
        messages = loads_untrusted(prompt)
    except ValueError:
        return Prompt.plain(prompt)
    if not isinstance(messages, list) or not messages:
        return Prompt.plain(prompt)
    types = [_message_type(item) for item in messages]
    if any(kind is None for kind in types):
        return Prompt.plain(prompt)
    turns = [_turn(m, kind) for m, kind in zip(messages, types, strict=True) if kind is not None]
    return Prompt.from_turns(prompt, turns)
