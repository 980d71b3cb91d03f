"""``compare_contexts``: do the earlier turns of two conversations say the same thing?"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from semcache_core.conversation.facts import (
    ALIGN_MIN,
    Unit,
    align,
    fact_verdict,
    units,
    word_sequence,
)
from semcache_core.prompt import Conversation

if TYPE_CHECKING:
    import numpy as np

#: Cosine distance up to which two earlier turns with few words in common still align (with
#: an embedder; tuned on the tuning half of the conversation set).
UNIT_DISTANCE = 0.30

Embed = Callable[[Sequence[str]], Any]

#: How alike (difflib ratio of the word sequences) two aligned turns must be for differing
#: words to be an edited detail rather than a rewording; see :func:`swapped_words`. Tuned:
#: reworded turns of the tuning set are at most 0.59 but for one, edited ones 0.56 and up.
SWAP_RATIO = 0.6


@dataclass(frozen=True, slots=True)
class ContextVerdict:
    """``ok`` when the answer may depend on the same earlier facts; else ``reason`` names the
    rule (``configuration``, ``unmatched_turn``, ``referent`` or a fact check such as
    ``number``/``entity``/``date``) and ``detail`` says what differed."""

    ok: bool
    reason: str | None = None
    detail: str = ""


def _quote(unit: Unit) -> str:
    text = unit.text if len(unit.text) <= 80 else unit.text[:77] + "..."
    return f"{unit.role}: {text!r}"


def _count(word: str, conversation: Sequence[Unit]) -> int:
    return sum(word in unit.words for unit in conversation)


def swapped_words(
    x: Unit, y: Unit, xs: Sequence[Unit], ys: Sequence[Unit]
) -> tuple[str, str] | None:
    """The words of a one-detail edit between two aligned units, or None.

    A rewording changes the shape of a sentence; a changed detail keeps the sentence and
    replaces a word or two ("One of my guests is vegan" / "... is gluten-free"). So: the word
    sequences are nearly the same (difflib ratio at least :data:`SWAP_RATIO`), each side has
    content words the other lacks, and those are not as frequent in the other conversation
    (a detail moved to another turn is no edit; "Basic Economy" booked where the other booked
    "Main Cabin", both offered earlier, is). Words only *added* on one side ("Anyway, my
    phone ...") are no edit either.
    """
    only_x = x.words - y.words
    only_y = y.words - x.words
    if not only_x or not only_y:
        return None
    ratio = difflib.SequenceMatcher(None, word_sequence(x.text), word_sequence(y.text)).ratio()
    if ratio < SWAP_RATIO:
        return None
    if all(_count(w, ys) >= _count(w, xs) for w in only_x) and all(
        _count(w, xs) >= _count(w, ys) for w in only_y
    ):
        return None
    return " ".join(sorted(only_x)), " ".join(sorted(only_y))


def _similar_by_vectors(
    a: Sequence[Unit], b: Sequence[Unit], embed: Embed, max_distance: float
) -> Callable[[int, int], bool]:
    """``similar(i, j)``: unit distance at most ``max_distance``; embeds every unit of both
    sides in one call, the first time it is asked (only when words alone left a pair)."""
    distances: list[np.ndarray] = []

    def similar(i: int, j: int) -> bool:
        if not distances:
            import numpy as np

            vectors = np.asarray(embed([u.text for u in (*a, *b)]), dtype=np.float64)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            distances.append(1.0 - vectors[: len(a)] @ vectors[len(a) :].T)
        return bool(distances[0][i, j] <= max_distance + 1e-12)

    return similar


def _structure(
    a: Sequence[Unit], b: Sequence[Unit], pairs: Sequence[tuple[int, int]]
) -> ContextVerdict | None:
    """The unmatched-turn and referent rules on an alignment: a failing verdict or None."""
    matched_a = {i for i, _ in pairs}
    matched_b = {j for _, j in pairs}
    heavy_a = [i for i, u in enumerate(a) if not u.light]
    heavy_b = [j for j, u in enumerate(b) if not u.light]
    # The referent: the most recent turn that carries something must be the same on both sides.
    if heavy_a or heavy_b:
        last = (heavy_a[-1] if heavy_a else None, heavy_b[-1] if heavy_b else None)
        if last not in pairs:
            return ContextVerdict(
                False,
                "referent",
                "the last earlier turns differ: "
                + " vs ".join(
                    _quote(u[i]) if i is not None else "(none)"
                    for u, i in zip((a, b), last, strict=True)
                ),
            )
    if not pairs:
        return None
    first_a, first_b = pairs[0]
    stray_a = [a[i] for i in heavy_a if i not in matched_a and i > first_a]
    stray_b = [b[j] for j in heavy_b if j not in matched_b and j > first_b]
    prefix_a = [a[i] for i in heavy_a if i < first_a]
    prefix_b = [b[j] for j in heavy_b if j < first_b]
    if prefix_a and prefix_b:  # an earlier exchange may be extra on one side, not different
        stray_a += prefix_a
        stray_b += prefix_b
    if stray_a or stray_b:
        unit = (stray_a or stray_b)[0]
        side = "new" if stray_a else "cached"
        return ContextVerdict(
            False,
            "unmatched_turn",
            f"a turn of the {side} conversation has no match: {_quote(unit)}",
        )
    return None


def compare_contexts(
    new: Conversation,
    cached: Conversation,
    *,
    align_min: float = ALIGN_MIN,
    embed: Embed | None = None,
    unit_distance: float = UNIT_DISTANCE,
) -> ContextVerdict:
    """Whether the context of ``cached`` may stand for the context of ``new`` (see
    :mod:`semcache_core.conversation.facts` for the rules). With ``embed`` (texts to vectors),
    two turns whose words barely overlap still align when their distance is at most
    ``unit_distance`` ("a technical issue with the aircraft" / "a problem with the plane")."""
    if new.configuration != cached.configuration:
        return ContextVerdict(
            False, "configuration", "system prompt, tools or non-text parts differ"
        )
    a, b = units(new), units(cached)
    if not a and not b:
        return ContextVerdict(True)
    pairs = align(a, b, align_min)
    problem = _structure(a, b, pairs)
    if problem is not None and embed is not None:
        # Words alone left a turn unmatched: try again with the meaning of the turns.
        pairs = align(a, b, align_min, _similar_by_vectors(a, b, embed, unit_distance))
        problem = _structure(a, b, pairs)
    if problem is not None:
        return problem
    if not pairs:
        return ContextVerdict(True)  # only light turns on both sides
    for i, j in pairs:
        swapped = swapped_words(a[i], b[j], a, b)
        if swapped:
            return ContextVerdict(
                False,
                "changed_word",
                f"an earlier turn says {swapped[0]!r} where the other says {swapped[1]!r}: "
                f"{_quote(a[i])} vs {_quote(b[j])}",
            )
    ok, reason, detail = fact_verdict([a[i].text for i, _ in pairs], [b[j].text for _, j in pairs])
    if not ok:
        return ContextVerdict(False, reason, f"earlier facts differ: {detail}")
    return ContextVerdict(True)
