"""Audience and qualifiers: the ``quantifier``, ``scope``, ``audience``, ``qualifier`` and
``constraint`` checks.

``quantifier``
    Groups compared as sets: ALL (all, every, each...), NONE (no, none, nobody...), MOST, FEW,
    LEAST, AT_LEAST/AT_MOST (at least, no more than...), MORE/LESS (more than, over 50, under
    18), and how often: ALWAYS, SOMETIMES, RARELY (rarely, seldom, hardly); "usually",
    "often", "typically" are hedges and mark nothing. "some", "any", "a few", "many", "a lot of" mark no group; superlatives ("the most
    popular") are not quantifiers.
``scope``
    ONLY, EXCEPT, INCLUDING, BEFORE, AFTER, UNTIL, WITHOUT and PER (per, a day, daily ...),
    compared as sets.
``audience`` / ``qualifier``
    Words and phrases grouped in ``data/qualifiers.tsv`` (age: toddlers, seniors; skill:
    beginners, experts; diet: vegan, keto; plan tier; employment; residency; material ...).
    Two prompts with another value in a group, or one naming a value the other leaves out
    ("best laptop for students" / "best laptop"), differ. Synonyms share a value (kids =
    children, novice = beginner).
    A group marked ``?`` in the file (food state: frozen, fresh, dried) differs only when both
    prompts name a value: "thaw frozen chicken" is "defrost chicken".
``constraint``
    An added or dropped condition: a clause opened by a marker (``data/constraint_markers.tsv``:
    if, unless, while, without, at, with, during ...) whose content words the other prompt
    lacks, when the other prompt has no marker of the same group ("what can I take for a
    headache" / "... if I'm pregnant", "can I return it" / "... without a receipt"). A word
    counts as present when the other prompt has a word with the same first five letters
    ("depressed" / "depression", "canceled" / "cancelled"). The clause counts when all its
    content words are new, or when the other prompt says nothing more than this one and the
    clause's last word (its head: "bake bread" / "... with a bread machine") is new.
"""

from __future__ import annotations

import re
from functools import cache

from semcache_core.guard import lexicon
from semcache_core.guard.negation import NEGATION_WORDS
from semcache_core.guard.tokens import (
    Collector,
    Features,
    Token,
    ascii_lower,
    consume,
    fmt,
    near_word,
)

_FUNCTION_WORDS = lexicon.words("function_words.txt")

_QUANTIFIER_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ["all", "every", "each", "everyone", "everybody", "everything", "everywhere"], "ALL"
    ),
    **dict.fromkeys(["no", "none", "nobody", "nothing", "nowhere"], "NONE"),
    "most": "MOST",
    "majority": "MOST",
    "few": "FEW",
    "fewest": "LEAST",
    # how often: "always" / "sometimes" / "rarely" ask different things; "usually", "often",
    # "typically" mark nothing (a hedge: "the usual weather" is "the typical weather")
    "always": "ALWAYS",
    **dict.fromkeys(["sometimes", "occasionally"], "SOMETIMES"),
    **dict.fromkeys(["rarely", "seldom", "hardly", "barely", "scarcely"], "RARELY"),
    "least": "LEAST",
}

_SCOPE_WORDS: dict[str, str] = {
    "only": "ONLY",
    "solely": "ONLY",
    "exclusively": "ONLY",
    "except": "EXCEPT",
    "besides": "EXCEPT",
    "excluding": "EXCEPT",
    "excluded": "EXCEPT",
    "exclude": "EXCEPT",
    "excludes": "EXCEPT",
    "exclusive": "EXCEPT",
    "including": "INCLUDING",
    "included": "INCLUDING",
    "inclusive": "INCLUDING",
    "incl": "INCLUDING",
    "before": "BEFORE",
    "after": "AFTER",
    "afterwards": "AFTER",
    "until": "UNTIL",
    "till": "UNTIL",
    "without": "WITHOUT",
    "per": "PER",
    "daily": "PER",
    "weekly": "PER",
    "monthly": "PER",
    "yearly": "PER",
    "annually": "PER",
    "hourly": "PER",
}

