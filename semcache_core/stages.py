"""The stages a semantic candidate passes before it is served, in order.

A semantic lookup embeds the query, searches the nearest stored queries of its partition and
walks them nearest first. Each candidate goes through the engine's stages
(:attr:`ResponseCache.stages <semcache_core.engine.ResponseCache.stages>`, built by
:func:`pipeline`):

1. ``threshold``: its cosine distance is within the distance threshold;
2. ``guard``: the trap guard finds no answer-changing difference (when the guard is on);
3. ``verifier``: the optional judge says the two requests have the same answer (a
   :class:`Verify` step, performed by the engine's transport, so one flow serves the sync and
   the async path);

and the first candidate that passes every stage is served. A stage is a small named flow over
the :class:`Query` and the :class:`Candidate` that returns a :class:`StageVerdict`; a new
stage (e.g. one that compares conversation context) is one more entry in :func:`pipeline`.

The same stages decide a lookup and explain it (:mod:`semcache_core.explain`): a verdict
carries the stats deltas it caused (``counts``), which a lookup adds to the cache's stats and
explain drops, and explain asks the guard for every check's verdict, not only the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from semcache_core.flow import Flow, Step
from semcache_core.prompt import Prompt
from semcache_core.verifier import VerifierVerdict

if TYPE_CHECKING:
    from semcache_core.guard import GuardVerdict

__all__ = [
    "Candidate",
    "Decision",
    "Query",
    "Stage",
    "StageVerdict",
    "Verify",
    "compared_query",
    "decide",
    "pipeline",
    "unpadded",
]


def compared_query(prompt: Prompt) -> str:
    """The query a semantic lookup embeds and keys its entry by: ``prompt.query`` without
    padding (greetings, thanks, urgency, emoji: :func:`~semcache_core.guard.strip_padding`),
    so "hi! how do I reset my router? thanks" is the entry of "how do I reset my router?".

    A conversation that is its own query (no user turn with text: ``query == context``) only
    matches itself and is left as it is; so is a query that is nothing but padding."""
    if prompt.context and prompt.query == prompt.context:
        return prompt.query
    return unpadded(prompt.query)


def unpadded(text: str) -> str:
    """``text`` without padding (itself when it is nothing but padding)."""
    # Imported here: the guard loads its lexicons (~0.1 s), which exact-only caches never need.
    from semcache_core.guard import strip_padding

    return strip_padding(text) or text


@dataclass(frozen=True, slots=True)
class Query:
    """What candidates are compared with: the prompt as asked, its query as compared (after
    padding normalization: what was embedded) and the distance threshold in force."""

    prompt: Prompt
    compared: str
    threshold: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored entry found near the query: its id, its distance to the query, its stored
    query (as it was asked) and its body."""

    entry_id: str
    distance: float
    query: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """One stage's decision on one candidate.

    ``detail`` says why (a rejection's reason, with the words); ``checks`` is the guard's
    verdict per check (when explaining); ``verifier`` the verifier's verdict; ``counts`` the
    stats deltas this decision caused (a lookup adds them, explain does not).
    """

    stage: str
    ok: bool
    detail: str = ""
    checks: Mapping[str, GuardVerdict] | None = None
    verifier: VerifierVerdict | None = None
    counts: Mapping[str, float] = field(default_factory=dict)


#: A stage's judgement: ``(query, candidate, explaining) -> flow of its verdict``.
Judgement = Callable[[Query, Candidate, bool], Flow[StageVerdict]]


