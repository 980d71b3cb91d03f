"""Intent: the ``intent`` check.

The same document, account or order with another task: proofread / rewrite / translate /
summarize, cancel / pause, reset / change, refund / exchange. ``data/intents.tsv`` maps verbs
and phrases to a task; the first word of an entry matches its inflections ("summarizing",
"cancelled"). Two prompts that each name a task the other does not, differ ("resume" the
noun may be a task of both); a prompt that names no task ("What is a Roth IRA?") never
differs here.
"""

from __future__ import annotations

from functools import cache

from semcache_core.guard import lexicon
from semcache_core.guard.negation import base_forms
from semcache_core.guard.tokens import Features, fmt


@cache
def _index() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """First word -> [(phrase words, task)], longest phrases first."""
    index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for task, phrases in lexicon.table("intents.tsv", "|").items():
        for phrase in phrases:
            words = tuple(phrase.lower().split())
            index.setdefault(words[0], []).append((words, task))
    for entries in index.values():
        entries.sort(key=lambda e: -len(e[0]))
    return index


def intents(sequence: tuple[str, ...]) -> frozenset[str]:
    """The tasks a prompt asks for."""
    index = _index()
    found = set()
    i = 0
    while i < len(sequence):
        matched = 0
        for form in base_forms(sequence[i]) if sequence[i] != "|" else ():
            for words, task in index.get(form, ()):
                if tuple(sequence[i + 1 : i + len(words)]) == words[1:]:
                    found.add(task)
                    matched = max(matched, len(words))
                    break
        i += max(matched, 1)
    return frozenset(found)


def intent_differs(a: Features, b: Features) -> str | None:
    only_a, only_b = a.intents - b.intents, b.intents - a.intents
    if only_a and only_b:
        return f"tasks differ: {fmt(only_a)} vs {fmt(only_b)}"
    return None
