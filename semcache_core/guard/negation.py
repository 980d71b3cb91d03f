"""Negation and opposites: the ``negation``, ``antonym``, ``morphological`` and ``phrasal``
checks.

``negation``
    Count of negation markers (``data/negation_words.txt``: "not" and every "n't", "never",
    "neither", "nor", and negative adjectives like "unable", "illegal"), plus "no longer" and
    "not anymore". "don't" and "do not" count the same; "whether or not", "not sure" and "not
    only" are fillers.
``antonym``
    A word of one prompt whose WordNet antonym (``data/antonyms.tsv``, built from WordNet 3.0
    by ``scripts/build_lexicon.py``) is a word of the other, and neither word is on both
    sides: borrow/lend, win/lose, heavier/lighter (inflections via ``data/inflections.tsv``).
    A word right after a negation does not count ("not visible" is "hidden").
``morphological``
    A prefixed negation against its stem: un-, non-, in-/im-/il-/ir-, dis-, anti- ("insured" /
    "uninsured", "reversible" / "irreversible", "smoker" / "non-smoker", "subscribe" /
    "unsubscribe"), and -less against -ful ("harmless" / "harmful"). The stem must be a word
    of the other prompt, at least four letters, and the prefixed word not a false friend
    (``data/prefix_false_friends.txt``, from WordNet: "inform", "discover", "invaluable", and
    the curated ``prefix_false_friends_curated.txt``: "under", "uniform", "index", "install").
``phrasal``
    Curated phrasal and technical opposites (``data/phrasal_opposites.tsv``: speed up / slow
    down, warm up / cool down, upload / download, encrypt / decrypt ...). The verb matches its
    inflections; the particle may follow within three words ("turn the lights off"). And by
    rule, any verb with the opposite particle right after it: up / down, in / out, on / off
    ("ramp up" / "ramp down", "plug in" / "plug out").
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

from semcache_core.guard import lexicon
from semcache_core.guard.overlap import broad_rewording
from semcache_core.guard.tokens import Features, memo

NEGATION_WORDS: frozenset[str] = lexicon.words("negation_words.txt")
#: Negation markers that exempt the next words from the opposite checks ("not visible").
_NEGATORS = frozenset({"not", "never", "no", "without", "non"})
_PREFIXES = ("non", "un", "dis", "anti", "self", "in", "im", "il", "ir")
#: Pronouns that say "self-" in other words.
REFLEXIVES = frozenset(
    ["myself", "yourself", "himself", "herself", "itself", "ourselves", "themselves"]
)
#: Irregular verb forms for phrase matching (the regular ones are derived by rule).
_IRREGULAR = {
    "sped": "speed", "woke": "wake", "woken": "wake", "took": "take", "taken": "take",
    "went": "go", "gone": "go", "came": "come", "ran": "run", "broke": "break",
    "broken": "break", "wound": "wind", "got": "get", "gotten": "get", "put": "put",
    "shut": "shut", "cut": "cut", "set": "set", "froze": "freeze", "frozen": "freeze",
    "hid": "hide", "hidden": "hide", "withdrew": "withdraw", "withdrawn": "withdraw",
    "lost": "lose", "gained": "gain", "logged": "log", "signed": "sign",
}  # fmt: skip


@cache
def base_forms(word: str) -> frozenset[str]:
    """The word and the base forms it may inflect: lemmas from the WordNet table plus the
    regular -s/-es/-ed/-ing/-er/-est rules (over-generating is harmless: only forms that
    are phrase or lexicon entries matter)."""
    forms = set(lexicon.lemmas(word))
    if word in _IRREGULAR:
        forms.add(_IRREGULAR[word])
    for suffix in ("s", "es", "ed", "d", "ing", "er", "est"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            stem = word[: -len(suffix)]
            forms.add(stem)
            if suffix in ("ing", "ed", "er", "est"):
                forms.add(stem + "e")
                if len(stem) >= 3 and stem[-1] == stem[-2]:
                    forms.add(stem[:-1])  # stopped -> stop
                if stem.endswith("i"):
                    forms.add(stem[:-1] + "y")  # heavier -> heavy
            if suffix == "es" and stem.endswith("i"):
                forms.add(stem[:-1] + "y")
    if word.endswith("ly") and len(word) > 5:  # adverbs: slowly -> slow, easily -> easy
        stem = word[:-2]
        forms |= {stem, stem[:-1] + "y"} if stem.endswith("i") else {stem}
    return frozenset(forms)


# -- extraction --------------------------------------------------------------------------------


def negated_words(sequence: tuple[str, ...]) -> frozenset[str]:
    """Words within two words after a negation ("not visible", "not very safe")."""
    out: set[str] = set()
    for i, word in enumerate(sequence):
        if word in _NEGATORS:
            out.update(w for w in sequence[i + 1 : i + 3] if w != "|")
    return frozenset(out)


@cache
def _phrase_table() -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    pairs = []
    for left, (right,) in (
        (k, (" ".join(v),)) for k, v in lexicon.table("phrasal_opposites.tsv", "|").items()
    ):
        pairs.append((tuple(left.split()), tuple(right.split())))
    return tuple(pairs)


@cache
def _phrase_index() -> dict[str, list[tuple[int, int, tuple[str, ...]]]]:
    """First word of a phrase -> [(pair index, side, phrase words)]."""
    index: dict[str, list[tuple[int, int, tuple[str, ...]]]] = {}
    for i, pair in enumerate(_phrase_table()):
        for side, phrase in enumerate(pair):
            index.setdefault(phrase[0], []).append((i, side, phrase))
    return index


#: Particles whose swap reverses a phrasal verb, whatever the verb ("scale up" / "scale
#: down", "plug in" / "plug out", "switch on" / "switch off").
_PARTICLE_OPPOSITES: dict[str, tuple[str, ...]] = {
    "up": ("down",),
    "down": ("up",),
    "in": ("out",),
    "into": ("out",),  # "move into" / "move out of"
    "out": ("in", "into"),
    "on": ("off",),
    "onto": ("off",),
    "off": ("on", "onto"),
}


def particle_verbs(sequence: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """(verb, particle) for every word followed by an opposable particle: "ramp up"."""
    found = set()
    for i in range(len(sequence) - 1):
        particle = sequence[i + 1]
        if particle in _PARTICLE_OPPOSITES and sequence[i] != "|" and len(sequence[i]) > 2:
            for form in base_forms(sequence[i]):
                found.add((form, particle))
    return frozenset(found)


@lru_cache(maxsize=65536)
def _entries(word: str) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    """The phrase entries a word may start, in any of its base forms (cached per word)."""
    index = _phrase_index()
    return tuple(e for form in base_forms(word) for e in index.get(form, ()))


def phrasal(sequence: tuple[str, ...]) -> frozenset[tuple[int, int]]:
    """(pair index, side) of every curated phrasal opposite in the prompt."""
    found = set()
    for i, word in enumerate(sequence):
        entries = _entries(word)
        if not entries:
            continue
        # the particle right after the verb wins ("switch on roaming on my phone" is not
        # also "switch ... off"); a particle further on only when none is adjacent
        adjacent = {
            (pair, side)
            for pair, side, phrase in entries
            if len(phrase) == 1 or sequence[i + 1 : i + len(phrase)] == phrase[1:]
        }
        found |= adjacent
        if not any(len(p) > 1 for pair, side, p in entries if (pair, side) in adjacent):
            found |= {
                (pair, side)
                for pair, side, phrase in entries
                if len(phrase) == 2 and _particle_later(sequence, i, phrase[1])
            }
    return frozenset(found)


def _particle_later(sequence: tuple[str, ...], i: int, particle: str) -> bool:
    """ "turn the lights off": the particle up to three words after the verb, same clause."""
    window = sequence[i + 1 : i + 5]
    if "|" in window:
        window = window[: window.index("|")]
    return particle in window


# -- checks ------------------------------------------------------------------------------------


def without_for_not(a: Features, b: Features) -> bool:
    """Whether one prompt says "without" where the other says "not" or "no" ("dandruff but
    don't want medicated shampoo" / "... without using medicated shampoo", "with no tuning
    device" / "without a tuner"): the same negation in another word."""
    for x, y in ((a, b), (b, a)):
        one_more = y.negations == x.negations + 1 or (
            "NONE" in y.quantifiers and "NONE" not in x.quantifiers
        )
        if "WITHOUT" in x.scopes and "WITHOUT" not in y.scopes and one_more:
            return True
    return False


def negation_differs(a: Features, b: Features) -> str | None:
    if a.negations != b.negations and not broad_rewording(a, b) and not without_for_not(a, b):
        # in a broad rewording a negation is mostly the wording ("when I'm not using it" /
        # "between trips"); see :mod:`semcache_core.guard.overlap`
        return f"negations differ: {a.negations} vs {b.negations}"
    return None


def _only(a: Features, b: Features) -> list[str]:
    """Words of ``a`` that ``b`` has in no form, and that no negation governs."""
    return [
        w
        for w in sorted(a.words - b.words)
        if w.isalpha() and w not in a.negated and not (base_forms(w) & b.lemmas)
    ]


def _opposable(f: Features) -> frozenset[str]:
    """The words of ``f`` that have an antonym in some base form, no negation governing them."""
    return frozenset(w for w in f.words if _has_antonym(w) and w not in f.negated)


@lru_cache(maxsize=65536)
def _has_antonym(word: str) -> bool:
    """Whether a word of letters has an antonym in some base form (cached per word)."""
    table = lexicon.antonyms()
    return word.isalpha() and any(form in table for form in base_forms(word))


def antonym_differs(a: Features, b: Features) -> str | None:
    # only a's words with an antonym can have their opposite in b: :func:`_only` of those
    candidates = [
        w
        for w in sorted(memo(a, "opposable", _opposable) - b.words)
        if not (base_forms(w) & b.lemmas)
    ]
    if not candidates:
        return None
    table = lexicon.antonyms()
    opposites = {o for w in candidates for form in base_forms(w) for o in table.get(form, ())}
    # b's words of :func:`_only` by their base forms, of those that are such an opposite (for
    # a form, the last such word in order, as over all of them)
    forms_b = {
        form: w
        for w in sorted(b.words - a.words)
        if not base_forms(w).isdisjoint(opposites)
        and w.isalpha()
        and w not in b.negated
        and not (base_forms(w) & a.lemmas)
        for form in base_forms(w)
    }
    for w in candidates:
        for form in base_forms(w):
            for opposite in table.get(form, ()):
                if opposite in forms_b:
                    return f"opposites: {w!r} vs {forms_b[opposite]!r}"
    return None


@lru_cache(maxsize=65536)
def _negated_stem(word: str) -> str | None:
    """The stem a prefixed or -less word negates, if it looks like one."""
    if word in lexicon.words("prefix_false_friends.txt") or word in lexicon.words(
        "prefix_false_friends_curated.txt"
    ):
        return None
    for prefix in _PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 4:
            return word[len(prefix) :]
    if word.startswith("a") and len(word) >= 8 and word.endswith(_A_NEGATED_SUFFIXES):
        return word[1:]  # "asymptomatic" / "symptomatic", "atypical", "asynchronous"
    return None


#: Adjective endings of the words the Greek "a-" negates ("asymptomatic", "apolitical",
#: "asynchronous"); other words opening with "a" ("avoid", "arise") have none of them.
_A_NEGATED_SUFFIXES = ("ic", "ical", "al", "ous")


def _negatable(f: Features) -> frozenset[str]:
    """The words of ``f`` that may negate another word: a negating prefix or -less / -ful."""
    return frozenset(w for w in f.words if _may_negate(w))


@lru_cache(maxsize=65536)
def _may_negate(word: str) -> bool:
    """Whether a word of letters has a negating prefix or -less / -ful (cached per word)."""
    return word.isalpha() and (_negated_stem(word) is not None or word.endswith(("less", "ful")))


def morphological_differs(a: Features, b: Features) -> str | None:
    for x, y in ((a, b), (b, a)):
        if not memo(x, "negatable", _negatable) - y.words:
            continue  # no word of x's alone has a prefix or suffix to negate with
        # y's words x lacks verbatim: "unsalted butter" / "salted butter" in a prompt that
        # also says "salt" still differs
        only_y = {w for w in y.words - x.words if w.isalpha() and w not in y.negated}
        if not only_y:
            continue
        forms_y = {form: w for w in only_y for form in base_forms(w)} | {w: w for w in only_y}
        for w in _only(x, y):
            stem = _negated_stem(w)
            if stem is not None and w.startswith("self") and y.words & REFLEXIVES:
                stem = None  # "my self-published book" / "a book I'm publishing myself"
            if stem is not None:
                for form in {stem} | base_forms(stem):
                    if form in forms_y:
                        return f"negated by prefix: {w!r} vs {forms_y[form]!r}"
            for less, ful in (("less", "ful"), ("ful", "less")):
                if w.endswith(less) and len(w) > len(less) + 2:
                    partner = w[: -len(less)] + ful
                    if partner in only_y:
                        return f"negated by suffix: {w!r} vs {partner!r}"
    return None


def phrasal_differs(a: Features, b: Features) -> str | None:
    only_b = b.particles - a.particles
    for verb, particle in sorted(a.particles - b.particles):
        for opposite in _PARTICLE_OPPOSITES[particle]:
            if (verb, opposite) in only_b:
                return f"opposite phrases: {verb + ' ' + particle!r} vs {verb + ' ' + opposite!r}"
    table = _phrase_table()
    for pair, side in sorted(a.phrasal - b.phrasal):
        if (pair, 1 - side) in b.phrasal - a.phrasal:
            return (
                f"opposite phrases: {' '.join(table[pair][side])!r} "
                f"vs {' '.join(table[pair][1 - side])!r}"
            )
    return None


_HYPHEN_PREFIX_RE = re.compile(r"\b(?:(non|self)[-\s]|(un|anti|self|non)-)(?=[a-z]{3})", re.I)


def join_prefixes(text: str) -> str:
    """ "non-smoker" / "non smoker" -> "nonsmoker", so that the prefix stays on its word."""
    return _HYPHEN_PREFIX_RE.sub(lambda m: m.group(1) or m.group(2), text)
