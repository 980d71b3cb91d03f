"""How a LangChain prompt string splits into the semantic query and the exact context.

Chat models hand the cache ``dumps(messages)``: a JSON list of serialized messages. The query
compared semantically is the text of the *last human message*; everything else (system prompt,
earlier turns, tool messages, any non-text content of the last human message) is the context,
which must match exactly. A plain-text prompt (completion models) is compared as a whole.
"""

from __future__ import annotations

import json
from typing import Any

from semcache_core import Prompt


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


def _split_content(content: Any) -> tuple[str, list[Any]]:
    """Text of a message content, and its non-text parts (images, files...)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    others: list[Any] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                others.append(part)
    else:
        others.append(content)
    return "\n".join(texts), others


def split_prompt(prompt: str) -> Prompt:
    """Build the core :class:`~semcache_core.Prompt` for a LangChain cache key."""
    if not prompt.startswith("["):
        return Prompt.plain(prompt)
    try:
        messages = json.loads(prompt)
    except ValueError:
        return Prompt.plain(prompt)
    if not isinstance(messages, list) or not messages:
        return Prompt.plain(prompt)
    types = [_message_type(item) for item in messages]
    if any(kind is None for kind in types):
        return Prompt.plain(prompt)
    human = [i for i, kind in enumerate(types) if kind in ("HumanMessage", "HumanMessageChunk")]
    if not human:
        return Prompt.plain(prompt)
    last = human[-1]
    query, extra_parts = _split_content(messages[last]["kwargs"].get("content"))
    last_kwargs = {k: v for k, v in messages[last]["kwargs"].items() if k != "content"}
    context = {
        "before": messages[:last],
        "after": messages[last + 1 :],
        "last_human_extra": {"kwargs": last_kwargs, "non_text": extra_parts},
    }
    return Prompt(
        text=prompt,
        query=query,
        context=json.dumps(context, sort_keys=True, separators=(",", ":")),
    )
