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
from semcache_core.guard.tokens import Collector, Features, Token, memo

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
    return memo(f, "content_forms", lambda f: _singulars(f.words) | f.lemmas)


#: The speaker as a participant ("my employer sues me" / "I sue my employer"): subject and
#: object pronouns are one participant; possessives only qualify the next noun.
_SELF = frozenset(["i", "me", "myself"])
_POSSESSIVES = frozenset(["my", "your", "our", "their", "his", "her", "its"])


def _content(f: Features) -> list[str]:
    return memo(f, "role_content", _role_content)


def _role_content(f: Features) -> list[str]:
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
    return substitution.clauses_moved(a, b) or substitution.clauses_moved(b, a)


_ARTICLES = frozenset(["a", "an", "the"])
#: Words that relate two things symmetrically from outside them ("mix A with B"): "and" and
#: "or" do only between the two ("put the rug under the sofa or in front of it" is no
#: symmetric prompt).
_SYMMETRIC_RELATION = substitution.SYMMETRIC - frozenset(["and", "or"])


def exchanged_spans(a: Features, b: Features) -> tuple[str, str] | None:
    """Two stretches of words or numbers that trade places in one prompt frame, everything
    else the same word for word: ``P X M Y S`` / ``P Y M X S`` ("Can I put 5W-30 oil in an
    engine that calls for 10W-30?" / "... 10W-30 oil in an engine that calls for 5W-30?",
    "Xbox One games on an Xbox Series X" / "Xbox Series X games on an Xbox One"), whatever
    word relates them. Not an exchange: a symmetric middle ("A and B", "A or B", "between
    5W-30 and 10W-30"; "mix A with B", a symmetric verb or noun elsewhere and none but
    function words between the two), whole clauses or sentences trading places (a stretch or the
    middle crossing a clause break), articles ("a ... the")."""
    ta, tb = a.terms, b.terms
    if ta == tb or len(ta) != len(tb) or sorted(ta) != sorted(tb):
        return None
    start, end = substitution.common_ends(ta, tb)
    xa, xb = ta[start : len(ta) - end], tb[start : len(tb) - end]
    n = len(xa)
    if n == 2 and xa == xb[::-1] and not (_FUNCTION_WORDS & set(xa)) and "|" not in xa:
        # two neighbours trade places in the same frame: "give my dog cat food" / "give my
        # cat dog food" (a compound reworded changes its small words too: "list in Python")
        return xa[0], xa[1]
    for lx in range(1, n - 1):
        span_x = xa[:lx]
        if xb[n - lx :] != span_x or "|" in span_x:
            continue
        for ly in range(1, n - lx):
            span_y = xa[n - ly :]
            middle = xa[lx : n - ly]
            if xb[:ly] != span_y or xb[ly : n - lx] != middle or "|" in span_y:
                continue
            if set(span_x) <= _ARTICLES and set(span_y) <= _ARTICLES:
                continue
            if "|" in middle:
                return None  # clauses or sentences moved
            if substitution.SYMMETRIC & set(middle) or (
                all(w in _FUNCTION_WORDS for w in middle)
                and _SYMMETRIC_RELATION & (a.words | b.words)
            ):
                return None  # "A and B" / "B and A", "mix A with B" / "mix B with A"
            return " ".join(span_x), " ".join(span_y)
    return None


def _participants(f: Features) -> list[str]:
    """The content words in the singular ("owes" / "owe"), the speaker as one participant,
    "|" at breaks."""
    return memo(f, "participants", _compute_participants)


def _compute_participants(f: Features) -> list[str]:
    out: list[str] = []
    for w in f.sequence:
        if w == "|":
            if out and out[-1] != "|":
                out.append("|")
        elif w in _SELF:
            out.append("SELF")
        elif w not in _FUNCTION_WORDS and w not in _POSSESSIVES:
            out.append(_singular(w))
    return out


