"""The default-deny checks for near-identical prompts: ``substitution`` and ``reorder``
(semcache_core/guard/substitution.py), on examples of their own kind."""

from __future__ import annotations

import pytest

from semcache_core.guard import TrapGuard, extract_features
from semcache_core.guard.substitution import aligned_diff, equivalent

# one content word swapped in the same template, no list relates the two words
SUBSTITUTED = [
    (
        "How long is the warranty on a refurbished laptop?",
        "How long is the warranty on a used laptop?",
    ),
    ("Can I cancel a standing order in the app?", "Can I cancel a direct order in the app?"),
    (
        "What is the fee for an express passport renewal?",
        "What is the fee for a standard passport renewal?",
    ),
    ("How do I mute a channel in Slack?", "How do I archive a channel in Slack?"),
    ("How much does 1 gallon of heating oil cost?", "How much does 1 barrel of heating oil cost?"),
    (
        "Is a preloaded card accepted abroad?",
        "Is a postloaded card accepted abroad?",
    ),  # one stem, two prefixes
    (
        "How long does a cordless drill battery last?",
        "How long does a cord drill battery last?",
    ),  # -less
    (
        "Can a fixed-term tenant end the lease early?",
        "Can a periodic tenant end the lease early?",
    ),  # hyphenated
    (
        "What happens if all the tenants move out?",
        "What happens if one of the tenants moves out?",
    ),  # function word
    ("Should I stretch before a run?", "Should I stretch after a run?"),
]
# the same template with an equivalent word: inflection, typo, spelling, abbreviation,
# synonym (WordNet or curated), the same unit
EQUIVALENT = [
    ("How do I delete a repository on GitHub?", "How do I delete a repo on GitHub?"),
    ("How do I sharpen a kitchen knife?", "How do I sharpen kitchen knives?"),
    ("What colour should I paint a small bedroom?", "What color should I paint a small bedroom?"),
    (
        "How do I recieve a parcel at the post office?",
        "How do I receive a parcel at the post office?",
    ),
    ("What is the largest lake in Canada?", "What is the biggest lake in Canada?"),
    ("How do I begin learning chess?", "How do I start learning chess?"),
    ("How do I fix a leaking tap?", "How do I repair a leaking tap?"),
    ("How many kilometres is a marathon?", "How many km is a marathon?"),
    ("Is it unsafe to reheat rice?", "Is it not safe to reheat rice?"),
]
# broad rewordings: the content words do not line up one for one, left to the other checks
BROAD = [
    ("Is Iceland part of Scandinavia?", "Does Iceland belong to Scandinavia?"),
    ("How much sleep does a teenager need each night?", "How many hours should a teenager sleep?"),
    ("How do I set up a VPN on my router?", "How do I configure a VPN on my router?"),
]
# the same words in another order
SWAPPED = [
    (
        "Is cycling harder at altitude than at sea level?",
        "Is cycling harder at sea level than at altitude?",
    ),
    (
        "Can I use Nikon lenses on a Canon body with an adapter?",
        "Can I use Canon lenses on a Nikon body with an adapter?",
    ),
]
REORDERED = [
    (
        "If my dog has diarrhoea, can I still walk him?",
        "Can I still walk my dog if he has diarrhoea?",
    ),
    (
        "When my lease ends, will my deposit come back automatically?",
        "Will my deposit automatically come back when my lease ends?",
    ),
    ("How do I sort a list in Python?", "How do I sort a Python list?"),
    (
        "What is the difference between a Roth and a traditional IRA?",
        "What is the difference between a traditional and a Roth IRA?",
    ),
]


@pytest.mark.parametrize(("new", "cached"), SUBSTITUTED, ids=lambda v: str(v)[:40])
def test_rejects_an_unrelated_word_in_the_same_template(
    guard: TrapGuard, new: str, cached: str
) -> None:
    verdict = guard.check(new, cached)
    assert not verdict.ok, (new, cached)
    assert guard.check(cached, new).ok is False


def test_substitution_names_the_words(guard: TrapGuard) -> None:
    verdict = guard.check(
        "How do I mute a channel in Slack?", "How do I archive a channel in Slack?"
    )
    assert verdict.reason == "substitution"
    assert "'mute' vs 'archive'" in verdict.detail


@pytest.mark.parametrize(("new", "cached"), EQUIVALENT + BROAD, ids=lambda v: str(v)[:40])
def test_accepts_equivalent_words_and_broad_rewordings(
    guard: TrapGuard, new: str, cached: str
) -> None:
    assert guard.check(new, cached).ok, (new, cached, guard.check(new, cached))


@pytest.mark.parametrize(("new", "cached"), BROAD, ids=lambda v: str(v)[:40])
def test_broad_rewordings_are_not_one_template(new: str, cached: str) -> None:
    assert aligned_diff(extract_features(new), extract_features(cached)) is None


@pytest.mark.parametrize(("new", "cached"), SWAPPED, ids=lambda v: str(v)[:40])
def test_rejects_the_same_words_swapped(guard: TrapGuard, new: str, cached: str) -> None:
    assert not guard.check(new, cached).ok, (new, cached)


@pytest.mark.parametrize(("new", "cached"), REORDERED, ids=lambda v: str(v)[:40])
def test_accepts_clauses_or_a_block_moved_and_symmetric_pairs(
    guard: TrapGuard, new: str, cached: str
) -> None:
    assert guard.check(new, cached).ok, (new, cached, guard.check(new, cached))


def test_equivalent_words() -> None:
    assert equivalent("certificate", "cert")
    assert equivalent("optimise", "optimize")
    assert equivalent("begginers", "beginners")
    assert not equivalent("avoidable", "unavoidable")
    assert not equivalent("tank", "tankless")
    assert not equivalent("prepaid", "postpaid")
    assert not equivalent("kwh", "therm")
