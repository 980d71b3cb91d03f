"""The guard's data files (``semcache_core/guard/data/``), loaded once, lazily.

Every list or table the checks consult is a data file next to this module, shipped as package
data; nothing is read from anywhere else or downloaded at run time. Formats:

- ``*.txt``: one entry per line; ``#`` starts a comment.
- ``*.tsv``: ``key<TAB>value value ...``; ``#`` comment lines.

``antonyms.tsv``, ``inflections.tsv`` and ``prefix_false_friends.txt`` are generated from
WordNet 3.0 by ``scripts/build_lexicon.py`` (license: ``data/WORDNET_LICENSE``); the others
(``antonyms_curated.tsv`` among them, merged into the WordNet table) are curated by hand.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["antonyms", "lemmas", "table", "vocabulary", "words"]


def _lines(name: str) -> list[str]:
    text = resources.files(__package__).joinpath("data").joinpath(name).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        line = line.rstrip()
        if line.strip():
            out.append(line)
    return out


@cache
def words(name: str) -> frozenset[str]:
    """The words of a ``.txt`` data file (whitespace-separated; comments after ``#``)."""
    return frozenset(word for line in _lines(name) for word in line.split("#", 1)[0].split())


@cache
def table(name: str, sep: str | None = None) -> dict[str, tuple[str, ...]]:
    """A ``key<TAB>value value ...`` data file as a dict (values split on ``sep``, default
    whitespace; ``"|"`` for files of multi-word values)."""
    out: dict[str, tuple[str, ...]] = {}
    for line in _lines(name):
        key, _, rest = line.partition("\t")
        values = rest.split(sep)
        out[key.strip()] = tuple(v.strip() for v in values if v.strip())
    return out


@cache
def antonyms() -> dict[str, frozenset[str]]:
    """WordNet lemma -> its antonyms (direct, plus unambiguous indirect ones for adjectives),
    with the curated pairs of ``antonyms_curated.tsv`` added both ways."""
    merged: dict[str, set[str]] = {k: set(v) for k, v in table("antonyms.tsv").items()}
    for word, opposites in table("antonyms_curated.tsv").items():
        for opposite in opposites:
            merged.setdefault(word, set()).add(opposite)
            merged.setdefault(opposite, set()).add(word)
    return {k: frozenset(v) for k, v in merged.items()}


@cache
def curated_synonyms() -> dict[str, frozenset[str]]:
    """Curated synonyms (``synonyms_curated.tsv``): the words of a line are synonyms of each
    other (also British / American spellings: "tyre" / "tire")."""
    out: dict[str, set[str]] = {}
    for word, others in table("synonyms_curated.tsv").items():
        group = {word, *others}
        for member in group:
            out.setdefault(member, set()).update(group - {member})
    return {k: frozenset(v) for k, v in out.items()}


@cache
def _inflections() -> dict[str, tuple[str, ...]]:
    return table("inflections.tsv")


def lemmas(word: str) -> tuple[str, ...]:
    """The word itself and the lemmas it is an inflected form of ("lent" -> lent, lend)."""
    found = _inflections().get(word)
    return (word, *found) if found else (word,)


def lemmas_of(words: frozenset[str]) -> frozenset[str]:
    """Every word of ``words`` and the lemmas each is an inflected form of: the union of
    :func:`lemmas` over them, without a tuple per word."""
    table = _inflections()
    out = set(words)
    for word in words:
        found = table.get(word)
        if found:
            out.update(found)
    return frozenset(out)


@cache
def vocabulary() -> frozenset[str]:
    """Every word some table knows: WordNet lemmas and their inflections, function words,
    common words and technology names (a word outside it may be a typo)."""
    out: set[str] = set()
    for name in ("inflections.tsv", "synonyms.tsv", "noun_kinds.tsv", "antonyms.tsv"):
        entries = table(name)
        out.update(entries)
    for forms in table("inflections.tsv").values():
        out.update(forms)
    for name in ("function_words.txt", "common_words.txt", "tech_names.txt", "negation_words.txt"):
        out.update(words(name))
    return frozenset(out)
