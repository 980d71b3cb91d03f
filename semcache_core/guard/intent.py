"""Intent: the ``intent`` check.

The same document, account or order with another task: proofread / rewrite / translate /
summarize, cancel / pause, reset / change, refund / exchange. ``data/intents.tsv`` maps verbs
and phrases to a task; the first word of an entry matches its inflections ("summarizing",
"cancelled"). Two prompts that each name a task the other does not, differ ("resume" the
noun may be a task of both); a prompt that names no task ("What is a Roth IRA?") never
differs here.

And by rule, for a task asked of the assistant ("Can you ...", "Please ...", or a prompt
opening with a verb): the same thing with another verb that is no WordNet synonym of it is
another task ("Can you draft a bill of lading ..." / "Can you check this bill of lading
..."). A how-to ("How do I ...") is left out: its verbs are reworded freely.
"""

from __future__ import annotations

from functools import cache, lru_cache

from semcache_core.guard import lexicon
from semcache_core.guard.negation import base_forms
from semcache_core.guard.tokens import Features, _wordset, fmt


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


@lru_cache(maxsize=65536)
def _task_entries(word: str) -> tuple[list[tuple[tuple[str, ...], str]], ...]:
    """The task phrases each base form of ``word`` may start, longest first, for the forms
    that start any (cached per word: most words start none)."""
    index = _index()
    return tuple(index[form] for form in base_forms(word) if form in index)


def intents(sequence: tuple[str, ...]) -> frozenset[str]:
    """The tasks a prompt asks for."""
    found = set()
    i = 0
    while i < len(sequence):
        matched = 0
        for entries in _task_entries(sequence[i]) if sequence[i] != "|" else ():
            for words, task in entries:
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
    return task_verb_differs(a, b) or definition_vs_howto(a, b)


# -- what a thing is against how to act on it --------------------------------------------------

#: The verbs of a question asking what something is or does ("what a bottom bracket does").
_DEFINING = frozenset(["is", "are", "does", "do", "mean", "means"])
#: What follows "what" in a definition ("what is ...", "what a ... does").
_AFTER_WHAT = frozenset(["a", "an", "the", "is", "are", "does"])
#: Words of a how-to put as a "what" question ("What are the steps to ...", "What can I do
#: to ...", "What is the best way to ..."): no definition.
_PROCEDURE = frozenset(
    [
        "steps",
        "step",
        "way",
        "ways",
        "procedure",
        "process",
        "method",
        "methods",
        "can",
        "could",
        "should",
        "need",
        "tips",
        "best",
        "how",
        "options",
    ]
)
#: Openings of a how-to whose next word is the action ("how to replace", "how do I renew").
_HOWTO: tuple[tuple[str, ...], ...] = (
    ("how", "to"),
    ("how", "do", "i"),
    ("how", "can", "i"),
    ("how", "should", "i"),
    ("how", "would", "i"),
    ("how", "do", "you"),
)


def howto_verb(sequence: tuple[str, ...]) -> str:
    """The action of a how-to ("how to replace ...", "How do I renew ..."), or ""."""
    for i, word in enumerate(sequence):
        if word != "how":
            continue
        for frame in _HOWTO:
            end = i + len(frame)
            if sequence[i:end] == frame and end < len(sequence):
                verb = sequence[end]
                if verb not in _NO_TASK and verb != "|" and _verb_synsets(verb):
                    return verb
    return ""


def definition_vs_howto(a: Features, b: Features) -> str | None:
    """One prompt asks what a thing is or does, the other how to act on the same thing
    ("Explain what a bottom bracket does on a bike" / "Explain how to replace a bottom
    bracket on a bike"): another answer, though every other word is shared."""
    for x, y in ((a, b), (b, a)):
        verb = y.howto_verb
        if not verb or x.howto_verb or not x.words & _DEFINING or x.words & _PROCEDURE:
            continue
        seq = x.sequence
        if not any(w == "what" and seq[i + 1] in _AFTER_WHAT for i, w in enumerate(seq[:-1])):
            continue
        if base_forms(verb) & (x.lemmas | x.words):
            continue  # "what do I need to renew a passport" / "how do I renew a passport"
        shared = sum(w[:5] in y.stems for w in x.content)
        new_y = sum(w[:5] not in x.stems for w in y.content if w != verb)
        if shared >= 2 and new_y <= 1:
            return f"what it is vs how to {verb!r}"
    return None


# -- the task verb of a request to the assistant ------------------------------------------------

#: Openings of a task asked of the assistant: the verb follows ("Can you check ...", "Please
#: draft ..."). A how-to ("How do I ...") is not one: its verbs are reworded freely ("undo" /
#: "revert a commit", "connect" / "pair AirPods"), while a task asked of the assistant on
#: the same text is another answer with another verb ("check" / "turn into a formal invoice").
_FRAMES: tuple[tuple[str, ...], ...] = tuple(
    tuple(frame.split())
    for frame in sorted(
        [
            *(f"{m} {p}" for m in ("can", "could", "would", "will") for p in ("you", "u")),
            "please",
            "i want you to",
            "i need you to",
            "i would like you to",
        ],
        key=lambda f: -len(f.split()),
    )
)
#: Words that open a question, not a task: auxiliaries, modals, question words, and the
#: verbs that only ask for information ("Can you tell me ..." is "Can you explain ...").
_NO_TASK = _wordset(
    "is are was were be am being been do does did done have has had can could would will "
    "should shall may might must what how why when where which who whom whose tell show let"
)


def _verb_synsets(word: str) -> frozenset[str]:
    table = lexicon.table("synonyms.tsv")
    return frozenset(s for form in base_forms(word) for s in table.get(form, ()) if s[-1] == "v")


def task_verb(sequence: tuple[str, ...]) -> str:
    """The verb of a task asked of the assistant ("Check this invoice", "Can you draft ...",
    "Please explain ..."), or "" if the prompt is no such request."""
    words = sequence[1:] if sequence[:1] == ("|",) else sequence
    for frame in _FRAMES:
        if words[: len(frame)] == frame:
            words = words[len(frame) :]
            break
    if words[:1] == ("please",):
        words = words[1:]
    if not words or words[0] == "|" or words[0] in _NO_TASK:
        return ""
    return words[0] if _verb_synsets(words[0]) else ""


#: Most content words besides the verb that each side may have and the other not.
_MAX_NEW = 2


def task_verb_differs(a: Features, b: Features) -> str | None:
    """Two tasks asked of the assistant on the same thing with verbs that are not synonyms
    ("Can you draft a bill of lading ..." / "Can you check this bill of lading ...",
    "Estimate the cost of a trip to X" / "Plan a trip to X"; on the same quoted text or
    code, whatever else each prompt says)."""
    va, vb = a.task_verb, b.task_verb
    if not va or not vb or va == vb or base_forms(va) & base_forms(vb):
        return None
    if _verb_synsets(va) & _verb_synsets(vb):
        return None
    if (a.quoted and a.quoted == b.quoted) or (a.code and a.code == b.code):
        # two tasks on the same quoted text or code, however each is worded ("Write this
        # pattern out in words: '...'" / "Count the stitches this row decreases: '...'")
        return f"tasks differ on the same text: {va!r} vs {vb!r}"
    shared = sum(w[:5] in b.stems for w in a.content if w != va)
    new_a = sum(w[:5] not in b.stems for w in a.content if w != va)
    new_b = sum(w[:5] not in a.stems for w in b.content if w != vb)
    if shared >= 2 and new_a <= _MAX_NEW and new_b <= _MAX_NEW:
        return f"tasks differ: {va!r} vs {vb!r}"
    return None
