"""The engine's side of ``context_match="semantic"``: keys, entries and the ``context`` stage.

A conversation (a :class:`~semcache_core.prompt.Prompt` whose ``conversation`` is set) is
cached like a single prompt, with three differences (see :mod:`semcache_core.conversation`):

* its partition is keyed by the *configuration* only (system prompt, tools, tool results,
  non-text parts), not by the whole context, so reworded earlier turns share a partition;
* the vector stored and searched is the one of :func:`search_text` (the question followed by
  the most recent earlier turns that carry something), and the search cuts at
  :data:`DEFAULT_CONTEXT_THRESHOLD`; the entry id is the canonical JSON of the history and the
  question, so an identical conversation is an exact hit without embedding anything;
* each candidate goes through the ``context`` stage (:func:`context_stage`):
  :func:`match_conversation` on the cached conversation rebuilt from its body, the question
  as a single prompt (the cache's distance threshold and trap guard), then the earlier turns
  and their facts.

The entry's body keeps the conversation (``{"history": [[role, text] ...], "query": ...}``),
the question as compared and its vector, so that a lookup embeds the cached question never
and its own question at most once (shared by every candidate, and by the write that follows a
miss). The earlier turns are embedded only when words alone leave one unmatched.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from semcache_core.codecs import Vector, canonical_json
from semcache_core.conversation.facts import units
from semcache_core.conversation.match import (
    DEFAULT_CONTEXT_MATCH,
    DEFAULT_CONTEXT_THRESHOLD,
    ContextMatch,
    MatchDecision,
    focus,
    match_conversation,
    query_text,
    search_text,
    validate_context_match,
    without_padding,
)
from semcache_core.flow import Flow
from semcache_core.prompt import Conversation, Prompt, Turn
from semcache_core.stages import Candidate, Query, Stage, StageVerdict

__all__ = [
    "DEFAULT_CONTEXT_MATCH",
    "DEFAULT_CONTEXT_THRESHOLD",
    "ContextMatch",
    "ConversationEntry",
    "ConversationMatching",
    "VectorMemo",
    "compared_conversation",
    "context_stage",
    "conversation_body",
    "conversation_key",
    "conversation_of",
    "conversation_pipeline",
    "conversation_verifier_stage",
    "decode_vector",
    "encode_vector",
    "validate_context_match",
]

#: The reasons of :func:`compare_contexts` that the meaning of the turns may turn around
#: (words alone left a turn unmatched): only then are the earlier turns embedded.
_RETRY_WITH_VECTORS = frozenset({"unmatched_turn", "referent"})


def conversation_key(conversation: Conversation) -> str:
    """What the entry id of a conversation is derived from: its history and its question."""
    return canonical_json(conversation_body(conversation))


def conversation_body(conversation: Conversation) -> dict[str, Any]:
    """The conversation as stored in its entry's body (the configuration is the partition)."""
    return {
        "history": [[turn.role, turn.text] for turn in conversation.history],
        "query": conversation.query,
    }


def conversation_of(body: dict[str, Any], configuration: str) -> Conversation | None:
    """The cached conversation rebuilt from an entry's body; None when it is not one (cached
    data is untrusted)."""
    stored = body.get("conversation")
    if not isinstance(stored, dict):
        return None
    history, query = stored.get("history"), stored.get("query")
    if not isinstance(history, list) or not isinstance(query, str):
        return None
    turns: list[Turn] = []
    for item in history:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            return None
        turns.append(Turn(item[0], item[1]))
    return Conversation(configuration, tuple(turns), query)


def encode_vector(vector: Vector) -> str:
    """A unit vector as base64 of its little-endian float32 bytes (for a JSON body)."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(raw: object) -> Vector | None:
    import numpy as np

    if not isinstance(raw, str):
        return None
    try:
        vector = np.frombuffer(base64.b64decode(raw, validate=True), dtype="<f4")
    except ValueError:
        return None
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        return None
    return vector.astype(np.float32)


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    """What a lookup of a conversation needs besides the :class:`Query`: the conversation,
    its search text (embedded and searched), its question (compared as a single prompt) and
    the key its entry id derives from."""

    conversation: Conversation
    search: str
    question: str
    key: str

    @classmethod
    def of(cls, prompt: Prompt) -> ConversationEntry:
        try:
            return _entry(prompt)
        except TypeError:  # a hand-made prompt with unhashable turns: not cached
            return _entry.__wrapped__(prompt)


@lru_cache(maxsize=1024)  # a lookup and its write ask for the same prompt's several times
def _entry(prompt: Prompt) -> ConversationEntry:
    conversation = compared_conversation(prompt)
    return ConversationEntry(
        conversation,
        search_text(conversation),
        query_text(conversation),
        conversation_key(conversation),
    )


def compared_conversation(prompt: Prompt) -> Conversation:
    """The conversation of ``prompt`` as a lookup compares it: its last message without
    padding (:func:`without_padding`)."""
    assert prompt.conversation is not None
    return without_padding(prompt.conversation)


class VectorMemo:
    """The vectors of recent texts (questions, earlier turns) of one cache, so that a lookup
    embeds its question once for every candidate, and the write after a miss reuses it.
    Bounded (least recently used out), thread-safe."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._vectors: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> Vector | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def put(self, text: str, vector: Vector) -> None:
        with self._lock:
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


