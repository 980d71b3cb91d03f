"""Shared tokenization: normalization, tokens and the feature record every check reads.

Each prompt is normalized once (:func:`normalize`): Unicode, quoted strings and code spans,
contractions ("don't" -> "do not"), aliases (:data:`ALIASES`: US/USA/United States, JS/
JavaScript, k8s ...), glued tokens ("Python3" -> "Python 3", "5km" -> "5 km"), decades,
quarters, am/pm. :func:`tokenize` then splits it into typed :class:`Token` objects (words,
numbers, flags, paths, symbols, punctuation); the family modules mark the tokens they consume
(``used``) so that a word is classified once, and fill a :class:`Collector`, which
:func:`semcache_core.guard.features.extract_features` freezes into :class:`Features`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from semcache_core.guard import lexicon

T = TypeVar("T")


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text`` (keeps the small inline tables readable)."""
    return tuple(text.split())


def _wordset(text: str) -> frozenset[str]:
    return frozenset(_words(text))


#: Technology names counted as names even when typed in lower case (``data/tech_names.txt``).
TECH_NAMES: frozenset[str] = lexicon.words("tech_names.txt")
#: Common words that are not names at the start of a sentence (``data/common_words.txt``).
COMMON_WORDS: frozenset[str] = lexicon.words("common_words.txt")

#: Surface forms mapped to one spelling before anything else, as (regex, replacement). Each
#: entry is a name users really write in several ways; keep this table short and obvious.
ALIASES: tuple[tuple[str, str], ...] = (
    (
        (
            r"\bU\.S\.A\.?|\bU\.S\.(?!\w)|\bUnited States(?: of America)?\b|\bUSA\b|\bUS\b"
            r"|(?<=\b[Ii]n the )us\b"  # "in the us": the country, typed in lower case
        ),
        "USA",
    ),
    (r"\bU\.K\.|\bUnited Kingdom\b|\b(?:Great )?Britain\b|\bUK\b", "UK"),
    (r"\bEuropean Union\b|\bE\.U\.", "EU"),
    (r"\bUnited Nations\b|\bU\.N\.", "UN"),
    (r"\bUnited Arab Emirates\b|\bU\.A\.E\.?", "UAE"),
    (r"\bNew York City\b|\bNYC\b", "NYC"),
    (r"\bLos Angeles\b|\bL\.A\.", "LA"),
    (r"\bSan Francisco\b", "SF"),
    (r"\bNew Zealand\b", "NZ"),
    (r"\b[Nn]ode(?:\.[Jj][Ss]|JS|js)\b|\bNode\b", "Nodejs"),
    (r"\b[Jj]ava[Ss]cript\b|\bJS\b|(?<![.\w])js\b(?!\.)", "Javascript"),
    (r"\b[Tt]ype[Ss]cript\b|\bTS\b", "Typescript"),
    (r"\b[Kk]8s\b|\b[Kk]ubernetes\b", "Kubernetes"),
    (r"\b[Pp]ostgres(?:QL|ql)?\b", "Postgresql"),
    (r"\b[Mm]ac ?OS(?: ?X)?\b|\bmacos\b|\bOS ?X\b", "Macos"),
    (r"\b[Gg]olang\b", "Go"),
    (r"\bVS ?Code\b|\bVisual Studio Code\b|\bvscode\b", "Vscode"),
    (r"(?<![\w+])[Cc]\+\+|\bcpp\b", " Cplusplus "),
    (r"(?<![\w#])C#|\bC sharp\b", " Csharp "),
    (r"(?<![\w.])\.NET\b|\bdotnet\b", " Dotnet "),
    (r"\b[Aa]rtificial [Ii]ntelligence\b", "AI"),
    (r"\b[Mm]achine [Ll]earning\b", "ML"),
    (r"\b[Ll]arge [Ll]anguage [Mm]odels?\b", "LLM"),
    (r"\bAmazon Web Services\b", "AWS"),
    (r"\bGoogle Chrome\b", "Chrome"),
    (r"\bWorld War (?:II|2|Two)\b|\bWWII\b|\bWW2\b", "WW2"),
    (r"\bWorld War (?:I|1|One)\b|\bWWI\b|\bWW1\b", "WW1"),
    (r"\bGoogle Cloud(?: Platform)?\b", "GCP"),
    (r"\b[Ll]ight[- ]years?\b", "lightyears"),
    (r"\b401 ?\(?[kK]\)?(?![\w(])", "401(k)"),  # a retirement plan, not 401 thousand
    (r"\b403 ?\(?[bB]\)?(?![\w(])", "403(b)"),
    (
        r"\b[Pp][Ss](?= ?[1-5]\b)",
        "PlayStation ",
    ),  # "PS5" / "PlayStation 5"  # a unit of length, not "light" and "years"
    # text-speak: "b4" is "before", "w/o" "without", "w/" "with", "how 2" "how to"
    (r"(?<![\w/])[Bb]4\b", "before"),
    (r"(?<![\w/])[Ww]/[Oo]\b", "without"),
    (r"(?<![\w/])[Ww]/(?=\s)", "with"),
    (r"(?<=\b[Hh]ow) 2 (?=[a-z])", " to "),
    # "u" / "ur" for "you" / "your", "n" for "and", "w" for "with", "7 yr old", "wanna"
    (r"(?<![\w/'.\-])u(?![\w/'.\-])", "you"),
    (r"(?<![\w/'.\-])ur(?![\w/'.\-])", "your"),
    (r"(?<=[a-z]) n (?=[a-z])", " and "),
    (r"(?<![\w/'.\-])w(?= [a-z])", "with"),
    (r"(?<=\d) ?yrs?\b", " year"),
    (r"\bwanna\b", "want to"),
    (r"\bgonna\b", "going to"),
)

