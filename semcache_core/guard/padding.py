"""Padding normalization: the words around a question that never change its answer.

"hey there, quick q: how do I reset my router?? thanks so much!! 🙏" asks what "How do I reset
my router?" asks. :func:`strip_padding` removes greetings, thanks, apologies, "quick
question", urgency markers ("urgent", "asap"), sign-offs, emoji and repeated punctuation
(``data/padding.txt`` lists the phrases), and folds SHOUTING to lower case. The guard applies
it to both prompts before comparing; the engine should apply it to a query before embedding
it, so that padded repeats land on the cached prompt.

Ordinary capitals are kept (the guard reads "Apple" as a name), and phrases are removed only
where padding stands: at the start when punctuation follows ("Hi, ...", "quick q: ...") or, for
phrases that are never the subject of a question, a space ("hey how do I ..."), and at the end
after punctuation ("...? thanks!"). "How do I say thank you in Japanese?" keeps its "thank
you"; "good morning in Spanish?" keeps its "good morning".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

__all__ = ["strip_padding"]


def _patterns() -> tuple[list[str], list[str]]:
    text = resources.files(__package__).joinpath("data").joinpath("padding.txt").read_text("utf-8")
    loose, strict = [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("~ "):
            loose.append(line[2:].strip())
        else:
            strict.append(line.strip())
    return loose, strict


_LOOSE, _STRICT = _patterns()
#: Every word the padding phrases are made of: a prompt whose first word (and whose last
#: segment) has none of them skips the phrase regexes, the common case.
_PADDING_WORDS = frozenset(
    w for p in _LOOSE + _STRICT for w in re.findall(r"[a-z]+", p) if len(w) > 1 or w in ("q", "i")
)
_WORD_RE = re.compile(r"[a-z]+")
_LETTERS_RE = re.compile(r"[A-Za-z]{2,}")
_STRETCHED_RE = re.compile(r"(.)\1+$")


def _padding_word(word: str) -> bool:
    """A word padding phrases are made of, stretched or not ("heyyy", "thanksss")."""
    if word in _PADDING_WORDS:
        return True
    # only a word ending in a repeated letter is stretched (the regex leaves others as they are)
    return word[-1:] == word[-2:-1] and _STRETCHED_RE.sub(r"\1", word) in _PADDING_WORDS


_ANY = "|".join(f"(?:{p})" for p in _LOOSE + _STRICT)
_SEP = r"[\s,.:;!?\-–—…)]"
_START_STRICT_RE = re.compile(rf"^\s*(?:{_ANY})\s*[,.:;!?\-–—…]+{_SEP}*", re.I)
_START_LOOSE_RE = re.compile(rf"^\s*(?:{'|'.join(f'(?:{p})' for p in _LOOSE)})\s+", re.I)
_TAIL_RE = re.compile(rf"\s*(?:{_ANY})\s*[.!?,;:]*\s*", re.I)
_END_ALONE_RE = re.compile(rf"^\s*(?:{_ANY})\s*[.!?,;:]*\s*$", re.I)
# Emoji and pictographs, dingbats, variation selectors, joiners; emoticons like :) and :-(
_EMOJI = (
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f900-\U0001f9ff\u2b00-\u2bff"
    "\ufe0e\ufe0f\u200d\u20e3]+|(?<!\\w)[:;=8][-']?[)(dpDP/\\\\|]+(?!\\w)|<3"
)
# Emoji as decoration: at the start or the end, or next to sentence punctuation. An emoji
# inside the question ('what does "🙃" mean?') is what is asked about and stays.
_EMOJI_RE = re.compile(
    rf"^\s*(?:(?:{_EMOJI})\s*)+|(?:\s*(?:{_EMOJI}))+\s*$|(?<=[.?!,])\s*(?:(?:{_EMOJI})\s*)+"
    rf"|(?:\s*(?:{_EMOJI}))+(?=\s*[.?!,])"
)
# A sign-off with a name after the question: "... visa? Kind regards, Maria"
_SIGNOFF_NAME_RE = re.compile(
    r"(?<=[.?!])\s*(?i:(?:(?:best|kind|warm|many) )?(?:regards|wishes|thanks|cheers)|best)"
    r"\s*,?\s*[A-Z][a-z]*\.?\s*$"
)
_REPEATED_PUNCT_RE = re.compile(r"([?!.,])[?!.,]*(?:\s*\1)*")
#: Where :data:`_REPEATED_PUNCT_RE` changes anything: a mark followed by another, or by the
#: same after spaces. Most prompts have none, and the substitution is costlier than the search.
_PUNCT_REPEATED_RE = re.compile(r"([?!.,])(?:[?!.,]|\s*\1)")
_SPACES_RE = re.compile(r"\s+")


def _strip_tail(text: str) -> str:
    """Drop a padding phrase after the last break ("...? thanks!!"), matched on that tail only
    (a search over the whole prompt would try every position)."""
    body = text.rstrip(" .!?,;:")
    cut = max(body.rfind(c) for c in ".?!,;:)")
    if cut < 0 or len(text) - cut > 80:
        return text
    if not any(_padding_word(w) for w in _WORD_RE.findall(text[cut:].lower())):
        return text
    if _TAIL_RE.fullmatch(text, cut + 1):
        return text[: cut + 1]
    return text


@lru_cache(maxsize=8192)
def strip_padding(text: str) -> str:
    """``text`` without greetings, thanks, apologies, urgency, sign-offs, emoji and
    punctuation noise; SHOUTED text folded to lower case. Returns ``text`` stripped of
    whitespace if nothing but padding is left (an empty prompt stays what it was)."""
    original = text
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii() or any(c in text for c in ":;=<"):  # emoji or an emoticon
        text = _EMOJI_RE.sub(" ", text)
        text = _EMOJI_RE.sub(" ", text.strip())
    if _PUNCT_REPEATED_RE.search(text):
        text = _REPEATED_PUNCT_RE.sub(r"\1", text)
    if "," in text[-40:]:
        text = _SIGNOFF_NAME_RE.sub("", text)
    text = " ".join(text.split())  # runs of whitespace as one space (what \s matches)
    before_layers = text
    for _ in range(6):  # a few layers: "hey, sorry, quick q: ..."
        before = text
        first = _WORD_RE.match(text[:12].lower().lstrip(" !¡¿?.,:;-"))
        if first is not None and _padding_word(first.group(0)):
            text = _START_STRICT_RE.sub("", text, count=1)
            text = _START_LOOSE_RE.sub("", text, count=1) if text == before else text
        text = _strip_tail(text)
        if text == before:
            break
    if text != before_layers and not text.isascii():
        # an emoji that stood inside the padding is now at the start: "hope you don't mind 😊
        # What's ..."
        text = _SPACES_RE.sub(" ", _EMOJI_RE.sub(" ", text)).strip()
    text = text.strip(" ,;:-–—")
    if not text or _END_ALONE_RE.fullmatch(text):
        return original.strip()
    words = _LETTERS_RE.findall(text)
    if len(words) >= 3 and sum(w.isupper() for w in words) >= 0.6 * len(words):
        text = text.lower()  # SHOUTING: capitals carry no information
    return text
