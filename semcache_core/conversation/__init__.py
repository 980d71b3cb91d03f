"""Semantic matching of multi-turn chat contexts (draft; see the README section
"Multi-turn conversations")."""

from semcache_core.conversation.context import ContextVerdict, compare_contexts
from semcache_core.conversation.facts import content_words, is_filler, salient_text, units
from semcache_core.conversation.match import (
    DEFAULT_CONTEXT_THRESHOLD,
    SEARCH_UNITS,
    MatchDecision,
    focus,
    match_conversation,
    query_text,
    search_text,
)
from semcache_core.conversation.turns import Conversation, Turn, split_turns, turns_from_messages

__all__ = [
    "DEFAULT_CONTEXT_THRESHOLD",
    "SEARCH_UNITS",
    "ContextVerdict",
    "Conversation",
    "MatchDecision",
    "Turn",
    "compare_contexts",
    "content_words",
    "focus",
    "is_filler",
    "match_conversation",
    "query_text",
    "salient_text",
    "search_text",
    "split_turns",
    "turns_from_messages",
    "units",
]
