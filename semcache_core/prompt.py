"""A prompt as the core sees it, and the one rule that splits a conversation.

``text`` is the whole prompt (the exact key). ``query`` is what a semantic lookup compares.
``context`` is everything else, as canonical JSON: it must match *exactly* for a semantic hit,
so it is part of the partition.

**The rule** (:meth:`Prompt.from_turns`, for every framework): the query is the text of the
last user turn; the context is every turn before and after it plus whatever that turn holds
besides its text (non-text parts, keyword arguments). A conversation without a user turn, or
whose last user turn has no text (empty or whitespace), is its own query *and* context: only
an identical conversation matches it. The adapters only translate their message objects into
:class:`Turn` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from semcache_core.codecs import canonical_json


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, framework-neutral.

    ``is_user``: written by the user (LangChain ``HumanMessage``, LlamaIndex ``USER``);
    ``text``: its text parts, joined with newlines; ``rest``: everything of the message that is
    not its text, as JSON types; ``whole``: the whole message as JSON types.
    """

    is_user: bool
    text: str
    rest: Any
    whole: Any


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt as the core sees it (see the module docstring)."""

    text: str
    query: str
    context: str = ""

    @classmethod
    def plain(cls, text: str) -> Prompt:
        """A prompt that is not a conversation: compared as a whole, with no context."""
        return cls(text=text, query=text, context="")

    @classmethod
    def from_turns(cls, text: str, turns: Sequence[Turn]) -> Prompt:
        """Split a conversation whose exact key is ``text`` by the one rule above."""
        users = [i for i, turn in enumerate(turns) if turn.is_user]
        if not users or not turns[users[-1]].text.strip():
            return cls(text=text, query=text, context=text)
        last = users[-1]
        context = {
            "before": [turn.whole for turn in turns[:last]],
            "after": [turn.whole for turn in turns[last + 1 :]],
            "last_user": turns[last].rest,
        }
        return cls(text=text, query=turns[last].text, context=canonical_json(context))
