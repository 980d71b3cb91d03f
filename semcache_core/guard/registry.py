"""The ordered registry of named checks, and :class:`TrapGuard`, which runs them.

Each check is a small function over two prompts' :class:`~semcache_core.guard.tokens.Features`
that returns a detail (what differs, with the words) or None. They are tried in the order of
:data:`REGISTRY`; the first that differs names the rejection. The order puts the cheapest and
most certain checks first and the structure-aware ones last, so that a rejection is reported
by the most specific reason ("versions differ" before "order around 'to' differs").
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from semcache_core.guard import (
    context,
    intent,
    lexical,
    names,
    negation,
    numeric,
    qualifiers,
    roles,
    substitution,
    typos,
)
from semcache_core.guard.features import extract_features
from semcache_core.guard.padding import strip_padding
from semcache_core.guard.tokens import Features

__all__ = ["CHECKS", "REGISTRY", "Check", "GuardVerdict", "TrapGuard", "clear_caches"]


@dataclass(frozen=True)
class Check:
    """One named check: ``differs(a, b)`` returns a detail when the prompts differ."""

    name: str
    differs: Callable[[Features, Features], str | None]


#: The checks, in the order they are tried.
REGISTRY: tuple[Check, ...] = (
    Check("negation", negation.negation_differs),
    Check("quoted", names.quoted_differs),
    Check("code", names.code_differs),
    Check("version", numeric.version_differs),
    Check("date", numeric.date_differs),
    Check("unit", numeric.unit_differs),
    Check("number", numeric.number_differs),
    Check("entity", names.entity_differs),
    Check("quantifier", qualifiers.quantifier_differs),
    Check("scope", qualifiers.scope_differs),
    Check("role", roles.role_differs),
    Check("phrasal", negation.phrasal_differs),
    Check("morphological", negation.morphological_differs),
    Check("antonym", negation.antonym_differs),
    Check("direction", roles.direction_differs),
    Check("audience", qualifiers.audience_differs),
    Check("qualifier", qualifiers.qualifier_differs),
    Check("intent", intent.intent_differs),
    Check("constraint", qualifiers.constraint_differs),
    Check("lexical", lexical.lexical_differs),
    Check("reorder", substitution.reorder_differs),
    Check("substitution", substitution.substitution_differs),
)
#: The names of the checks, in order.
CHECKS: tuple[str, ...] = tuple(c.name for c in REGISTRY)


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's decision on one candidate hit.

    ``ok`` is True when the hit may be served. Otherwise ``reason`` is the name of the check
    that failed (one of :data:`CHECKS`) and ``detail`` says what differed, with the words.
    """

    ok: bool
    reason: str | None
    detail: str = ""


_OK = GuardVerdict(True, None)


_PUNCTUATION = str.maketrans("", "", string.punctuation + "¿¡…“”‘’«»")


@lru_cache(maxsize=8192)
def _padding_key(text: str) -> str:
    """``text`` without padding, case, punctuation and spacing (cached per string)."""
    return " ".join(strip_padding(text).casefold().translate(_PUNCTUATION).split())


def clear_caches() -> None:
    """Forget every per-prompt cache (features, padding, keys), as for prompts never seen;
    per-word caches (inflections, phrase entries) stay, as in a long-running process."""
    extract_features.cache_clear()
    strip_padding.cache_clear()
    _padding_key.cache_clear()
    roles.clear_caches()


def _same_after_padding(new_prompt: str, cached_prompt: str) -> bool:
    """The same prompt but for padding, case, punctuation and spacing."""
    return _padding_key(new_prompt) == _padding_key(cached_prompt)


def _features(new_prompt: str, cached_prompt: str) -> tuple[Features, Features]:
    """Both prompts' features, each one's typos of the other's words corrected."""
    a, b = extract_features(new_prompt), extract_features(cached_prompt)
    if a.unknown or b.unknown:
        return typos.corrected(new_prompt, cached_prompt, a, b, extract_features)
    return a, b


class TrapGuard:
    """Rejects candidate semantic hits whose prompts differ in an answer-changing detail.

    ``checks`` selects the checks to run (names from :data:`CHECKS`); None runs them all.
    :meth:`check` is pure and thread-safe; feature extraction is cached per prompt string.
    """

    def __init__(self, *, checks: Iterable[str] | None = None) -> None:
        if checks is None:
            enabled = set(CHECKS)
        else:
            enabled = set(checks)
            unknown = enabled - set(CHECKS)
            if unknown:
                raise ValueError(
                    f"unknown trap guard checks {sorted(unknown)}; known: {list(CHECKS)}"
                )
        self.registry: tuple[Check, ...] = tuple(c for c in REGISTRY if c.name in enabled)
        self.checks: tuple[str, ...] = tuple(c.name for c in self.registry)

    def __repr__(self) -> str:
        return f"TrapGuard(checks={list(self.checks)!r})"

    def check(self, new_prompt: str, cached_prompt: str) -> GuardVerdict:
        """Whether the answer cached for ``cached_prompt`` may be served for ``new_prompt``."""
        if new_prompt == cached_prompt or _same_after_padding(new_prompt, cached_prompt):
            return _OK
        return run_checks(new_prompt, cached_prompt, self.registry)

    def explain(self, new_prompt: str, cached_prompt: str) -> dict[str, GuardVerdict]:
        """The verdict of *every* enabled check, in order (not only the first that fails):
        ``{name: GuardVerdict}``. :meth:`check` rejects iff any of them is not ok."""
        a, b = _features(new_prompt, cached_prompt)
        same = new_prompt == cached_prompt or _same_after_padding(new_prompt, cached_prompt)
        skip = context.CONTEXT_FREE if context.lead_in(a, b) else frozenset()
        out: dict[str, GuardVerdict] = {}
        for c in self.registry:
            detail = None if same or c.name in skip else c.differs(a, b)
            out[c.name] = GuardVerdict(False, c.name, detail) if detail else _OK
        return out


def run_checks(new_prompt: str, cached_prompt: str, checks: Sequence[Check]) -> GuardVerdict:
    """The first of ``checks`` that finds a difference (the shape of STYLE.md section C); the
    checks of the question's words are skipped when the rest is context (:mod:`context`)."""
    a, b = _features(new_prompt, cached_prompt)
    # whether the rest is context is asked only of a difference it could excuse: most pairs
    # never reach a check of the question's words that differs (checks are pure, so running
    # one whose difference is then ignored is the same as skipping it)
    lead: bool | None = None
    for c in checks:
        detail = c.differs(a, b)
        if detail:
            if c.name in context.CONTEXT_FREE:
                if lead is None:
                    lead = context.lead_in(a, b)
                if lead:
                    continue
            return GuardVerdict(False, c.name, detail)
    return _OK
