"""Feature extraction: one pass over a prompt's tokens, family by family.

:func:`extract_features` strips padding (:func:`semcache_core.guard.padding.strip_padding`),
normalizes and tokenizes once (:mod:`semcache_core.guard.tokens`), then lets each family
classify the tokens it owns, in an order that matters: relative dates and multi-word phrases
before single words, numbers before units, units and number words before names. The result
is frozen into :class:`~semcache_core.guard.tokens.Features` and cached per prompt string.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from functools import lru_cache
from typing import Any, TypeVar

from semcache_core.guard import intent, lexicon, names, negation, numeric, qualifiers, roles
from semcache_core.guard.lexicon import lemmas_of
from semcache_core.guard.padding import strip_padding
from semcache_core.guard.tokens import Collector, Features, Token, ascii_lower, normalize, tokenize
from semcache_core.guard.typos import unknown_words

__all__ = ["extract_features"]

T = TypeVar("T")

_BREAKS = frozenset(".?!;:,\n|()")
_FUNCTION_WORDS = lexicon.words("function_words.txt")


#: Token kinds kept, beside words, in the order of terms (numbers, flags, paths...).
_TERM_KINDS = frozenset(["num", "frac", "time", "date", "flag", "path", "ext"])


def _sequence(tokens: list[Token], text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Lower-case words in order, "|" at sentence and clause breaks (an emoji between two
    words is a break: "... with my dad 😅 what year ..."); and the same with the numbers,
    flags and paths in their places (the terms)."""
    out: list[str] = []
    terms: list[str] = []
    end = 0
    emoji = not text.isascii()
    for token in tokens:
        glued = token.start == end  # "401(k)", "f(x)": a parenthesis inside a word
        if emoji and token.start - end > 1 and out and out[-1] != "|":
            gap = text[end : token.start]
            if not gap.isascii() and any(unicodedata.category(c) == "So" for c in gap):
                out.append("|")
                terms.append("|")
        if token.kind == "word":
            parts = [p for p in token.low.removesuffix("()").split(".") if p]
            out.extend(parts)
            terms.extend(parts)
        elif token.kind in _TERM_KINDS:
            terms.append(token.low)
        elif (
            token.kind == "punct"
            and token.text in _BREAKS
            and out
            and out[-1] != "|"
            and not (glued and token.text in "()")
        ):
            out.append("|")
            if terms and terms[-1] != "|":
                terms.append("|")
        end = token.end
    return tuple(out), tuple(terms)


#: The one empty set every empty field of every :class:`Features` shares: most fields of a
#: prompt are empty, and cached features are long-lived, so each empty set of its own would
#: be one more object to allocate and for the garbage collector to walk again and again.
_EMPTY: frozenset[Any] = frozenset()


def _frozen(items: Collection[T]) -> frozenset[T]:
    return frozenset(items) if items else _EMPTY


@lru_cache(maxsize=8192)
def extract_features(text: str) -> Features:
    """Extract everything the guard compares from one prompt (cached per string)."""
    text = negation.join_prefixes(strip_padding(text))
    normalized, quoted, code_spans, dates = normalize(text)
    tokens = tokenize(normalized)
    out = Collector()
    out.dates |= dates
    out.code |= code_spans
    low = ascii_lower(normalized)
    numeric.relative_dates(low, tokens, out)
    qualifiers.phrases(normalized, tokens, out)
    ends = numeric._numbers(tokens, out)
    unit_at = numeric._units(tokens, ends, out)
    numeric._date_words(tokens, out)
    qualifiers.word_classes(tokens, out)
    capitalized = [t for t in tokens if t.kind == "word" and t.text[:1].isalpha()]
    title_case = len(capitalized) >= 4 and sum(
        t.text[0].isupper() for t in capitalized
    ) >= 0.7 * len(capitalized)
    entity_at = names._names(tokens, normalized, title_case, out)
    roles.directions(tokens, unit_at, entity_at, out)
    searchable = " ".join(normalized.split())
    sequence, terms = _sequence(tokens, normalized)
    words = frozenset(w for w in sequence if w != "|")
    classified = frozenset(t.low for t in tokens if t.used and t.kind == "word")
    word_lemmas = lemmas_of(words)
    return Features(
        negations=out.negations,
        quoted=_frozen(quoted),
        code=_frozen(out.code),
        flags=_frozen(out.flags),
        numbers=_frozen(out.numbers),
        number_tags=tuple(sorted(out.numbers.items())),
        dates=_frozen(out.dates),
        units=_frozen(out.units),
        quantities=_frozen(out.quantities),
        targets=_frozen(out.targets),
        directions=_frozen(out.directions),
        entities=_frozen(out.entities),
        quantifiers=_frozen(out.quantifiers),
        scopes=_frozen(out.scopes),
        words=words,
        text=ascii_lower(searchable),
        raw_text=searchable,
        sequence=sequence,
        terms=terms,
        lemmas=word_lemmas,
        negated=negation.negated_words(sequence) or _EMPTY,
        phrasal=negation.phrasal(sequence) or _EMPTY,
        particles=negation.particle_verbs(sequence) or _EMPTY,
        relations=roles.relations(sequence) or _EMPTY,
        roles=roles.roles(sequence),
        qualifiers=qualifiers.qualifiers(sequence) or _EMPTY,
        constraints=qualifiers.constraints(sequence, classified),
        intents=intent.intents(sequence) or _EMPTY,
        content=frozenset(w for w in words if w not in _FUNCTION_WORDS) or _EMPTY,
        stems=frozenset(w[:5] for w in words | word_lemmas) or _EMPTY,
        unknown=unknown_words(words) or _EMPTY,
        task_verb=intent.task_verb(sequence),
        howto_verb=intent.howto_verb(sequence),
    )
