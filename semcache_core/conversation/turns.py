"""A conversation as the core sees it: configuration, earlier turns and the last user turn.

Framework-free: the LangChain and LlamaIndex adapters turn their message objects into
:class:`Turn` values; :func:`split_turns` does the rest. What is *configuration* (the system
prompt, tool definitions and results, tool calls, non-text parts, message kwargs) is kept as
canonical JSON and must match exactly: it is part of the partition key. The earlier user and
assistant texts (the *history*) and the last user text (the *query*) are compared by meaning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Roles whose text is compared by meaning; every other role (system, developer, tool,
#: function ...) is configuration.
CHAT_ROLES = frozenset({"user", "assistant"})
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "chatbot": "assistant"}


@dataclass(frozen=True, slots=True)
class Turn:
    """One message: ``role`` (user, assistant, system, tool ...), its ``text``, and ``extra``,
    the canonical JSON of everything that is not plain text (non-text parts, tool calls,
    kwargs), "" when there is none."""

    role: str
    text: str
    extra: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation split for matching.

    ``configuration`` is canonical JSON and must match exactly; ``history`` holds the earlier
    user/assistant turns (text only); ``query`` is the text of the last user turn.
    """

    configuration: str
    history: tuple[Turn, ...]
    query: str

    @property
    def exact_context(self) -> str:
        """Everything but the query, canonically: what ``context_match="exact"`` compares."""
        return canonical_json(
            {
                "configuration": json.loads(self.configuration),
                "history": [[t.role, t.text] for t in self.history],
            }
        )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalize_role(role: str) -> str:
    role = str(role).lower()
    return _ROLE_ALIASES.get(role, role)


def split_turns(turns: Sequence[Turn]) -> Conversation | None:
    """Split ``turns``; None when there is no user turn with text (nothing to match on).

    Configuration keeps the order of its items (a tool result belongs after its call) but not
    their positions among the chat turns, so extra small talk does not change it.
    """
    turns = [Turn(normalize_role(t.role), t.text, t.extra) for t in turns]
    users = [i for i, t in enumerate(turns) if t.role == "user" and t.text.strip()]
    if not users:
        return None
    last = users[-1]
    configuration: list[Any] = []
    history: list[Turn] = []
    for i, turn in enumerate(turns):
        chat = turn.role in CHAT_ROLES and i < last
        if turn.extra or not (chat or i == last):
            where = "last" if i == last else ("after" if i > last else "before")
            configuration.append(
                [where, turn.role, "" if chat or i == last else turn.text, turn.extra]
            )
        if chat and turn.text.strip():
            history.append(Turn(turn.role, turn.text))
    return Conversation(canonical_json(configuration), tuple(history), turns[last].text)


def turns_from_messages(messages: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """OpenAI-style message dicts (``role``, ``content`` as a string or a list of parts, any
    other keys) as turns: text parts are joined, everything else goes to ``extra``."""
    out: list[Turn] = []
    for message in messages:
        content = message.get("content")
        texts: list[str] = []
        others: list[Any] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, Mapping) and part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                else:
                    others.append(part)
        elif content is not None:
            others.append(content)
        rest = {k: v for k, v in message.items() if k not in ("role", "content")}
        extra = canonical_json({"parts": others, "kwargs": rest}) if others or rest else ""
        out.append(Turn(str(message.get("role", "")), "\n".join(texts), extra))
    return out


_SPACE_RE = re.compile(r"\s+")


def squash(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip()
