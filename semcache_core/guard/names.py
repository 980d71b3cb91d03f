"""Names, quoted strings and code: extraction and the ``quoted``, ``code`` and ``entity`` checks.

``quoted``: the set of quoted strings, compared case-insensitively; a quoted string on one side
that appears *unquoted* (as whole words) on the other is not a difference: quoting is surface.
``code``: identifiers: backtick spans, ``snake_case``, ``camelCase``, ``dotted.names``, calls
``foo()``, ``--flags``/``-x`` (case sensitive), paths, extensions, ``@decorators`` and
``PascalCase`` names ending in Error/Exception/Warning; one that appears verbatim in the other
prompt is fine. ``entity``: capitalized words that do not start a sentence, acronyms, mixed
case names ("iPhone"), technology names typed in lower case (``data/tech_names.txt``), and the
first word of a sentence unless it is a common word (``data/common_words.txt``). A name on one
side that appears as any word of the other side, or a letter added, dropped or swapped with
its neighbour away from one (six letters or more: "Pyhton"), is not a difference. Routes must go the same way ("from Paris to London" / "from
London to Paris").
"""

from __future__ import annotations

import re

from semcache_core.guard import lexicon
from semcache_core.guard.negation import base_forms
from semcache_core.guard.overlap import broad_rewording
from semcache_core.guard.tokens import (
    COMMON_WORDS,
    TECH_NAMES,
    Collector,
    Features,
    Token,
    ascii_lower,
    fmt,
    memo,
    one_typo_apart,
    swapped,
)

_CAMEL_RE = re.compile(r"[a-z]{2,}[A-Z]\w*")
_PASCAL_CODE_RE = re.compile(r"[A-Z]\w*(?:Error|Exception|Warning)")


def _names(tokens: list[Token], text: str, title_case: bool, out: Collector) -> list[str]:
    """Code identifiers and named entities. Returns each token's entity value ("" if none)."""
    values = [""] * len(tokens)
    for i, token in enumerate(tokens):
        if token.kind == "flag":
            out.flags.add(token.text)
            continue
        if token.kind in ("path", "ext", "deco"):
            out.code.add(token.low)
            continue
        if token.kind != "word" or token.used:
            continue
        word = token.text
        called = word.endswith("()") or text[token.end : token.end + 1] == "("
        word = word.removesuffix("()")
        if (
            "_" in word.strip("_")
            or "." in word
            or called
            # both need a capital: an all-lower-case word (most words) skips them
            or (
                not word.islower()
                and (_CAMEL_RE.fullmatch(word) or _PASCAL_CODE_RE.fullmatch(word))
            )
        ):
            if re.search(r"[^\W\d_]", word):
                out.code.add(ascii_lower(word))
            continue
        low = ascii_lower(word)
        entity = False
        if low in TECH_NAMES:
            entity = True
        elif len(word) >= 2 and word.isupper():
            entity = word not in ("I", "OK", "AM", "PM")
        elif word[1:] != word[1:].lower() and word[0].isalpha():  # a capital after the first
            entity = True
        elif word[0].isupper():
            # Sentence-initial (or title-cased) words are names unless they are common words.
            # "-ing"/"-ed"/"-ly" openers ("Installing Docker...", "Sorting a dict...") are verbs.
            if token.initial or title_case:
                entity = low not in COMMON_WORDS and not low.endswith(("ing", "ed", "ly"))
            else:
                entity = word != "I"
        if entity:
            out.entities.add(low)
            values[i] = low
    return values


# -- checks ------------------------------------------------------------------------------------


def _appears(item: str, text: str) -> bool:
    """Whether ``item`` occurs in ``text`` as whole words (for quotes and identifiers)."""
    pattern = r"(?<![\w\-.])" + re.escape(item) + r"(?![\w\-]|\.\w)"
    return re.search(pattern, text) is not None


def _missing_items(mine: frozenset[str], theirs: frozenset[str], their_text: str) -> set[str]:
    return {
        item
        for item in mine - theirs
        if not _appears(item, their_text)
        # "'out of network'" / "out-of-network": hyphens for spaces
        and not _appears(item.replace("-", " "), their_text.replace("-", " "))
    }


def quoted_differs(a: Features, b: Features) -> str | None:
    if not (a.quoted or b.quoted):
        return None
    qa = _missing_items(a.quoted, b.quoted, b.text)
    qb = _missing_items(b.quoted, a.quoted, a.text)
    if qa or qb:
        return f"quoted strings differ: {fmt(qa)} vs {fmt(qb)}"
    return None


def code_differs(a: Features, b: Features) -> str | None:
    if not (a.code or b.code or a.flags or b.flags):
        return None
    ca = _missing_items(a.code, b.code, b.text)
    cb = _missing_items(b.code, a.code, a.text)
    fa = _missing_items(a.flags, b.flags, b.raw_text)
    fb = _missing_items(b.flags, a.flags, a.raw_text)
    if ca or cb or fa or fb:
        return f"code identifiers differ: {fmt(ca | fa)} vs {fmt(cb | fb)}"
    return None


