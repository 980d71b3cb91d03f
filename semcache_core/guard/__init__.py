"""The trap guard: rejects semantic hits whose prompts differ in a detail that changes the answer.

An embedding model sees "What is the capital of Australia?" and "What is *not* the capital of
Australia?", "borrow" and "lend", "English to German" and "German to English" as near
neighbours, so a semantic cache at a usable threshold would serve one for the other. Most such
near-misses differ in a small, lexically visible detail. :class:`TrapGuard` extracts those
details from both prompts once (:func:`extract_features`, cached per string) and runs an
ordered registry of named checks (:data:`CHECKS`), one module per family:

- :mod:`~semcache_core.guard.negation`: ``negation``, ``antonym`` (WordNet), ``morphological``
  (un-/non-/in-/dis-/-less), ``phrasal`` (speed up / slow down);
- :mod:`~semcache_core.guard.numeric`: ``version``, ``date``, ``unit``, ``number``;
- :mod:`~semcache_core.guard.names`: ``quoted``, ``code``, ``entity``;
- :mod:`~semcache_core.guard.qualifiers`: ``quantifier``, ``scope``, ``audience``,
  ``qualifier``, ``constraint``;
- :mod:`~semcache_core.guard.roles`: ``role``, ``direction``;
- :mod:`~semcache_core.guard.intent`: ``intent`` (curated tasks, and the verb of a task asked
  of the assistant);
- :mod:`~semcache_core.guard.lexical`: ``lexical`` (one noun for a sibling noun: tea / coffee);
- :mod:`~semcache_core.guard.substitution`: ``reorder`` and ``substitution``, default-deny for
  near-identical prompts: in the same template any changed content word is a different
  question unless a known equivalent (inflection, typo, spelling, abbreviation, WordNet or
  curated synonym, the same unit), as is an opposed function word, an added clause, or the
  same words in another order (unless clauses or one block moved, or the prompt is symmetric).

Four rules keep true rewordings from being refused: before the checks, each prompt's typos
of the other prompt's words are corrected (:mod:`~semcache_core.guard.typos`); a detail on
one side only does not count in a broad rewording (:mod:`~semcache_core.guard.overlap`);
when one prompt is the other's question after a sentence of context, the checks of the
question's words are skipped (:mod:`~semcache_core.guard.context`); symmetric prompts and
moved clauses keep their direction.

Every rejection names its check and the differing words (:class:`GuardVerdict`);
:meth:`TrapGuard.explain` returns the verdict of every check. Lexicons are data files in
``semcache_core/guard/data/`` (WordNet-derived tables built by ``scripts/build_lexicon.py``).
Before comparing, both prompts go through :func:`strip_padding` (greetings, thanks, urgency,
emoji), which the engine should also apply to a query before embedding it.

The guard never calls a model. What it does not catch: content-word swaps inside a reworded
question, where the words do not line up one for one ("How do I merge branches?" / "What's
the command to rebase branches?"); those are left to the distance threshold.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semcache_core.guard.features import extract_features
    from semcache_core.guard.padding import strip_padding
    from semcache_core.guard.registry import (
        CHECKS,
        REGISTRY,
        Check,
        GuardVerdict,
        TrapGuard,
        clear_caches,
    )
    from semcache_core.guard.tokens import ALIASES, TECH_NAMES, Features

# Loaded on first use (PEP 562): the engine strips padding from every query, guard or not, and
# importing every check and lexicon for that would cost a new process ~0.1-0.2 s.
_WHERE = {
    "ALIASES": "tokens",
    "CHECKS": "registry",
    "REGISTRY": "registry",
    "TECH_NAMES": "tokens",
    "Check": "registry",
    "Features": "tokens",
    "GuardVerdict": "registry",
    "TrapGuard": "registry",
    "clear_caches": "registry",
    "extract_features": "features",
    "strip_padding": "padding",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ALIASES",
    "CHECKS",
    "REGISTRY",
    "TECH_NAMES",
    "Check",
    "Features",
    "GuardVerdict",
    "TrapGuard",
    "clear_caches",
    "extract_features",
    "strip_padding",
]
