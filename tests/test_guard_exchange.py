"""Round 5 of the trap guard: exchanges of two terms or participants in one prompt frame are a
change of direction whatever word relates them; symmetric prompts and moved clauses are not.
Examples of their kind, not the tuning pairs."""

from __future__ import annotations

import pytest

from semcache_core.guard import TrapGuard, extract_features, strip_padding
from semcache_core.guard.roles import exchanged_spans, participants_exchanged


@pytest.fixture(scope="module")
def guard() -> TrapGuard:
    return TrapGuard()


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        # numbers in the terms: "1080p" / "4K", "USB 2" / "USB 3" trade places
        (
            "Can I use a USB 2 cable in a port rated for USB 3?",
            "Can I use a USB 3 cable in a port rated for USB 2?",
        ),
        (
            "Will a 65W charger work with a laptop that needs 90W?",
            "Will a 90W charger work with a laptop that needs 65W?",
        ),
        # multi-word terms of unequal length, no relational word between them
        (
            "Can I run PlayStation 4 discs on a PlayStation 5 Digital Edition?",
            "Can I run PlayStation 5 Digital Edition discs on a PlayStation 4?",
        ),
        (
            "Does a Canon lens fit a Nikon body?",
            "Does a Nikon lens fit a Canon body?",
        ),
        # participants around the same verb, the rest of the prompt reworded
        (
            "My tenant owes me three months of rent, what can I do?",
            "I owe my tenant three months of rent, what should I do?",
        ),
        (
            "Can the airline refund me if I miss the flight?",
            "Can I refund the airline if they cancel the flight?",
        ),
    ],
)
def test_exchanged_terms_are_a_change_of_direction(guard: TrapGuard, new: str, cached: str) -> None:
    verdict = guard.check(new, cached)
    assert not verdict.ok and verdict.reason == "direction", verdict
    assert not guard.check(cached, new).ok


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        # symmetric middles: "A and B", "A or B", "mix A with B", "between A and B"
        ("Should I learn Spanish or French first?", "Should I learn French or Spanish first?"),
        ("Can I mix bleach with vinegar?", "Can I mix vinegar with bleach?"),
        (
            "What is the difference between a 5W-30 and a 10W-30 oil?",
            "What is the difference between a 10W-30 and a 5W-30 oil?",
        ),
        (
            "Can I take ibuprofen and paracetamol on the same day?",
            "Can I take paracetamol and ibuprofen on the same day?",
        ),
        # whole clauses or sentences trading places
        (
            "I live in Leeds. My flight is at 6 am. When should I leave?",
            "My flight is at 6 am. I live in Leeds. When should I leave?",
        ),
        # passive voice on one side
        ("Can my employer fire me for a tweet?", "Can I be fired by my employer for a tweet?"),
    ],
)
def test_symmetric_or_moved_terms_are_no_exchange(guard: TrapGuard, new: str, cached: str) -> None:
    fa, fb = extract_features(new), extract_features(cached)
    assert exchanged_spans(fa, fb) is None
    assert participants_exchanged(fa, fb) is None
    assert guard.explain(new, cached)["direction"].ok


def test_terms_keep_numbers_in_place() -> None:
    features = extract_features("Is 5W-30 thinner than 10W-30?")
    assert features.terms == ("is", "5", "w", "-30", "thinner", "than", "10", "w", "-30", "|")
    assert "5" not in features.sequence


def test_exchange_names_the_terms(guard: TrapGuard) -> None:
    verdict = guard.check(
        "Can I put a 2 TB drive in a bay made for 1 TB?",
        "Can I put a 1 TB drive in a bay made for 2 TB?",
    )
    assert verdict.reason == "direction" and "'2'" in verdict.detail and "'1'" in verdict.detail