def participants_exchanged(a: Features, b: Features) -> tuple[str, str] | None:
    """Where the two prompts first differ, two participants trade places around the same
    word(s): ``X M Y ...`` / ``Y M X ...`` ("My employer owes me ..." / "I owe my employer
    ...", "Can the removal company charge me if ..." / "Can I charge the removal company if
    ..."), whatever follows. Not when one side only is passive ("by") or the middle is
    symmetric ("mix A with B")."""
    if ("by" in a.words) != ("by" in b.words):
        return None
    pa, pb = _participants(a), _participants(b)
    start = 0
    while start < min(len(pa), len(pb)) and pa[start] == pb[start]:
        start += 1
    if start >= len(pb) or pb[start] not in pa[start + 2 : start + 6]:
        return None  # b's next word is not a's participant of two to five words later
    for lx in range(1, 4):
        span_x = pa[start : start + lx]
        if len(span_x) < lx or "|" in span_x:
            break
        for lm in range(1, 3):
            middle = pa[start + lx : start + lx + lm]
            if len(middle) < lm or "|" in middle or substitution.SYMMETRIC & set(middle):
                break
            for ly in range(1, 4):
                span_y = pa[start + lx + lm : start + lx + lm + ly]
                if len(span_y) < ly or "|" in span_y:
                    break
                if (
                    span_x != span_y
                    and pb[start : start + ly] == span_y
                    and pb[start + ly : start + ly + lm] == middle
                    and pb[start + ly + lm : start + ly + lm + lx] == span_x
                ):
                    return " ".join(span_x), " ".join(span_y)
    return None


def direction_differs(a: Features, b: Features) -> str | None:
    pair = participants_exchanged(a, b)
    if pair is not None:
        return f"participants exchanged: {pair[0]!r} and {pair[1]!r}"
    spans = exchanged_spans(a, b)
    if spans is not None and not (_COMPARING & a.words and _COMPARING & b.words):
        exchange = f"terms exchanged: {spans[0]!r} and {spans[1]!r} trade places"
        if not all(w in _FUNCTION_WORDS for w in " ".join(spans).split()):
            return exchange
        # two relational words exchanged ("from Oslo to Rome" / "to Oslo from Rome"): the
        # checks below name the words they relate
        return _relations_differ(a, b) or exchange
    return _relations_differ(a, b)


def _relations_differ(a: Features, b: Features) -> str | None:
    # whether the prompt is symmetric or its clauses moved (the costlier test) is asked only
    # of a swap or a relation found
    detail = _swap_or_relation(a, b)
    if detail is None or _moved_or_symmetric(a, b):
        return None
    return detail


def _swap_or_relation(a: Features, b: Features) -> str | None:
    pair = swapped_words(a, b)
    if pair is not None:
        return f"words swapped: {pair[0]!r} and {pair[1]!r} trade places"
    if a.relations == b.relations:
        return None  # the same word after every relational word
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


def _role_words(f: Features) -> frozenset[str]:
    """The prompt's words (singular) that are roles: in the table or by their ending."""
    return memo(f, "role_words", lambda f: frozenset(w for w in _singulars(f.words) if _is_role(w)))


def role_differs(a: Features, b: Features) -> str | None:
    # a counterpart from the table (a role itself) or by rule an -er/-or against an -ee:
    # both words are roles, so only the roles one side has alone are paired
    only_a = _role_words(a) - _singulars(b.words)
    only_b = _role_words(b) - _singulars(a.words) if only_a else only_a
    if only_b:
        partners = role_partners()
        roles_b = sorted(only_b)
        for x in sorted(only_a):
            partners_x = partners.get(x, ())
            for y in roles_b:
                if y in partners_x or _ee_partner(x, y):
                    return f"roles differ: {x!r} vs {y!r}"
    shared = [r for r in a.roles if r in b.roles]
    if len(shared) >= 2 and ("by" in a.words) == ("by" in b.words):
        order_b = [r for r in b.roles if r in shared]
        if shared != order_b:
            return f"roles swapped: {' / '.join(shared)} vs {' / '.join(order_b)}"
    return None