#: ``embed(text)``: the flow that embeds ``text`` as the engine does (unit vector; None when
#: the embedder failed and the error policy says to go on).
EmbedFlow = Callable[[str], Flow["Vector | None"]]


def _vector_of(text: str, embed: EmbedFlow, memo: VectorMemo) -> Flow[Vector | None]:
    vector = memo.get(text)
    if vector is None:
        vector = yield from embed(text)
        if vector is not None:
            memo.put(text, vector)
    return vector


def _lookup_table(table: dict[str, Vector]) -> Callable[[Sequence[str]], list[Vector]]:
    def embed(texts: Sequence[str]) -> list[Vector]:
        return [table[text] for text in texts]

    return embed


def _verdict(decision: MatchDecision, checks: Any = None) -> StageVerdict:
    if decision.ok:
        return StageVerdict("context", True, checks=checks)
    counts = {"guard_rejections" if decision.stage == "query_guard" else "context_rejections": 1}
    reason = decision.reason or decision.stage or "context"
    detail = decision.detail
    if decision.stage == "query_guard":
        detail = f"the question: {decision.reason}: {decision.detail}"
    elif decision.stage == "context":
        detail = f"{reason}: {decision.detail}"
    return StageVerdict("context", False, detail, checks=checks, counts=counts)


def context_stage(
    *,
    embed: EmbedFlow,
    threshold: Callable[[], float],
    guard: Any,
    memo: VectorMemo,
) -> Stage:
    """The ``context`` stage: :func:`match_conversation` on one candidate.

    ``threshold()`` is the cache's single-prompt distance threshold (the question's); the
    candidate's distance is the search-text distance, already cut at the query's threshold
    (the context threshold) by the ``threshold`` stage. The question is embedded only when it
    differs from the candidate's (once per text: ``memo``); the cached question's vector comes
    from its body. The earlier turns are embedded (each once) only when words alone leave one
    unmatched or the referent unmatched, and the decision is made again with their meaning.
    An embedding that fails is a rejection (the engine's error policy applies to it first).
    """

    def judge(query: Query, candidate: Candidate, explaining: bool) -> Flow[StageVerdict]:
        new = compared_conversation(query.prompt) if query.prompt.conversation else None
        cached_body = candidate.body
        cached = None if new is None else conversation_of(cached_body, new.configuration)
        if new is None or cached is None:
            return StageVerdict("context", False, "the entry holds no conversation")
        table: dict[str, Vector] = {}
        new_question, cached_question = query_text(new), query_text(cached)
        if new_question != cached_question:
            vector = yield from _vector_of(new_question, embed, memo)
            stored = decode_vector(cached_body.get("question_vector"))
            if cached_body.get("question") != cached_question or stored is None:
                stored = yield from _vector_of(cached_question, embed, memo)
            if vector is None or stored is None:
                return StageVerdict("context", False, "embedding the question failed")
            table[new_question], table[cached_question] = vector, stored
        checks = None
        asks_guard = new_question != cached_question and guard is not None
        if explaining and asks_guard and callable(getattr(guard, "explain", None)):
            checks = guard.explain(new_question, cached_question)

        def decide(with_turn_vectors: bool) -> MatchDecision:
            options = {} if with_turn_vectors else {"unit_distance": 0.0}
            return match_conversation(
                new,
                cached,
                embed=_lookup_table(table),
                threshold=threshold(),
                guard=guard,
                context_threshold=query.threshold,
                context_distance=candidate.distance,
                **options,
            )

        decision = decide(False)
        if (
            not decision.ok
            and decision.stage == "context"
            and decision.reason in _RETRY_WITH_VECTORS
        ):
            texts = [u.text for c in (new, cached) for u in units(focus(c))]
            for text in dict.fromkeys(texts):
                vector = yield from _vector_of(text, embed, memo)
                if vector is None:
                    return _verdict(decision, checks)
                table[text] = vector
            decision = decide(True)
        return _verdict(decision, checks)

    return Stage("context", judge)


