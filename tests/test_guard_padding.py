"""Padding normalization (strip_padding) and padded repeats (split from test_guard.py)."""

from __future__ import annotations

import pytest

from semcache_core.guard import TrapGuard, strip_padding

# -- padding normalization -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("padded", "plain"),
    [
        (
            "hey there, quick q: how do I reset my router?? thanks so much!!",
            "how do I reset my router?",
        ),
        ("Hi! Sorry to bother you, but is it safe?", "is it safe?"),
        ("URGENT: how do I stop a direct debit?", "how do I stop a direct debit?"),
        ("hey how do I unclog a drain", "how do I unclog a drain"),
        ("How do I renew my passport? Thanks in advance 🙏", "How do I renew my passport?"),
        ("Question: how often should I water a cactus?", "how often should I water a cactus?"),
        ("pls help!! my laptop won't boot", "my laptop won't boot"),
        ("What is DNS?!?! 😅😅", "What is DNS?"),
        ("Hello, good morning! What is a 401k? Best regards", "What is a 401k?"),
        ("HOW DO I GET RED WINE OUT OF A CARPET", "how do i get red wine out of a carpet"),
        ("  What is DNS?  ", "What is DNS?"),
        ("Heyyy, how do I boil an egg? thanksss!", "how do I boil an egg?"),
    ],
)
def test_strip_padding(padded: str, plain: str) -> None:
    assert strip_padding(padded) == plain


@pytest.mark.parametrize(
    "kept",
    [
        "How do I say thank you in Japanese?",
        "Good morning in Spanish?",
        'Translate "hello" to French',
        "Why is my build urgent-flagged in Jira?",
        "How do I lose weight fast?",
        "Thanks",  # nothing but padding: left as it is
        "",
    ],
)
def test_strip_padding_keeps_what_is_asked(kept: str) -> None:
    assert strip_padding(kept) == kept.strip()


def test_padded_repeats_pass_and_padding_never_hides_a_difference(guard: TrapGuard) -> None:
    assert guard.check("Hi, what's the capital of Peru? thx!", "What's the capital of Peru?").ok
    verdict = guard.check("Hi, is 2023 a leap year? thanks!", "Is 2024 a leap year?")
    assert verdict.reason == "date"
