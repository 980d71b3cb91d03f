"""The texts a conversation is embedded as, and the decision on one cached candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from semcache_core.conversation.context import UNIT_DISTANCE, compare_contexts
from semcache_core.conversation.facts import is_filler, sentences, units
from semcache_core.errors import SemcacheInputError
from semcache_core.prompt import Conversation, Turn

#: Earlier units put into the search text, most recent first. An unrelated exchange is
#: usually *older* than what the question is about, so a short window keeps it out of the
#: vector; the facts of every earlier unit are still compared on the candidates.
SEARCH_UNITS = 3
#: Cosine distance between search texts under which a cached conversation is a candidate:
#: the ``max_distance`` of the one partition-filtered vector search. On the tuning set the
#: should-hit share stops growing at 0.30 and the traps served do not change up to 0.50 (the
#: checks stop them); 0.35 is one step into that plateau, as margin for other domains.
DEFAULT_CONTEXT_THRESHOLD = 0.35

Embed = Callable[[Sequence[str]], Any]

ContextMatch = Literal["exact", "semantic"]
#: The default of the ``context_match`` setting. "semantic" on the measurements: on the tuning
#: set it serves 78% of the conversations that should hit where "exact" serves 2%, and 1.9%
#: of the traps (one of 54) where "exact" serves none; see the README, "Multi-turn
#: conversations". "exact" is today's behaviour: every earlier turn must be identical.
DEFAULT_CONTEXT_MATCH: ContextMatch = "semantic"


def validate_context_match(value: object) -> ContextMatch:
    if value == "exact":
        return "exact"
    if value == "semantic":
        return "semantic"
    raise SemcacheInputError(f'context_match must be "exact" or "semantic", got {value!r}')


def without_padding(conversation: Conversation) -> Conversation:
    """The conversation with its last message's padding removed (greetings, thanks, urgency,
    emoji: :func:`~semcache_core.guard.strip_padding`, as single prompts are before they are
    embedded), so "Hi there! Can I still return it? Many thanks!!" is the entry of "Can I
    still return it?". A message that is nothing but padding is left as it is."""
    from semcache_core.guard import strip_padding

    query = strip_padding(conversation.query) or conversation.query
    if query == conversation.query:
        return conversation
    return Conversation(conversation.configuration, conversation.history, query)


def focus(conversation: Conversation) -> Conversation:
    """Move the statements that lead the last user message into the history.

    "Oh right, I did get a new SIM. Is that charge going to repeat?" asks "Is that charge going
    to repeat?" in the context of "I did get a new SIM": the question is compared as a single
    prompt, the statement as an earlier fact. A message that does not end in a question is
    left whole.
    """
    parts = sentences(conversation.query)
    if len(parts) < 2 or not parts[-1].endswith("?"):
        return conversation
    start = len(parts) - 1
    while start > 0 and parts[start - 1].endswith("?"):
        start -= 1
    lead = [p for p in parts[:start] if not is_filler(p)]
    if not start:
        return conversation
    history = conversation.history + ((Turn("user", " ".join(lead)),) if lead else ())
    return Conversation(conversation.configuration, history, " ".join(parts[start:]))


def search_text(conversation: Conversation, *, window: int = SEARCH_UNITS) -> str:
    """The "last turn in context" text: the question, then the salient earlier turns, most
    recent first (so that a long history is cut at its oldest end by the model's input limit).
    Its vector is the one stored and searched."""
    conversation = focus(conversation)
    recent = [u.text for u in reversed(units(conversation))][:window]
    return " | ".join([conversation.query, *recent])


def query_text(conversation: Conversation) -> str:
    """The question alone, compared as single prompts are."""
    return focus(conversation).query


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """Whether a cached conversation answers a new one.

    ``stage`` is the first rule that failed (``configuration``, ``context_distance``,
    ``query_distance``, ``query_guard``, ``context``) or None on a match; ``reason``/``detail``
    come from the guard or :func:`compare_contexts`.
    """

    ok: bool
    stage: str | None = None
    reason: str | None = None
    detail: str = ""
    context_distance: float | None = None
    query_distance: float | None = None


def cosine_distance(a: Any, b: Any) -> float:
    import numpy as np

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    denominator = float(np.linalg.norm(x) * np.linalg.norm(y)) or 1.0
    return float(np.clip(1.0 - float(x @ y) / denominator, 0.0, 2.0))


def match_conversation(
    new: Conversation,
    cached: Conversation,
    *,
    embed: Embed,
    threshold: float,
    guard: Any = None,
    context_threshold: float = DEFAULT_CONTEXT_THRESHOLD,
    context_distance: float | None = None,
    unit_distance: float = UNIT_DISTANCE,
) -> MatchDecision:
    """Decide on one candidate, in the order a lookup does it (cheapest first).

    ``embed`` maps texts to vectors. ``context_distance`` is the distance the vector search
    already returned for the search texts (computed with ``embed`` when None). The question
    is embedded only when its text differs from the cached one. ``guard`` is a trap guard
    (``check(new, cached)``) for the question, as for single prompts.
    """
    if new.configuration != cached.configuration:
        return MatchDecision(False, "configuration", "configuration", "configuration differs")
    if context_distance is None:
        va, vb = embed([search_text(new), search_text(cached)])
        context_distance = cosine_distance(va, vb)
    if context_distance > context_threshold + 1e-12:
        return MatchDecision(
            False,
            "context_distance",
            None,
            f"context distance {context_distance:.3f} > {context_threshold:.3f}",
            context_distance,
        )
    qa, qb = query_text(new), query_text(cached)
    query_distance = 0.0
    if qa != qb:
        va, vb = embed([qa, qb])
        query_distance = cosine_distance(va, vb)
        if query_distance > threshold + 1e-12:
            return MatchDecision(
                False,
                "query_distance",
                None,
                f"question distance {query_distance:.3f} > {threshold:.3f}",
                context_distance,
                query_distance,
            )
        if guard is not None:
            verdict = guard.check(qa, qb)
            if not verdict.ok:
                return MatchDecision(
                    False,
                    "query_guard",
                    verdict.reason,
                    verdict.detail,
                    context_distance,
                    query_distance,
                )
    verdict = compare_contexts(
        focus(new),
        focus(cached),
        embed=embed if unit_distance else None,
        unit_distance=unit_distance,
    )
    if not verdict.ok:
        return MatchDecision(
            False, "context", verdict.reason, verdict.detail, context_distance, query_distance
        )
    return MatchDecision(True, None, None, "", context_distance, query_distance)