#: Technology names counted as names even when typed in lower case. Ambiguous English words

_QUOTE_RE = re.compile(
    r"```(?P<fence>.+?)```"
    r"|`(?P<tick>[^`\n]+)`"
    r"|\"(?P<dq>[^\"\n]{1,300})\""
    r"|“(?P<cq>[^”\n]{1,300})”"
    r"|«(?P<gq>[^»\n]{1,300})»"
    r"|(?<![\w])‘(?P<csq>[^’\n]{1,300})’(?!\w)"
    r"|(?<![\w'])'(?P<sq>[^'\s][^'\n]{0,298}[^'\s]|[^'\s])'(?!\w)",
    re.S,
)
#: (pattern, replacement, a substring of every match in lower case: the pattern is tried only
#: on a prompt that has it)
_CONTRACTIONS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.I), replacement, literal)
    for pattern, replacement, literal in (
        (r"\bwon'?t\b", "will not", "won"),
        (r"\bcan'?t\b|\bcannot\b", "can not", "can"),
        (r"\bshan't\b", "shall not", "shan't"),
        (r"\bain't\b", "is not", "ain't"),
        (r"\b(\w+)n't\b", r"\1 not", "n't"),
        (
            r"\b(do|does|did|is|are|was|were|has|have|had|should|could|would|must|need)nt\b",
            r"\1 not",
            "nt",
        ),
        (r"(\w)'(?:s|re|ll|ve|d|m)\b", r"\1", "'"),
        (r"(\w)s'(?!\w)", r"\1s", "s'"),
        (r"\bi'm\b|\bim\b", "I", "m"),
    )
)
#: The first character of every alternative of :data:`_QUOTE_RE`.
_QUOTE_MARKS = ("`", '"', "“", "«", "‘", "'")
#: The contractions above that users type without an apostrophe ("dont", "cant", "im").
_BARE_CONTRACTION_RE = re.compile(
    r"\b(?:wont|cant|cannot|(?:do|does|did|is|are|was|were|has|have|had|should|could|would"
    r"|must|need)nt|im)\b",
    re.I,
)
# All aliases in one alternation (one pass instead of one per alias); at a given position the
# first entry that matches wins, so "Node.js" is Node.js before "js" can be JavaScript.
_ALIAS_RE = re.compile("|".join(f"(?P<a{i}>{pattern})" for i, (pattern, _) in enumerate(ALIASES)))
_ALIAS_REPLACEMENTS: dict[str, str] = {f"a{i}": repl for i, (_, repl) in enumerate(ALIASES)}


