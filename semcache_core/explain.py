"""Explain a lookup: why a prompt would hit or miss, candidate by candidate.

:meth:`ResponseCache.explain(scope, prompt, k=5) <semcache_core.engine.ResponseCache.explain>`
(and ``aexplain``) returns an :class:`Explanation`: the outcome a lookup would give now
(``exact``, ``semantic`` or ``miss``), the query as compared (after padding normalization), the
threshold, and the ``k`` nearest stored queries of the prompt's partition, searched within *any*
distance so that the ones just outside the threshold show too. Each :class:`CandidateReport`
has the entry id, the stored query, the distance, whether it is within the threshold, the
verdict of every stage (the guard's for each check, the verifier's when it was asked) and the
decision: ``served``, ``rejected`` (with the stage that rejected it) or ``not reached`` (a
lookup stops at the first candidate it serves and looks at the nearest
:data:`~semcache_core.engine.SEMANTIC_CANDIDATES` only). Entry ids (``Explanation.served``, ``.key``,
:attr:`Explanation.candidate_ids`) are those ``entries()`` lists and ``drop()`` takes.

It runs the same stages as a lookup (:mod:`semcache_core.stages`), so it cannot disagree with
one, but it writes nothing, refreshes no TTL and counts nothing in the cache's stats (a judge
call it makes is counted in the verifier's own stats and its verdict cached). The verifier is
asked only about candidates a lookup would ask about: within the threshold, passed by the
guard, reached. Backend and embedding errors raise: it is a diagnostic, not a lookup.
``str(explanation)`` is a table for humans; :meth:`Explanation.as_dict` is JSON-ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from semcache_core import keys
from semcache_core.codecs import as_vector, decode_entry, normalize
from semcache_core.engine import (
    MAX_DISTANCE_THRESHOLD,
    SEMANTIC_CANDIDATES,
    Embed,
    ResponseCache,
    validate_threshold,
)
from semcache_core.errors import SemcacheInputError
from semcache_core.flow import Flow
from semcache_core.prompt import Prompt
from semcache_core.scope import ScopeFields
from semcache_core.stages import Decision, StageVerdict, decide
from semcache_core.verifier import VerifierVerdict

if TYPE_CHECKING:
    from semcache_core.guard import GuardVerdict

__all__ = ["CandidateReport", "Explanation", "explain_flow"]

Outcome = Literal["exact", "semantic", "miss"]


@dataclass(frozen=True)
class CandidateReport:
    """One stored entry near the query, and what a lookup does with it.

    ``rejected_by`` is the stage that rejected a ``rejected`` candidate (``"threshold"``,
    ``"guard"``, ``"verifier"``, or ``"payload"`` for an entry that does not decode); ``detail``
    says why. ``guard`` is every check's verdict (None with the guard off); ``verifier`` the
    verifier's verdict (None when it is not configured or was not asked); ``stages`` every
    stage verdict that was computed, in order.
    """

    entry_id: str
    stored_query: str
    distance: float
    within_threshold: bool
    decision: Literal["served", "rejected", "not reached"]
    rejected_by: str | None
    detail: str
    guard: Mapping[str, GuardVerdict] | None
    verifier: VerifierVerdict | None
    stages: tuple[StageVerdict, ...]


@dataclass(frozen=True)
class Explanation:
    """Why a prompt hits or misses (see the module docstring).

    ``mode``: ``"exact"`` (a cache without embedder: ``key`` is the exact key, ``query`` the
    whole prompt) or ``"semantic"`` (``key`` is the entry id the exact fast path reads, derived
    from ``query``, the query as compared; ``asked`` is the query as asked). ``served``: the key
    or entry id a lookup would serve, at ``distance``.
    """

    outcome: Outcome
    mode: Literal["exact", "semantic"]
    namespace: str
    scope: str
    asked: str
    query: str
    key: str
    threshold: float | None = None
    embedder: str | None = None
    stages: tuple[str, ...] = ()
    served: str | None = None
    distance: float | None = None
    candidates: tuple[CandidateReport, ...] = ()
    #: ``"semantic"`` when the prompt was looked up as a conversation (``query`` is then its
    #: search text; the ``context`` stage's detail says which earlier facts differed).
    context_match: str | None = None
    #: The cache scope fields looked up under (:mod:`semcache_core.scope`; empty: unscoped).
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        """The ids of the candidates shown, nearest first: the ids :meth:`ResponseCache.drop
        <semcache_core.engine.ResponseCache.drop>` takes (and ``entries()`` lists)."""
        return tuple(candidate.entry_id for candidate in self.candidates)

    def as_dict(self) -> dict[str, Any]:
        """JSON types only (for ``semcache explain --json``)."""
        return asdict(self)

    def __str__(self) -> str:
        return format_explanation(self)


def explain_flow(
    cache: ResponseCache,
    scope: str,
    prompt: Prompt,
    *,
    k: int,
    threshold: float | None,
    fields: ScopeFields | None = None,
) -> Flow[Explanation]:
    """The flow of :meth:`ResponseCache.explain`: the lookup's reads and stages, no writes;
    ``fields`` as in a lookup (``None``: the active cache scope's)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SemcacheInputError(f"k must be a positive int, got {k!r}")
    ns = cache.namespace
    where = cache._resolved(fields)
    if not cache.semantic:
        key = keys.exact_entry_key(ns, scope, prompt.text, where)
        body = yield from _read(cache, key)
        outcome: Outcome = "miss" if body is None else "exact"
        return Explanation(
            outcome,
            "exact",
            ns,
            scope,
            prompt.text,
            prompt.text,
            key,
            served=None if body is None else key,
            fields=where,
        )

    query = cache.query(prompt, None if threshold is None else validate_threshold(threshold))
    partition = cache.partition(scope, prompt, where)
    entry_id = cache.entry_id(partition, query)
    pipeline = cache.stages_for(query)
    exact = cache.is_exact_entry((yield from _read(cache, keys.vector_key(entry_id))), query)
    vector = normalize(as_vector((yield Embed(query.compared))))
    search = cache.ops.search_vectors(
        ns, partition, vector, k=max(k, SEMANTIC_CANDIDATES), max_distance=MAX_DISTANCE_THRESHOLD
    )
    hits = yield from search
    served: CandidateReport | None = None
    reports: list[CandidateReport] = []
    for index, hit in enumerate(hits):
        candidate = cache.candidate(hit)
        within = hit.distance <= query.threshold
        if candidate is None:
            detail = "the entry does not decode (corrupt, foreign or another version)"
            reports.append(
                CandidateReport(
                    hit.id, "", hit.distance, within, "rejected", "payload", detail, None, None, ()
                )
            )
            continue
        reached = not exact and served is None and index < SEMANTIC_CANDIDATES
        # A candidate a lookup never reaches gets the stages that call no model, for tuning.
        stages = pipeline if reached else tuple(s for s in pipeline if not s.calls_out)
        decision = yield from decide(query, candidate, stages, explaining=True)
        report = _report(candidate.entry_id, candidate.query, hit.distance, within, decision)
        if exact and hit.id == entry_id:
            report = _replace(report, "served", None, "the exact entry of the query")
        elif not reached:
            why = (
                "the exact entry is served"
                if exact
                else "a nearer candidate is served"
                if served is not None
                else f"a lookup looks at the nearest {SEMANTIC_CANDIDATES} only"
            )
            report = _replace(report, "not reached", None, why)
        elif decision.ok:
            served = report
        reports.append(report)
    shown = reports[:k]
    if served is not None and served not in shown:
        shown = reports[: reports.index(served) + 1]
    return Explanation(
        "exact" if exact else "semantic" if served is not None else "miss",
        "semantic",
        ns,
        scope,
        prompt.query,
        query.compared,
        entry_id,
        threshold=query.threshold,
        embedder=cache.require_embedder().name,
        stages=tuple(stage.name for stage in pipeline),
        served=entry_id if exact else served.entry_id if served else None,
        distance=0.0 if exact else served.distance if served else None,
        candidates=tuple(shown),
        context_match="semantic" if cache.conversational(prompt) else None,
        fields=where,
    )


def _read(cache: ResponseCache, key: str) -> Flow[dict[str, Any] | None]:
    raw = yield from cache.ops.get_many(cache.namespace, [key])
    return decode_entry(raw[0], "response")


def _report(
    entry_id: str, stored: str, distance: float, within: bool, decision: Decision
) -> CandidateReport:
    by_stage = {verdict.stage: verdict for verdict in decision.verdicts}
    # A conversation's context stage runs the guard on the questions itself.
    guard = by_stage.get("guard") or by_stage.get("context")
    verifier = by_stage.get("verifier")
    rejection = decision.rejection
    return CandidateReport(
        entry_id,
        stored,
        distance,
        within,
        "served" if rejection is None else "rejected",
        None if rejection is None else rejection.stage,
        "" if rejection is None else rejection.detail,
        guard.checks if guard is not None else None,
        verifier.verifier if verifier is not None else None,
        decision.verdicts,
    )


def _replace(
    report: CandidateReport,
    decision: Literal["served", "rejected", "not reached"],
    rejected_by: str | None,
    detail: str,
) -> CandidateReport:
    return replace(report, decision=decision, rejected_by=rejected_by, detail=detail)


# -- for humans ---------------------------------------------------------------------------------
def _quoted(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _scoped(e: Explanation) -> str:
    fields = ", ".join(f"{name}={value!r}" for name, value in sorted(e.fields.items()))
    return f" (scope {fields})" if fields else ""


def format_explanation(explanation: Explanation) -> str:
    """A readable account: the query, the outcome, then a table of the candidates."""
    e = explanation
    if e.mode == "exact":
        lines = [
            f"exact lookup in namespace {e.namespace!r}{_scoped(e)}",
            f"  prompt:  {_quoted(e.query)}",
            f"  key:     {e.key}",
            f"outcome: {'exact hit' if e.outcome == 'exact' else 'miss'}",
        ]
        return "\n".join(lines)
    head = f"semantic lookup in namespace {e.namespace!r}{_scoped(e)}, embedder {e.embedder}"
    if e.context_match == "semantic":
        head = "conversation " + head + " (earlier turns compared by meaning and facts)"
    lines = [
        f"{head}, threshold {e.threshold:.3f}, stages {' -> '.join(e.stages)}",
        f"  asked:    {_quoted(e.asked)}",
        f"  compared: {_quoted(e.query)}" + ("" if e.query != e.asked else "  (no padding)"),
    ]
    if e.outcome == "miss":
        lines.append("outcome: miss")
    else:
        hit = "exact hit" if e.outcome == "exact" else "semantic hit"
        lines.append(f"outcome: {hit}, entry {e.served} at distance {e.distance:.3f}")
    if not e.candidates:
        lines.append("no stored query in this partition (scope, embedder, context)")
        return "\n".join(lines)
    lines.append("")
    lines.append(
        f"  {'#':>2}  {'distance':>8}  within  {'decision':<11}  {'stage':<9}  stored query"
    )
    for number, c in enumerate(e.candidates, 1):
        lines.append(
            f"  {number:>2}  {c.distance:>8.3f}  {'yes' if c.within_threshold else 'no':<6}  "
            f"{c.decision:<11}  {c.rejected_by or '':<9}  {_quoted(c.stored_query)}"
        )
        for why in [*_reasons(c), f"id {c.entry_id}"]:
            lines.append(f"{'':>16}{why}")
    return "\n".join(lines)


def _reasons(c: CandidateReport) -> list[str]:
    """What to print under a candidate: why it was rejected or not reached, the guard checks
    that differ, and the verifier's verdict."""
    reasons = [c.detail] if c.detail and c.rejected_by != "guard" else []
    if c.guard is not None:
        failing = [f"{name}: {v.detail}" for name, v in c.guard.items() if not v.ok]
        reasons += [f"guard check {f}" for f in failing] or ["guard: every check passes"]
    if c.verifier is not None:
        v = c.verifier
        cached = ", cached" if v.cached else f", {1000 * v.seconds:.0f} ms"
        reasons.append(f"verifier: {v.outcome}{cached}" + (f" ({v.detail})" if v.detail else ""))
    return reasons
