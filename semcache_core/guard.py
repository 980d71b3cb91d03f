"""The trap guard: rejects semantic hits whose prompts differ in a detail that changes the answer.

An embedding model sees "What is the capital of Australia?" and "What is *not* the capital of
Australia?" as near neighbours (cosine distance well under 0.1 with all-MiniLM-L6-v2), and so
a semantic cache at a usable threshold would serve one for the other. Most such near-misses
differ in a small, *lexically visible* detail: a negation, a number, a year, a version, a unit,
a name, a quoted string, a code identifier, a quantifier or a scope word. :class:`TrapGuard`
extracts those details from both prompts and rejects the candidate hit when they differ.

How it works
------------
Each prompt is normalized once (:func:`extract_features`, cached per string with an LRU):

1. **Quoted strings and backticks** are recorded first ("...", “...”, '...', `code`, fenced
   blocks); their text stays in the prompt so that the other rules see it too.
2. **Contractions** are expanded ("don't" → "do not", "can't" → "can not", also the common
   apostrophe-less typos "dont", "isnt"); "'s", "'re", "'ll" ... are dropped.
3. **Aliases** are mapped to one spelling (:data:`ALIASES`: US/USA/United States, UK, JS/
   JavaScript, TS, k8s, Postgres, Node.js, macOS, C++, C#, ML, AI ...). The table is small on
   purpose: every entry is a name that users really write both ways.
4. **Glued tokens** are split: "Python3" → "Python 3", "GPT-4" → "GPT 4", "HTTP/2" →
   "HTTP 2", "5km" → "5 km", "16GB" → "16 GB"; short hyphenated words are joined ("Wi-Fi" →
   "WiFi"); "1990s"/"'90s" become decades, "Q3" a quarter.
5. The text is tokenized (words, numbers, flags, paths, symbols, punctuation) and each token
   is classified by the rules below; multi-word phrases ("at least", "more than", "next week",
   "how many") are matched first and their words are not looked at again.

Then the two feature sets are compared, check by check, in the order of :data:`CHECKS`; the
first check that differs names the reason of the rejection.

The rules, and why each one is tolerant where it is
---------------------------------------------------
``negation``
    Count of negation markers: "not" (and every "n't"), "never", "neither", "nor", "no longer",
    and a few negative adjectives users write instead of "not ..." ("unable", "impossible",
    "illegal", "invalid", "incorrect", "unsafe", "unhealthy", "unnecessary", "unsupported").
    "don't" and "do not" count the same; "whether or not", "not sure" and "not only" are
    fillers and do not count. "no"/"none"/"nothing" are quantifiers (below).
``quoted``
    The set of quoted strings, compared case-insensitively. A quoted string on one side that
    appears *unquoted* (as whole words) on the other side is not a difference: quoting is
    surface form.
``code``
    Identifiers: backtick spans, ``snake_case``, ``camelCase`` (two or more lowercase letters
    before the first capital), ``dotted.names``, calls ``foo()``, ``--flags``/``-x`` (case
    sensitive), paths, file extensions, ``@decorators``, and ``PascalCase`` names ending in
    Error/Exception/Warning. As with quotes, an identifier that appears verbatim in the other prompt is fine.
``version``, ``date``, ``number``
    All numeric values of a prompt form one set: digits ("1,000" → 1000, "1.5k" → 1500),
    number words ("twenty-five" → 25, "a dozen" → 12, "half" → 0.5), ordinals ("2nd",
    "second"), fractions, times, and dates ("2024-03-15"). A plain 1 ("one", "first", "1")
    never counts: it is mostly "a"/"the" written differently ("1 cup" = "a cup", "which one",
    "the first time"), and "1" against "2" is still caught by the 2. Each value is tagged by
    its context: a **version** after
    "v"/"version"/"release" or a product name ("Python 3.11", "Windows 11", "iOS 17",
    "v2"; dotted triples like "3.11.2" always), a **date** for years (1800–2100 written as
    four digits), days next to a month and clock times, else a plain **number**. The values
    are compared as one set, so "2022 World Cup" and "World Cup 2022" agree; the tag of a
    differing value names the reason. The ``date`` check also compares months, weekdays,
    relative dates ("tomorrow", "next week", "last year"), seasons, quarters, decades, times
    of day and am/pm.
``unit``
    Units are canonicalized ("km", "kilometres", "kms" → km; "°C", "Celsius" → C; "$",
    "dollars", "USD" → USD) and grouped by dimension. A prompt that names a unit the other
    one leaves implicit is fine ("How long does it take" / "How many minutes does it take");
    a *different* unit of the same dimension on both sides is not ("km" / "miles", "GB" /
    "MB", "days" / "weeks"). The number a unit is attached to must carry the same unit on
    both sides ("5 km" / "5 miles"), the unit asked for must be the same when both prompts
    name one ("how many watts" / "how many amps", "in Fahrenheit" / "in Celsius"), and a
    conversion must go the same way ("Celsius to Fahrenheit" / "Fahrenheit to Celsius").
``entity``
    Names: capitalized words that do not start a sentence, acronyms ("TCP", "AWS"), mixed
    case names ("iPhone", "GitHub"), a short list of technology names users write in lower
    case (:data:`TECH_NAMES`: python, docker, postgresql ...), and the first word of a
    sentence unless it is a common English word ("What", "How", "Explain"). A name on one
    side that appears as any word of the other side is not a difference: this absorbs
    sentence-initial capitalization and lower-case typing. Routes must go the same way
    ("from Paris to London" / "from London to Paris").
``quantifier``
    Groups of synonyms compared as sets: ALL (all, every, each, everyone...), NONE (no, none,
    nobody, nothing...), MOST, FEW, LEAST, AT_LEAST/AT_MOST (at least, or more, no more
    than...), MORE/LESS (more than, fewer than, over 50, under 18). "some", "any", "a few",
    "several", "many", "a lot of" mark no group: "Are there any ..." and "Are there ..." ask
    the same thing, and "contains a lot of iron" is "is high in iron". Superlatives ("the
    most popular", "my most recent") are not quantifiers.
``scope``
    ONLY (only, solely, exclusively), EXCEPT (except, excluding, other than, apart from),
    INCLUDING (including, inclusive, included), BEFORE (before, prior to), AFTER, UNTIL,
    WITHOUT, and PER (per, a day, each month, daily ...), compared as sets.

What it does not catch: differences that are only lexical ("bake bread" / "bake cake",
"largest" / "smallest", "git merge" / "git rebase"), word order ("Is A faster than B" /
"Is B faster than A"), and names typed in lower case outside :data:`TECH_NAMES`. Those are
left to the distance threshold (the ``lexical`` category of ``benchmarks/data/tuning_pairs.jsonl``
measures them). It never calls a model: extraction is a few dozen regular expressions per
prompt (about 0.1–0.2 ms the first time a prompt is seen), cached per string with an LRU; a
check between two known prompts takes about 15 µs.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "ALIASES",
    "CHECKS",
    "TECH_NAMES",
    "GuardVerdict",
    "TrapGuard",
    "extract_features",
]


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text`` (keeps the lexicons readable)."""
    return tuple(text.split())


