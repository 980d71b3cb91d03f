"""Compile the trap guard's WordNet tables into ``semcache_core/guard/data/``.

    apt-get install wordnet-base          # Debian/Ubuntu: WordNet 3.0 under /usr/share/wordnet
    python scripts/build_lexicon.py [--wordnet /usr/share/wordnet]

Writes four files, committed with the package so that nothing is read from WordNet (or the
network) at run time:

``antonyms.tsv``
    ``lemma<TAB>opposite opposite ...``: WordNet's direct antonym pointers (``!``) of nouns,
    verbs, adjectives and adverbs, plus the *indirect* antonyms of adjectives: a satellite
    ("weighty") is the opposite of its head's antonym ("light"), one level only. Single words
    only (phrasal opposites are curated in ``phrasal_opposites.tsv``); a satellite joins only
    when it has at most two senses in all of WordNet (polysemous satellites, "hot" as in "hot
    off the press" under "new", made "hot" the opposite of "old"). Pairs listed in
    ``antonym_exclusions.txt`` (curated: senses that make ordinary rewordings look opposite)
    are dropped.
``inflections.tsv``
    ``form<TAB>lemma ...`` for every inflected form of a lemma of ``antonyms.tsv``: plurals,
    verb forms (-s, -ed, -ing, WordNet's irregular ``*.exc`` forms), comparatives and
    superlatives (-er/-est for short adjectives, irregular ones from ``adj.exc``).
``noun_kinds.tsv``
    ``noun<TAB>s<synset> ... p<hypernym> ...`` for single-word nouns: the synsets of their
    first four senses (the first sense only for nouns untagged in WordNet's sense counts) and
    the hypernyms one and two levels up. The
    ``lexical`` check rejects one noun swapped for another kind of the same thing (tea /
    coffee, guitar / piano) and lets synonyms (shared synset) through.
``prefix_false_friends.txt``
    Words that *look* like a negating prefix plus a word but are not its negation
    ("inform"/"form", "discover"/"cover", "install"/"stall"): a WordNet lemma with a prefix
    un-, non-, in-, im-, il-, ir-, dis-, whose rest is a lemma too, and that is neither a
    WordNet antonym of that rest nor glossed as its negation ("not ...", "lacking ...",
    "reverse ...", ...). The guard's morphology rule skips them.

WordNet 3.0 is © 2006 Princeton University; its license is in ``data/WORDNET_LICENSE``.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "semcache_core" / "guard" / "data"
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
#: Indirect antonyms come only from satellites with at most this many senses in WordNet.
MAX_SATELLITE_SENSES = 2
#: A hypernym shared by more frequent nouns than this is too general to make two nouns kinds
#: of one thing.
MAX_KIND_NOUNS = 60
PREFIXES = ("non", "un", "in", "im", "il", "ir", "dis")
#: Gloss words that mark a prefixed word as the negation of its stem.
NEGATIVE_GLOSS = re.compile(
    r"\b(not|no|lacking|lack|without|absence|incapable|unable|opposite|reverse|undo|remove"
    r"|free from|fail|failure|deprive|contrary|in(?:ability|capable))\b"
)


def parse_data(path: Path) -> dict[str, tuple[list[str], list[tuple[str, str, int, int]], str]]:
    """synset offset+pos -> (words, pointers (symbol, target, source word, target word), gloss)."""
    synsets = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # license header
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        offset, ss_type = parts[0], parts[2]
        count = int(parts[3], 16)
        words = [parts[4 + 2 * i].lower() for i in range(count)]
        words = [re.sub(r"\(.*\)$", "", w) for w in words]  # adjective markers: "(a)", "(p)"
        k = 4 + 2 * count
        n_pointers = int(parts[k])
        pointers = []
        for i in range(n_pointers):
            symbol, target, pos, source_target = parts[k + 1 + 4 * i : k + 5 + 4 * i]
            pointers.append(
                (symbol, target + pos.replace("s", "a"), int(source_target[:2], 16),
                 int(source_target[2:], 16))
            )  # fmt: skip
        key = offset + ("a" if ss_type == "s" else ss_type)
        synsets[key] = (words, pointers, gloss.lower())
    return synsets


def single(word: str) -> bool:
    return word.isalpha() and len(word) >= 2


def sense_counts(wordnet: Path) -> dict[str, int]:
    """How many synsets each lemma belongs to, over all parts of speech (index.* files)."""
    counts: dict[str, int] = defaultdict(int)
    for name in POS_FILES.values():
        for line in (wordnet / f"index.{name}").read_text(encoding="latin-1").splitlines():
            if not line.startswith("  "):
                parts = line.split()
                counts[parts[0]] += int(parts[2])
    return counts


def build_antonyms(wordnet: Path, exclusions: set[frozenset[str]]) -> dict[str, set[str]]:
    antonyms: dict[str, set[str]] = defaultdict(set)
    senses = sense_counts(wordnet)

    def add(a: str, b: str) -> None:
        if single(a) and single(b) and a != b and frozenset((a, b)) not in exclusions:
            antonyms[a].add(b)
            antonyms[b].add(a)

    for pos, name in POS_FILES.items():
        synsets = parse_data(wordnet / f"data.{name}")
        for words, pointers, _ in synsets.values():
            for symbol, target, source, target_word in pointers:
                if symbol != "!" or target not in synsets:
                    continue
                a = words[source - 1] if source else None
                b = synsets[target][0][target_word - 1] if target_word else None
                if a and b:
                    add(a, b)
                    if pos == "a":
                        # indirect antonyms: the satellites of this head are opposite to b
                        for symbol2, satellite, _, _ in pointers:
                            if symbol2 == "&" and satellite in synsets:
                                for word in synsets[satellite][0]:
                                    # only unambiguous satellites: "hot" is a satellite of
                                    # "new" (hot off the press) but mostly not "old"
                                    if senses.get(word, 0) <= MAX_SATELLITE_SENSES:
                                        add(word, b)
    return antonyms


def read_exc(path: Path) -> dict[str, set[str]]:
    """lemma -> irregular forms, from a WordNet ``*.exc`` file."""
    forms: dict[str, set[str]] = defaultdict(set)
    for line in path.read_text(encoding="latin-1").splitlines():
        form, *lemmas = line.split()
        for lemma in lemmas:
            forms[lemma].add(form)
    return forms


def _sibilant(word: str) -> bool:
    return word.endswith(("s", "x", "z", "ch", "sh"))


def _consonant_y(word: str) -> bool:
    return word.endswith("y") and len(word) > 2 and word[-2] not in "aeiou"


def _cvc(word: str) -> bool:
    """Short consonant-vowel-consonant words double their last letter: stop -> stopped."""
    return (
        len(word) <= 4
        and len(word) >= 3
        and word[-1] not in "aeiouwxy"
        and word[-2] in "aeiou"
        and word[-3] not in "aeiou"
    )


def regular_forms(word: str) -> set[str]:
    """Plural / 3rd person, past, -ing, -er/-est by the regular rules (over-generation is
    harmless: a form that is not a word never occurs in a prompt)."""
    forms = set()
    if _sibilant(word):
        forms.add(word + "es")
    elif _consonant_y(word):
        forms.add(word[:-1] + "ies")
    else:
        forms.add(word + "s")
    stem = word[:-1] if word.endswith("e") and not word.endswith("ee") else word
    if _consonant_y(word):
        forms |= {word[:-1] + "ied", word + "ing", word[:-1] + "ier", word[:-1] + "iest"}
    else:
        double = stem + stem[-1] if _cvc(word) else stem
        forms |= {
            (word + "d") if word.endswith("e") else double + "ed",
            double + "ing",
            (word + "r") if word.endswith("e") else double + "er",
            (word + "st") if word.endswith("e") else double + "est",
        }
    return forms


def build_inflections(wordnet: Path, lemmas: set[str]) -> dict[str, set[str]]:
    irregular: dict[str, set[str]] = defaultdict(set)
    for name in ("noun", "verb", "adj"):
        for lemma, forms in read_exc(wordnet / f"{name}.exc").items():
            irregular[lemma] |= forms
    inflections: dict[str, set[str]] = defaultdict(set)
    for lemma in lemmas:
        forms = regular_forms(lemma) | irregular.get(lemma, set())
        for form in forms:
            if form != lemma and form.isalpha():
                inflections[form].add(lemma)
    # A form that is itself a lemma keeps its own meaning too ("lent" is a lemma: the season).
    return inflections


def build_false_friends(wordnet: Path, antonyms: dict[str, set[str]]) -> set[str]:
    lemma_gloss: dict[str, list[str]] = defaultdict(list)
    for name in POS_FILES.values():
        for words, _, gloss in parse_data(wordnet / f"data.{name}").values():
            for word in words:
                lemma_gloss[word].append(gloss.split(";")[0])
    friends = set()
    for word, glosses in lemma_gloss.items():
        if not word.isalpha():
            continue
        for prefix in PREFIXES:
            stem = word[len(prefix) :]
            if not word.startswith(prefix) or len(stem) < 3 or stem not in lemma_gloss:
                continue
            if stem in antonyms.get(word, ()):
                continue
            if any(NEGATIVE_GLOSS.search(g) for g in glosses):
                continue
            friends.add(word)
    return friends


def build_noun_kinds(wordnet: Path, max_senses: int = 4) -> dict[str, list[str]]:
    """Noun lemma -> ``s<offset>`` for its synsets and ``p<offset>`` for their
    hypernyms one and two levels up (first ``max_senses`` senses: WordNet orders senses by
    frequency). Two nouns that share a ``p`` but no ``s`` are kinds of one thing (tea /
    coffee: beverages); sharing an ``s`` they are synonyms (refrigerator / fridge)."""
    synsets = parse_data(wordnet / "data.noun")

    def parents(offset: str) -> set[str]:
        return {t for sym, t, _, _ in synsets[offset][1] if sym in ("@", "@i") and t in synsets}

    kinds: dict[str, list[str]] = {}
    for line in (wordnet / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        parts = line.split()
        lemma, pointer_count = parts[0], int(parts[3])
        tagged = int(parts[5 + pointer_count])
        offsets = [o + "n" for o in parts[6 + pointer_count :]][: max_senses if tagged else 1]
        if not lemma.isalpha():
            continue
        own = {o for o in offsets if o in synsets}
        up = set()
        for offset in own:
            first = parents(offset)
            up |= first
            for parent in first:
                up |= parents(parent)
        kinds[lemma] = sorted("s" + o[:-1] for o in own) + sorted("p" + o[:-1] for o in up)
    # A parent over many frequent nouns ("communication", "abstraction") relates nothing.
    counts: dict[str, int] = defaultdict(int)
    for values in kinds.values():
        for value in values:
            counts[value] += 1
    return {
        lemma: [v for v in values if v[0] == "s" or counts[v] <= MAX_KIND_NOUNS]
        for lemma, values in kinds.items()
    }


def read_exclusions(path: Path) -> set[frozenset[str]]:
    pairs = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                a, b = line.split()
                pairs.add(frozenset((a, b)))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    if not (args.wordnet / "data.adj").exists():
        parser.error(f"no WordNet data files in {args.wordnet} (apt-get install wordnet-base)")
    header = "# generated by scripts/build_lexicon.py from WordNet 3.0 (see WORDNET_LICENSE)\n"

    antonyms = build_antonyms(args.wordnet, read_exclusions(args.out / "antonym_exclusions.txt"))
    lines = [f"{w}\t{' '.join(sorted(o))}" for w, o in sorted(antonyms.items())]
    (args.out / "antonyms.tsv").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")

    inflections = build_inflections(args.wordnet, set(antonyms))
    lines = [f"{f}\t{' '.join(sorted(ls))}" for f, ls in sorted(inflections.items())]
    (args.out / "inflections.tsv").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")

    kinds = build_noun_kinds(args.wordnet)
    lines = [f"{w}\t{' '.join(k)}" for w, k in sorted(kinds.items())]
    (args.out / "noun_kinds.tsv").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")

    friends = build_false_friends(args.wordnet, antonyms)
    (args.out / "prefix_false_friends.txt").write_text(
        header + "\n".join(sorted(friends)) + "\n", encoding="utf-8"
    )
    print(
        f"{len(antonyms)} lemmas with antonyms, {len(inflections)} inflected forms, "
        f"{len(kinds)} nouns with kinds, {len(friends)} prefix false friends -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
