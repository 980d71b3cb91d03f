"""Round 6 of the trap guard: another task on the same subject (a definition against a how-to,
a restart against a reset, renewing against registering), the same explanation addressed to
other people, one against several of a thing, the Greek "a-" negation and "wear off" /
"kick in". Examples of their kind, not the tuning pairs."""

from __future__ import annotations

import pytest

from semcache_core.guard import TrapGuard, extract_features
from semcache_core.guard.intent import howto_verb
from semcache_core.guard.qualifiers import recipient


@pytest.mark.parametrize(
    ("new", "cached", "reason"),
    [
        # what a thing is or does against how to act on it
        (
            "Explain what a torque converter does in a car.",
            "Explain how to replace a torque converter in a car.",
            "intent",
        ),
        (
            "What is a sump pump in a basement?",
            "How do I install a sump pump in a basement?",
            "intent",
        ),
        # a restart against a reset, renewing against registering
        ("How do I power cycle my Roku stick?", "How do I factory reset my Roku stick?", "intent"),
        (
            "How do I renew a fishing license in Ohio?",
            "How do I register for a fishing license in Ohio?",
            "intent",
        ),
        # the same explanation addressed to other people
        (
            "Explain how vaccines train the immune system to a kindergartner.",
            "Explain how vaccines train the immune system to a medical student.",
            "audience",
        ),
        (
            "Describe Kubernetes pods to a product manager.",
            "Describe Kubernetes pods to a site reliability engineer.",
            "audience",
        ),
        # one against several of the same thing
        (
            "Can I open several savings accounts at one bank?",
            "Can I open one savings account at one bank?",
            "quantifier",
        ),
        (
            "Can I claim multiple dependents on my return?",
            "Can I claim a single dependent on my return?",
            "quantifier",
        ),
        # the Greek "a-" negates an adjective
        ("Is an atypical mole dangerous?", "Is a typical mole dangerous?", "morphological"),
        (
            "How do I debug asynchronous code in Python?",
            "How do I debug synchronous code in Python?",
            "morphological",
        ),
        # curated phrasal opposites
        ("How long until caffeine kicks in?", "How long until caffeine wears off?", "phrasal"),
    ],
)
def test_round6_traps_are_rejected(guard: TrapGuard, new: str, cached: str, reason: str) -> None:
    verdict = guard.check(new, cached)
    assert not verdict.ok
    assert verdict.reason == reason


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        # the how-to's verb is in the other prompt too: the same task
        ("What do I need to renew a passport in Canada?", "How do I renew a passport in Canada?"),
        # the same recipient, reworded around a shared word
        (
            "Explain compound interest to a high school student.",
            "Explain compound interest to a college student.",
        ),
        # "one" of something else, or "several" and "one" of the same on the same side
        (
            "Can I use several monitors with one laptop?",
            "Can I connect multiple monitors to one laptop?",
        ),
        # words opening with "a" that negate nothing
        ("How do I avoid a late fee?", "How can I avoid paying a late fee?"),
    ],
)
def test_round6_rewordings_are_accepted(guard: TrapGuard, new: str, cached: str) -> None:
    verdict = guard.check(new, cached)
    assert verdict.ok, verdict


def test_howto_verb_and_recipient() -> None:
    assert howto_verb(extract_features("How do I replace a fan belt?").sequence) == "replace"
    assert howto_verb(extract_features("How does a fan belt work?").sequence) == ""
    assert recipient(extract_features("Explain tides to a curious toddler.")) == (
        "curious",
        "toddler",
    )
    # nobody named, or no explanation asked
    assert recipient(extract_features("Explain tides.")) == ()
    assert recipient(extract_features("How do I write to a landlord?")) == ()