def _alias_words() -> frozenset[str]:
    """The literal words of the alias patterns ("[Nn]ode" -> "node"): a prompt with none of
    them (and no "U.S."-style dots, "+" or "#") skips the alias regex, which tries every
    alternative at every position."""
    words = set()
    for pattern, _ in ALIASES:
        text = re.sub(r"\[([A-Za-z])([A-Za-z])\]", lambda m: m.group(1).lower(), pattern)
        text = re.sub(r"\\.", " ", text)
        found = re.findall(r"[a-z0-9]+", text.lower())
        # the first word of each alternative is enough ("united" for "United States of America")
        words |= {w for w in found if len(w) >= 2}
    # words that never start an alias and are common: an alias starts with another word
    words |= {"u", "n", "w", "yr"}  # short text-speak
    # glued forms the literal words miss ("401k", "PS5" are one word to the hint)
    words |= {"401k", "403b", "ps1", "ps2", "ps3", "ps4", "ps5"}
    # the words of a lookbehind ("how 2", "in the us") start no alias: the hint regex and
    # the alias's own word ("us") find those; "how", "in" and "the" would run the aliases on
    # most prompts
    return (
        frozenset(words)
        - _wordset("how in the")
        - _wordset(
            "of one two city code war web language models learning services platform cloud "
            "studio ii america states kingdom nations emirates angeles francisco zealand york years"
        )
    )


_ALIAS_WORDS = _alias_words()
_ALIAS_HINT_RE = re.compile(r"[A-Z]\.[A-Z]|[+#]|\.[Nn][Ee][Tt]\b|\b[Hh]ow 2 ")
_ALNUM_RE = re.compile(r"[a-z0-9]+")


def _may_have_alias(text: str) -> bool:
    return bool(
        _ALIAS_WORDS.intersection(_ALNUM_RE.findall(text.lower())) or _ALIAS_HINT_RE.search(text)
    )


_DIGIT_RE = re.compile(r"\d")
_LETTERS_RE = re.compile(r"[A-Za-z]{2,}")
_ABBREVIATIONS_RE = re.compile(r"\b(?:e\.g|i\.e|etc|vs|approx|incl)\.(?=\s|$)", re.I)
_SPEED_RE = re.compile(r"\b(km|mi|m)\s?/\s?(h|hr|s)\b", re.I)
_SQUARE_RE = re.compile(
    r"\b(?:square|sq\.?)\s+(feet|foot|ft|meters?|metres?|m|kilometers?|kilometres?|km|miles?|mi)\b"
    r"|(?<=\d)\s?(ft|m|km|mi)[²2]\b",
    re.I,
)
_DEGREES_RE = re.compile(
    r"(?:°|º|\b[Dd]egrees?\b|\bdeg\b)\s?((?i:celsius|centigrade|fahrenheit|kelvin)|C|F|K)\b"
)
_BARE_DEGREES_RE = re.compile(r"°|º")
_PERCENT_RE = re.compile(r"\bper cent\b", re.I)
_DECADE_RE = re.compile(r"(?<![\w'])'?(\d0)s\b|\b(1[5-9]\d0|20\d0)s\b")
_QUARTER_RE = re.compile(r"\b[Qq]([1-4])\b")
_AMPM_RE = re.compile(r"(?<=\d)\s?([ap])\.?m\.?(?!\w)", re.I)
_SHORT_HYPHEN_RE = re.compile(r"(?<![\w-])([A-Za-z]{1,3})-([A-Za-z]{1,4})(?![\w-])")
_LETTERS_DIGITS_RE = re.compile(r"\b([A-Za-z]{1,12})[-/]?(\d+(?:\.\d+)*)\b(?!\.\d)")
_DIGITS_LETTERS_RE = re.compile(r"\b(\d+(?:\.\d+)?)(?!st\b|nd\b|rd\b|th\b)([A-Za-z]+)\b")
_DIGITS_SYMBOL_RE = re.compile(r"(\d)([$€£¥₹%])")

