"""Semantic matching of multi-turn chat contexts (``context_match="semantic"``).

Pure and framework-free: adapters turn their messages into the core's :class:`Turn` values,
:meth:`semcache_core.prompt.Prompt.from_turns` splits them by the core's one rule (its
``conversation``), the engine and the evaluation harness (:mod:`semcache_core.quality_chat`)
use the functions here.

The split (:meth:`~semcache_core.prompt.Prompt.from_turns`)
    *Configuration*: system prompt, tool definitions, tool calls and results, non-text parts,
    message kwargs. Kept as canonical JSON, compared exactly: it is the partition key, with the
    scope and the embedder, as the whole context is today. Its items keep their order but not
    their positions among the chat turns, so small talk does not move them.
    *History*: the text of the earlier user and assistant turns. *Query*: the text of the last
    user turn. :func:`focus` moves the statements that lead the last message ("Oh right, I got
    a new SIM. Will that charge repeat?") into the history, so the question alone is compared.

The vectors
    One vector per entry is stored and searched: the embedding of :func:`search_text`, the
    question followed by the :data:`SEARCH_UNITS` most recent salient earlier turns, most
    recent first ("last turn in context"). A short question that many conversations share
    ("yes, do that", "what does it cost?") then finds the conversation it was asked in: with
    every conversation of the tuning set asked the same question, the right one is among the
    4 nearest 100% of the time with this vector and 6% with the question alone. The window
    keeps the older, often unrelated, part of a chat out of the vector; the facts of every
    earlier turn are still checked on the candidates. So a lookup is still *one*
    partition-filtered k-nearest search (``max_distance`` = :data:`DEFAULT_CONTEXT_THRESHOLD`).

The checks on each candidate (:func:`match_conversation`, cheapest first)
    1. configuration equal (the partition guarantees it in the engine);
    2. search-text distance at most the context threshold (the search returned it);
    3. the question as a single prompt: identical text, or distance at most the single-prompt
       threshold and the trap guard (the question is embedded only when its text differs);
    4. the earlier turns (:func:`compare_contexts`): filler sentences dropped (greetings,
       thanks, "ok", "anything else?": ``fillers.txt``); the remaining turns aligned in order
       by their content words (and, only when words leave a turn unmatched, by the distance of
       the two turns' vectors); a turn left unmatched counts against unless it is *light* (no
       fact, at most three content words) or part of an earlier exchange present on one side
       only (an unrelated question asked first); the most recent turn that carries something
       must be matched on both sides (what "it" in the question refers to); an aligned pair
       that is the same sentence with a word replaced ("my guest is vegan" / "... is
       gluten-free") is an edited detail; and the facts of the aligned turns (numbers,
       amounts, dates, units, names, versions, quoted strings, identifiers) must agree.

Every rejection says which rule and which earlier facts differed (``MatchDecision.detail``),
for ``explain``.
"""

from semcache_core.conversation.context import UNIT_DISTANCE, ContextVerdict, compare_contexts
from semcache_core.conversation.facts import content_words, is_filler, salient_text, units
from semcache_core.conversation.match import (
    DEFAULT_CONTEXT_MATCH,
    DEFAULT_CONTEXT_THRESHOLD,
    SEARCH_UNITS,
    MatchDecision,
    focus,
    match_conversation,
    query_text,
    search_text,
    validate_context_match,
    without_padding,
)
from semcache_core.conversation.turns import (
    conversation_from_messages,
    prompt_from_messages,
    turns_from_messages,
)
from semcache_core.prompt import Conversation, Prompt, Turn

__all__ = [
    "DEFAULT_CONTEXT_MATCH",
    "DEFAULT_CONTEXT_THRESHOLD",
    "SEARCH_UNITS",
    "UNIT_DISTANCE",
    "ContextVerdict",
    "Conversation",
    "MatchDecision",
    "Prompt",
    "Turn",
    "compare_contexts",
    "content_words",
    "conversation_from_messages",
    "focus",
    "is_filler",
    "match_conversation",
    "prompt_from_messages",
    "query_text",
    "salient_text",
    "search_text",
    "turns_from_messages",
    "units",
    "validate_context_match",
    "without_padding",
]
