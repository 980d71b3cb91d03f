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
from semcache_core.guard.negation import NEGATION_WORDS, without_for_not
from semcache_core.guard.overlap import broad_rewording, new_words
from semcache_core.guard.tokens import (
    Collector,
    Features,
    Token,
    ascii_lower,
    consume,
    fmt,
    memo,
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
            r"|no worries|a few|a couple of|several|some of|all over the place"
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
    # a part against the whole: "cancel part of the trip" / "cancel the whole trip"
    (r"(?:a |one )?part of|partial|partially", "quantifier", "PART"),
    (r"the (?:whole|entire)|whole|entire|in full", "quantifier", "WHOLE"),
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
    for pattern, check, group, anchors in _PHRASE_RES:
        if anchors is not None:
            for anchor in anchors:
                if anchor in low:
                    break
            else:
                continue  # none of the pattern's literal words: it cannot match (most often)
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


def _drop_lookarounds(pattern: str) -> str:
    """``pattern`` without its lookaround groups and escapes (they consume no letters)."""
    out, depth_skip, depth = [], 0, 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            out.append(" ")
            continue
        if c == "(":
            depth += 1
            if not depth_skip and pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                depth_skip = depth
        elif c == ")":
            if depth_skip == depth:
                depth_skip = 0
                depth -= 1
                i += 1
                continue
            depth -= 1
        if not depth_skip:
            out.append(c)
        i += 1
    return "".join(out)


_ITEM_RE = re.compile(r"\(\?:([a-z |]+)\)([?*]?)|([a-z]+)([?*]?)")


def _anchors(pattern: str) -> tuple[str, ...] | None:
    """Literal words one of which every match of ``pattern`` contains: for each top-level
    alternative its most specific required word or word group ("no (?:more|greater) than" ->
    "than", "(?:or|and) (?:less|fewer)" -> "less", "fewer"); None if an alternative has none.
    A prompt with none of them skips the pattern."""
    pattern = _drop_lookarounds(pattern)
    alternatives, depth, start = [], 0, 0
    for i, c in enumerate(pattern):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            alternatives.append(pattern[start:i])
            start = i + 1
    alternatives.append(pattern[start:])
    out: list[str] = []
    for alternative in alternatives:
        best: list[str] = []
        for m in _ITEM_RE.finditer(alternative):
            group, group_opt, word, word_opt = m.groups()
            if group is not None:
                if group_opt:
                    continue
                words = [w.strip() for w in group.split("|")]
            else:
                words = [word[:-1] if word_opt else word]
            if any(len(w) < 2 for w in words):
                continue
            if not best or min(map(len, words)) > min(map(len, best)):
                best = words
        if not best:
            return None
        out.extend(best)
    return tuple(out)


_PHRASE_RES: tuple[tuple[re.Pattern[str], str | None, str | None, tuple[str, ...] | None], ...]
_PHRASE_RES = tuple(
    (re.compile(rf"\b(?:{pattern})\b"), check, group, _anchors(pattern))
    for pattern, check, group in _PHRASES
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


#: Words after which a one-word qualifier is a preposition, not a modifier ("outside the
#: box", "inside an app" are no "outdoor" / "indoor").
_DETERMINERS = frozenset(
    [
        "the",
        "a",
        "an",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
    ]
)


@cache
def _value_words() -> dict[tuple[str, str], frozenset[str]]:
    """(group, value) -> its one-word phrases, for typo tolerance ("begginers")."""
    out: dict[tuple[str, str], set[str]] = {}
    for entries in _qualifier_index().values():
        for words, value in entries:
            if len(words) == 1:
                out.setdefault(value, set()).add(words[0])
    return {k: frozenset(v) for k, v in out.items()}


def qualifiers(sequence: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """(group, value) of every audience or qualifier word or phrase."""
    index = _qualifier_index()
    found = set()
    for i, word in enumerate(sequence):
        for words, value in index.get(word, ()):
            if sequence[i + 1 : i + len(words)] == words[1:]:
                if len(words) == 1 and sequence[i + 1 : i + 2] in _DETERMINER_SLICES:
                    break
                found.add(value)
                break
    return frozenset(found)


_DETERMINER_SLICES = [(d,) for d in _DETERMINERS]


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


_PART_WHOLE = frozenset(["PART", "WHOLE"])


#: Words that ask about more than one of a thing, against "one" / "a single" of it.
_SEVERAL = frozenset(["several", "multiple", "many", "various", "numerous"])
_ONE = frozenset(["one", "single"])


def _counted(f: Features, markers: frozenset[str]) -> frozenset[str]:
    """Stems of the nouns right after one of ``markers`` ("several *colleges*")."""
    seq = f.sequence
    return frozenset(
        seq[i + 1][:5]
        for i, word in enumerate(seq[:-1])
        if word in markers and seq[i + 1] != "|" and seq[i + 1] not in _FUNCTION_WORDS
    )


def one_vs_several(a: Features, b: Features) -> str | None:
    """One of a thing against several of it ("apply to several colleges" / "apply to one
    college"): the same noun counted as one on a side and as many on the other."""
    for x, y in ((a, b), (b, a)):
        many = _counted(x, _SEVERAL)
        if many and many & _counted(y, _ONE) and not many & _counted(x, _ONE):
            return "one vs several of the same thing"
    return None


def quantifier_differs(a: Features, b: Features) -> str | None:
    if detail := one_vs_several(a, b):
        return detail
    only = a.quantifiers ^ b.quantifiers
    if (
        only
        and only <= _PART_WHOLE
        and not (
            ("PART" in a.quantifiers and b.quantifiers & {"WHOLE", "ALL"})
            or ("PART" in b.quantifiers and a.quantifiers & {"WHOLE", "ALL"})
        )
    ):
        return None  # "the whole project" / "the project"; a part only against the whole
    if a.quantifiers != b.quantifiers:
        if a.quantifiers ^ b.quantifiers == {"NONE"} and without_for_not(a, b):
            return None  # "with no tuning device" / "without a tuner"
        if not (a.quantifiers and b.quantifiers) and broad_rewording(a, b):
            return None  # "consistently blurry" / "always blurry at night"
        return (
            f"quantifiers differ: {fmt(a.quantifiers - b.quantifiers)} "
            f"vs {fmt(b.quantifiers - a.quantifiers)}"
        )
    return None


#: Time-scope groups: one prompt's "before"/"after"/"until" against nothing in the other is
#: usually the same question put another way ("how early should I arrive for a flight" /
#: "... arrive before a flight"); it differs when the other prompt sets another time frame.
_TEMPORAL = frozenset(["BEFORE", "AFTER", "UNTIL"])
#: What a one-sided "per" ("per person", "each night") is contrasted with when it changes the
#: answer: "the total cost" / "the cost per person".
_TOTALS = frozenset(["total", "whole", "entire", "overall", "altogether", "combined", "sum"])
_TIME_FRAMES = frozenset(["within", "during", "while", "inside"])
_AT_TIME = frozenset(["on", "by", "at", "in"])
_TIME_NOUNS = frozenset(
    [
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "night",
        "time",
        "date",
        "morning",
        "evening",
        "hour",
        "hours",
        "minute",
        "minutes",
        "arrival",
        "departure",
        "end",
        "start",
        "beginning",
        "weekend",
        "deadline",
    ]
)


def _adds_to(x: Features, y: Features) -> bool:
    """Whether ``x`` says everything ``y`` says and more: ``y``'s content words all occur in
    ``x`` ("cancel my contract" / "cancel my contract before the term ends")."""
    stems_x = frozenset(w[:5] for w in x.words | x.lemmas)
    return all(w[:5] in stems_x for w in y.words if w not in _FUNCTION_WORDS)


def _time_frame(f: Features) -> bool:
    """Whether ``f`` sets a time frame of its own: a time-scope word, "within"/"during", or
    "on/by/at/in (the) <time noun>" ("on the day of arrival")."""
    if f.scopes & _TEMPORAL or f.words & _TIME_FRAMES:
        return True
    seq = f.sequence
    for i, word in enumerate(seq[:-1]):
        if word in _AT_TIME:
            nxt = (
                seq[i + 2] if seq[i + 1] in ("the", "a", "an") and i + 2 < len(seq) else seq[i + 1]
            )
            if nxt in _TIME_NOUNS:
                return True
    return False


def scope_differs(a: Features, b: Features) -> str | None:
    if a.scopes == b.scopes:
        return None
    only_a, only_b = a.scopes - b.scopes, b.scopes - a.scopes
    if only_a ^ only_b == {"WITHOUT"} and without_for_not(a, b):
        return None  # "without using medicated shampoo" / "don't want medicated shampoo"
    x, y = (a, b) if only_a else (b, a)
    if only_a ^ only_b == {"PER"} and not (only_a and only_b) and not y.words & _TOTALS:
        return None  # "how much sleep each night" / "how many hours of sleep"; not "total"
    if (
        (only_a | only_b) <= _TEMPORAL
        and not (only_a and only_b)
        and not _time_frame(y)
        and not _adds_to(x, y)
    ):
        return None
    if not (only_a and only_b) and broad_rewording(a, b):
        return None  # "on an empty stomach" / "without eating first"
    return f"scope words differ: {fmt(only_a)} vs {fmt(only_b)}"


def _groups_differ(a: Features, b: Features, audience: bool) -> str | None:
    qa = {q for q in a.qualifiers if q[0].startswith("audience") == audience}
    qb = {q for q in b.qualifiers if q[0].startswith("audience") == audience}
    if qa == qb:
        return None
    broad: bool | None = None
    for group in sorted({g for g, _ in qa ^ qb}):
        va = {v for g, v in qa if g == group}
        vb = {v for g, v in qb if g == group}
        if group.endswith("?") and not (va and vb):
            continue  # a "?" group differs only when both prompts name a value
        if not (va and vb) and _misspelt(a if va else b, b if va else a, group, va | vb):
            continue  # "for begginers" / "for beginners"
        if not (va and vb):
            broad = broad_rewording(a, b) if broad is None else broad
            if broad:
                continue  # "my toddler" / "my little one" in a reworded question
        if va != vb:
            return (
                f"{group.split('-', 1)[-1].rstrip('?')} differs: {fmt(va - vb)} vs {fmt(vb - va)}"
            )
    return None


def _misspelt(x: Features, y: Features, group: str, values: set[str]) -> bool:
    """Whether ``y`` writes each of ``x``'s ``values`` with a typo (one letter off)."""
    table = _value_words()
    others = [w for w in y.words - x.words if len(w) >= 5]
    return bool(others) and all(
        any(_typo(w, word) for w in others for word in table.get((group, v), ())) for v in values
    )


def _typo(x: str, y: str) -> bool:
    """One typo apart, or two for words of 8 letters or more ("begginers" / "beginners")."""
    apart = abs(len(x) - len(y))
    if apart > 2:
        return False  # more letters added or dropped than either test allows
    if apart <= 1 and near_word(x, (y,)):
        return True
    if min(len(x), len(y)) < 8 or abs(len(x) - len(y)) > 2 or x[:2] != y[:2]:
        return False
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1] <= 2


def audience_differs(a: Features, b: Features) -> str | None:
    return _groups_differ(a, b, audience=True) or recipient_differs(a, b)


#: Verbs of a request whose answer is shaped for whom it is addressed to.
_ADDRESSING = frozenset(
    ["explain", "describe", "teach", "present", "introduce", "pitch", "summarize", "summarise"]
)
_RECIPIENT_OPENERS = frozenset(["a", "an", "my", "our", "someone", "somebody", "people"])


def recipient(f: Features) -> tuple[str, ...]:
    """The content words of whom an explanation is addressed to: what follows the last
    "to a / to my / to someone" of a prompt that explains, teaches or describes ("Explain
    ARIA roles *to a senior front-end engineer*"), or () if it names nobody."""
    seq = f.sequence
    if not f.words & _ADDRESSING:
        return ()
    for i in range(len(seq) - 2, 0, -1):
        if seq[i] == "to" and seq[i + 1] in _RECIPIENT_OPENERS:
            tail = []
            for word in seq[i + 2 :]:
                if word == "|":
                    break
                if word not in _FUNCTION_WORDS:
                    tail.append(word)
            return tuple(tail)
    return ()


def recipient_differs(a: Features, b: Features) -> str | None:
    """The same explanation addressed to other people ("... to a ten-year-old" / "... to an
    electrical engineering student"): both name a recipient and the two share no word."""
    ra, rb = memo(a, "recipient", recipient), memo(b, "recipient", recipient)
    if not ra or not rb:
        return None
    stems_a = {w[:5] for w in ra}
    if stems_a & {w[:5] for w in rb}:
        return None
    return f"addressed to other people: {' '.join(ra)!r} vs {' '.join(rb)!r}"


def qualifier_differs(a: Features, b: Features) -> str | None:
    return _groups_differ(a, b, audience=False)


def _present(word: str, stems: frozenset[str], words: frozenset[str]) -> bool:
    return word in words or word[:5] in stems or near_word(word, words)


def constraint_differs(a: Features, b: Features) -> str | None:
    for x, y in ((a, b), (b, a)):
        if not x.constraints:
            continue  # no condition of x's to have been added
        # (``stems``: the first five letters of every word and lemma)
        stems_x, stems_y = x.stems, y.stems
        # y's own conditions, reworded or other: a clause of y in the same group that x
        # does not repeat ("with little money" / "on a small budget")
        counterparts = {
            g for g, c in y.constraints if c and not all(w[:5] in stems_x for w in c)
        } | {g for g, c in y.constraints if not c}
        # y says nothing that x does not: x is y plus something
        missing = new_words(x, y)
        addition = missing == 0
        if missing > 1:
            continue  # a broad rewording, not the same question plus a condition
        vocabulary_y = y.words | y.lemmas
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