@dataclass(frozen=True, slots=True)
class Stage:
    """A named stage. ``calls_out``: it calls a model (a step with a cost), so explain does not
    run it for a candidate an earlier stage rejected."""

    name: str
    judge: Judgement
    calls_out: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdicts of the stages that ran on one candidate, in order."""

    verdicts: tuple[StageVerdict, ...]

    @property
    def ok(self) -> bool:
        return all(verdict.ok for verdict in self.verdicts)

    @property
    def rejection(self) -> StageVerdict | None:
        """The first stage that rejected the candidate, if any."""
        return next((verdict for verdict in self.verdicts if not verdict.ok), None)


def decide(
    query: Query, candidate: Candidate, stages: Sequence[Stage], *, explaining: bool = False
) -> Flow[Decision]:
    """Run ``candidate`` through ``stages`` in order. A lookup stops at the first rejection;
    explain goes on with the stages that do not call out, to show what else differs."""
    verdicts: list[StageVerdict] = []
    rejected = False
    for stage in stages:
        if rejected and not explaining:
            break
        if rejected and stage.calls_out:
            continue
        verdict = yield from stage.judge(query, candidate, explaining)
        verdicts.append(verdict)
        rejected = rejected or not verdict.ok
    return Decision(tuple(verdicts))


# -- the stages ---------------------------------------------------------------------------------
def _threshold(query: Query, candidate: Candidate, explaining: bool) -> Flow[StageVerdict]:
    # A lookup's search already cut at the threshold; explain searches without the cut.
    if candidate.distance <= query.threshold:
        return StageVerdict("threshold", True)
    detail = f"distance {candidate.distance:.3f} > threshold {query.threshold:.3f}"
    return StageVerdict("threshold", False, detail)
    yield  # pragma: no cover - makes this function a flow


def _guard_stage(guard: Any) -> Stage:
    from semcache_core.guard import GuardVerdict

    passed = GuardVerdict(True, None)

    def judge(query: Query, candidate: Candidate, explaining: bool) -> Flow[StageVerdict]:
        # The guard gets both prompts as they were asked: it strips padding itself.
        new, cached = query.prompt.query, candidate.query
        if explaining and callable(getattr(guard, "explain", None)):
            checks: dict[str, GuardVerdict] = guard.explain(new, cached)
            verdict = next((v for v in checks.values() if not v.ok), passed)
        else:
            checks, verdict = {}, guard.check(new, cached)
        if verdict.ok:
            return StageVerdict("guard", True, checks=checks or None)
        detail = f"{verdict.reason}: {verdict.detail}"
        counts = {"guard_rejections": 1}
        return StageVerdict("guard", False, detail, checks=checks or None, counts=counts)
        yield  # pragma: no cover - makes this function a flow

    return Stage("guard", judge)


@dataclass(frozen=True, slots=True)
class Verify(Step):
    """Ask the engine's verifier whether ``cached``'s answer may be served for ``new``; the
    reply is a :class:`~semcache_core.verifier.VerifierVerdict`."""

    new: str
    cached: str


def _verifier(query: Query, candidate: Candidate, explaining: bool) -> Flow[StageVerdict]:
    # The judge sees both queries without padding, which also makes its verdicts cache better.
    cached = unpadded(candidate.query)
    try:
        verdict: VerifierVerdict = yield Verify(query.compared, cached)
    except Exception as exc:  # fail closed: a verifier that raises is a rejection
        verdict = VerifierVerdict(False, "failed", detail=f"{type(exc).__name__}: {exc}")
    counts: dict[str, float] = {}
    if verdict.cached:
        counts["verifier_cache_hits"] = 1
    else:
        counts.update(verifier_calls=1, verifier_seconds=verdict.seconds)
    if not verdict.ok:
        counts["verifier_rejections"] = 1
    if verdict.outcome in ("failed", "timeout"):
        counts["verifier_failures"] = 1
    detail = verdict.outcome + (f": {verdict.detail}" if verdict.detail else "")
    return StageVerdict("verifier", verdict.ok, detail, verifier=verdict, counts=counts)


def pipeline(*, guard: Any | None, verifier: bool) -> tuple[Stage, ...]:
    """The stages, in the order a candidate passes them: threshold, then the trap guard (when
    on), then the verifier (when configured; the last, as the only one that costs a call)."""
    stages = [Stage("threshold", _threshold)]
    if guard is not None:
        stages.append(_guard_stage(guard))
    if verifier:
        stages.append(Stage("verifier", _verifier, calls_out=True))
    return tuple(stages)
