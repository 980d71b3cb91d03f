"""Numbers, versions, dates and units: extraction and the ``version``, ``date``, ``unit`` and
``number`` checks.

All numeric values of a prompt form one set: digits ("1,000" -> 1000, "1.5k" -> 1500), number
words ("twenty-five" -> 25, "a dozen" -> 12, "half" -> 0.5), ordinals ("2nd", "second"),
fractions, times, and dates ("2024-03-15"). A plain 1 ("one", "first", "1") never counts: it
is mostly "a"/"the" written differently ("1 cup" = "a cup", "which one", "the first time"),
and "1" against "2" is still caught by the 2. Each value is tagged by its context: a
**version** after "v"/"version"/"release" or a product name ("Python 3.11", "iOS 17"; dotted
triples like "3.11.2" always), a **date** for years (1800-2100 written as four digits), days
next to a month and clock times, else a plain **number**. The values are compared as one set,
so "2022 World Cup" and "World Cup 2022" agree; the tag of a differing value names the check.
The ``date`` check also compares months, weekdays, relative dates ("tomorrow", "next week"),
seasons, quarters, decades, times of day and am/pm.

Units are canonicalized ("km", "kilometres" -> km; "°C", "Celsius" -> C; "$", "dollars" ->
USD) and grouped by dimension. A prompt that names a unit the other leaves implicit is fine;
a *different* unit of the same dimension on both sides is not ("km" / "miles"), the number a
unit is attached to must carry the same unit on both sides, the unit asked for must be the
same when both name one ("how many watts" / "how many amps"), and a conversion must go the
same way ("Celsius to Fahrenheit" / "Fahrenheit to Celsius").
"""

from __future__ import annotations

import re