#: Multi-word phrases, matched on the lower-cased text before single words. Each maps to
#: (check, group); a group of None only hides the words from the single-word rules.
_PHRASES: tuple[tuple[str, str | None, str | None], ...] = (
    (
        (
            r"how (?:many|much)|a little|a lot(?! of)|a bit|at all|after all|first of all"
            r"|each other|one another|all right|or not|not sure|not only|no matter|no problem"
            r"|no worries|a few|a couple of|several|some of"
        ),
        None,
        None,
    ),
    (
        r"no longer|not anymore|fail(?:s|ed|ing)? to|refus(?:e|es|ed|ing) to|lack(?:s|ed|ing)?",
        "negation",
        "NEG",
    ),
    (
        (
            r"no (?:more|greater|higher) than|not more than|at most|at the most"
            r"|up to(?= ?[$€£]?-?\d)|(?:or|and) (?:less|fewer|below|under)|maximum of"
        ),
        "quantifier",
        "AT_MOST",
    ),
    (
        (
            r"no (?:less|fewer|lower) than|not less than|at least|at the least|minimum of"
            r"|(?:or|and) (?:more|above|over|up|higher)"
        ),
        "quantifier",
        "AT_LEAST",
    ),
    (
        r"(?:more|greater|higher|larger|bigger) than|(?:over|above|exceeding)(?= ?[$€£]?-?\d)",
        "quantifier",
        "MORE",
    ),
    (r"(?:less|fewer|lower|smaller) than|(?:under|below)(?= ?[$€£]?-?\d)", "quantifier", "LESS"),
    (r"the majority of|almost all|nearly all|most of", "quantifier", "MOST"),
    # "many", "a lot of" only intensify: "Which foods contain a lot of iron" = "...high in iron".
    (r"a lot of|lots of|plenty of|many|numerous", None, None),
    # Superlatives are not quantifiers: "the most popular", "my most recent commit".
    (r"(?:the|my|your|our|their|his|her|its) (?:most|least)", None, None),
    (r"no one", "quantifier", "NONE"),
    (r"other than|apart from|aside from|except for", "scope", "EXCEPT"),
    (r"prior to|earlier than", "scope", "BEFORE"),
    (r"later than|past (?=(?:the|its|their|my|your|his|her|our) )", "scope", "AFTER"),
    (r"up until", "scope", "UNTIL"),
    (
        (
            # only the determiner: the unit after it stays a unit ("per day" / "per week")
            r"(?<!in )(?<!of )(?<!for )(?:a|an|each|every|per)(?= (?:second|minute|hour|day"
            r"|night|week|month|year|person|head|serving)\b)"
        ),
        "scope",
        "PER",
    ),
)


def phrases(text: str, tokens: list[Token], out: Collector) -> None:
    """Multi-word quantifier, scope and negation phrases, and fillers that hide their words."""
    low = ascii_lower(text)
    for pattern, check, group in _PHRASE_RES:
        for match in pattern.finditer(low):
            if any(t.used for t in tokens if match.start() <= t.start < match.end()):
                continue
            if check == "negation":
                out.negations += 1
            elif check == "quantifier" and group:
                out.quantifiers.add(group)
            elif check == "scope" and group:
                out.scopes.add(group)
            consume(tokens, match.start(), match.end())


_PHRASE_RES: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = tuple(
    (re.compile(rf"\b(?:{pattern})\b"), check, group) for pattern, check, group in _PHRASES
)


def word_classes(tokens: list[Token], out: Collector) -> None:
    for token in tokens:
        if token.used or token.kind != "word":
            continue
        low = token.low
        if low in NEGATION_WORDS:
            out.negations += 1
            token.used = True
        elif low in _QUANTIFIER_WORDS:
            out.quantifiers.add(_QUANTIFIER_WORDS[low])
            token.used = True
        elif low in _SCOPE_WORDS:
            out.scopes.add(_SCOPE_WORDS[low])
            token.used = True


@cache
def _qualifier_index() -> dict[str, list[tuple[tuple[str, ...], tuple[str, str]]]]:
    """First word -> [(phrase words, (group, value))], longest phrases first."""
    index: dict[str, list[tuple[tuple[str, ...], tuple[str, str]]]] = {}
    for key, phrases_ in lexicon.table("qualifiers.tsv", "|").items():
        group, value = key.split("/", 1)
        for phrase in phrases_:
            words = tuple(phrase.lower().replace("-", " ").split())
            index.setdefault(words[0], []).append((words, (group, value)))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index


