"""Generalization rules of the guard, on examples of their kinds (split from test_guard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semcache_core.guard import (
    TrapGuard,
)

ROOT = Path(__file__).resolve().parent.parent


# -- generalization rules (blind v1 retired): examples of their kind, not the set's pairs ------

GENERAL_REJECT: list[tuple[str, str, str]] = [
    # the speaker as a participant: subject and object trade places
    (
        "Can my landlord charge me for the repairs?",
        "Can I charge my landlord for the repairs?",
        "direction",
    ),
    # neighbours around the same relational word ("A into B" / "B into A")
    (
        "How do I roll my pension into an annuity?",
        "How do I roll my annuity into a pension?",
        "direction",
    ),
    # a prefix opposite beside the plain stem elsewhere in the prompt
    (
        "Is sugar in sweetened tea bad if I also add sugar?",
        "Is sugar in unsweetened tea bad if I also add sugar?",
        "morphological",
    ),
    # into / out of, onto / off
    (
        "What paperwork do I need to move into a dorm?",
        "What paperwork do I need to move out of a dorm?",
        "phrasal",
    ),
    # curated transfer opposites
    (
        "What fees apply when I send a wire transfer?",
        "What fees apply when I receive a wire transfer?",
        "antonym",
    ),
    (
        "How do I record accounts payable in a ledger?",
        "How do I record accounts receivable in a ledger?",
        "antonym",
    ),
    # one-sided time scope that only adds to the other prompt
    ("Can I leave my lease?", "Can I leave my lease before the year is up?", "scope"),
    ("Can I get a refund after 14 days?", "Can I get a refund within 14 days?", "scope"),
    # tasks on one object
    ("How do I track my parcel #Z9?", "How do I cancel my parcel #Z9?", "intent"),
    ("How do I pay a parking fine?", "How do I appeal a parking fine?", "intent"),
    # a unit given, not only asked for
    ("How many ounces is 3 kg?", "How many ounces is 3 lb?", "unit"),
]

GENERAL_REJECT += [
    # a bare time is no context sentence; "total" against "per"
    ("What is the weather in Rome?", "Next month: what is the weather in Rome?", "date"),
    ("What's the price per night at the hostel?", "What's the total price at the hostel?", "scope"),
    # curated groups and units
    ("Write onboarding tips for new staff", "Write onboarding tips for new customers", "audience"),
    (
        "Is 2,000 calories enough for a teenager?",
        "Is 2,000 kilojoules enough for a teenager?",
        "unit",
    ),
]

GENERAL_REJECT += [
    # two nouns modifying one noun: two kinds of it
    ("How do I renew a fishing licence?", "How do I renew a hunting licence?", "lexical"),
    # a part against the whole
    ("Can I refund the whole order?", "Can I refund part of the order?", "quantifier"),
]

GENERAL_ACCEPT: list[tuple[str, str]] = [
    # "whole"/"part of" alone mark nothing
    ("How do I search the whole project for a string?", "How do I search my project for a string?"),
    ("Is Greenland part of Denmark?", "Does Greenland belong to Denmark?"),
    # context about the asker, then the same question; a sign-off with a name
    ("Hi! Moving house next month. How do I redirect my post?", "How do I redirect my post?"),
    ("How do I renew a passport? Kind regards, Tom", "How do I renew a passport?"),
    # "per"/"each" in one rewording only
    ("How much water does a cat need each day?", "How much water should a cat drink?"),
    # a doubled letter typed once; the lower-case country
    ("How do I delete a Facebok account", "How do I delete a Facebook account?"),
    ("is tipping expected in the us", "Is tipping expected in the United States?"),
    # greetings by time of day, "thx in advance", "could you tell me / explain how"
    ("Afternoon! How do I descale a kettle? Cheers", "How do I descale a kettle?"),
    ("Hi, how do I clean a cast iron pan? Thx in advance", "How do I clean a cast iron pan?"),
    ("Could you tell me how to defrost a freezer?", "How do I defrost a freezer?"),
    (
        "I was wondering if you could explain how compound interest works.",
        "How does compound interest work?",
    ),
    # a time scope in one rewording, nothing against it in the other
    ("How long until my parcel arrives?", "How long does delivery of my parcel take?"),
    (
        "How early should I be at the station for a train?",
        "How far ahead should I arrive at the station before my train?",
    ),
    # prepositions are not place qualifiers; qualifier words misspelt
    ("Why does my dog dig outside the fence?", "why does my dog dig outsde the fence"),
    ("Chess openings for begginers", "Chess openings for beginners"),
    # place names and their adjectives
    (
        "What is the tipping etiquette in Japan?",
        "What is Japanese tipping etiquette?",
    ),
    # hyphenated and quoted forms of one phrase
    (
        "What does 'pay as you go' mean for a phone plan?",
        "What does pay-as-you-go mean for a phone plan?",
    ),
    # a unit only asked for in one prompt
    ("how much should a puppy sleep a day", "How many hours per day should a puppy sleep?"),
]


@pytest.mark.parametrize(("new", "cached", "reason"), GENERAL_REJECT, ids=lambda v: str(v)[:40])
def test_generalization_rejects(guard: TrapGuard, new: str, cached: str, reason: str) -> None:
    verdict = guard.check(new, cached)
    assert not verdict.ok and verdict.reason == reason, (new, cached, verdict)
    assert not guard.check(cached, new).ok


@pytest.mark.parametrize(("new", "cached"), GENERAL_ACCEPT, ids=lambda v: str(v)[:40])
def test_generalization_accepts(guard: TrapGuard, new: str, cached: str) -> None:
    assert guard.check(new, cached).ok, (new, cached, guard.check(new, cached))
    assert guard.check(cached, new).ok, (cached, new, guard.check(cached, new))
