"""The earlier turns of a conversation as units of meaning, and the facts in them.

A *unit* is what is left of one earlier message once its filler sentences (greetings,
acknowledgements, thanks, "anyway", "anything else?": the phrases of ``fillers.txt``) are
removed; messages with nothing left do not count. Two conversations are compared unit by unit:

1. **Alignment.** Units are aligned in order (a monotone alignment, as a diff would) by the
   overlap of their content words and facts: the overlap coefficient ``|A ∩ B| / min(|A|, |B|)``
   must reach :data:`ALIGN_MIN`. Rewording keeps most content words of a sentence (the
   names, numbers and nouns), so reworded turns align; a turn about another thing does not.
2. **Unmatched turns.** Units left unaligned are allowed only on *one* side and only *before*
   the first aligned unit: an earlier, unrelated exchange ("what are your opening hours?"
   asked first). A unit left over anywhere else, or on both sides, means the conversations
   are about different things, and the most recent unit of each side must be aligned with
   the other's: that is what a pronoun in the last question ("can I return it?") refers to.
3. **Facts.** The facts of the aligned units (numbers, amounts, dates, units, names, versions,
   quoted strings, identifiers: the trap guard's fact checks) must agree as sets over each
   side, so a fact moved from one message to the next by a rewording still agrees.

Feature extraction goes through :func:`fact_verdict`, the one place that knows the trap guard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from semcache_core.prompt import Conversation

#: Minimum overlap coefficient of content words for two units to align (tuned on the tuning
#: half of the conversation set; see the module docstring of :mod:`semcache_core.conversation`).
ALIGN_MIN = 0.5
#: Content words up to which a unit without facts is *light* (see :class:`Unit`).
LIGHT_WORDS = 3
#: The trap-guard checks that compare facts. Not negation, quantifiers or scope words:
#: "No, the box was fine" and "The box was fine" say the same thing as history.
FACT_CHECKS = ("quoted", "code", "version", "date", "unit", "number", "entity")

_SENTENCE_RE = re.compile(r"(?<=[.!?;:])\s+|\n+|(?<=[.!?])(?=[A-Z])")
_WORD_RE = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")


@cache
def lexicon(name: str) -> frozenset[str]:
    """The entries of the data file ``name`` next to this module (one a line, ``#`` comments):
    ``fillers.txt`` (phrases) and ``stopwords.txt`` (words)."""
    lines = Path(__file__).with_name(name).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def _plain(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", sentence.lower().replace("'", "")))


def _normalize_contractions(text: str) -> str:
    text = text.lower().replace("’", "'")
    return re.sub(
        r"\b(you|i|we|they)'(re|m|ve|ll|d)\b",
        lambda m: (
            m[1] + " " + {"re": "are", "m": "am", "ve": "have", "ll": "will", "d": "would"}[m[2]]
        ),
        text,
    )


def is_filler(sentence: str) -> bool:
    """Whether a sentence carries nothing an answer can depend on."""
    plain = _plain(_normalize_contractions(sentence))
    if not plain:
        return True
    phrases = lexicon("fillers.txt")
    if plain in phrases:
        return True
    # A run of filler phrases ("ok thanks", "great got it", "thanks that worked"): greedy.
    words = plain.split()
    i = 0
    while i < len(words):
        for j in range(len(words), i, -1):
            if " ".join(words[i:j]) in phrases:
                i = j
                break
        else:
            return False
    return True


def sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_RE.split(text)) if s]


def salient_text(text: str) -> str:
    """``text`` without its filler sentences ("" when nothing is left)."""
    return " ".join(s for s in sentences(text) if not is_filler(s))


def _stem(word: str) -> str:
    """A crude stem, the same for the usual inflections: "includes"/"include"/"included",
    "bakes"/"baking", "batteries"/"battery"."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("ss"):
        pass
    elif word.endswith("s"):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


#: Number words written as digits ("two weeks" = "2 weeks"); not "one", mostly a pronoun
#: ("the morning one", "which one").
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        ["zero", "", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    )
    if word
}