# Words first: no other alternative starts with a letter, and most tokens are words, so at a
# word the other ten are never tried (the order of the others is the order of precedence).
_TOKEN_RE = re.compile(
    r"(?P<word>[^\W\d]\w*(?:\.[^\W\d]\w*)*(?:\(\))?)"
    r"|(?P<flag>(?<![\w\-/.])--?[A-Za-z][\w\-]*)"
    r"|(?P<path>(?<![\w/])(?:~|\.{1,2})?/[\w.\-]+(?:/[\w.\-]*)*)"
    r"|(?P<ext>(?<![\w.])\.[A-Za-z]\w*)"
    r"|(?P<date>\d{4}-\d{1,2}-\d{1,2}\b|\d{1,2}/\d{1,2}/\d{2,4}\b)"
    r"|(?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"|(?P<frac>\d+/\d+)"
    r"|(?P<num>(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)*|(?<![\d])-?\.\d+)"
    r"|(?P<deco>(?<![\w@])@[^\W\d]\w*(?:\.[^\W\d]\w*)*)"
    r"|(?P<sym>[$€£¥₹%#&+=<>*/~^])"
    r"|(?P<punct>[.?!;:,()\[\]{}\n|])"
)
_SENTENCE_END = frozenset(".?!;:\n|")


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    low: str
    start: int
    end: int
    initial: bool
    used: bool = False


@dataclass(frozen=True)
class Features:
    """What the guard compares, extracted once per prompt by :func:`extract_features`."""

    negations: int
    quoted: frozenset[str]
    code: frozenset[str]
    flags: frozenset[str]
    numbers: frozenset[str]
    number_tags: tuple[tuple[str, str], ...]
    dates: frozenset[str]
    units: frozenset[tuple[str, str]]
    quantities: frozenset[tuple[str, str]]
    targets: frozenset[tuple[str, str]]
    directions: frozenset[tuple[str, str, str]]
    entities: frozenset[str]
    quantifiers: frozenset[str]
    scopes: frozenset[str]
    words: frozenset[str] = field(repr=False)
    text: str = field(repr=False)
    raw_text: str = field(repr=False)
    #: Lower-case words in order ("|" marks a sentence or clause break).
    sequence: tuple[str, ...] = field(default=(), repr=False)
    #: ``sequence`` with the numbers, flags and paths in their places ("5w-30" -> 5, w, 30).
    terms: tuple[str, ...] = field(default=(), repr=False)
    #: Every word and the lemmas it inflects ("lent" -> lent, lend).
    lemmas: frozenset[str] = field(default=frozenset(), repr=False)
    #: Words right after a negation ("not visible"): not an opposite of "hidden".
    negated: frozenset[str] = field(default=frozenset(), repr=False)
    phrasal: frozenset[tuple[int, int]] = frozenset()
    particles: frozenset[tuple[str, str]] = frozenset()
    relations: frozenset[tuple[str, str]] = frozenset()
    roles: tuple[str, ...] = ()
    qualifiers: frozenset[tuple[str, str]] = frozenset()
    constraints: tuple[tuple[str, tuple[str, ...]], ...] = ()
    intents: frozenset[str] = frozenset()
    #: The content words (no function words), for how far two prompts are reworded.
    content: frozenset[str] = field(default=frozenset(), repr=False)
    #: The first five letters of every word and lemma ("depressed" / "depression" share one).
    stems: frozenset[str] = field(default=frozenset(), repr=False)
    #: Words no lexicon knows in any base form: candidates for a typo of the other prompt.
    unknown: frozenset[str] = field(default=frozenset(), repr=False)
    #: The verb of a task asked of the assistant ("Can you *check* ..."), or "".
    task_verb: str = ""
    #: The action of a how-to ("how to *replace* ...", "How do I *renew* ..."), or "".
    howto_verb: str = ""
    #: What the checks derive from this prompt alone, computed on first use (a stored prompt
    #: is compared with many queries): see :func:`memo`.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Collector:
    negations: int = 0
    numbers: dict[str, str] = field(default_factory=dict)
    dates: set[str] = field(default_factory=set)
    units: set[tuple[str, str]] = field(default_factory=set)
    quantities: set[tuple[str, str]] = field(default_factory=set)
    targets: set[tuple[str, str]] = field(default_factory=set)
    directions: set[tuple[str, str, str]] = field(default_factory=set)
    entities: set[str] = field(default_factory=set)
    code: set[str] = field(default_factory=set)
    flags: set[str] = field(default_factory=set)
    quantifiers: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    phrasal: set[tuple[int, int]] = field(default_factory=set)
    qualifiers: set[tuple[str, str]] = field(default_factory=set)
    intents: set[str] = field(default_factory=set)

    def number(self, value: str, tag: str) -> None:
        if value == "1" and tag == "number":
            return  # "1 cup" = "a cup" = "one cup": a plain 1 is soft, never a difference
        # A value seen with several tags keeps the most specific one.
        rank = {"version": 3, "date": 2, "number": 1}
        if rank[tag] > rank.get(self.numbers.get(value, ""), 0):
            self.numbers[value] = tag


