"""A LangChain chat prompt (``dumps(messages)``) as the core's conversation turns.

For ``context_match="semantic"`` (see :mod:`semcache_core.conversation`): the text of each
message is compared by meaning, everything else about it (tool calls, tool call ids, names,
non-empty additional kwargs, non-text content parts) is its ``extra`` and must match exactly.
Message ids and response/usage metadata are left out: they differ between two runs of the
same conversation and never change what the model answers.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_semcache._prompts import _message_type, _split_content
from semcache_core.conversation import Turn

_ROLES = {
    "HumanMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "SystemMessage": "system",
    "SystemMessageChunk": "system",
    "ToolMessage": "tool",
    "ToolMessageChunk": "tool",
    "FunctionMessage": "function",
    "FunctionMessageChunk": "function",
}
#: Message fields that are not part of what the model is asked.
_IGNORED = frozenset({"content", "type", "id", "response_metadata", "usage_metadata", "example"})


def turns_from_prompt(prompt: str) -> list[Turn] | None:
    """The turns of a serialized chat prompt; None for a plain-text (completion) prompt."""
    if not prompt.startswith("["):
        return None
    try:
        messages = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(messages, list) or not messages:
        return None
    turns: list[Turn] = []
    for item in messages:
        kind = _message_type(item)
        if kind is None:
            return None
        kwargs: dict[str, Any] = item["kwargs"]
        role = _ROLES.get(kind) or str(kwargs.get("role") or kind)
        text, non_text = _split_content(kwargs.get("content"))
        rest = {
            key: value
            for key, value in kwargs.items()
            if key not in _IGNORED and value not in (None, "", [], {})
        }
        if kind.startswith("ChatMessage"):
            rest.pop("role", None)
        extra = ""
        if rest or non_text:
            extra = json.dumps(
                {"kind": kind, "kwargs": rest, "non_text": non_text},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
        turns.append(Turn(role, text, extra))
    return turns