def _named_in(entity: str, other: Features) -> bool:
    """Whether a name appears as a word of the other prompt, in any inflection
    ("Flights ..." / "... the flight")."""
    if len(entity) < 2:
        # a letter of a name ("vitamin B12" / "vitamin b12", "S&P 500" / "s&p 500")
        return entity in other.words and entity not in ("a", "i")
    if entity in other.words:
        return True
    forms = base_forms(entity)
    if not (forms.isdisjoint(other.words) and forms.isdisjoint(other.lemmas)):
        return True
    # "Pyhton" / "Python"; not a changed letter, nor short names: "Gambia" / "Zambia",
    # "React" / "Preact", "MySQL" / "MSSQL" are other names. Only words of about the same
    # length can be one typo apart (the other's words by length, kept per prompt).
    n = len(entity)
    by_length = memo(other, "words_by_length", _words_by_length)
    if n >= 6 and any(
        one_typo_apart(entity, w, min_length=6, substitution=False)
        for m in (n - 1, n, n + 1)
        for w in by_length.get(m, ())
    ):
        return True
    # only words with the same first four letters can be a demonym of each other, and only
    # words one letter longer or shorter a doubled letter typed once: filter before the calls
    head = entity[:4]
    return any(
        _demonym(entity, w) or _demonym(w, entity) for w in other.words if w[:4] == head
    ) or any(
        _undoubled(entity, w) or _undoubled(w, entity)
        for m in (n - 1, n + 1)
        for w in by_length.get(m, ())
    )


def _words_by_length(f: Features) -> dict[int, tuple[str, ...]]:
    by_length: dict[int, list[str]] = {}
    for w in f.words:
        by_length.setdefault(len(w), []).append(w)
    return {n: tuple(words) for n, words in by_length.items()}


def _undoubled(short: str, long_: str) -> bool:
    """ "Gogle" / "Google", "Facebok" / "Facebook": a doubled letter typed once (the typo
    that is no other name; "React" / "Preact" adds a letter that is not doubled)."""
    if len(long_) != len(short) + 1 or len(short) < 4:
        return False
    for i in range(1, len(long_)):
        if long_[i] == long_[i - 1] and long_[:i] + long_[i + 1 :] == short:
            return True
    return False


_DEMONYM_ENDINGS = ("n", "an", "ian", "ese", "ish", "i")


def _demonym(place: str, word: str) -> bool:
    """ "Canada" / "Canadian", "Australia" / "Australian", "Japan" / "Japanese": the adjective
    of a place name of five letters or more, by its ending ("Austrian" is not "Australia")."""
    if len(place) < 5 or not word.startswith(place[:4]):
        return False
    return any(word in (place + e, place[:-1] + e) for e in _DEMONYM_ENDINGS)


def _beside(name: str, f: Features, shared: frozenset[str]) -> bool:
    """Whether a name only one prompt has stands right next to a name both have (or with
    "of" between): the fuller name of the same thing ("Microsoft Word", "Nintendo Switch",
    "Settlers of Catan", "Amazon RDS")."""
    seq = f.sequence
    for i, w in enumerate(seq):
        if w != name:
            continue
        near = seq[max(0, i - 1) : i] + seq[i + 1 : i + 2]
        if i + 2 < len(seq) and seq[i + 1] == "of":
            near += (seq[i + 2],)
        if any(n in shared for n in near):
            return True
    return False


_FUNCTION_WORDS = lexicon.words("function_words.txt")


def _spelled_out(acronym: str, own: Features, other: Features) -> bool:
    """Whether an acronym of one prompt (written in capitals there, two to five letters) is
    the initials of consecutive words of the other, function words between them skipped:
    "HMO" / "house in multiple occupation", "WAL" / "write-ahead log", "2FA" / "two-factor
    authentication"."""
    if not 2 <= len(acronym) <= 5 or not acronym.isalpha():
        return False
    if acronym[0] not in memo(other, "initials", _initials):
        return False  # no content word of the other prompt starts with its first letter
    if re.search(r"\b" + re.escape(acronym.upper()) + r"\b", own.raw_text) is None:
        return False  # written in capitals in its own prompt
    seq = other.sequence
    for start, word in enumerate(seq):
        if word[:1] != acronym[0] or word in _FUNCTION_WORDS:
            continue
        k, j = 1, start + 1
        while k < len(acronym) and j < len(seq) and seq[j] != "|":
            if seq[j][:1] == acronym[k] and seq[j] not in _FUNCTION_WORDS:
                k += 1
            elif seq[j] not in _FUNCTION_WORDS:
                break
            j += 1
        if k == len(acronym):
            return True
    return False


def _initials(f: Features) -> frozenset[str]:
    """The first letters of the prompt's words that are not function words."""
    return frozenset(w[:1] for w in f.sequence if w not in _FUNCTION_WORDS)


def entity_differs(a: Features, b: Features) -> str | None:
    shared = a.entities & b.entities
    ea = {e for e in a.entities - b.entities if not _named_in(e, b) and not _spelled_out(e, a, b)}
    eb = {e for e in b.entities - a.entities if not _named_in(e, a) and not _spelled_out(e, b, a)}
    if not (ea and eb):
        # a fuller name of the same thing on one side only ("Microsoft Word" / "Word"); two
        # different names beside the same one are two things ("Azure SQL" / "Google SQL")
        ea = {e for e in ea if not _beside(e, a, shared)}
        eb = {e for e in eb if not _beside(e, b, shared)}
    if (ea and eb) or ((ea or eb) and not broad_rewording(a, b)):
        # a name on one side only, in a broad rewording, is mostly the wording ("memorise
        # Japanese kanji" / "learn kanji", "Someone took over my account")
        return f"names differ: {fmt(ea)} vs {fmt(eb)}"
    return swapped(a, b, "entity")