def conversation_verifier_stage(verifier_stage: Stage) -> Stage:
    """The verifier for conversations: it judges the two *search texts* (the question and the
    recent earlier turns that carry something), so that the judge sees what "it" refers to."""

    def judge(query: Query, candidate: Candidate, explaining: bool) -> Flow[StageVerdict]:
        new = compared_conversation(query.prompt) if query.prompt.conversation else None
        cached = None if new is None else conversation_of(candidate.body, new.configuration)
        if new is None or cached is None:
            return StageVerdict("verifier", False, "the entry holds no conversation")
        as_single = Query(Prompt.plain(search_text(new)), search_text(new), query.threshold)
        shown = Candidate(
            candidate.entry_id, candidate.distance, search_text(cached), candidate.body
        )
        return (yield from verifier_stage.judge(as_single, shown, explaining))

    return Stage("verifier", judge, calls_out=True)


def conversation_pipeline(stages: Sequence[Stage], context: Stage) -> tuple[Stage, ...]:
    """The candidate stages of a conversation lookup, from the single-prompt ones
    (:func:`semcache_core.stages.pipeline`): ``threshold`` (the search-text distance within
    the context threshold), ``context`` (which runs the trap guard on the questions itself),
    then the ``verifier`` on the search texts when configured."""
    kept = [stage for stage in stages if stage.name not in ("guard", "verifier")]
    verifier = [conversation_verifier_stage(s) for s in stages if s.name == "verifier"]
    return (*kept, context, *verifier)


class ConversationMatching:
    """What :class:`~semcache_core.engine.ResponseCache` does differently for a conversation
    (``context_match="semantic"``): its partition, query, entry key, exact-entry test, the
    fields its entry adds, and its candidate stages. ``embed`` is the engine's embedding flow
    (its error policy applies), ``threshold()`` its single-prompt distance threshold."""

    def __init__(
        self,
        *,
        embed: EmbedFlow,
        threshold: Callable[[], float],
        guard: Any,
        stages: Sequence[Stage],
        context_threshold: float,
    ) -> None:
        self.embed = embed
        self.context_threshold = context_threshold
        self.memo = VectorMemo()
        context = context_stage(embed=embed, threshold=threshold, guard=guard, memo=self.memo)
        #: The candidate pipeline of a conversation.
        self.stages = conversation_pipeline(stages, context)

    @staticmethod
    def partition(where: str, prompt: Prompt) -> tuple[str, str]:
        """The ``(scope, context)`` of the partition key: the configuration only."""
        assert prompt.conversation is not None
        return where + "\x00context=semantic", prompt.conversation.configuration

    def query(self, prompt: Prompt, threshold: float | None) -> Query:
        """Compared by its search text, within the context threshold (the question's threshold
        stays the cache's ``distance_threshold``)."""
        search = ConversationEntry.of(prompt).search
        return Query(prompt, search, self.context_threshold if threshold is None else threshold)

    @staticmethod
    def entry_key(prompt: Prompt) -> str:
        return ConversationEntry.of(prompt).key

    @staticmethod
    def is_exact(body: dict[str, Any], prompt: Prompt) -> bool:
        """Whether ``body`` is the entry of this very conversation (history and question)."""
        return body.get("conversation") == conversation_body(
            ConversationEntry.of(prompt).conversation
        )

    def searched(self, text: str, vector: Vector) -> None:
        """The lookup embedded ``text`` (its search text): it is the question's vector too when
        the two are the same text."""
        self.memo.put(text, vector)

    def fields(self, prompt: Prompt, query: Query, vector: Vector) -> Flow[dict[str, Any] | None]:
        """What the entry adds to its body: the conversation, the question as compared and,
        so that lookups need not embed it, its vector: the search vector when the two texts
        are the same, else the lookup's when it embedded it, else (a conversation with earlier
        turns) one more embedding. A first message whose question is only split from a leading
        statement is stored without (a miss costs one call, as for a single prompt), and a
        lookup embeds that question (once per process) only if a candidate's differs."""
        entry = ConversationEntry.of(prompt)
        fields: dict[str, Any] = {
            "conversation": conversation_body(entry.conversation),
            "question": entry.question,
        }
        known: Vector | None = vector if entry.question == query.compared else None
        if known is None:
            known = self.memo.get(entry.question)
        if known is None and entry.conversation.history:
            known = yield from self.embed(entry.question)
            if known is None:
                return None
            self.memo.put(entry.question, known)
        if known is not None:
            fields["question_vector"] = encode_vector(known)
        return fields

    def clear(self) -> None:
        self.memo.clear()
