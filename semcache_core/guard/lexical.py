"""Lexical substitution: the ``lexical`` check.

One noun swapped for another kind of the same thing, everything else in place: "iced tea" /
"iced coffee", "symptoms of a cold" / "of the flu", "learn guitar" / "learn piano". Two nouns
are kinds of one thing when WordNet puts a frequent sense of each under a common hypernym one
or two levels up (``data/noun_kinds.tsv``, built by ``scripts/build_lexicon.py``; hypernyms
over more than 60 frequent nouns are dropped as too general), and synonyms when they share a
synset: synonyms pass, and so does a noun against its own hypernym ("refrigerator" /
"fridge"). Only a single substitution counts (the
other content words identical and in order), which is where rewordings almost never use a
sibling noun; content-word swaps inside a rephrased question are left to the threshold.
"""

from __future__ import annotations

from functools import cache

from semcache_core.guard import lexicon
from semcache_core.guard.negation import base_forms
from semcache_core.guard.tokens import Features, one_typo_apart

_FUNCTION_WORDS = lexicon.words("function_words.txt")


@cache
def _kinds(word: str) -> tuple[frozenset[str], frozenset[str]]:
    """(synsets, hypernyms) of a noun, over its inflections."""
    table = lexicon.table("noun_kinds.tsv")
    values = {v for form in base_forms(word) for v in table.get(form, ())}
    return (
        frozenset(v for v in values if v[0] == "s"),
        frozenset(v for v in values if v[0] == "p"),
    )


def _substitution(a: Features, b: Features) -> tuple[str, str] | None:
    ca = [w for w in a.sequence if w != "|" and w not in _FUNCTION_WORDS]
    cb = [w for w in b.sequence if w != "|" and w not in _FUNCTION_WORDS]
    if len(ca) != len(cb):
        return None
    diff = [i for i, (x, y) in enumerate(zip(ca, cb, strict=True)) if x != y]
    if len(diff) != 1:
        return None
    return ca[diff[0]], cb[diff[0]]


def lexical_differs(a: Features, b: Features) -> str | None:
    pair = _substitution(a, b)
    if pair is None:
        return None
    x, y = pair
    if x[:4] == y[:4] or one_typo_apart(x, y):
        return None  # an inflection or a typo ("knife" / "knives", "pasword", "chiken")
    synsets_x, parents_x = _kinds(x)
    synsets_y, parents_y = _kinds(y)
    if synsets_x & synsets_y or not parents_x & parents_y:
        return None
    # one a kind of the other ("fridge" under "refrigerator", "merlot" under "wine")
    if {"p" + s[1:] for s in synsets_x} & parents_y or {"p" + s[1:] for s in synsets_y} & parents_x:
        return None
    return f"another kind of the same thing: {x!r} vs {y!r}"