def _wordset(text: str) -> frozenset[str]:
    return frozenset(_words(text))


#: The checks, in the order they are tried; the first that differs names the reason.
CHECKS: tuple[str, ...] = (
    "negation",
    "quoted",
    "code",
    "version",
    "date",
    "unit",
    "number",
    "entity",
    "quantifier",
    "scope",
)


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's decision on one candidate hit.

    ``ok`` is True when the hit may be served. Otherwise ``reason`` is the name of the first
    check that failed (one of :data:`CHECKS`) and ``detail`` says what differed.
    """

    ok: bool
    reason: str | None
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Lexicons
# --------------------------------------------------------------------------------------------

#: Surface forms mapped to one spelling before anything else, as (regex, replacement). Each
#: entry is a name users really write in several ways; keep this table short and obvious.
ALIASES: tuple[tuple[str, str], ...] = (
    (r"\bU\.S\.A\.?|\bU\.S\.(?!\w)|\bUnited States(?: of America)?\b|\bUSA\b|\bUS\b", "USA"),
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
)

#: Technology names counted as names even when typed in lower case. Ambiguous English words
#: ("go", "swift", "windows") are left out: capitalized they are names anyway.
TECH_NAMES: frozenset[str] = _wordset(
    """
    python java javascript typescript ruby php perl kotlin scala haskell rust golang bash zsh
    powershell sql mysql postgresql sqlite mongodb redis elasticsearch docker kubernetes linux
    ubuntu debian fedora centos macos android ios git github gitlab npm pip conda yarn react
    vue angular svelte django flask fastapi rails laravel numpy pandas pytorch tensorflow
    aws azure gcp nginx apache terraform ansible jenkins vim emacs nodejs excel chrome firefox
    json yaml toml xml csv html css http https tcp udp ssh ftp sftp dns ssl tls cpu gpu ram
    ssd hdd usb wifi bluetooth ipv
    """
)

#: Common English words that are not names when they start a sentence (or a title-cased
#: prompt): question words, auxiliaries, pronouns, prepositions, imperative verbs...
COMMON_WORDS: frozenset[str] = _wordset(
    """
    a an the this that these those there here what whats which who whom whose why when where
    how is are was were be been being am do does did done have has had having can could
    should would will shall may might must need needs i me my mine we us our you your he she
    it its they them their his her him one ones some any all every each no not none nobody
    nothing never both either neither few many much more most less least several if then else
    so also just still even only please pls plz hey hi hello thanks thank ok okay yes yeah
    in on at to from by for with without of about into onto over under above below after
    before since until between among through during per as than like and or but nor because
    give tell explain list show write make create find help convert compare calculate
    recommend suggest describe define summarize summarise translate name get set use using
    need want know learn teach fix solve build install run start stop check choose pick
    best good better great quick quickest simple simplest easy easiest fast fastest cheap
    cheapest top main other another new old big small large long short high low full
    whole real right wrong true false difference differences meaning definition example
    examples way ways tips steps guide recipe ideas idea reasons reason benefits pros cons
    cost price time number amount size average typical normal common usual first last next
    previous im ive lets let say said
    go going went come came look looking try trying keep put take took see seen looks
    """
)

_NEGATION_WORDS: frozenset[str] = _wordset(
    """
    not never neither nor unable impossible illegal invalid incorrect unsafe unhealthy
    unnecessary unsupported
    """
)

_QUANTIFIER_WORDS: dict[str, str] = {
    **dict.fromkeys(
        ["all", "every", "each", "everyone", "everybody", "everything", "everywhere"], "ALL"
    ),
    **dict.fromkeys(["no", "none", "nobody", "nothing", "nowhere"], "NONE"),
    "most": "MOST",
    "majority": "MOST",
    "few": "FEW",
    "fewest": "LEAST",
    "least": "LEAST",
}

_SCOPE_WORDS: dict[str, str] = {
    "only": "ONLY",
    "solely": "ONLY",
    "exclusively": "ONLY",
    "except": "EXCEPT",
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
    (r"no longer|not anymore", "negation", "NEG"),
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
    (r"later than", "scope", "AFTER"),
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

_RELATIVE_UNITS = (
    "week|month|year|weekend|quarter|summer|winter|spring|autumn|fall|decade|century|night"
    "|morning|afternoon|evening|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
)
_RELATIVE_MODIFIERS = {
    "this": "this",
    "next": "next",
    "coming": "next",
    "following": "next",
    "last": "last",
    "past": "last",
    "previous": "last",
}
_RELATIVE_RE = re.compile(
    rf"\b(this|next|coming|following|last|past|previous) ({_RELATIVE_UNITS})s?\b"
)
_RELATIVE_DAYS_RE = re.compile(
    r"\bday after tomorrow\b|\bday before yesterday\b|\btoday\b|\btonight\b|\btomorrow\b"
    r"|\byesterday\b|\bnowadays\b"
)

_MONTHS: dict[str, int] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip
_MONTH_ABBREVIATIONS: dict[str, int] = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9,
    "Sept": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_WORDS: dict[str, str] = {
    **{day: day for day in _WEEKDAYS},
    **{day + "s": day for day in _WEEKDAYS},
    "weekend": "weekend",
    "weekends": "weekend",
    "weekday": "weekday",
    "weekdays": "weekday",
    "summer": "summer",
    "winter": "winter",
    "autumn": "autumn",
    "morning": "morning",
    "mornings": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "evenings": "evening",
    "noon": "noon",
    "midnight": "midnight",
}
_DECADE_WORDS: dict[str, int] = {
    "twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
    "seventies": 1970, "eighties": 1980, "nineties": 1990,
}  # fmt: skip

_SMALL_NUMBERS: dict[str, int] = {
    word: value
    for value, word in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen"
        )
    )
}
_TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES: dict[str, int] = {
    "hundred": 100,
    "thousand": 1_000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}
_ORDINALS: dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30, "hundredth": 100,
}  # fmt: skip
_NUMBER_WORDS = frozenset(_SMALL_NUMBERS) | frozenset(_TENS) | frozenset(_SCALES)

#: Words after which a number is a version: "version 2", "v2", "Python 3.11"...
_VERSION_MARKERS = _wordset(
    "v ver version versions release rel python node nodejs java php ruby perl ubuntu debian "
    "fedora centos ios android windows macos django rails react vue angular gcc clang dotnet "
    "postgresql mysql redis kotlin scala es ecmascript html css http ipv gpt llama"
)


def _unit_group(dimension: str, canonical: str, *words: str) -> dict[str, tuple[str, str]]:
    return dict.fromkeys(words, (dimension, canonical))


#: Unit words recognized anywhere (lower case).
_UNIT_WORDS: dict[str, tuple[str, str]] = {
    **_unit_group("length", "mm", "mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    **_unit_group("length", "cm", "cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    **_unit_group("length", "m", "meter", "meters", "metre", "metres"),
    **_unit_group(
        "length", "km", "km", "kms", "kilometer", "kilometers", "kilometre", "kilometres"
    ),
    **_unit_group("length", "in", "inch", "inches"),
    **_unit_group("length", "ft", "ft", "foot", "feet"),
    **_unit_group("length", "yd", "yard", "yards", "yd", "yds"),
    **_unit_group("length", "mi", "mile", "miles"),
    **_unit_group("mass", "mg", "mg", "milligram", "milligrams"),
    **_unit_group("mass", "g", "gram", "grams", "gr"),
    **_unit_group("mass", "kg", "kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
    **_unit_group("mass", "lb", "lb", "lbs", "pound", "pounds"),
    **_unit_group("mass", "oz", "oz", "ounce", "ounces"),
    **_unit_group("mass", "ton", "ton", "tons"),
    **_unit_group("mass", "tonne", "tonne", "tonnes"),
    **_unit_group("volume", "ml", "ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    **_unit_group("volume", "l", "liter", "liters", "litre", "litres"),
    **_unit_group("volume", "gal", "gallon", "gallons"),
    **_unit_group("volume", "qt", "quart", "quarts"),
    **_unit_group("volume", "pint", "pint", "pints"),
    **_unit_group("volume", "cup", "cup", "cups"),
    **_unit_group("volume", "tbsp", "tbsp", "tbs", "tablespoon", "tablespoons"),
    **_unit_group("volume", "tsp", "tsp", "teaspoon", "teaspoons"),
    **_unit_group("temperature", "C", "celsius", "centigrade"),
    **_unit_group("temperature", "F", "fahrenheit"),
    **_unit_group("temperature", "K", "kelvin"),
    **_unit_group("time", "ms", "ms", "msec", "millisecond", "milliseconds"),
    **_unit_group("time", "s", "seconds", "secs"),
    **_unit_group("time", "min", "minute", "minutes", "mins"),
    **_unit_group("time", "h", "hour", "hours", "hr", "hrs"),
    **_unit_group("time", "day", "day", "days"),
    **_unit_group("time", "week", "week", "weeks", "wk", "wks"),
    **_unit_group("time", "month", "month", "months"),
    **_unit_group("time", "year", "year", "years", "yr", "yrs"),
    **_unit_group("time", "decade", "decade", "decades"),
    **_unit_group("time", "century", "century", "centuries"),
    **_unit_group("data", "bit", "bits"),
    **_unit_group("data", "B", "byte", "bytes"),
    **_unit_group("data", "KB", "kb", "kilobyte", "kilobytes"),
    **_unit_group("data", "KiB", "kib"),
    **_unit_group("data", "MB", "mb", "megabyte", "megabytes"),
    **_unit_group("data", "MiB", "mib"),
    **_unit_group("data", "GB", "gb", "gigabyte", "gigabytes", "gigs"),
    **_unit_group("data", "GiB", "gib"),
    **_unit_group("data", "TB", "tb", "terabyte", "terabytes"),
    **_unit_group("data", "TiB", "tib"),
    **_unit_group("datarate", "kbps", "kbps"),
    **_unit_group("datarate", "Mbps", "mbps"),
    **_unit_group("datarate", "Gbps", "gbps"),
    **_unit_group("frequency", "Hz", "hz", "hertz"),
    **_unit_group("frequency", "kHz", "khz"),
    **_unit_group("frequency", "MHz", "mhz"),
    **_unit_group("frequency", "GHz", "ghz"),
    **_unit_group("power", "W", "watt", "watts"),
    **_unit_group("power", "kW", "kw", "kilowatt", "kilowatts"),
    **_unit_group("energy", "kWh", "kwh"),
    **_unit_group("energy", "kcal", "kcal", "calorie", "calories"),
    **_unit_group("energy", "J", "joule", "joules"),
    **_unit_group("energy", "kJ", "kj"),
    **_unit_group("voltage", "V", "volt", "volts"),
    **_unit_group("current", "A", "amp", "amps", "ampere", "amperes"),
    **_unit_group("charge", "mAh", "mah"),
    **_unit_group("speed", "mph", "mph"),
    **_unit_group("speed", "kph", "kph", "kmh"),
    **_unit_group("speed", "knot", "knot", "knots"),
    **_unit_group("money", "USD", "usd", "dollar", "dollars", "bucks", "$"),
    **_unit_group("money", "EUR", "eur", "euro", "euros", "€"),
    **_unit_group("money", "GBP", "gbp", "£", "sterling"),
    **_unit_group("money", "JPY", "jpy", "yen", "¥"),
    **_unit_group("money", "INR", "inr", "rupee", "rupees", "₹"),
    **_unit_group("money", "CAD", "cad"),
    **_unit_group("money", "AUD", "aud"),
    **_unit_group("money", "CHF", "chf"),
    **_unit_group("money", "CNY", "cny", "yuan", "rmb"),
    **_unit_group("money", "cent", "cent", "cents"),
    **_unit_group("percent", "%", "%", "percent", "percentage", "pct"),
    **_unit_group("area", "acre", "acre", "acres"),
    **_unit_group("area", "ha", "hectare", "hectares"),
    **_unit_group("area", "sqft", "sqft"),
    **_unit_group("area", "sqm", "sqm"),
    **_unit_group("area", "sqkm", "sqkm"),
    **_unit_group("area", "sqmi", "sqmi"),
    **_unit_group("pressure", "psi", "psi"),
    **_unit_group("pressure", "kPa", "kpa"),
    **_unit_group("pressure", "atm", "atm"),
    **_unit_group("css", "px", "px"),
    **_unit_group("css", "vh", "vh"),
    **_unit_group("css", "vw", "vw"),
}

#: Short unit spellings that are units only right after a number ("5 m", "350 F", "12V").
_UNIT_AFTER_NUMBER: dict[str, tuple[str, str]] = {
    "m": ("length", "m"),
    "mi": ("length", "mi"),
    "g": ("mass", "g"),
    "l": ("volume", "l"),
    "L": ("volume", "l"),
    "gal": ("volume", "gal"),
    "qt": ("volume", "qt"),
    "pt": ("volume", "pint"),
    "C": ("temperature", "C"),
    "F": ("temperature", "F"),
    "K": ("temperature", "K"),
    "s": ("time", "s"),
    "sec": ("time", "s"),
    "second": ("time", "s"),
    "min": ("time", "min"),
    "h": ("time", "h"),
    "mo": ("time", "month"),
    "W": ("power", "W"),
    "V": ("voltage", "V"),
    "A": ("current", "A"),
    "cal": ("energy", "kcal"),
    "em": ("css", "em"),
    "rem": ("css", "rem"),
    "bar": ("pressure", "bar"),
}

_NUMBER_MULTIPLIERS: dict[str, int] = {
    "k": 1_000,
    "K": 1_000,
    "bn": 1_000_000_000,
    "dozen": 12,
    **_SCALES,
}

# --------------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------------

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
_CONTRACTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), replacement)
    for pattern, replacement in (
        (r"\bwon'?t\b", "will not"),
        (r"\bcan'?t\b|\bcannot\b", "can not"),
        (r"\bshan't\b", "shall not"),
        (r"\bain't\b", "is not"),
        (r"\b(\w+)n't\b", r"\1 not"),
        (
            r"\b(do|does|did|is|are|was|were|has|have|had|should|could|would|must|need)nt\b",
            r"\1 not",
        ),
        (r"(\w)'(?:s|re|ll|ve|d|m)\b", r"\1"),
        (r"(\w)s'(?!\w)", r"\1s"),
        (r"\bi'm\b|\bim\b", "I"),
    )
)
# All aliases in one alternation (one pass instead of one per alias); at a given position the
# first entry that matches wins, so "Node.js" is Node.js before "js" can be JavaScript.
_ALIAS_RE = re.compile("|".join(f"(?P<a{i}>{pattern})" for i, (pattern, _) in enumerate(ALIASES)))
_ALIAS_REPLACEMENTS: dict[str, str] = {f"a{i}": repl for i, (_, repl) in enumerate(ALIASES)}
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

_TOKEN_RE = re.compile(
    r"(?P<flag>(?<![\w\-/.])--?[A-Za-z][\w\-]*)"
    r"|(?P<path>(?<![\w/])(?:~|\.{1,2})?/[\w.\-]+(?:/[\w.\-]*)*)"
    r"|(?P<ext>(?<![\w.])\.[A-Za-z]\w*)"
    r"|(?P<date>\d{4}-\d{1,2}-\d{1,2}\b|\d{1,2}/\d{1,2}/\d{2,4}\b)"
    r"|(?P<time>\d{1,2}:\d{2}(?::\d{2})?)"
    r"|(?P<frac>\d+/\d+)"
    r"|(?P<num>(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)*|(?<![\d])-?\.\d+)"
    r"|(?P<deco>(?<![\w@])@[^\W\d]\w*(?:\.[^\W\d]\w*)*)"
    r"|(?P<word>[^\W\d]\w*(?:\.[^\W\d]\w*)*(?:\(\))?)"
    r"|(?P<sym>[$€£¥₹%#&+=<>*/~^])"
    r"|(?P<punct>[.?!;:,()\[\]{}\n|])"
)
_SENTENCE_END = frozenset(".?!;:\n|")


@dataclass
class _Token:
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


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _normalize(text: str) -> tuple[str, set[str], set[str], set[str]]:
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

    text = _QUOTE_RE.sub(quote, text)
    text = text.replace("’", "'").replace("‘", "'")
    words = re.findall(r"[A-Za-z]{2,}", text)
    if len(words) >= 3 and sum(w.isupper() for w in words) >= 0.6 * len(words):
        text = text.lower()  # SHOUTING: capitals carry no information
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = _ABBREVIATIONS_RE.sub(lambda m: m.group(0)[:-1].replace(".", ""), text)
    text = _ALIAS_RE.sub(lambda m: _ALIAS_REPLACEMENTS[m.lastgroup or ""], text)
    text = _PERCENT_RE.sub("percent", text)
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

    text = _SQUARE_RE.sub(square, text)

    def decade(match: re.Match[str]) -> str:
        short, full = match.group(1), match.group(2)
        dates.add(f"decade:{full or '19' + short}")
        return " "

    text = _DECADE_RE.sub(decade, text)

    def quarter(match: re.Match[str]) -> str:
        dates.add(f"quarter:{match.group(1)}")
        return " "

    text = _QUARTER_RE.sub(quarter, text)

    def ampm(match: re.Match[str]) -> str:
        dates.add(f"{match.group(1).lower()}m")
        return " "

    text = _AMPM_RE.sub(ampm, text)
    text = _SHORT_HYPHEN_RE.sub(r"\1\2", text)
    text = _LETTERS_DIGITS_RE.sub(r"\1 \2", text)
    text = _DIGITS_LETTERS_RE.sub(r"\1 \2", text)
    text = _DIGITS_SYMBOL_RE.sub(r"\1 \2", text)
    text = _DEGREES_RE.sub(
        lambda m: (
            " " + {"c": "celsius", "f": "fahrenheit", "k": "kelvin"}[m.group(1)[0].lower()] + " "
        ),
        text,
    )
    text = _BARE_DEGREES_RE.sub(" ", text)
    return text, quoted, code, dates


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    initial = True
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or ""
        value = match.group(0)
        if kind == "punct":
            if value in _SENTENCE_END:
                initial = True
            tokens.append(_Token(kind, value, value, match.start(), match.end(), False))
            continue
        tokens.append(_Token(kind, value, _ascii_lower(value), match.start(), match.end(), initial))
        initial = False
    return tokens


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


@dataclass
class _Collector:
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

    def number(self, value: str, tag: str) -> None:
        if value == "1" and tag == "number":
            return  # "1 cup" = "a cup" = "one cup": a plain 1 is soft, never a difference
        # A value seen with several tags keeps the most specific one.
        rank = {"version": 3, "date": 2, "number": 1}
        if rank[tag] > rank.get(self.numbers.get(value, ""), 0):
            self.numbers[value] = tag


def _phrases(text: str, tokens: list[_Token], out: _Collector) -> None:
    """Multi-word phrases: relative dates, quantifier and scope phrases, fillers."""
    low = _ascii_lower(text)

    def consume(start: int, end: int) -> None:
        for token in tokens:
            if token.start >= start and token.end <= end:
                token.used = True

    for match in _RELATIVE_DAYS_RE.finditer(low):
        out.dates.add("rel:" + match.group(0).replace(" ", "-"))
        consume(match.start(), match.end())
    for match in _RELATIVE_RE.finditer(low):
        modifier = _RELATIVE_MODIFIERS[match.group(1)]
        out.dates.add(f"rel:{modifier}-{match.group(2)}")
        consume(match.start(), match.end())
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
            consume(match.start(), match.end())


_PHRASE_RES: tuple[tuple[re.Pattern[str], str | None, str | None], ...] = tuple(
    (re.compile(rf"\b(?:{pattern})\b"), check, group) for pattern, check, group in _PHRASES
)


def _is_number_token(token: _Token) -> bool:
    return token.kind in ("num", "frac", "date", "time") or (
        token.kind == "word" and (token.low in _NUMBER_WORDS or token.low in _ORDINALS)
    )


def _previous(tokens: list[_Token], index: int) -> _Token | None:
    return tokens[index - 1] if index > 0 else None


def _version_context(tokens: list[_Token], index: int) -> bool:
    """Whether the number at ``index`` follows a version marker or a product name."""
    prev = _previous(tokens, index)
    if prev is None or prev.kind != "word" or prev.end < tokens[index].start - 1:
        return False
    if prev.low in _VERSION_MARKERS or prev.low in TECH_NAMES:
        return True
    text = prev.text
    if prev.low in COMMON_WORDS or prev.low in _MONTHS or text in _MONTH_ABBREVIATIONS:
        return False
    if prev.low in _UNIT_WORDS or prev.low in _NUMBER_WORDS or prev.low in _ORDINALS:
        return False
    return text[:1].isupper() or any(c.isupper() for c in text[1:])


def _numbers(tokens: list[_Token], out: _Collector) -> dict[int, str]:
    """Numeric values with their tags; returns {index of last token of a number: value}."""
    ends: dict[int, str] = {}
    i = 0
    n = len(tokens)
    while i < n:
        token = tokens[i]
        if token.used:
            i += 1
            continue
        if token.kind == "date":
            parts = [int(p) for p in re.split(r"[-/]", token.text)]
            if "-" in token.text:
                year, month, day = parts
            else:
                month, day, year = parts
                if month > 12:
                    month, day = day, month
                if year < 100:
                    year += 2000
            out.number(str(year), "date")
            out.number(str(day), "date")
            out.dates.add(f"month:{month}")
            token.used = True
            i += 1
            continue
        if token.kind == "time":
            hours, _, rest = token.text.partition(":")
            value = f"{int(hours)}:{rest}"  # "09:30" = "9:30"
            out.number(value, "date")
            token.used = True
            ends[i] = value
            i += 1
            continue
        if token.kind == "frac":
            top, bottom = (int(p) for p in token.text.split("/"))
            value = _num_str(top / bottom) if bottom else token.text
            out.number(value, "number")
            token.used = True
            ends[i] = value
            i += 1
            continue
        if token.kind == "num":
            raw = token.text.replace(",", "")
            token.used = True
            if raw.count(".") >= 2:
                out.number(raw, "version")
                ends[i] = raw
                i += 1
                continue
            if _version_context(tokens, i) or (
                # "from 3.11 to 3.12", "Angular 16 to 17": the second is a version too
                i >= 2
                and tokens[i - 1].low in ("to", "and", "or", "vs", "from", "-", ",", "/")
                and out.numbers.get(tokens[i - 2].text.replace(",", "")) == "version"
            ):
                out.number(raw, "version")
                ends[i] = raw
                i += 1
                continue
            value = float(raw)
            last = i
            # ordinal suffix: 1st, 2nd, 15th
            nxt = tokens[i + 1] if i + 1 < n else None
            if nxt is not None and nxt.start == token.end and nxt.low in ("st", "nd", "rd", "th"):
                nxt.used = True
                last = i + 1
            # multipliers: 1.5 million, 10k, two dozen
            nxt = tokens[last + 1] if last + 1 < n else None
            if (
                nxt is not None
                and nxt.kind == "word"
                and nxt.text in _NUMBER_MULTIPLIERS
                and (nxt.text not in ("k", "K") or nxt.start == token.end + 1)
            ):
                value *= _NUMBER_MULTIPLIERS[nxt.text]
                nxt.used = True
                last += 1
            tag = "number"
            if (
                re.fullmatch(r"\d{4}", raw)
                and 1800 <= value <= 2100
                and last == i
                and not _unit_at(tokens, i + 1)
            ):
                tag = "date"
            if _near_month(tokens, i):
                tag = "date"
            if re.fullmatch(r"-?\d{1,30}", raw) and value == float(raw):
                text = str(int(raw))  # exact, however many digits
            else:
                text = _num_str(value)
            out.number(text, tag)
            ends[last] = text
            i = last + 1
            continue
        if token.kind == "word" and token.low in _ORDINALS:
            if token.low == "second" and _is_time_second(tokens, i):
                i += 1
                continue
            token.used = True
            value = _ORDINALS[token.low]
            if value != 1 or _near_month(tokens, i):  # "first" is soft, like "one"
                out.number(str(value), "date" if _near_month(tokens, i) else "number")
            i += 1
            continue
        if token.kind == "word" and (token.low in _NUMBER_WORDS or token.low in ("a", "an")):
            j, value = _parse_number_words(tokens, i)
            if j == i:
                i += 1
                continue
            last = j - 1
            nxt = tokens[j] if j < n else None
            if nxt is not None and nxt.kind == "word" and nxt.low == "dozen":
                value *= 12
                nxt.used = True
                last = j
            out.number(_num_str(value), "number")
            for t in tokens[i : last + 1]:
                t.used = True
            ends[last] = _num_str(value)
            i = last + 1
            continue
        if token.kind == "word" and token.low in ("dozen", "half"):
            token.used = True
            value = 12.0 if token.low == "dozen" else 0.5
            out.number(_num_str(value), "number")
            ends[i] = _num_str(value)
            i += 1
            continue
        i += 1
    return ends


def _parse_number_words(tokens: list[_Token], start: int) -> tuple[int, float]:
    """Parse "twenty five", "two hundred and six", "a thousand"; returns (end index, value)."""
    total = 0
    current = 0
    i = start
    seen = False
    n = len(tokens)
    if tokens[i].low in ("a", "an"):
        nxt = tokens[i + 1] if i + 1 < n else None
        if nxt is None or nxt.low not in _SCALES:
            return start, 0.0
        current = 1
        i += 1
    while i < n:
        token = tokens[i]
        if token.kind != "word" or token.used:
            break
        low = token.low
        if low in _SMALL_NUMBERS:
            current += _SMALL_NUMBERS[low]
        elif low in _TENS:
            current += _TENS[low]
        elif low in _SCALES:
            scale = _SCALES[low]
            current = max(current, 1) * scale
            if scale >= 1000:
                total += current
                current = 0
        elif (
            low == "and"
            and seen
            and i + 1 < n
            and tokens[i + 1].low in _NUMBER_WORDS
            and tokens[i - 1].low in _SCALES
        ):
            pass
        else:
            break
        seen = True
        i += 1
    if not seen:
        return start, 0.0
    return i, float(total + current)


def _near_month(tokens: list[_Token], index: int) -> bool:
    for j in (index - 1, index - 2, index + 1, index + 2):
        if 0 <= j < len(tokens) and _month_of(tokens, j) is not None:
            if abs(j - index) == 2 and tokens[(j + index) // 2].low not in ("of", "the", ","):
                continue
            return True
    return False


def _month_of(tokens: list[_Token], index: int) -> int | None:
    token = tokens[index]
    if token.kind != "word":
        return None
    if token.text in _MONTH_ABBREVIATIONS:
        return _MONTH_ABBREVIATIONS[token.text]
    month = _MONTHS.get(token.low)
    if month is None:
        return None
    if token.low in ("may", "march"):
        # "may" the verb, "march" the verb: a month only when capitalized mid-sentence or
        # next to a number.
        neighbours = [tokens[j] for j in (index - 1, index + 1) if 0 <= j < len(tokens)]
        near_number = any(t.kind == "num" for t in neighbours)
        if not near_number and not (token.text[0].isupper() and not token.initial):
            return None
    return month


def _is_time_second(tokens: list[_Token], index: int) -> bool:
    prev = _previous(tokens, index)
    return prev is not None and (
        prev.kind == "num" or prev.low in ("a", "per", "each", "every", "one", "1")
    )


def _unit_at(tokens: list[_Token], index: int) -> tuple[str, str] | None:
    """The unit at ``index`` if that token is one (short spellings only after a number)."""
    if not 0 <= index < len(tokens):
        return None
    token = tokens[index]
    if token.kind not in ("word", "sym"):
        return None
    unit = _UNIT_WORDS.get(token.low)
    if unit is not None:
        return unit
    prev = _previous(tokens, index)
    after_number = prev is not None and (prev.kind == "num" or _is_number_token(prev))
    if after_number:
        return _UNIT_AFTER_NUMBER.get(token.text) or _UNIT_AFTER_NUMBER.get(token.low)
    return None


def _units(tokens: list[_Token], ends: dict[int, str], out: _Collector) -> dict[int, str]:
    """Units, attached to the number right before them ("5 km") or after a currency ("$5")."""
    unit_at: dict[int, str] = {}
    for i, token in enumerate(tokens):
        if token.used and i not in ends:
            continue
        if i in ends:
            continue
        unit = _unit_at(tokens, i)
        if unit is None:
            continue
        if token.low == "second" and not _is_time_second(tokens, i):
            continue
        token.used = True
        out.units.add(unit)
        unit_at[i] = unit[1]
        before = [t.low for t in tokens[max(0, i - 2) : i]]
        if before[-1:] in (["in"], ["into"], ["to"]) or before == ["how", "many"]:
            out.targets.add(unit)  # what is asked for: "how many watts", "in Fahrenheit"
        number = ends.get(i - 1)
        if number is None and i >= 2 and tokens[i - 1].low in ("square", "sq", "cubic"):
            number = ends.get(i - 2)
        if number is None and token.kind == "sym" and token.text != "%":
            number = ends.get(i + 1)  # $5, €20
        if number is not None:
            out.quantities.add((number, unit[1]))
    return unit_at


def _date_words(tokens: list[_Token], out: _Collector) -> None:
    for i, token in enumerate(tokens):
        if token.used or token.kind != "word":
            continue
        month = _month_of(tokens, i)
        if month is not None:
            out.dates.add(f"month:{month}")
            token.used = True
            continue
        if token.low in _DATE_WORDS:
            out.dates.add(_DATE_WORDS[token.low])
            token.used = True
        elif token.low == "spring" and token.text == "spring":
            out.dates.add("spring")
            token.used = True
        elif token.low in _DECADE_WORDS:
            out.dates.add(f"decade:{_DECADE_WORDS[token.low]}")
            token.used = True
        elif token.text in ("AD", "BC", "BCE", "CE") and i and tokens[i - 1].kind == "num":
            out.dates.add(token.text.lower())
            token.used = True


def _lexical(tokens: list[_Token], out: _Collector) -> None:
    for token in tokens:
        if token.used or token.kind != "word":
            continue
        low = token.low
        if low in _NEGATION_WORDS:
            out.negations += 1
            token.used = True
        elif low in _QUANTIFIER_WORDS:
            out.quantifiers.add(_QUANTIFIER_WORDS[low])
            token.used = True
        elif low in _SCOPE_WORDS:
            out.scopes.add(_SCOPE_WORDS[low])
            token.used = True


_CAMEL_RE = re.compile(r"[a-z]{2,}[A-Z]\w*")
_PASCAL_CODE_RE = re.compile(r"[A-Z]\w*(?:Error|Exception|Warning)")


def _names(tokens: list[_Token], text: str, title_case: bool, out: _Collector) -> list[str]:
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
            or _CAMEL_RE.fullmatch(word)
            or _PASCAL_CODE_RE.fullmatch(word)
        ):
            if re.search(r"[^\W\d_]", word):
                out.code.add(_ascii_lower(word))
            continue
        low = _ascii_lower(word)
        entity = False
        if low in TECH_NAMES:
            entity = True
        elif len(word) >= 2 and word.isupper():
            entity = word not in ("I", "OK", "AM", "PM")
        elif any(c.isupper() for c in word[1:]) and word[0].isalpha():
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


def _directions(
    tokens: list[_Token], unit_at: dict[int, str], entity_at: list[str], out: _Collector
) -> None:
    """Ordered pairs: "X to Y" (X, Y both units or both names) and "Y in a X" for units."""
    n = len(tokens)

    def phrase_at(i: int, step: int) -> tuple[str, int] | None:
        """The unit or name phrase ending (step=-1) or starting (step=1) at token i."""
        if not 0 <= i < n:
            return None
        if i in unit_at:
            return "unit:" + unit_at[i], i
        if not entity_at[i]:
            return None
        j = i
        words = []
        while 0 <= j < n and entity_at[j]:
            words.append(entity_at[j])
            j += step
        if step < 0:
            words.reverse()
        return "entity:" + " ".join(words), j

    for i, token in enumerate(tokens):
        if token.kind != "word":
            continue
        if token.low in ("to", "into"):
            left = phrase_at(i - 1, -1)
            k = i + 1
            if k < n and tokens[k].low in ("a", "an", "the"):
                k += 1
            right = phrase_at(k, 1)
        elif token.low == "in":
            k = i - 1
            if k >= 0 and tokens[k].low in ("are", "is"):
                k -= 1
            right = phrase_at(k, -1)
            # only "how many X in a Y" (Y → X); "30 km in miles" has no article and is X → Y,
            # which "to" already covers
            k = i + 1
            if k >= n or tokens[k].low not in ("a", "an", "one", "1"):
                continue
            left = phrase_at(k + 1, 1)
            if left is None or right is None or not left[0].startswith("unit:"):
                continue
        else:
            continue
        if left is None or right is None:
            continue
        kind_left, x = left[0].split(":", 1)
        kind_right, y = right[0].split(":", 1)
        if kind_left == kind_right and x != y:
            out.directions.add((kind_left, x, y))


@lru_cache(maxsize=4096)
def extract_features(text: str) -> Features:
    """Extract everything the guard compares from one prompt (cached per string)."""
    normalized, quoted, code_spans, dates = _normalize(text)
    tokens = _tokenize(normalized)
    out = _Collector()
    out.dates |= dates
    out.code |= code_spans
    _phrases(normalized, tokens, out)
    ends = _numbers(tokens, out)
    unit_at = _units(tokens, ends, out)
    _date_words(tokens, out)
    _lexical(tokens, out)
    capitalized = [t for t in tokens if t.kind == "word" and t.text[:1].isalpha()]
    title_case = len(capitalized) >= 4 and sum(
        t.text[0].isupper() for t in capitalized
    ) >= 0.7 * len(capitalized)
    entity_at = _names(tokens, normalized, title_case, out)
    _directions(tokens, unit_at, entity_at, out)
    searchable = re.sub(r"\s+", " ", normalized).strip()
    words = {
        part
        for token in tokens
        if token.kind == "word"
        for part in token.low.removesuffix("()").split(".")
        if part
    }
    return Features(
        negations=out.negations,
        quoted=frozenset(quoted),
        code=frozenset(out.code),
        flags=frozenset(out.flags),
        numbers=frozenset(out.numbers),
        number_tags=tuple(sorted(out.numbers.items())),
        dates=frozenset(out.dates),
        units=frozenset(out.units),
        quantities=frozenset(out.quantities),
        targets=frozenset(out.targets),
        directions=frozenset(out.directions),
        entities=frozenset(out.entities),
        quantifiers=frozenset(out.quantifiers),
        scopes=frozenset(out.scopes),
        words=frozenset(words),
        text=_ascii_lower(searchable),
        raw_text=searchable,
    )


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


def _appears(item: str, text: str) -> bool:
    """Whether ``item`` occurs in ``text`` as whole words (for quotes and identifiers)."""
    pattern = r"(?<![\w\-.])" + re.escape(item) + r"(?![\w\-]|\.\w)"
    return re.search(pattern, text) is not None


def _fmt(items: Iterable[object]) -> str:
    return "{" + ", ".join(repr(i) for i in sorted(items, key=str)) + "}" if items else "{}"


def _missing_items(mine: frozenset[str], theirs: frozenset[str], their_text: str) -> set[str]:
    return {item for item in mine - theirs if not _appears(item, their_text)}


class TrapGuard:
    """Rejects candidate semantic hits whose prompts differ in an answer-changing detail.

    ``checks`` selects the checks to run (names from :data:`CHECKS`); None runs them all.
    :meth:`check` is pure and thread-safe; feature extraction is cached per prompt string.
    """

    def __init__(self, *, checks: Iterable[str] | None = None) -> None:
        if checks is None:
            enabled = set(CHECKS)
        else:
            enabled = set(checks)
            unknown = enabled - set(CHECKS)
            if unknown:
                raise ValueError(
                    f"unknown trap guard checks {sorted(unknown)}; known: {list(CHECKS)}"
                )
        self.checks: tuple[str, ...] = tuple(c for c in CHECKS if c in enabled)

    def __repr__(self) -> str:
        return f"TrapGuard(checks={list(self.checks)!r})"

    def check(self, new_prompt: str, cached_prompt: str) -> GuardVerdict:
        """Whether the answer cached for ``cached_prompt`` may be served for ``new_prompt``."""
        if new_prompt == cached_prompt:
            return GuardVerdict(True, None)
        a = extract_features(new_prompt)
        b = extract_features(cached_prompt)
        findings = _compare(a, b)
        for name in self.checks:
            detail = findings.get(name)
            if detail:
                return GuardVerdict(False, name, detail)
        return GuardVerdict(True, None)


def _compare(a: Features, b: Features) -> dict[str, str]:
    """Every check that differs between two prompts, with a human-readable detail."""
    found: dict[str, str] = {}
    if a.negations != b.negations:
        found["negation"] = f"negations differ: {a.negations} vs {b.negations}"

    qa = _missing_items(a.quoted, b.quoted, b.text)
    qb = _missing_items(b.quoted, a.quoted, a.text)
    if qa or qb:
        found["quoted"] = f"quoted strings differ: {_fmt(qa)} vs {_fmt(qb)}"

    ca = _missing_items(a.code, b.code, b.text)
    cb = _missing_items(b.code, a.code, a.text)
    fa = _missing_items(a.flags, b.flags, b.raw_text)
    fb = _missing_items(b.flags, a.flags, a.raw_text)
    if ca or cb or fa or fb:
        found["code"] = f"code identifiers differ: {_fmt(ca | fa)} vs {_fmt(cb | fb)}"

    na = set(a.numbers)
    nb = set(b.numbers)
    tags = dict(a.number_tags) | dict(b.number_tags)
    for tag in ("version", "date", "number"):
        only_a = {v for v in na - nb if tags[v] == tag}
        only_b = {v for v in nb - na if tags[v] == tag}
        if only_a or only_b:
            label = {"version": "versions", "date": "years/dates", "number": "numbers"}[tag]
            found[tag] = f"{label} differ: {_fmt(only_a)} vs {_fmt(only_b)}"

    if a.dates != b.dates and "date" not in found:
        found["date"] = f"dates differ: {_fmt(a.dates - b.dates)} vs {_fmt(b.dates - a.dates)}"

    unit_detail = _compare_units(a, b)
    if unit_detail:
        found["unit"] = unit_detail

    ea = {e for e in a.entities - b.entities if len(e) < 2 or e not in b.words}
    eb = {e for e in b.entities - a.entities if len(e) < 2 or e not in a.words}
    if ea or eb:
        found["entity"] = f"names differ: {_fmt(ea)} vs {_fmt(eb)}"
    else:
        swapped = _swapped(a, b, "entity")
        if swapped:
            found["entity"] = swapped

    if a.quantifiers != b.quantifiers:
        found["quantifier"] = (
            f"quantifiers differ: {_fmt(a.quantifiers - b.quantifiers)} "
            f"vs {_fmt(b.quantifiers - a.quantifiers)}"
        )
    if a.scopes != b.scopes:
        found["scope"] = (
            f"scope words differ: {_fmt(a.scopes - b.scopes)} vs {_fmt(b.scopes - a.scopes)}"
        )
    return found


def _compare_units(a: Features, b: Features) -> str:
    dims_a: dict[str, set[str]] = {}
    dims_b: dict[str, set[str]] = {}
    for dim, unit in a.units:
        dims_a.setdefault(dim, set()).add(unit)
    for dim, unit in b.units:
        dims_b.setdefault(dim, set()).add(unit)
    for dim in sorted(dims_a.keys() & dims_b.keys()):
        if dims_a[dim] != dims_b[dim]:
            return f"{dim} units differ: {_fmt(dims_a[dim])} vs {_fmt(dims_b[dim])}"
    per_a: dict[str, set[str]] = {}
    per_b: dict[str, set[str]] = {}
    for value, unit in a.quantities:
        per_a.setdefault(value, set()).add(unit)
    for value, unit in b.quantities:
        per_b.setdefault(value, set()).add(unit)
    for value in sorted(per_a.keys() & per_b.keys()):
        if per_a[value] != per_b[value]:
            return f"units of {value} differ: {_fmt(per_a[value])} vs {_fmt(per_b[value])}"
    if a.targets and b.targets and a.targets != b.targets:
        units_a = {unit for _, unit in a.targets}
        units_b = {unit for _, unit in b.targets}
        return f"units asked for differ: {_fmt(units_a)} vs {_fmt(units_b)}"
    return _swapped(a, b, "unit")


def _swapped(a: Features, b: Features, kind: str) -> str:
    for k, x, y in a.directions:
        if k == kind and (k, y, x) in b.directions and (k, x, y) not in b.directions:
            return f"direction differs: {x} → {y} vs {y} → {x}"
    return ""
