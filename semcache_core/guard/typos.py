"""Typos: a word no lexicon knows, one typo away from a word of the other prompt, is that word.

"How do I calbrate the esteps on my 3d printr" asks what "How do I calibrate the e-steps on
my 3D printer?" asks, but every check that compares words sees "calbrate", "printr" as new
words (a condition added, a name, a changed word). Before the checks run,
:func:`corrected` rewrites such words of each prompt into the other prompt's spelling and
extracts the features again (once per corrected string). A word is corrected only when

- no lexicon knows it in any base form (:func:`semcache_core.guard.lexicon.vocabulary`: a
  real word is never a typo, so "lend" / "land", "Austria" / "Australia" stay different);
- the other prompt has a known word that this prompt lacks, one typo away (a letter added,
  dropped, changed or two neighbours swapped; a dropped letter only for three-letter words:
  "ned" / "need"), or two edits away for words of seven letters or more with the same first
  two letters ("Hannukah" / "Hanukkah");
- exactly one word of the other prompt is that close;
- between two names, the typo is no changed letter ("DELF" / "DELE" are two exams).

Two unknown words are never matched with each other (two product names), and the
words of code and quotes are never corrected ("str.rsplit" is no "str.split").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from semcache_core.guard import lexicon
from semcache_core.guard.negation import base_forms
from semcache_core.guard.tokens import Features, one_typo_apart

__all__ = ["corrected", "is_typo_of", "unknown_words"]

_MIN_LENGTH = 3
_LONG = 7


@lru_cache(maxsize=65536)
def _unknown(word: str) -> bool:
    """Whether no lexicon knows the word in any base form (cached per word)."""
    if len(word) < _MIN_LENGTH or not word.isalpha():
        return False
    vocabulary = lexicon.vocabulary()
    return word not in vocabulary and not any(form in vocabulary for form in base_forms(word))


def unknown_words(words: frozenset[str]) -> frozenset[str]:
    """The words of a prompt that no lexicon knows (letters only, three or more)."""
    return frozenset(w for w in words if _unknown(w))


def _two_edits(x: str, y: str) -> bool:
    """Levenshtein distance at most 2 (with the same first two letters)."""
    if x[:2] != y[:2] or abs(len(x) - len(y)) > 2:
        return False
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1] <= 2


def is_typo_of(typo: str, word: str, *, name: bool = False) -> bool:
    """Whether the unknown ``typo`` is the known ``word`` typed with one typo (two for long
    words). Between two ``name``s a changed letter is another name ("DELF" / "DELE"): only
    a letter added, dropped or swapped counts, from five letters on."""
    if typo == word or not word.isalpha():
        return False
    if name:
        return one_typo_apart(typo, word, min_length=5, substitution=False) or (
            min(len(typo), len(word)) >= _LONG and _two_edits(typo, word)
        )
    if len(typo) == 3:
        return len(word) == 4 and one_typo_apart(typo, word, min_length=3)
    if one_typo_apart(typo, word, min_length=4):
        return True
    return min(len(typo), len(word)) >= _LONG and _two_edits(typo, word)


def _fixes(x: Features, y: Features) -> dict[str, str]:
    """x's unknown words -> the one word of y each is a typo of."""
    fixes: dict[str, str] = {}
    if not x.unknown:
        return fixes
    others = [w for w in y.words - x.words if w not in y.unknown]
    # words of identifiers and quotes are what they are ("str.rsplit" is no "str.split")
    verbatim = " ".join(x.code | x.quoted)
    for typo in x.unknown - y.words:
        if typo in verbatim:
            continue
        # two names a changed letter apart are two names ("DELF" / "DELE")
        name = typo in x.entities
        matches = [w for w in others if is_typo_of(typo, w, name=name and w in y.entities)]
        if len(matches) == 1:
            fixes[typo] = matches[0]
    return fixes


_WORD_RE = re.compile(r"(?<![\w.])[^\W\d_]+(?![\w.])")


def _rewrite(text: str, fixes: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        typo = match.group(0)
        word = fixes.get(typo.lower())
        if word is None:
            return typo
        return word.capitalize() if typo[:1].isupper() else word

    return _WORD_RE.sub(replace, text)


def corrected(
    new_prompt: str,
    cached_prompt: str,
    a: Features,
    b: Features,
    extract: Callable[[str], Features],
) -> tuple[Features, Features]:
    """The two prompts' features with each one's typos of the other's words corrected."""
    fixes_a, fixes_b = _fixes(a, b), _fixes(b, a)
    if fixes_a:
        a = extract(_rewrite(new_prompt, fixes_a))
    if fixes_b:
        b = extract(_rewrite(cached_prompt, fixes_b))
    return a, b