def qualifiers(sequence: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """(group, value) of every audience or qualifier word or phrase."""
    index = _qualifier_index()
    found = set()
    for i, word in enumerate(sequence):
        for words, value in index.get(word, ()):
            if sequence[i + 1 : i + len(words)] == words[1:]:
                found.add(value)
                break
    return frozenset(found)


def constraints(
    sequence: tuple[str, ...], classified: frozenset[str] = frozenset()
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(marker group, content words of the clause it opens) for each constraint marker;
    a marker opening the prompt ("When does ...", "If I ...") is the question, not a clause.
    Words another family classified (dates, numbers, quantifiers) are left to their checks."""
    markers = lexicon.table("constraint_markers.tsv", "|")
    found = []
    for i, word in enumerate(sequence):
        if word not in markers or i == 0 or sequence[i - 1] == "|":
            continue
        if any(" ".join(sequence[i : i + n]) in markers for n in (2, 3, 4)):
            continue  # an idiom ("at a time", "on average")
        clause = []
        for nxt in sequence[i + 1 : i + 7]:
            if nxt == "|" or nxt in markers:
                break
            if nxt not in _FUNCTION_WORDS and nxt not in NEGATION_WORDS and nxt not in classified:
                clause.append(nxt)
        found.append(
            (markers[word][0].strip(), tuple(clause))
        )  # an empty clause still marks the group
    return tuple(found)


# -- checks ------------------------------------------------------------------------------------


def quantifier_differs(a: Features, b: Features) -> str | None:
    if a.quantifiers != b.quantifiers:
        return (
            f"quantifiers differ: {fmt(a.quantifiers - b.quantifiers)} "
            f"vs {fmt(b.quantifiers - a.quantifiers)}"
        )
    return None


def scope_differs(a: Features, b: Features) -> str | None:
    if a.scopes != b.scopes:
        return f"scope words differ: {fmt(a.scopes - b.scopes)} vs {fmt(b.scopes - a.scopes)}"
    return None


def _groups_differ(a: Features, b: Features, audience: bool) -> str | None:
    qa = {q for q in a.qualifiers if q[0].startswith("audience") == audience}
    qb = {q for q in b.qualifiers if q[0].startswith("audience") == audience}
    if qa == qb:
        return None
    for group in sorted({g for g, _ in qa ^ qb}):
        va = {v for g, v in qa if g == group}
        vb = {v for g, v in qb if g == group}
        if group.endswith("?") and not (va and vb):
            continue  # a "?" group differs only when both prompts name a value
        if va != vb:
            return (
                f"{group.split('-', 1)[-1].rstrip('?')} differs: {fmt(va - vb)} vs {fmt(vb - va)}"
            )
    return None


def audience_differs(a: Features, b: Features) -> str | None:
    return _groups_differ(a, b, audience=True)


def qualifier_differs(a: Features, b: Features) -> str | None:
    return _groups_differ(a, b, audience=False)


def _present(word: str, stems: frozenset[str], words: frozenset[str]) -> bool:
    return word in words or word[:5] in stems or near_word(word, words)


def constraint_differs(a: Features, b: Features) -> str | None:
    for x, y in ((a, b), (b, a)):
        vocabulary_y = y.words | y.lemmas
        stems_y = frozenset(w[:5] for w in vocabulary_y)
        stems_x = frozenset(w[:5] for w in x.words | x.lemmas)
        # y's own conditions, reworded or other: a clause of y in the same group that x
        # does not repeat ("with little money" / "on a small budget")
        counterparts = {
            g for g, c in y.constraints if c and not all(w[:5] in stems_x for w in c)
        } | {g for g, c in y.constraints if not c}
        # y says nothing that x does not: x is y plus something
        addition = all(w[:5] in stems_x for w in y.words if w not in _FUNCTION_WORDS)
        for group, clause in x.constraints:
            if group in counterparts or not clause:
                continue
            novel = [w for w in clause if not _present(w, stems_y, vocabulary_y)]
            if novel and (
                len(novel) == len(clause)
                or (addition and 2 * len(novel) >= len(clause) and clause[-1] in novel)
            ):
                side = "added" if x is a else "dropped"
                return f"condition {side}: {' '.join(clause)!r}"
    return None
