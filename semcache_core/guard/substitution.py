"""Default-deny for near-identical prompts: the ``substitution`` and ``reorder`` checks.

The family checks reject the differences they know (antonyms, units, audiences...); any new
set of traps brings swaps no list names ("flexible" / "prepaid" rate, "kWh" / "therm", "wind
down" / "build up"). These two checks turn the default around where it is safe to: when two
prompts are the same template, the same content words in the same places with at most two
changed (:func:`aligned_diff`), a changed word is a different question *unless* it is a known
equivalent (:func:`equivalent`): an inflection, a typo or spelling variant ("optimise" /
"optimize"), an abbreviation ("repo" / "repository"), a WordNet synonym in a frequent sense
(a shared synset: ``noun_kinds.tsv`` for nouns, ``synonyms.tsv`` for verbs, adjectives and
adverbs), a curated synonym (``data/synonyms_curated.tsv``) or the same unit. Broad
rewordings, where the content words do not line up one to one, are left to the other checks
and the distance threshold (default-allow).

``reorder``: the same content words in another order are a swap ("harder at sea level than at
altitude" / "at altitude than at sea level", "Sony lenses on a Canon camera" / "Canon lenses on
a Sony camera") unless the change is one block moved ("If my child has a fever, can they go to
daycare?" / "Can my child go to daycare if they have a fever?", "Python list" / "list in
Python"), or the prompt is symmetric in its terms (and/or/vs/between/differ/compare...).
"""

from __future__ import annotations

from functools import cache

from semcache_core.guard import lexicon
from semcache_core.guard.lexical import _kinds
from semcache_core.guard.negation import base_forms
from semcache_core.guard.tokens import Features, one_typo_apart

__all__ = ["aligned_diff", "equivalent", "reorder_differs", "substitution_differs"]

_FUNCTION_WORDS = lexicon.words("function_words.txt")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve twenty hundred "
    "thousand million half".split()
)
#: Words that make a prompt symmetric in the things it names: their order is no swap.
_SYMMETRIC = frozenset(
    "and or vs versus between differ differs difference different compare compared "
    "comparison same similar both together mix combine".split()
)
_NEGATING_PREFIXES = ("un", "non", "in", "im", "il", "ir", "dis", "de", "anti", "non-")
#: Most words a full prompt may gain or lose and still be the same template.
_MAX_LENGTH_CHANGE = 2


def _content(f: Features) -> tuple[str, ...]:
    """The content words of a prompt in order (no function, number or digit words)."""
    return tuple(
        w
        for w in f.sequence
        if w != "|"
        and w not in _FUNCTION_WORDS
        and w not in _NUMBER_WORDS
        and not w[:1].isdigit()
    )


def aligned_diff(a: Features, b: Features) -> list[tuple[str, str]] | None:
    """The (word of ``a``, word of ``b``) pairs at the places where two near-identical prompts
    differ, when they are one template: as many content words (at least two), in the same
    places, one or two of them changed, the whole prompts within two words of each other in
    length. None otherwise (a broad rewording, or nothing changed)."""
    ca, cb = _content(a), _content(b)
    if len(ca) != len(cb) or len(ca) < 2:
        return None
    la = len(a.sequence) - a.sequence.count("|")
    lb = len(b.sequence) - b.sequence.count("|")
    if abs(la - lb) > _MAX_LENGTH_CHANGE:
        return None
    diff = [(x, y) for x, y in zip(ca, cb, strict=True) if x != y]
    if not 1 <= len(diff) <= 2:
        return None
    return diff


@cache
def _synsets(word: str) -> frozenset[str]:
    """WordNet synsets of the word's frequent senses, over its base forms, every part of
    speech (noun synsets from ``noun_kinds.tsv``, the others from ``synonyms.tsv``)."""
    table = lexicon.table("synonyms.tsv")
    out: set[str] = set(_kinds(word)[0])
    for form in base_forms(word):
        out.update(table.get(form, ()))
    return frozenset(out)