def test_the_reorder_check_still_sees_an_exchange(guard: TrapGuard) -> None:
    verdicts = guard.explain(
        "Is a hot shower after a cold swim good for sore muscles?",
        "Is a cold shower after a hot swim good for sore muscles?",
    )
    assert not verdicts["direction"].ok and not verdicts["reorder"].ok


# -- conditions added to the same question -------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        # a relative clause with one content word
        ("How long do I boil an egg?", "How long do I boil an egg that is cracked?"),
        ("Can I return a jacket?", "Can I return a jacket which was worn?"),
        # a clause after a comma, in the same sentence
        (
            "How much paint do I need for a 4 m by 3 m wall?",
            "How much paint do I need for a 4 m by 3 m wall, including the skirting boards?",
        ),
    ],
)
def test_a_condition_added_to_the_same_question(guard: TrapGuard, new: str, cached: str) -> None:
    for a, b in ((new, cached), (cached, new)):
        assert not guard.check(a, b).ok
        verdict = guard.explain(a, b)["substitution"]
        assert not verdict.ok and "words added" in verdict.detail, verdict


def test_a_sentence_added_after_the_question_is_not_a_clause(guard: TrapGuard) -> None:
    # a second sentence (padding, context) is not an added condition of the same sentence
    verdicts = guard.explain(
        "How do I descale a kettle?", "How do I descale a kettle? Thanks a lot, legend 🙏"
    )
    assert verdicts["substitution"].ok, verdicts["substitution"]


# -- lexicon: times of day and astronomical lengths ---------------------------------------------


@pytest.mark.parametrize(
    ("new", "cached", "reason"),
    [
        (
            "When is the best light for photos, at dawn?",
            "When is the best light for photos, at dusk?",
            "date",
        ),
        ("Should I water my lawn at midday?", "Should I water my lawn in the evening?", "date"),
        ("How far is Vega in parsecs?", "How far is Vega in light-years?", "unit"),
    ],
)
def test_times_of_day_and_astronomical_units(
    guard: TrapGuard, new: str, cached: str, reason: str
) -> None:
    assert guard.check(new, cached).reason == reason


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        ("Should I water my lawn at midday?", "Should I water my lawn at noon?"),
        ("How far is Vega in light years?", "How far is Vega in light-years?"),
    ],
)
def test_the_same_time_of_day_or_unit_passes(guard: TrapGuard, new: str, cached: str) -> None:
    assert guard.check(new, cached).ok, guard.check(new, cached)


# -- padding, spellings and names the guard reads as one ----------------------------------------


@pytest.mark.parametrize(
    ("padded", "plain"),
    [
        ("Hi all! Long-time lurker here. Is a heat pump worth it?", "Is a heat pump worth it?"),
        ("Hope you're doing well! What is a bridging loan?", "What is a bridging loan?"),
        (
            "Sorry, hope you don't mind me asking 😬 how do I descale a kettle?",
            "how do I descale a kettle?",
        ),
        ("Kinda embarrassed to ask but what is a mortgage?", "what is a mortgage?"),
        ("How do I cook risotto? Merci beaucoup!", "How do I cook risotto?"),
        ("How do I cook risotto? Please respond quickly 🙏", "How do I cook risotto?"),
    ],
)
def test_more_padding(padded: str, plain: str) -> None:
    assert strip_padding(padded) == plain


@pytest.mark.parametrize(
    "kept",
    ["What does hope mean in a poem?", "How do I answer quickly in a job interview?"],
)
def test_padding_words_inside_the_question_stay(kept: str) -> None:
    assert strip_padding(kept) == kept


@pytest.mark.parametrize(
    ("new", "cached"),
    [
        ("How much can I put in my 403b this year?", "How much can I put in my 403(b) this year?"),
        ("Does my PS4 controller work on PC?", "Does my PlayStation 4 controller work on PC?"),
        ("How do I fix a flat tyre on a road bike?", "How do I fix a flat tire on a road bike?"),
    ],
)
def test_one_name_or_spelling_two_ways(guard: TrapGuard, new: str, cached: str) -> None:
    assert guard.check(new, cached).ok, guard.check(new, cached)


