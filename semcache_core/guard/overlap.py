"""How far two prompts are reworded, for the rule on one-sided details.

A check that finds a detail on one side only ("for kids", "always", "in autumn", a name, a
"not") reads it as a detail added to or dropped from the same question, which is what a trap
is: "best running shoes" / "best running shoes for kids". In a *broad rewording* the same
one-sided detail is mostly the rewording itself: "How do I stop my toddler biting at
daycare?" / "What can I do to keep my little one from biting at nursery?" ("toddler" against
"little one"), "plant garlic in autumn" / "... in the fall", "store a rope between trips" /
"... when I'm not using it". :func:`broad_rewording` says when two prompts are that far
apart: each has at least :data:`MIN_NEW_WORDS` content words the other lacks in any form
(the same first five letters: "depressed" / "depression"). On the tuning groups, the traps
are nearly all the same question with one detail changed (at most two new content words on
one side); the one-sided checks let the detail go in a broad rewording and leave it to the
distance threshold. A detail on *both* sides (another name, another audience, another
value) always differs.
"""

from __future__ import annotations

from semcache_core.guard.tokens import Features

__all__ = ["MIN_NEW_WORDS", "broad_rewording", "new_words"]

#: The content words each prompt must have that the other lacks, for a broad rewording.
MIN_NEW_WORDS = 3


def new_words(x: Features, y: Features) -> int:
    """How many content words of ``y`` that ``x`` has in no form."""
    return sum(w[:5] not in x.stems for w in y.content)


def broad_rewording(a: Features, b: Features) -> bool:
    """Whether each prompt has :data:`MIN_NEW_WORDS` content words the other lacks."""
    return new_words(a, b) >= MIN_NEW_WORDS and new_words(b, a) >= MIN_NEW_WORDS