def word_sequence(text: str) -> list[str]:
    """The words of ``text`` in order: lower case, possessives and negations ("n't") cut off,
    number words as digits."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"n't\b", " not", text.replace("won't", "will not").replace("can't", "can not"))
    text = re.sub(r"'s\b", "", text)
    return [_NUMBER_WORDS.get(w, w) for w in _WORD_RE.findall(text)]


def content_words(text: str) -> frozenset[str]:
    """Lower-cased, crudely stemmed words that are not stopwords (numbers included)."""
    stopwords = lexicon("stopwords.txt")
    words = word_sequence(text)
    return frozenset(_stem(w) for w in words if (w not in stopwords and len(w) > 1) or w.isdigit())


@dataclass(frozen=True, slots=True)
class Unit:
    """The salient part of one earlier message."""

    role: str
    text: str
    words: frozenset[str]
    #: No fact and at most :data:`LIGHT_WORDS` content words ("Great to hear.", "Is it in its
    #: original packaging?"): left unmatched, it does not count against a match.
    light: bool = False


#: Units are computed once per conversation and per process: a lookup compares the new
#: conversation with up to k candidates, and a cached entry is a candidate many times.
@lru_cache(maxsize=4096)
def units(conversation: Conversation) -> tuple[Unit, ...]:
    """The earlier turns that carry something, oldest first."""
    out: list[Unit] = []
    for turn in conversation.history:
        text = salient_text(turn.text)
        words = content_words(text)
        if words:  # "What's up?" has no content word left: it carries nothing
            light = len(words) <= LIGHT_WORDS and not has_facts(text)
            out.append(Unit(turn.role, text, words, light))
    return tuple(out)


def overlap(a: Unit, b: Unit) -> float:
    if not a.words or not b.words:
        return 1.0 if a.words == b.words else 0.0
    return len(a.words & b.words) / min(len(a.words), len(b.words))


def align(
    a: Sequence[Unit],
    b: Sequence[Unit],
    minimum: float = ALIGN_MIN,
    similar: Callable[[int, int], bool] | None = None,
) -> list[tuple[int, int]]:
    """The monotone alignment of ``a`` and ``b`` with the largest total score; a small dynamic
    program, conversations are short. A pair aligns when its word overlap reaches ``minimum``
    (score: the overlap) or else when ``similar(i, j)`` says so (score: ``minimum``)."""
    n, m = len(a), len(b)

    def pair_score(i: int, j: int) -> float:
        o = overlap(a[i], b[j])
        if o >= minimum:
            return o
        return minimum if similar is not None and similar(i, j) else 0.0

    pair = [[pair_score(i, j) for j in range(m)] for i in range(n)]
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best = max(score[i + 1][j], score[i][j + 1])
            if pair[i][j]:
                best = max(best, pair[i][j] + score[i + 1][j + 1])
            score[i][j] = best
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if pair[i][j] and abs(score[i][j] - (pair[i][j] + score[i + 1][j + 1])) < 1e-9:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


_INITIAL_RE = re.compile(r"(^|[.!?;:]\s+|\n\s*)([A-Z][a-z]+)\b")


def _decapitalize_initials(texts: Sequence[str]) -> str:
    """Join ``texts`` as sentences, lower-casing a sentence's first word unless it is written
    capitalized mid-sentence somewhere too: the guard reads a capital as a name, and in a chat
    "Sorry", "Anyway", "Nice" start sentences all the time; "Premium" in "Premium includes
    5G" stays a name when the other turn says "your Premium plan"."""
    text = " \n".join(texts)
    names = set(re.findall(r"(?<![.!?;:\n]\s)(?<!^)\b[A-Z][a-z]+\b", text))
    keep_first = {w for w in names if re.search(r"[a-z,]\s+" + w + r"\b", text)}
    return _INITIAL_RE.sub(lambda m: m[1] + (m[2] if m[2] in keep_first else m[2].lower()), text)


@lru_cache(maxsize=8192)
def has_facts(text: str) -> bool:
    """Whether ``text`` holds a number, date, name, quoted string or identifier."""
    f = _features(_decapitalize_initials([text]))
    return bool(f.numbers or f.dates or f.entities or f.quoted or f.code or f.units)


def fact_verdict(
    new_texts: Sequence[str], cached_texts: Sequence[str]
) -> tuple[bool, str | None, str]:
    """Whether the facts of two sets of sentences agree: ``(ok, check name, detail)``.

    The only use of the trap guard in this package, so that re-pointing it at another guard
    implementation is a change here. Its public names (``TrapGuard``, ``GuardVerdict``,
    ``extract_features``) are stable.
    """
    verdict = _fact_guard().check(
        _decapitalize_initials(new_texts), _decapitalize_initials(cached_texts)
    )
    return verdict.ok, verdict.reason, verdict.detail


def _features(text: str):  # type: ignore[no-untyped-def]
    from semcache_core.guard import extract_features

    return extract_features(text)


@lru_cache(maxsize=1)
def _fact_guard():  # type: ignore[no-untyped-def]
    from semcache_core.guard import TrapGuard

    return TrapGuard(checks=FACT_CHECKS)
