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


def _verb_synonyms(x: str, y: str) -> bool:
    """Whether WordNet has the two as verbs, adjectives or adverbs of one synset ("begin" /
    "start", read as nouns here)."""
    table = lexicon.table("synonyms.tsv")
    sx = {v for form in base_forms(x) for v in table.get(form, ())}
    return any(v in sx for form in base_forms(y) for v in table.get(form, ()))


def _substitution(a: Features, b: Features) -> tuple[str, str, str | None] | None:
    """The one content word ``b`` has in place of one of ``a``'s, everything else equal and
    in order, and the noun both put right after it (None if it is not followed by the same
    word: "speeding ticket" / "parking ticket" -> ticket)."""
    sa = [w for w in a.sequence if w != "|"]
    sb = [w for w in b.sequence if w != "|"]
    ca = [(i, w) for i, w in enumerate(sa) if w not in _FUNCTION_WORDS]
    cb = [(i, w) for i, w in enumerate(sb) if w not in _FUNCTION_WORDS]
    if len(ca) != len(cb):
        return None
    diff = [k for k in range(len(ca)) if ca[k][1] != cb[k][1]]
    if len(diff) != 1:
        return None
    k = diff[0]
    head = None
    if (
        k + 1 < len(ca)
        and ca[k + 1][1] == cb[k + 1][1]
        and ca[k + 1][0] == ca[k][0] + 1
        and cb[k + 1][0] == cb[k][0] + 1
    ):
        head = ca[k + 1][1]
    return ca[k][1], cb[k][1], head


def lexical_differs(a: Features, b: Features) -> str | None:
    pair = _substitution(a, b)
    if pair is None:
        return None
    x, y, head = pair
    if x[:4] == y[:4] or one_typo_apart(x, y) or base_forms(x) & base_forms(y):
        return None  # an inflection or a typo ("knife" / "knives", "pasword", "chiken")
    if y in lexicon.curated_synonyms().get(x, ()):
        return None  # a curated synonym or the other spelling ("tyre" / "tire")
    synsets_x, parents_x = _kinds(x)
    synsets_y, parents_y = _kinds(y)
    if synsets_x & synsets_y or _verb_synonyms(x, y):
        return None
    # one a kind of the other ("fridge" under "refrigerator", "merlot" under "wine")
    if {"p" + s[1:] for s in synsets_x} & parents_y or {"p" + s[1:] for s in synsets_y} & parents_x:
        return None
    if parents_x & parents_y:
        return f"another kind of the same thing: {x!r} vs {y!r}"
    # two nouns modifying one noun name two kinds of it: "speeding ticket" / "parking
    # ticket", "work permit" / "study permit" (an abbreviation is no other kind: "env")
    if (
        head is not None
        and synsets_x
        and synsets_y
        and _kinds(head)[0]
        and not (x.startswith(y) or y.startswith(x))
    ):
        return f"another kind of {head!r}: {x!r} vs {y!r}"
    return None