@cache
def _curated() -> dict[str, frozenset[str]]:
    """Curated synonyms (``data/synonyms_curated.tsv``), both ways."""
    out: dict[str, set[str]] = {}
    for word, others in lexicon.table("synonyms_curated.tsv").items():
        for other in others:
            out.setdefault(word, set()).add(other)
            out.setdefault(other, set()).add(word)
    return {k: frozenset(v) for k, v in out.items()}


def _unit(word: str) -> str | None:
    entry = lexicon.table("units.tsv").get(word)
    return entry[-1] if entry else None


def _edits(x: str, y: str) -> int:
    """Levenshtein distance, cut off at 3."""
    if abs(len(x) - len(y)) > 2:
        return 3
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        if min(current) > 2:
            return 3
        previous = current
    return previous[-1]


@cache
def equivalent(x: str, y: str) -> bool:
    """Whether swapping ``x`` for ``y`` keeps the question: the same word inflected, typed with
    one typo or the other spelling, abbreviated, a WordNet or curated synonym, or one a kind
    of the other as WordNet has it ("fridge" / "refrigerator"), or the same unit."""
    short, long_ = sorted((x, y), key=len)
    if any(long_ == prefix + short for prefix in _NEGATING_PREFIXES):
        return False  # "avoidable" / "unavoidable"
    if x == y or base_forms(x) & base_forms(y) or one_typo_apart(x, y, min_length=4):
        return True
    if min(len(x), len(y)) >= 5 and x[:4] == y[:4] and _edits(x, y) <= 2:
        return True  # "knife" / "knives", two typos: "begginers", "interfear"
    if len(short) >= 3 and long_.startswith(short):
        return True  # "env" / "environment", "repo" / "repository"
    if y in _curated().get(x, ()) or any(
        b in _curated().get(a, ()) for a in base_forms(x) for b in base_forms(y)
    ):
        return True
    unit_x, unit_y = _unit(x), _unit(y)
    if unit_x is not None or unit_y is not None:
        return unit_x == unit_y
    if _synsets(x) & _synsets(y):
        return True
    synsets_x, parents_x = _kinds(x)
    synsets_y, parents_y = _kinds(y)
    return bool(
        {"p" + s[1:] for s in synsets_x} & parents_y
        or {"p" + s[1:] for s in synsets_y} & parents_x
    )


def substitution_differs(a: Features, b: Features) -> str | None:
    diff = aligned_diff(a, b)
    if diff is None:
        return None
    if {x for x, _ in diff} & {y for _, y in diff}:
        return None  # words shifted, not swapped (or reordered: the reorder check's business)
    changed = [(x, y) for x, y in diff if not equivalent(x, y)]
    if not changed or (
        len(diff) == 2 and equivalent(diff[0][0], diff[1][1]) and equivalent(diff[1][0], diff[0][1])
    ):
        return None  # (the two words also in another order: "git repository" / "repo ... git")
    return "a word changed in the same question: " + ", ".join(
        f"{x!r} vs {y!r}" for x, y in changed
    )


def _one_block_moved(x: tuple[str, ...], y: tuple[str, ...]) -> bool:
    """Whether ``y`` is ``x`` with one contiguous block moved elsewhere (a rotation of the
    part between their common beginning and common end)."""
    start = 0
    while start < len(x) and x[start] == y[start]:
        start += 1
    end = 0
    while end < len(x) - start and x[-1 - end] == y[-1 - end]:
        end += 1
    mx, my = x[start : len(x) - end], y[start : len(y) - end]
    return any(my == mx[k:] + mx[:k] for k in range(1, len(mx)))


def reorder_differs(a: Features, b: Features) -> str | None:
    ca, cb = _content(a), _content(b)
    if ca == cb or len(ca) < 2 or sorted(ca) != sorted(cb):
        return None
    if _SYMMETRIC & a.words or _SYMMETRIC & b.words:
        return None
    if _one_block_moved(ca, cb):
        return None
    moved = [x for x, y in zip(ca, cb, strict=True) if x != y]
    return f"the same words in another order: {' '.join(moved)!r}"
