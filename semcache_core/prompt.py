"""A prompt as the core sees it, and the one rule that splits a conversation.

``text`` is the whole prompt (the exact key). ``query`` is what a semantic lookup compares.
``context`` is everything else, as canonical JSON: with ``context_match="exact"`` it must match
*exactly* for a semantic hit, so it is part of the partition. ``conversation`` is the same
split seen by ``context_match="semantic"`` (:mod:`semcache_core.conversation`).

**The rule** (:meth:`Prompt.from_turns`, for every framework): the query is the text of the
last user turn. A conversation without a user turn, or whose last user turn has no text (empty
or whitespace), is its own query *and* context: only an identical conversation matches it.
Otherwise:

* the exact context is every turn before and after it plus whatever that turn holds besides
  its text (non-text parts, keyword arguments);
* the semantic split (:class:`Conversation`) keeps the *configuration* exact (system prompt,
  tool definitions, tool calls and results, non-text parts, message kwargs: the ``extra`` of
  every turn and the text of every turn that is not a user or assistant turn) and makes the
  text of the earlier user and assistant turns the *history*, compared by meaning and facts.
  Configuration items keep their order but not their positions among the chat turns, so extra
  small talk does not change it.

The adapters only translate their message objects into :class:`Turn` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from semcache_core.codecs import canonical_json

#: Roles whose text is compared by meaning in the semantic split; every other role (system,
#: developer, tool, function ...) is configuration.
CHAT_ROLES = frozenset({"user", "assistant"})
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "chatbot": "assistant"}


def normalize_role(role: object) -> str:
    """A framework's role name as the core's (``human`` -> ``user``, ``ai`` -> ``assistant``)."""
    name = str(getattr(role, "value", role)).lower()
    return _ROLE_ALIASES.get(name, name)


def split_content(content: Any) -> tuple[str, list[Any]]:
    """A message content as its text (string parts and ``{"type": "text"}`` parts, joined by
    newlines) and its other parts (images, files ...), which a turn keeps as configuration.
    Written once for every adapter whose messages use this OpenAI-style content shape."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    others: list[Any] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                others.append(part)
    elif content is not None:
        others.append(content)
    return "\n".join(texts), others


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, framework-neutral.

    ``role``: ``user`` (LangChain ``HumanMessage``, LlamaIndex ``USER``), ``assistant``,
    ``system``, ``tool`` ... (normalized by :func:`normalize_role`); ``text``: its text parts,
    joined with newlines; ``extra``: what else of the message may change the answer (tool
    calls, non-text parts, non-empty kwargs) as JSON types, ``None`` when nothing; ``rest``:
    everything of the message that is not its text, as JSON types (the exact context; defaults
    to ``extra``); ``whole``: the whole message as JSON types (the exact context; defaults to
    ``[role, text, extra]``).
    """

    role: str
    text: str
    extra: Any = None
    rest: Any = None
    whole: Any = None

    @property
    def is_user(self) -> bool:
        return normalize_role(self.role) == "user"

    def exact_rest(self) -> Any:
        return self.extra if self.rest is None else self.rest

    def exact_whole(self) -> Any:
        return (
            [normalize_role(self.role), self.text, self.extra] if self.whole is None else self.whole
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    """The semantic split of a conversation (see the module docstring).

    ``configuration`` is canonical JSON and must match exactly; ``history`` holds the earlier
    user/assistant turns (role and text only); ``query`` is the text of the last user turn.
    """

    configuration: str
    history: tuple[Turn, ...]
    query: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt as the core sees it (see the module docstring)."""

    text: str
    query: str
    context: str = ""
    conversation: Conversation | None = None

    @classmethod
    def plain(cls, text: str) -> Prompt:
        """A prompt that is not a conversation: compared as a whole, with no context."""
        return cls(text=text, query=text, context="")

    @classmethod
    def from_turns(cls, text: str, turns: Sequence[Turn]) -> Prompt:
        """Split a conversation whose exact key is ``text`` by the one rule above."""
        roles = [normalize_role(turn.role) for turn in turns]
        users = [i for i, role in enumerate(roles) if role == "user"]
        if not users or not turns[users[-1]].text.strip():
            return cls(text=text, query=text, context=text)
        last = users[-1]
        context = {
            "before": [turn.exact_whole() for turn in turns[:last]],
            "after": [turn.exact_whole() for turn in turns[last + 1 :]],
            "last_user": turns[last].exact_rest(),
        }
        configuration: list[Any] = []
        history: list[Turn] = []
        for i, (turn, role) in enumerate(zip(turns, roles, strict=True)):
            chat = role in CHAT_ROLES and i < last
            if turn.extra or not (chat or i == last):
                where = "last" if i == last else ("after" if i > last else "before")
                shown = "" if chat or i == last else turn.text
                configuration.append([where, role, shown, turn.extra or None])
            if chat and turn.text.strip():
                history.append(Turn(role, turn.text))
        conversation = Conversation(canonical_json(configuration), tuple(history), turns[last].text)
        return cls(
            text=text,
            query=turns[last].text,
            context=canonical_json(context),
            conversation=conversation,
        )
