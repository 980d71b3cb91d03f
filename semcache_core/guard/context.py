"""Context around the same question: "Hiya, settling a bet with my dad 😅 what year did the
Berlin Wall fall?" asks what "What year did the Berlin Wall fall?" asks.

A sentence before the question tells why it is asked ("flying with my little one next week",
"bit stuck on my chem homework", "prod is on fire and I'm the only one on call", "sorry if
this is basic but ..."); the word checks would read its words as a condition added, a scope,
a name of the question. :func:`lead_in` recognizes the shape: one prompt's whole question,
word for word, is the end of the other, after a break (a sentence or clause end, an emoji, or
"but"/"so") after four words of context or more, optionally followed by a short sign-off
(three words at most). Then the checks of
:data:`CONTEXT_FREE` are skipped: what they compare is word for word the same in the question.
The checks of details a context sentence can carry into the answer still see the whole
prompt: negations ("I can't drive. ..."), numbers, units, dates, names, audiences and
qualifiers ("I'm pregnant. ..."), quotes and code. On the tuning groups every trap of the
shape "the same question plus words" adds them *after* the question, in the same sentence
("... if I'm pregnant", "... without a receipt"), which is no lead-in.
"""

from __future__ import annotations

from semcache_core.guard.tokens import Features

__all__ = ["CONTEXT_FREE", "lead_in"]

#: Checks that compare the question's words, skipped when the rest is context.
CONTEXT_FREE = frozenset(
    [
        "quantifier",
        "scope",
        "role",
        "phrasal",
        "morphological",
        "antonym",
        "direction",
        "intent",
        "constraint",
        "lexical",
        "reorder",
        "substitution",
    ]
)
#: Words that end a lead-in clause as a break does ("sorry if this is basic but how ...").
_JOINS = frozenset(["but", "so"])
#: Longest sign-off after the question, in words ("ta x", "cheers bro").
_MAX_SIGN_OFF = 3
#: Shortest question, in words, for the shape to count.
_MIN_QUESTION = 4
#: Shortest context, in words: a short lead-in names the subject ("For my cat: ...", "Got a
#: dog, ..."), a sentence of context tells a story ("settling a bet with my dad").
_MIN_CONTEXT = 4


def _contains(long_: Features, short: Features) -> bool:
    question = [w for w in short.sequence if w != "|"]
    seq = long_.sequence
    n = len(question)
    if n < _MIN_QUESTION or len(seq) <= n:
        return False
    for start in range(1, len(seq) - n + 1):
        if list(seq[start : start + n]) != question:
            continue
        if seq[start - 1] != "|" and seq[start - 1] not in _JOINS:
            continue
        if sum(w != "|" for w in seq[:start]) < _MIN_CONTEXT:
            continue  # "For my cat: what food is best?" names the subject, it is no context
        rest = seq[start + n :]
        if not rest or (rest[0] == "|" and len([w for w in rest if w != "|"]) <= _MAX_SIGN_OFF):
            return True
    return False


def lead_in(a: Features, b: Features) -> bool:
    """Whether one prompt is the other's whole question after a sentence of context."""
    if len(a.sequence) == len(b.sequence):
        return False
    return _contains(a, b) if len(a.sequence) > len(b.sequence) else _contains(b, a)
