"""How a semantic :class:`~semcache_core.engine.ResponseCache` names and compares a lookup.

The keys and the candidate stages of a prompt, in one place for the lookup, the write and
:mod:`semcache_core.explain`: its partition, its :class:`~semcache_core.stages.Query` (what is
embedded, within which threshold), the id of its entry (the exact fast path), whether an entry
read under that id is its own, the stages of its candidates. A conversation with
``context_match="semantic"`` gets those of
:class:`~semcache_core.conversation.stage.ConversationMatching`.
"""

from __future__ import annotations

from typing import Any

from semcache_core import keys
from semcache_core.backends import VectorHit
from semcache_core.codecs import decode_entry
from semcache_core.conversation.stage import ContextMatch, ConversationMatching
from semcache_core.embedder import Embedder
from semcache_core.prompt import Prompt
from semcache_core.scope import ScopeFields
from semcache_core.stages import Candidate, Query, Stage, compared_query, unpadded

__all__ = ["SemanticKeys"]


class SemanticKeys:
    """Mixin of :class:`~semcache_core.engine.ResponseCache` (which sets these attributes)."""

    namespace: str
    embedder: Embedder | None
    distance_threshold: float
    context_match: ContextMatch
    conversations: ConversationMatching
    stages: tuple[Stage, ...]

    def conversational(self, prompt: Prompt) -> bool:
        """Whether ``prompt`` is looked up as a conversation (``context_match="semantic"``)."""
        semantic = self.context_match == "semantic" and self.embedder is not None
        return semantic and prompt.conversation is not None

    # -- keys ----------------------------------------------------------------------------------
    def partition(self, scope: str, prompt: Prompt, fields: ScopeFields | None = None) -> str:
        """The semantic partition of ``prompt``: namespace, scope, embedder name, context (a
        conversation's configuration only, with ``context_match="semantic"``) and the cache
        scope's ``fields`` (:mod:`semcache_core.scope`).

        Why the scope fields are folded into the partition rather than stored as vector tags
        (:attr:`VectorRecord.tags <semcache_core.backends.VectorRecord.tags>`) and filtered:
        matching is exact on *every* declared field, absent ones included, and a tag filter
        only says "these tags hold these values", so an entry of ``tenant="acme", user="u42"``
        would answer a scope of ``tenant="acme"`` alone (and a sentinel for absent fields would
        break when a cache declares one more field). The partition is matched whole, before
        ranking, on every backend already, and the exact fast path's entry id derives from
        it, so one mechanism covers both. It also keeps a lookup's cost to its own scope's
        entries (Redis: one log per partition; a cluster spreads partitions over its shards).
        An unscoped lookup keeps its partition of before (:func:`~semcache_core.keys.scope_text`).
        """
        assert self.embedder is not None
        where, context = f"{scope}\x00embedder={self.embedder.name}", prompt.context
        if self.conversational(prompt):
            where, context = self.conversations.partition(where, prompt)
        return keys.partition_key(self.namespace, where, context, fields)

    def entry_id(self, partition: str, query: Query) -> str:
        """The id of the entry ``query`` would be stored under (its exact fast path)."""
        conversation = self.conversational(query.prompt)
        key = self.conversations.entry_key(query.prompt) if conversation else query.compared
        return keys.semantic_entry_id(self.namespace, partition, key)

    def stages_for(self, query: Query) -> tuple[Stage, ...]:
        """The candidate stages of ``query`` (a conversation's have a ``context`` stage)."""
        return self.conversations.stages if self.conversational(query.prompt) else self.stages

    # -- queries -------------------------------------------------------------------------------
    def query(self, prompt: Prompt, threshold: float | None = None) -> Query:
        """``prompt`` as a semantic lookup compares it (padding removed; the threshold; a
        conversation: its search text, within the context threshold)."""
        if self.conversational(prompt):
            return self.conversations.query(prompt, threshold)
        if threshold is None:
            threshold = self.distance_threshold
        return Query(prompt, compared_query(prompt), threshold)

    def is_exact_entry(self, body: dict[str, Any] | None, query: Query) -> bool:
        """Whether ``body``, read under the entry id of ``query``, is that query's entry (its
        query, as asked, compares the same; a conversation's history and question are the
        same)."""
        if body is None:
            return False
        if self.conversational(query.prompt):
            return self.conversations.is_exact(body, query.prompt)
        stored = body.get("query")
        if not isinstance(stored, str):
            return False
        return stored == query.prompt.query or unpadded(stored) == query.compared

    @staticmethod
    def candidate(hit: VectorHit) -> Candidate | None:
        """The entry behind a search hit; None when it does not decode (untrusted data)."""
        body = decode_entry(hit.payload, "response")
        if body is None or not isinstance(body.get("query"), str):
            return None
        return Candidate(hit.id, hit.distance, body["query"], body)
