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

import re
from functools import cache

from semcache_core.guard import lexicon
from semcache_core.guard.lexical import _kinds
from semcache_core.guard.negation import REFLEXIVES, base_forms
from semcache_core.guard.tokens import Features, memo, one_typo_apart

__all__ = [
    "SYMMETRIC",
    "aligned_diff",
    "clauses_moved",
    "common_ends",
    "content_words",
    "equivalent",
    "reorder_differs",
    "substitution_differs",
]

_FUNCTION_WORDS = lexicon.words("function_words.txt")
_NUMBER_WORDS = frozenset(
    [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "twenty",
        "hundred",
        "thousand",
        "million",
        "half",
    ]
)
#: Words that make a prompt symmetric in the things it names: their order is no swap.
SYMMETRIC = frozenset(
    [
        "and",
        "or",
        "vs",
        "versus",
        "between",
        "differ",
        "differs",
        "difference",
        "different",
        "compare",
        "compared",
        "comparison",
        "same",
        "similar",
        "both",
        "together",
        "mix",
        "combine",
    ]
)
_NEGATING_PREFIXES = ("un", "non", "in", "im", "il", "ir", "dis", "de", "anti", "non-")
#: Most function words two prompts may differ by and still be one template.
_MAX_FRAME_CHANGE = 2


def content_words(f: Features) -> tuple[str, ...]:
    """The content words of a prompt in order (no function, number or digit words)."""
    return memo(f, "content_words", _content_words)


def _content_words(f: Features) -> tuple[str, ...]:
    return tuple(
        w
        for w in f.sequence
        if w != "|" and w not in _FUNCTION_WORDS and w not in _NUMBER_WORDS and not w[:1].isdigit()
    )