def test_a_401k_is_a_plan_not_a_number() -> None:
    assert extract_features("Can I borrow from my 401k?").numbers == frozenset({"401"})


# -- cheaper extraction and checks keep their behaviour -----------------------------------------


def test_near_word_finds_one_typo_among_words_of_other_lengths() -> None:
    from semcache_core.guard.tokens import near_word

    assert near_word("pregant", ["a", "baby", "pregnant", "nutrition"])
    assert near_word("pyhton", ["python"]) and not near_word("pyhton", ["pythons3"])
    assert near_word("cat", ["cat"]) and not near_word("cat", ["cut"])  # short: exact only
    # a letter dropped is one typo even without substitutions; a letter changed is not
    assert near_word("pregant", ["pregnant"], substitution=False)
    assert not near_word("pregmant", ["pregnant"], substitution=False)


def test_derived_values_are_per_prompt_and_not_part_of_equality() -> None:
    from semcache_core.guard.substitution import content_words

    a = extract_features("How do I prune roses?")
    b = extract_features("How do I prune roses in winter?")
    assert content_words(a) == ("prune", "roses") and "content_words" in a.derived
    assert content_words(b) == ("prune", "roses", "winter")
    assert a.derived is not b.derived and "content_words" in b.derived
    assert hash(a) == hash(extract_features("How do I prune roses?"))


def test_ascii_lower_keeps_other_letters() -> None:
    from semcache_core.guard.tokens import ascii_lower

    assert ascii_lower("Hello WORLD") == "hello world"
    assert ascii_lower("İSTANBUL Ünal") == "İstanbul Ünal"


def test_aliases_skip_common_words_but_still_apply() -> None:
    from semcache_core.guard.tokens import _may_have_alias, normalize

    assert not _may_have_alias("how do I fix the tap in the kitchen")
    assert normalize("how 2 fix a tap")[0] == "how to fix a tap"
    assert normalize("Is tipping expected in the us?")[0] == "Is tipping expected in the USA?"


# -- two tasks on the same quoted text ------------------------------------------------------------


def test_two_tasks_on_the_same_quoted_text_differ(guard: TrapGuard) -> None:
    verdict = guard.check(
        "Describe this recipe step in full sentences: '2 tbsp EVOO, sauté 3 min, deglaze.'",
        "Count the ingredients in this step of my recipe: '2 tbsp EVOO, sauté 3 min, deglaze.'",
    )
    assert verdict.reason == "intent" and "same text" in verdict.detail, verdict


def test_one_task_on_the_same_quoted_text_reworded_passes(guard: TrapGuard) -> None:
    verdicts = guard.explain(
        "Translate this into French for me: 'Where is the station?'",
        "Please translate into French: 'Where is the station?'",
    )
    assert verdicts["intent"].ok, verdicts["intent"]


def test_an_or_elsewhere_makes_no_exchange_symmetric(guard: TrapGuard) -> None:
    verdict = guard.check(
        "Should I hang the mirror above the dresser or beside it?",
        "Should I hang the dresser above the mirror or beside it?",
    )
    assert verdict.reason == "direction", verdict


def test_two_neighbours_trading_places_in_the_same_frame(guard: TrapGuard) -> None:
    verdict = guard.check(
        "Can I feed my rabbit guinea pig pellets?", "Can I feed my guinea rabbit pig pellets?"
    )
    assert verdict.reason == "direction", verdict
    verdict = guard.check(
        "Is it safe to give a puppy kitten milk?", "Is it safe to give a kitten puppy milk?"
    )
    assert verdict.reason == "direction", verdict
    # a compound reworded with its small words is no exchange of neighbours
    assert (
        exchanged_spans(
            extract_features("How do I sort a Python list?"),
            extract_features("How do I sort a list in Python?"),
        )
        is None
    )
