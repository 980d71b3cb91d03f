"""Roles and direction: the ``direction`` and ``role`` checks (routes and conversions are
compared by the ``entity`` and ``unit`` checks, from the pairs extracted here).

``direction``
    The same content words in another order around a relational word (``from``, ``to``,
    ``into``, ``than``, ``for``, ``by``, ``over``, ``against``, ``instead of``): "translate
    English to German" / "German to English", "is a 401k better than an IRA" / "is an IRA
    better than a 401k". For each relational word, the first content word after it is
    compared; a difference counts only when each side's word is a word of the other prompt
    (the same words, moved), so "flights to Paris from London" = "flights from London to
    Paris". Symmetric words ("vs", "and", "between") are not relational: "cats vs dogs" asks
    what "dogs vs cats" asks.
``role``
    One role where the other prompt has its counterpart (``data/roles.tsv``: borrower /
    lender, landlord / tenant; and by rule -er/-or against -ee: employer / employee), or the
    same two roles in the other order ("can my landlord evict my tenant" / "can my tenant
    evict my landlord"), unless one prompt is passive ("by").
"""

from __future__ import annotations

from functools import cache, lru_cache

from semcache_core.guard import lexicon, substitution
from semcache_core.guard.tokens import Collector, Features, Token

#: Relational words whose object is a role in the question: "to X", "than X"...
RELATIONAL = frozenset(
    [
        "from",
        "to",
        "into",
        "onto",
        "than",
        "for",
        "by",
        "over",
        "against",
        "toward",
        "towards",
        "instead",
        "before",
        "after",
    ]
)
_FUNCTION_WORDS = lexicon.words("function_words.txt")


@cache
def role_partners() -> dict[str, frozenset[str]]:
    partners: dict[str, set[str]] = {}
    for role, others in lexicon.table("roles.tsv").items():
        for other in others:
            partners.setdefault(role, set()).add(other)
            partners.setdefault(other, set()).add(role)
    return {k: frozenset(v) for k, v in partners.items()}


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@lru_cache(maxsize=8192)
def _singulars(words: frozenset[str]) -> frozenset[str]:
    """The singular of every word (cached per prompt's word set: a stored prompt is compared
    with many queries)."""
    return frozenset(_singular(w) for w in words)


def clear_caches() -> None:
    """Forget the per-prompt caches of this module."""
    _singulars.cache_clear()


def _is_role(word: str) -> bool:
    return word in role_partners() or (
        len(word) > 4 and word.endswith(("er", "or", "ee")) and word not in _FUNCTION_WORDS
    )


# -- extraction --------------------------------------------------------------------------------