def common_ends(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[int, int]:
    """The lengths of the common beginning and the common end of two sequences."""
    start = 0
    while start < min(len(x), len(y)) and x[start] == y[start]:
        start += 1
    end = 0
    while end < min(len(x), len(y)) - start and x[-1 - end] == y[-1 - end]:
        end += 1
    return start, end


def _frame_change(a: Features, b: Features) -> int:
    """How many function words one prompt has that the other has not (both ways): the
    frame of the question ("Is Greenland part of Denmark?" / "Does Greenland belong to
    Denmark?" differ by four: another wording, not the same template). "a" and "an" are
    one word."""
    fa, fb = (
        memo(a, "function_counts", _function_counts),
        memo(b, "function_counts", _function_counts),
    )
    return sum(abs(n - fb.get(w, 0)) for w, n in fa.items()) + sum(
        n for w, n in fb.items() if w not in fa
    )


def _function_counts(f: Features) -> dict[str, int]:
    """How many times each function word occurs ("a" and "an" counted as one)."""
    counts: dict[str, int] = {}
    for w in f.sequence:
        if w in _FUNCTION_WORDS:
            if w == "an":
                w = "a"
            counts[w] = counts.get(w, 0) + 1
    return counts


def aligned_diff(a: Features, b: Features) -> list[tuple[str, str]] | None:
    """The (words of ``a``, words of ``b``) pairs at the places where two near-identical
    prompts differ, when they are one template: the same content words (at least two)
    around one or two changed places, the whole prompts within two words of each other in
    length. A changed place is one word for one word, or one for two ("tracker" /
    "fixed rate", "take off" / "put"), given as the words joined by a space. None otherwise
    (a broad rewording, a word only added or dropped, or nothing changed)."""
    ca, cb = content_words(a), content_words(b)
    if ca == cb or _frame_change(a, b) > _MAX_FRAME_CHANGE:
        return None
    start, end = common_ends(ca, cb)
    mx, my = ca[start : len(ca) - end], cb[start : len(cb) - end]
    if start + end < 2 or not mx or not my:
        return None
    if len(mx) == len(my) <= 3:
        diff = [(x, y) for x, y in zip(mx, my, strict=True) if x != y]
        return diff if len(diff) <= 2 else None
    if sorted((len(mx), len(my))) == [1, 2] and end >= 1:
        # a hyphenated modifier for a one-word one, before the same noun ("tracker" /
        # "fixed-rate mortgage"); other one-for-two changes are rewordings ("set up" /
        # "configure")
        two, other = (mx, b) if len(mx) == 2 else (my, a)
        this = a if other is b else b
        if f"{two[0]}-{two[1]}" in this.text:
            return [(" ".join(mx), " ".join(my))]
    return None


_OPPOSED_PAIRS = (
    "before/after with/without over/under above/below up/down on/off in/out more/less "
    "most/least first/last from/to into/out all/some all/one both/one both/either "
    "each/one every/one one/none all/none some/none any/none every/some"
)
#: Function words that are opposites of each other.
_OPPOSED = frozenset(frozenset(p.split("/")) for p in _OPPOSED_PAIRS.split())


def function_word_differs(a: Features, b: Features) -> str | None:
    """Two prompts word for word the same but for an opposed function word: "both holders" /
    "one holder", "before" / "after", "take on" / "take off"."""
    sa = [w for w in a.sequence if w != "|"]
    sb = [w for w in b.sequence if w != "|"]
    if len(sa) != len(sb) or len(sa) < 3:
        return None
    diff = [(x, y) for x, y in zip(sa, sb, strict=True) if x != y]
    if not diff or len(diff) > 3:
        return None
    for x, y in diff:
        if frozenset((x, y)) in _OPPOSED:
            return f"{x!r} vs {y!r}"
    return None


@cache
def _synsets(word: str) -> frozenset[str]:
    """WordNet synsets of the word's frequent senses, over its base forms, every part of
    speech (noun synsets from ``noun_kinds.tsv``, the others from ``synonyms.tsv``)."""
    table = lexicon.table("synonyms.tsv")
    out: set[str] = set(_kinds(word)[0])
    for form in base_forms(word):
        out.update(table.get(form, ()))
    return frozenset(out)


def _known(word: str) -> bool:
    """Whether WordNet has the word (as a noun, verb, adjective or adverb)."""
    return word in lexicon.table("synonyms.tsv") or word in lexicon.table("noun_kinds.tsv")


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
    if " " in x or " " in y:
        joined_x, joined_y = x.replace(" ", ""), y.replace(" ", "")
        return joined_x == joined_y or one_typo_apart(joined_x, joined_y)  # "fret board"
    short, long_ = sorted((x, y), key=len)
    if any(long_ == prefix + short for prefix in _NEGATING_PREFIXES) or any(
        long_ == short + suffix for suffix in ("less", "free", "ful")
    ):
        return False  # "avoidable" / "unavoidable", "tank" / "tankless"
    if x == y or base_forms(x) & base_forms(y) or one_typo_apart(x, y, min_length=4):
        return True
    if min(len(x), len(y)) >= 5 and x[:3] == y[:3] and _edits(x, y) <= 2:
        return True  # "knife" / "knives", two typos: "begginers", "interfear"
    if len(short) >= 3 and long_.startswith(short) and (len(short) <= 4 or not _known(short)):
        return True  # "env" / "environment", "repo" / "repository"
    if y in lexicon.curated_synonyms().get(x, ()) or any(
        b in lexicon.curated_synonyms().get(a, ()) for a in base_forms(x) for b in base_forms(y)
    ):
        return True
    stem = common_ends(tuple(x[::-1]), tuple(y[::-1]))[0]
    if stem >= 4 and stem < len(short):
        return False  # one stem, two prefixes: "prepaid" / "postpaid", "breastfed" / "bottlefed"
    unit_x, unit_y = _unit(x), _unit(y)
    if unit_x is not None or unit_y is not None:
        return unit_x == unit_y
    if _synsets(x) & _synsets(y):
        return True
    synsets_x, parents_x = _kinds(x)
    synsets_y, parents_y = _kinds(y)
    return bool(
        {"p" + s[1:] for s in synsets_x} & parents_y or {"p" + s[1:] for s in synsets_y} & parents_x
    )


def _negation_moved(x: str, y: str, a: Features, b: Features) -> bool:
    """ "unsafe" / "not safe": a negating prefix on one side, "not" on the other."""
    for long_, short, f_long, f_short in ((x, y, a, b), (y, x, b, a)):
        if any(long_ == p + short for p in _NEGATING_PREFIXES):
            return "not" in f_short.words and "not" not in f_long.words
    return False


def _self_moved(x: str, y: str, a: Features, b: Features) -> bool:
    """ "self-publish" / "publish ... myself": the prefix said by a reflexive pronoun."""
    for long_, short, f_short in ((x, y, b), (y, x, a)):
        if long_ == "self" + short:
            return bool(f_short.words & REFLEXIVES)
    return False


def added_clause(a: Features, b: Features) -> str | None:
    """The words one prompt adds to the other as one stretch, when they bring two content
    words or more and everything else is word for word the same: "... in July?" / "...
    in July during a hosepipe ban?" (a condition, a purpose: another question). Not a
    sentence of its own nor words before the question (context, padding)."""
    sa = tuple(w for w in a.sequence if w != "|")
    sb = tuple(w for w in b.sequence if w != "|")
    if len(sa) == len(sb):
        return None
    short, long_ = (sa, sb) if len(sa) < len(sb) else (sb, sa)
    f_short, f_long = (a, b) if short is sa else (b, a)
    start, end = common_ends(short, long_)
    if start + end < len(short) or len(short) < 3 or start < 2:
        return None
    if f_long.sequence.count("|") > f_short.sequence.count("|") and not (
        # a clause after a comma at the end of the same sentence is still a condition ("...
        # at 45 degrees, taking air resistance into account?"); a sentence of context or
        # padding is not ("Travelling next week! ...")
        end == 0 and _sentences(f_long.raw_text) == _sentences(f_short.raw_text)
    ):
        return None
    block = long_[start : len(long_) - end]
    content = [w for w in block if w not in _FUNCTION_WORDS]
    if len(content) == 1 and block[0] in _RELATIVE_PRONOUNS and len(block) >= 3:
        return " ".join(block)  # a relative clause: "a turkey" / "a turkey that is frozen"
    return " ".join(block) if len(content) >= 2 else None


_RELATIVE_PRONOUNS = frozenset(["that", "which", "who", "whose"])
_SENTENCE_BREAK_RE = re.compile(r"[.?!]+\s+\S")


def _sentences(text: str) -> int:
    """How many sentences ``text`` has: one more than the ends followed by more text."""
    return 1 + len(_SENTENCE_BREAK_RE.findall(text))


def substitution_differs(a: Features, b: Features) -> str | None:
    detail = function_word_differs(a, b)
    if detail:
        return "an opposed word in the same question: " + detail
    detail = added_clause(a, b)
    if detail:
        return f"words added to the same question: {detail!r}"
    diff = aligned_diff(a, b)
    if diff is None:
        return None
    if {x for x, _ in diff} & {y for _, y in diff}:
        return None  # words shifted, not swapped (or reordered: the reorder check's business)
    changed = [
        (x, y)
        for x, y in diff
        if not equivalent(x, y) and not _negation_moved(x, y, a, b) and not _self_moved(x, y, a, b)
    ]
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


def clauses_moved(f: Features, other: Features) -> bool:
    """Whether ``f`` has two clauses or more and the content words of each make one
    contiguous stretch of the content words of ``other``: clauses moved around, each kept
    together ("When my contract ends, will my bill go down?" / "Will my bill go down when my
    contract ends?"). Words are compared by their first five letters ("For river trout
    fishing, ..." / "... for trout fishing in rivers?")."""
    clauses = memo(f, "clause_stems", _clause_stems)
    if len(clauses) < 2:
        return False
    stems = memo(other, "content_stems", _content_stems)
    for clause in clauses:
        at = [i for i, w in enumerate(stems) if w in clause]
        if not at or at[-1] - at[0] + 1 != len(at):
            return False
    return True


def _content_stems(f: Features) -> tuple[str, ...]:
    """The first five letters of each of :func:`content_words`, in order."""
    return tuple(w[:5] for w in content_words(f))


def _clause_stems(f: Features) -> tuple[frozenset[str], ...]:
    """The first five letters of the content words of each clause that has any."""
    clauses: list[set[str]] = [set()]
    for w in f.sequence:
        if w == "|":
            if clauses[-1]:
                clauses.append(set())
        elif w not in _FUNCTION_WORDS and w not in _NUMBER_WORDS and not w[:1].isdigit():
            clauses[-1].add(w[:5])
    return tuple(frozenset(c) for c in clauses if c)


def reorder_differs(a: Features, b: Features) -> str | None:
    ca, cb = content_words(a), content_words(b)
    if ca == cb or len(ca) < 2 or sorted(ca) != sorted(cb):
        return None
    if SYMMETRIC & a.words or SYMMETRIC & b.words:
        return None
    if _one_block_moved(ca, cb) or clauses_moved(a, b) or clauses_moved(b, a):
        return None
    moved = [x for x, y in zip(ca, cb, strict=True) if x != y]
    return f"the same words in another order: {' '.join(moved)!r}"
