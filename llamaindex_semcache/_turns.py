"""LlamaIndex chat messages as the core's conversation turns.

For ``context_match="semantic"`` (see :mod:`semcache_core.conversation`): the text blocks of
each message are compared by meaning; its other blocks (images, tool calls, thinking ...) and
non-empty ``additional_kwargs`` are its ``extra`` and must match exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_index.core.base.llms.types import ChatMessage, TextBlock

from llamaindex_semcache._messages import Uncacheable, _message_json, canonical_json
from semcache_core.conversation import Turn


def turns_from_chat(messages: Sequence[ChatMessage]) -> list[Turn]:
    """Raises :class:`~llamaindex_semcache._messages.Uncacheable` for what has no JSON form."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise Uncacheable(f"messages must be a sequence, got {type(messages).__name__}")
    turns: list[Turn] = []
    for message in messages:
        dumped = _message_json(message)
        texts = [block.text for block in message.blocks if isinstance(block, TextBlock)]
        others = [
            raw
            for raw, block in zip(dumped.get("blocks", []), message.blocks, strict=True)
            if not isinstance(block, TextBlock)
        ]
        kwargs = dumped.get("additional_kwargs") or {}
        extra = canonical_json({"blocks": others, "kwargs": kwargs}) if others or kwargs else ""
        turns.append(Turn(str(dumped.get("role", message.role)), "\n".join(texts), extra))
    return turns