def relations(sequence: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """(relational word, first content word after it) for every relational word."""
    found = set()
    for i, word in enumerate(sequence):
        if word not in RELATIONAL:
            continue
        for nxt in sequence[i + 1 : i + 5]:
            if nxt == "|":
                break
            if nxt not in _FUNCTION_WORDS and nxt not in RELATIONAL:
                found.add((word, _singular(nxt)))
                break
    return frozenset(found)


def roles(sequence: tuple[str, ...]) -> tuple[str, ...]:
    """Role nouns in order of first appearance (singular)."""
    out: list[str] = []
    for word in sequence:
        single = _singular(word)
        if single in role_partners() and single not in out:
            out.append(single)
    return tuple(out)


def directions(
    tokens: list[Token], unit_at: dict[int, str], entity_at: list[str], out: Collector
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


# -- checks ------------------------------------------------------------------------------------


def _content_forms(f: Features) -> frozenset[str]:
    return _singulars(f.words) | f.lemmas


#: The speaker as a participant ("my employer sues me" / "I sue my employer"): subject and
#: object pronouns are one participant; possessives only qualify the next noun.
_SELF = frozenset(["i", "me", "myself"])
_POSSESSIVES = frozenset(["my", "your", "our", "their", "his", "her", "its"])


def _content(f: Features) -> list[str]:
    return [
        "SELF" if w in _SELF else w
        for w in f.sequence
        if w in _SELF or (w != "|" and w not in _FUNCTION_WORDS and w not in _POSSESSIVES)
    ]


def _relations_between(f: Features, x: str, y: str) -> set[str]:
    """The relational words between the first ``x`` and the next ``y`` of ``f`` ("roll my
    401k into an IRA": "into" between "k" and "ira")."""
    seq = ["SELF" if w in _SELF else w for w in f.sequence]
    if x not in seq:
        return set()
    rest = seq[seq.index(x) + 1 :]
    if y not in rest:
        return set()
    return {w for w in rest[: rest.index(y)] if w in RELATIONAL}


def swapped_words(a: Features, b: Features) -> tuple[str, str] | None:
    """Two content words that trade places, everything else in place ("make hidden files
    visible" / "make visible files hidden", "my landlord sue my tenant" / "my tenant sue my
    landlord"), two or three content words apart. A clause moved as a whole ("In Excel, how do I ..." / "How do I ... in
    Excel?") is not a swap."""
    ca, cb = _content(a), _content(b)
    if len(ca) != len(cb) or ca == cb or sorted(ca) != sorted(cb):
        return None
    diff = [i for i, (x, y) in enumerate(zip(ca, cb, strict=True)) if x != y]
    if len(diff) == 2:
        i, j = diff
        # adjacent words trading places are a compound reworded ("Python list" / "list in
        # Python", "oil change" / "change the oil"); far apart, a clause moved
        if (
            ca[i] == cb[j]
            and ca[j] == cb[i]
            and (
                2 <= j - i <= 3
                # neighbours swap around the same relational word: "401k into an IRA" / "IRA
                # into a 401k" (not "get my dog to stop" / "stop my dog from")
                or (
                    j - i == 1
                    and _relations_between(a, ca[i], ca[j]) & _relations_between(b, ca[j], ca[i])
                )
            )
        ):
            return ca[i], ca[j]
    return None


#: Words of a comparison, whose terms may come in any order ("and" / "or" are not enough:
#: "Is a 401k better than an IRA, and why?").
_COMPARING = substitution.SYMMETRIC - frozenset(["and", "or", "both", "together", "mix", "combine"])


def _moved_or_symmetric(a: Features, b: Features) -> bool:
    """Whether both prompts compare their terms symmetrically ("How does CIF differ from
    FOB?" / "How is FOB different from CIF?") or one is the other's clauses in another order
    ("For river trout fishing, what line weight ...?" / "What line weight ... for trout
    fishing in rivers?")."""
    if _COMPARING & a.words and _COMPARING & b.words:
        return True
    content_a, content_b = substitution.content_words(a), substitution.content_words(b)
    return substitution.clauses_moved(a, content_b) or substitution.clauses_moved(b, content_a)


def direction_differs(a: Features, b: Features) -> str | None:
    if _moved_or_symmetric(a, b):
        return None
    pair = swapped_words(a, b)
    if pair is not None:
        return f"words swapped: {pair[0]!r} and {pair[1]!r} trade places"
    words_a, words_b = _content_forms(a), _content_forms(b)
    rels_a = {r for r, _ in a.relations}
    rels_b = {r for r, _ in b.relations}
    for rel in sorted(rels_a & rels_b):
        after_a = {w for r, w in a.relations if r == rel}
        after_b = {w for r, w in b.relations if r == rel}
        moved_a = after_a - after_b
        moved_b = after_b - after_a
        if moved_a and moved_b and moved_a <= words_b and moved_b <= words_a:
            return (
                f"order around {rel!r} differs: {rel} {sorted(moved_a)[0]!r} "
                f"vs {rel} {sorted(moved_b)[0]!r}"
            )
    return None


def _ee_partner(x: str, y: str) -> bool:
    """employer / employee, lessor / lessee, payer / payee, mentor / mentee."""
    for left, right in ((x, y), (y, x)):
        if (
            right.endswith("ee")
            and left.endswith(("er", "or"))
            and left[:-2] in (right[:-2], right[:-3])
        ):
            return True
    return False


def role_differs(a: Features, b: Features) -> str | None:
    singular_a, singular_b = _singulars(a.words), _singulars(b.words)
    only_a, only_b = singular_a - singular_b, singular_b - singular_a
    partners = role_partners()
    for x in sorted(only_a):
        for y in sorted(only_b):
            if y in partners.get(x, ()) or (_is_role(x) and _is_role(y) and _ee_partner(x, y)):
                return f"roles differ: {x!r} vs {y!r}"
    shared = [r for r in a.roles if r in b.roles]
    if len(shared) >= 2 and ("by" in a.words) == ("by" in b.words):
        order_b = [r for r in b.roles if r in shared]
        if shared != order_b:
            return f"roles swapped: {' / '.join(shared)} vs {' / '.join(order_b)}"
    return None