def _clean(item: str) -> str:
    item = re.sub(r"\s+", " ", item).strip().strip(".,;:!?").strip()
    if item.endswith("()"):
        item = item[:-2]
    return item


def _num_str(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return format(value, ".10g")


def ascii_lower(text: str) -> str:
    """``text`` with A-Z in lower case (other letters kept: "İ" is no "i")."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalize(text: str) -> tuple[str, set[str], set[str], set[str]]:
    """Unicode, quotes, contractions, aliases, glued tokens. Returns the text to tokenize and
    the quoted strings, code spans and date features found on the way."""
    text = unicodedata.normalize("NFKC", text)
    quoted: set[str] = set()
    code: set[str] = set()
    dates: set[str] = set()

    def quote(match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        inner = match.group(kind)
        if kind in ("fence", "tick"):
            item = _clean(inner).lower()
            if item:
                code.add(item)
            return f" {inner} "
        item = _clean(inner).lower()
        if item:
            quoted.add(item)
        return f"\n{inner}\n"

    if any(mark in text for mark in _QUOTE_MARKS):
        text = _QUOTE_RE.sub(quote, text)
    text = text.replace("’", "'").replace("‘", "'")
    words = _LETTERS_RE.findall(text)
    if len(words) >= 3 and sum(w.isupper() for w in words) >= 0.6 * len(words):
        text = text.lower()  # SHOUTING: capitals carry no information
    if "'" in text or _BARE_CONTRACTION_RE.search(text):
        # in ASCII text a pattern runs only when its literal part is there (re.I folds more
        # than str.lower beyond ASCII: there every pattern runs)
        ascii_text = text.isascii()
        low = text.lower()
        for pattern, replacement, literal in _CONTRACTIONS:
            if ascii_text and literal not in low:
                continue
            changed = pattern.sub(replacement, text)
            if changed != text:
                text, low = changed, changed.lower()
    if "." in text:
        text = _ABBREVIATIONS_RE.sub(lambda m: m.group(0)[:-1].replace(".", ""), text)
    if _may_have_alias(text):
        text = _ALIAS_RE.sub(lambda m: _ALIAS_REPLACEMENTS[m.lastgroup or ""], text)
    if "cent" in text:
        text = _PERCENT_RE.sub("percent", text)
    if "/" in text:
        text = _SPEED_RE.sub(
            lambda m: (
                " mph "
                if m.group(1).lower() == "mi"
                else (" kph " if m.group(1).lower() == "km" else " mps ")
            ),
            text,
        )

    def square(match: re.Match[str]) -> str:
        unit = (match.group(1) or match.group(2)).lower()
        return " sq" + {"f": "ft", "m": "m", "k": "km"}.get(unit[0], "mi") + " "

    low = text.lower()
    if "sq" in low or "²" in text or "2" in text:
        text = _SQUARE_RE.sub(square, text)
    if not _DIGIT_RE.search(text):
        # the passes below all need a digit, but for "Q" quarters, hyphens and degrees
        if "-" in text:
            text = _SHORT_HYPHEN_RE.sub(r"\1\2", text)
        if "°" in text or "º" in text or "deg" in low:
            text = _DEGREES_RE.sub(_degree, text)
            text = _BARE_DEGREES_RE.sub(" ", text)
        return text, quoted, code, dates

    def decade(match: re.Match[str]) -> str:
        short, full = match.group(1), match.group(2)
        dates.add(f"decade:{full or '19' + short}")
        return " "

    # each pass below only where the characters it matches are (most prompts have none)
    if "0s" in text:
        text = _DECADE_RE.sub(decade, text)

    def quarter(match: re.Match[str]) -> str:
        dates.add(f"quarter:{match.group(1)}")
        return " "

    if "q" in text or "Q" in text:
        text = _QUARTER_RE.sub(quarter, text)

    def ampm(match: re.Match[str]) -> str:
        dates.add(f"{match.group(1).lower()}m")
        return " "

    if "m" in text or "M" in text:
        text = _AMPM_RE.sub(ampm, text)
    if "-" in text:
        text = _SHORT_HYPHEN_RE.sub(r"\1\2", text)
    text = _LETTERS_DIGITS_RE.sub(r"\1 \2", text)
    text = _DIGITS_LETTERS_RE.sub(r"\1 \2", text)
    if any(symbol in text for symbol in "$€£¥₹%"):
        text = _DIGITS_SYMBOL_RE.sub(r"\1 \2", text)
    if "°" in text or "º" in text:
        text = _BARE_DEGREES_RE.sub(" ", _DEGREES_RE.sub(_degree, text))
    elif "eg" in text:  # "degrees", "deg"
        text = _DEGREES_RE.sub(_degree, text)
    return text, quoted, code, dates


def _degree(match: re.Match[str]) -> str:
    return " " + {"c": "celsius", "f": "fahrenheit", "k": "kelvin"}[match.group(1)[0].lower()] + " "


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    # lower-cased once: ascii_lower maps letter for letter, so a slice of it is the token's
    low = ascii_lower(text)
    initial = True
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or ""
        start, end = match.span()
        value = text[start:end]
        if kind == "punct":
            if value in _SENTENCE_END:
                initial = True
            append(Token(kind, value, value, start, end, False))
            continue
        append(Token(kind, value, low[start:end], start, end, initial))
        initial = False
    return tokens


def one_typo_apart(x: str, y: str, *, min_length: int = 5, substitution: bool = True) -> bool:
    """Whether two words of ``min_length`` letters or more differ by one typo: a letter added,
    dropped, changed (if ``substitution``), or two neighbours swapped ("pyhton" / "python",
    "pregant" / "pregnant")."""
    if x == y:
        return True
    if min(len(x), len(y)) < min_length or abs(len(x) - len(y)) > 1:
        return False
    if len(x) == len(y):
        diff = [i for i in range(len(x)) if x[i] != y[i]]
        return (substitution and len(diff) == 1) or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and x[diff[0]] == y[diff[1]]
            and x[diff[1]] == y[diff[0]]
        )  # fmt: skip
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1 :]


def near_word(
    word: str, vocabulary: Iterable[str], *, min_length: int = 5, substitution: bool = True
) -> bool:
    """Whether ``vocabulary`` has ``word`` or a word one typo away from it."""
    n = len(word)
    if n < min_length:
        return word in vocabulary
    # only words of about the same length can be one typo apart: filter before the call
    return any(
        other == word
        or (
            n - 2 < len(other) < n + 2
            and len(other) >= min_length
            and one_typo_apart(word, other, min_length=min_length, substitution=substitution)
        )
        for other in vocabulary
    )


def memo(f: Features, key: str, compute: Callable[[Features], T]) -> T:
    """``compute(f)``, computed once per prompt and kept in ``f.derived`` under ``key``."""
    try:
        return f.derived[key]  # type: ignore[no-any-return]
    except KeyError:
        value = f.derived[key] = compute(f)
        return value


def consume(tokens: list[Token], start: int, end: int) -> None:
    """Mark the tokens inside ``text[start:end]`` as classified."""
    for token in tokens:
        if token.start >= start and token.end <= end:
            token.used = True


def fmt(items: Iterable[object]) -> str:
    """A set for a rejection detail: ``{'a', 'b'}``."""
    return "{" + ", ".join(repr(i) for i in sorted(items, key=str)) + "}" if items else "{}"


def swapped(a: Features, b: Features, kind: str) -> str | None:
    """A conversion or route that goes the other way ("km to miles" / "miles to km")."""
    for k, x, y in a.directions:
        if k == kind and (k, y, x) in b.directions and (k, x, y) not in b.directions:
            return f"direction differs: {x} → {y} vs {y} → {x}"
    return None
