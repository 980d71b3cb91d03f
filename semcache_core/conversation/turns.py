"""OpenAI-style message dicts as the core's :class:`~semcache_core.prompt.Turn` values.

The split itself is the core's one rule, :meth:`semcache_core.prompt.Prompt.from_turns`
(its ``conversation`` is what this package matches); this module only translates the message
format the evaluation sets are written in (``{"role", "content"}``, content a string or a
list of parts), as the LangChain and LlamaIndex adapters translate theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from semcache_core.codecs import canonical_json
from semcache_core.prompt import Conversation, Prompt, Turn, split_content


def turns_from_messages(messages: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """OpenAI-style message dicts as turns: text parts are joined, everything else (non-text
    parts, other keys) is the turn's ``extra``; the whole dict is its exact form."""
    out: list[Turn] = []
    for message in messages:
        text, others = split_content(message.get("content"))
        rest = {k: v for k, v in message.items() if k not in ("role", "content")}
        extra = {"parts": others, "kwargs": rest} if others or rest else None
        out.append(
            Turn(
                str(message.get("role", "")),
                text,
                extra=extra,
                rest={"parts": others, "kwargs": rest},
                whole=dict(message),
            )
        )
    return out


def prompt_from_messages(messages: Sequence[Mapping[str, Any]]) -> Prompt:
    """OpenAI-style messages as the core's :class:`Prompt` (exact key: their canonical JSON)."""
    return Prompt.from_turns(
        canonical_json([dict(m) for m in messages]), turns_from_messages(messages)
    )


def conversation_from_messages(messages: Sequence[Mapping[str, Any]]) -> Conversation | None:
    """The semantic split of OpenAI-style messages; None when there is nothing to match on."""
    return prompt_from_messages(messages).conversation