from semcache_core.guard import lexicon
from semcache_core.guard.overlap import broad_rewording
from semcache_core.guard.tokens import (
    COMMON_WORDS,
    TECH_NAMES,
    Collector,
    Features,
    Token,
    _num_str,
    _words,
    _wordset,
    consume,
    fmt,
    swapped,
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
    "midday": "noon",
    "midnight": "midnight",
    # times of day by the sun: another light, another answer (photography, gardening, prayer)
    "dawn": "dawn",
    "dusk": "dusk",
    "sunrise": "sunrise",
    "sunset": "sunset",
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


#: Unit words recognized anywhere (lower case), and short spellings that are units only right
#: after a number ("5 m", "350 F"): ``data/units.tsv``, ``data/units_after_number.tsv``.
_UNIT_WORDS: dict[str, tuple[str, str]] = {
    w: (v[0], v[1]) for w, v in lexicon.table("units.tsv").items()
}
_UNIT_AFTER_NUMBER: dict[str, tuple[str, str]] = {
    w: (v[0], v[1]) for w, v in lexicon.table("units_after_number.tsv").items()
}

_NUMBER_MULTIPLIERS: dict[str, int] = {
    "k": 1_000,
    "K": 1_000,
    "bn": 1_000_000_000,
    "dozen": 12,
    **_SCALES,
}


def relative_dates(low: str, tokens: list[Token], out: Collector) -> None:
    """Relative dates ("tomorrow", "next week"), matched on the lower-cased text first."""
    for match in _RELATIVE_DAYS_RE.finditer(low):
        out.dates.add("rel:" + match.group(0).replace(" ", "-"))
        consume(tokens, match.start(), match.end())
    for match in _RELATIVE_RE.finditer(low):
        modifier = _RELATIVE_MODIFIERS[match.group(1)]
        out.dates.add(f"rel:{modifier}-{match.group(2)}")
        consume(tokens, match.start(), match.end())


def _is_number_token(token: Token) -> bool:
    return token.kind in ("num", "frac", "date", "time") or (
        token.kind == "word" and (token.low in _NUMBER_WORDS or token.low in _ORDINALS)
    )


def _previous(tokens: list[Token], index: int) -> Token | None:
    return tokens[index - 1] if index > 0 else None


def _version_context(tokens: list[Token], index: int) -> bool:
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


def _numbers(tokens: list[Token], out: Collector) -> dict[int, str]:
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
            clock = f"{int(hours)}:{rest}"  # "09:30" = "9:30"
            out.number(clock, "date")
            token.used = True
            ends[i] = clock
            i += 1
            continue
        if token.kind == "frac":
            top, bottom = (int(p) for p in token.text.split("/"))
            fraction = _num_str(top / bottom) if bottom else token.text
            out.number(fraction, "number")
            token.used = True
            ends[i] = fraction
            i += 1
            continue
        if token.kind == "num" and _is_texting_to(tokens, i):
            token.used = True  # "how 2 get wine out": "2" is "to"
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
            ordinal = _ORDINALS[token.low]
            if ordinal != 1 or _near_month(tokens, i):  # "first" is soft, like "one"
                out.number(str(ordinal), "date" if _near_month(tokens, i) else "number")
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


_TEXTING_TO_BEFORE = _wordset("how way ways want wants need needs going wanna able")


def _is_texting_to(tokens: list[Token], index: int) -> bool:
    """A "2" written for "to" between a word like "how" and a word: "how 2 get ..."."""
    if tokens[index].text != "2" or index == 0 or index + 1 >= len(tokens):
        return False
    before, after = tokens[index - 1], tokens[index + 1]
    return (
        before.low in _TEXTING_TO_BEFORE
        and after.kind == "word"
        and after.low not in (_UNIT_WORDS.keys() | _SCALES.keys())
    )


def _parse_number_words(tokens: list[Token], start: int) -> tuple[int, float]:
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


def _near_month(tokens: list[Token], index: int) -> bool:
    for j in (index - 1, index - 2, index + 1, index + 2):
        if 0 <= j < len(tokens) and _month_of(tokens, j) is not None:
            if abs(j - index) == 2 and tokens[(j + index) // 2].low not in ("of", "the", ","):
                continue
            return True
    return False


def _month_of(tokens: list[Token], index: int) -> int | None:
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


def _is_time_second(tokens: list[Token], index: int) -> bool:
    prev = _previous(tokens, index)
    return prev is not None and (
        prev.kind == "num" or prev.low in ("a", "per", "each", "every", "one", "1")
    )


def _unit_at(tokens: list[Token], index: int) -> tuple[str, str] | None:
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


def _units(tokens: list[Token], ends: dict[int, str], out: Collector) -> dict[int, str]:
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


def _date_words(tokens: list[Token], out: Collector) -> None:
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


# -- checks ------------------------------------------------------------------------------------


def _numbers_differ(a: Features, b: Features, tag: str) -> str | None:
    if a.numbers == b.numbers:
        return None  # (most often: none on either side)
    tags = dict(a.number_tags) | dict(b.number_tags)
    only_a = {v for v in a.numbers - b.numbers if tags[v] == tag}
    only_b = {v for v in b.numbers - a.numbers if tags[v] == tag}
    if only_a or only_b:
        if tag != "version" and not (only_a and only_b) and broad_rewording(a, b):
            return None  # "a third-party seller" / "a marketplace vendor"
        label = {"version": "versions", "date": "years/dates", "number": "numbers"}[tag]
        return f"{label} differ: {fmt(only_a)} vs {fmt(only_b)}"
    return None


def version_differs(a: Features, b: Features) -> str | None:
    return _numbers_differ(a, b, "version")


_BREAK_CHARS = frozenset(".!?:;\n")
_ASKER = frozenset(["i", "we", "my", "our", "me", "us"])


def _context_only(x: Features, y: Features) -> bool:
    """Whether ``x`` is ``y``'s whole question with a sentence of context around it, and all
    of ``x``'s dates are relative ones in that context ("Travelling next week! How do I
    activate roaming?" / "How do I activate roaming?"); not "... in Paris next week?"."""
    if y.dates or not x.dates or not all(d.startswith("rel:") for d in x.dates):
        return False
    core = y.text.rstrip(" .?!")
    at = x.text.find(core) if len(core) >= 12 else -1
    if at < 0:
        return False
    before, after = x.text[:at].rstrip(), x.text[at + len(core) :]
    # a sentence about the asker ("I'm travelling next week"), not a bare time ("Next week:")
    context = before.split()
    if not any(w in _ASKER or w.endswith("ing") for w in context):
        return False
    # the context is a sentence of its own: a break (or a non-letter such as an emoji)
    # right before the question, and the question ends where a sentence does
    return (
        bool(before)
        and (before[-1] in _BREAK_CHARS or not before[-1].isascii())
        and (not after or after[0] in _BREAK_CHARS)
    )


def date_differs(a: Features, b: Features) -> str | None:
    found = _numbers_differ(a, b, "date")
    if found is None and a.dates != b.dates and not _context_only(a, b) and not _context_only(b, a):
        only_a, only_b = a.dates - b.dates, b.dates - a.dates
        if (only_a and only_b) or not broad_rewording(a, b):
            found = f"dates differ: {fmt(only_a)} vs {fmt(only_b)}"
    return found


def number_differs(a: Features, b: Features) -> str | None:
    return _numbers_differ(a, b, "number")


def unit_differs(a: Features, b: Features) -> str | None:
    if (
        not ((a.units and b.units) or (a.quantities and b.quantities) or (a.targets and b.targets))
        and not a.directions
    ):
        return None  # nothing below compares anything (most prompts have no unit)
    dims_a: dict[str, set[str]] = {}
    dims_b: dict[str, set[str]] = {}
    for dim, unit in a.units:
        dims_a.setdefault(dim, set()).add(unit)
    for dim, unit in b.units:
        dims_b.setdefault(dim, set()).add(unit)
    asked = {u for _, u in a.targets} if not b.targets else set()
    asked |= {u for _, u in b.targets} if not a.targets else set()
    for dim in sorted(dims_a.keys() & dims_b.keys()):
        # a unit one prompt only asks for ("how many hours per day" / "how much a day")
        if dims_a[dim] != dims_b[dim] and not (dims_a[dim] ^ dims_b[dim]) <= asked:
            return f"{dim} units differ: {fmt(dims_a[dim])} vs {fmt(dims_b[dim])}"
    per_a: dict[str, set[str]] = {}
    per_b: dict[str, set[str]] = {}
    for value, unit in a.quantities:
        per_a.setdefault(value, set()).add(unit)
    for value, unit in b.quantities:
        per_b.setdefault(value, set()).add(unit)
    for value in sorted(per_a.keys() & per_b.keys()):
        if per_a[value] != per_b[value]:
            return f"units of {value} differ: {fmt(per_a[value])} vs {fmt(per_b[value])}"
    if a.targets and b.targets and a.targets != b.targets:
        units_a = {unit for _, unit in a.targets}
        units_b = {unit for _, unit in b.targets}
        return f"units asked for differ: {fmt(units_a)} vs {fmt(units_b)}"
    return swapped(a, b, "unit")
