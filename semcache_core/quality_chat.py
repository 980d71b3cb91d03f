"""How often a multi-turn lookup serves the right answer: conversations that should hit vs traps.

    semcache eval CONVERSATION_PAIRS.jsonl ... [--set NAME=PATH[,PATH]] [--embedder minilm|hash]
                  [--out DIR] [--threshold T] [--context-threshold C] [-k K]
    semcache eval --conversations ...        (the default files: the tuning and blind parts)
    python -m semcache_core.quality_chat ... (the same)

``semcache eval`` hands pair files whose ``a`` is a list of messages here (single-prompt
pairs go to :mod:`semcache_core.quality`). Reads labelled conversation pairs (by default
``benchmarks/data/conversations_tuning.jsonl`` and ``conversations_blind.jsonl`` of the
checkout; each file or ``--set`` is reported on its own), one JSON object
a line: ``a`` and ``b`` (lists of ``{"role", "content"}`` messages ending with a user message),
``same_answer`` (would the answer cached for ``b`` be right for ``a``?), ``subtype`` and
optionally ``domain``. Every text to compare is embedded once (progress on stderr), then the
lookup decision of ``a`` against the cached ``b`` is simulated in both settings:

``exact`` (today's behaviour)
    everything but the last user message must be identical; the last user messages are
    compared as single prompts (distance at most ``--threshold``, trap guard).
``semantic``
    :func:`semcache_core.conversation.match_conversation`: search-text distance at most
    ``--context-threshold``, the question as a single prompt, then the earlier turns by
    alignment and facts.

For each file it reports the share served per subtype, of all conversations that should hit
and of all traps, why the semantic setting rejected what it rejected, a sweep of the context
threshold, and the *retrieval* check: with every conversation of the file in one partition
(per configuration), how often the cached side ``b`` of a should-hit pair is among the ``k``
nearest of ``a``, with the search-text vector and with the last message alone. Writes
``DIR/conversation_quality.md`` and ``DIR/conversation_quality.json``.

``--embedder hash`` is the dependency-free embedder of :mod:`semcache_core.quality`, for smoke
tests only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcache_core.conversation import (
    DEFAULT_CONTEXT_THRESHOLD,
    Conversation,
    MatchDecision,
    Prompt,
    focus,
    match_conversation,
    prompt_from_messages,
    query_text,
    search_text,
    units,
    without_padding,
)
from semcache_core.conversation.match import cosine_distance
from semcache_core.engine import DEFAULT_DISTANCE_THRESHOLD, SEMANTIC_CANDIDATES
from semcache_core.guard import TrapGuard, strip_padding
from semcache_core.quality import choose_embedder, embed_with_progress, parse_sets

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = (
    ROOT / "benchmarks" / "data" / "conversations_tuning.jsonl",
    ROOT / "benchmarks" / "data" / "conversations_blind.jsonl",
)
#: Not ``benchmarks/results`` itself: ``conversation_quality.md`` there is the record of the
#: one blind run at design freeze and must stay as measured.
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "conversations"
SHOULD_HIT = ("reworded_context", "irrelevant_history", "acknowledgements")
TRAPS = ("other_referent", "changed_detail", "different_request")
CONTEXT_SWEEP: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(2, 11))
MODES = ("exact", "semantic")

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ConversationPair:
    """Would the answer cached for conversation ``b`` be right for conversation ``a``?

    ``a``/``b`` are the semantic splits, ``prompts`` the core's whole prompts (for the exact
    setting), both by the core's one rule (:meth:`Prompt.from_turns`)."""

    a: Conversation
    b: Conversation
    same_answer: bool
    subtype: str
    domain: str = ""
    prompts: tuple[Prompt, Prompt] | None = None


def _prompt(messages: Any, where: str) -> Prompt:
    if not isinstance(messages, list) or not 1 <= len(messages) <= 64:
        raise ValueError(f"{where}: needs a list of messages")
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ValueError(f"{where}: every message needs a role and a content")
    if messages[-1]["role"] != "user":
        raise ValueError(f"{where}: the last message must be a user message")
    prompt = prompt_from_messages(messages)
    if prompt.conversation is None:
        raise ValueError(f"{where}: no user message with text")
    return prompt


def load_pairs(path: str | os.PathLike[str]) -> list[ConversationPair]:
    """Read a JSONL file of conversation pairs; raises ValueError on a malformed line."""
    pairs: list[ConversationPair] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            where = f"{path}:{number}"
            if not isinstance(row.get("same_answer"), bool) or not isinstance(
                row.get("subtype"), str
            ):
                raise ValueError(f"{where}: needs a, b, same_answer (bool), subtype")
            a, b = _prompt(row.get("a"), where + " a"), _prompt(row.get("b"), where + " b")
            assert a.conversation is not None and b.conversation is not None
            pairs.append(
                ConversationPair(
                    without_padding(a.conversation),  # as the engine compares them
                    without_padding(b.conversation),
                    row["same_answer"],
                    row["subtype"],
                    str(row.get("domain", "")),
                    (a, b),
                )
            )
    return pairs


def is_conversation_file(path: str | os.PathLike[str]) -> bool:
    """Whether a pairs file holds conversations (``a`` is a list), for ``semcache eval``."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return isinstance(json.loads(line).get("a"), list)
    return False


# -- embedding -----------------------------------------------------------------------------------


class VectorTable:
    """Every text embedded once, in batches, with a progress line on stderr."""

    def __init__(self, embed: Embed, *, batch: int = 64, progress: bool = True) -> None:
        self._embed = embed
        self._batch = batch
        self._progress = progress
        self._vectors: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def add(self, texts: Sequence[str]) -> None:
        todo = sorted(set(texts) - self._vectors.keys())
        if not todo:
            return
        started = time.perf_counter()
        if self._progress:  # the single-prompt harness's progress bar (tqdm when installed)
            vectors = embed_with_progress(todo, self._embed, batch_size=self._batch)
        else:
            chunks = [
                self._embed(todo[i : i + self._batch]) for i in range(0, len(todo), self._batch)
            ]
            vectors = np.concatenate([np.asarray(c) for c in chunks])
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.shape[0] != len(todo):
            raise ValueError(f"embed returned {vectors.shape[0]} vectors for {len(todo)}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self._vectors.update(zip(todo, vectors / norms, strict=True))
        self.seconds += time.perf_counter() - started

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        self.add(texts)
        return [self._vectors[t] for t in texts]

    def __len__(self) -> int:
        return len(self._vectors)


# -- decisions -----------------------------------------------------------------------------------


def exact_decision(
    new: Prompt, cached: Prompt, vectors: VectorTable, *, threshold: float, guard: Any
) -> bool:
    """``context_match="exact"``: the context must be identical, the last message a
    single-prompt hit."""
    if new.context != cached.context:
        return False
    if new.query == cached.query:
        return True
    # Embedded without padding, as the engine does (the guard strips it itself).
    a, b = (strip_padding(q) or q for q in (new.query, cached.query))
    if a == b:
        return True
    va, vb = vectors([a, b])
    return cosine_distance(va, vb) <= threshold + 1e-12 and guard.check(new.query, cached.query).ok


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def _summary(pairs: Sequence[ConversationPair], served: Sequence[bool]) -> dict[str, Any]:
    subtypes = sorted({p.subtype for p in pairs}, key=lambda s: (s not in SHOULD_HIT, s))
    by_subtype = {}
    for subtype in subtypes:
        flags = [s for p, s in zip(pairs, served, strict=True) if p.subtype == subtype]
        by_subtype[subtype] = {"pairs": len(flags), "served": _rate(sum(flags), len(flags))}
    hits = [s for p, s in zip(pairs, served, strict=True) if p.same_answer]
    traps = [s for p, s in zip(pairs, served, strict=True) if not p.same_answer]
    return {
        "should_hit_served": _rate(sum(hits), len(hits)),
        "traps_served": _rate(sum(traps), len(traps)),
        "subtypes": by_subtype,
    }


#: Last messages that many conversations share: in the retrieval check every conversation of
#: the file is also asked each of them, so that only the earlier turns can tell them apart.
SHARED_QUESTIONS = ("yes, do that", "How much does it cost?", "Can I still return it?")


def _with_question(c: Conversation, question: str) -> Conversation:
    return Conversation(c.configuration, focus(c).history, question)


def _recall(
    pairs: Sequence[ConversationPair],
    entries: Sequence[Conversation],
    vectors: VectorTable,
    text_of: Callable[[Conversation], str],
    k: int,
    question: str | None = None,
) -> float | None:
    ask = (lambda c: _with_question(c, question)) if question is not None else (lambda c: c)
    matrix = np.stack(vectors([text_of(ask(c)) for c in entries]))
    found = total = 0
    for p in pairs:
        if not p.same_answer:
            continue
        total += 1
        distances = 1.0 - matrix @ vectors([text_of(ask(p.a))])[0]
        target = -1
        for i, c in enumerate(entries):
            if c == p.a or c.configuration != p.a.configuration:
                distances[i] = np.inf
            elif c == p.b:
                target = i
        # Rank among the others; a tie counts against (a search could return either).
        found += int(np.sum(distances <= distances[target] + 1e-9)) - 1 < k
    return _rate(found, total)


def _retrieval(pairs: Sequence[ConversationPair], vectors: VectorTable, k: int) -> dict[str, Any]:
    """Recall@k of the cached side among every conversation of the file (one partition per
    configuration): as asked, and with every conversation asking the same short question."""
    entries = list(dict.fromkeys(c for p in pairs for c in (p.a, p.b)))
    out: dict[str, Any] = {"pool": len(entries), "k": k, "shared_questions": SHARED_QUESTIONS}
    for name, text_of in (("search_text", search_text), ("last_message", query_text)):
        out[name] = _recall(pairs, entries, vectors, text_of, k)
        shared = [_recall(pairs, entries, vectors, text_of, k, q) for q in SHARED_QUESTIONS]
        out[f"{name}_shared_question"] = float(np.mean([r for r in shared if r is not None]))
    return out


def evaluate_file(
    pairs: Sequence[ConversationPair],
    vectors: VectorTable,
    *,
    threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    context_threshold: float = DEFAULT_CONTEXT_THRESHOLD,
    k: int = SEMANTIC_CANDIDATES,
    guard: Any = None,
) -> dict[str, Any]:
    """Score one file's pairs in both settings (no I/O but the embedder)."""
    if not pairs:
        raise ValueError("no pairs to evaluate")
    guard = guard if guard is not None else TrapGuard()
    vectors.add([t for p in pairs for c in (p.a, p.b) for t in (search_text(c), query_text(c))])
    vectors.add([c.query for p in pairs for c in (p.a, p.b)])
    # The earlier turns too (a lookup embeds them only when words alone leave one unmatched),
    # so that the decision time below is the rules' alone.
    vectors.add([u.text for p in pairs for c in (p.a, p.b) for u in units(focus(c))])
    context_distances = [
        cosine_distance(*vectors([search_text(p.a), search_text(p.b)])) for p in pairs
    ]

    def decide(p: ConversationPair, d: float, c_threshold: float) -> MatchDecision:
        return match_conversation(
            p.a,
            p.b,
            embed=vectors,
            threshold=threshold,
            guard=guard,
            context_threshold=c_threshold,
            context_distance=d,
        )

    started = time.perf_counter()
    decisions = [
        decide(p, d, context_threshold) for p, d in zip(pairs, context_distances, strict=True)
    ]
    decide_seconds = time.perf_counter() - started
    exact = [
        p.prompts is not None
        and exact_decision(*p.prompts, vectors, threshold=threshold, guard=guard)
        for p in pairs
    ]
    semantic = [d.ok for d in decisions]
    rejections: dict[str, Counter[str]] = {}
    for p, d in zip(pairs, decisions, strict=True):
        if not d.ok:
            key = d.stage if d.stage != "context" else f"context:{d.reason}"
            rejections.setdefault(p.subtype, Counter())[str(key)] += 1
    sweep = []
    for c in CONTEXT_SWEEP:
        served = [decide(p, d, c).ok for p, d in zip(pairs, context_distances, strict=True)]
        sweep.append({"context_threshold": c, **_summary(pairs, served)})
        del sweep[-1]["subtypes"]
    wrong = [
        {
            "subtype": p.subtype,
            "domain": p.domain,
            "same_answer": p.same_answer,
            "served": d.ok,
            "stage": d.stage,
            "reason": d.reason,
            "detail": d.detail,
            "context_distance": round(dist, 4),
            "a_question": p.a.query,
            "b_question": p.b.query,
        }
        for p, d, dist in zip(pairs, decisions, context_distances, strict=True)
        if d.ok != p.same_answer
    ]
    return {
        "pairs": len(pairs),
        "should_hit": sum(p.same_answer for p in pairs),
        "traps": sum(not p.same_answer for p in pairs),
        "exact": _summary(pairs, exact),
        "semantic": _summary(pairs, semantic),
        "semantic_rejections": {s: dict(c.most_common()) for s, c in sorted(rejections.items())},
        "context_sweep": sweep,
        "retrieval": _retrieval(pairs, vectors, k),
        "decide_microseconds_per_pair": 1e6 * decide_seconds / len(pairs),
        "mistakes": wrong,
    }


def evaluate(
    files: Mapping[str, Sequence[ConversationPair]],
    embed: Embed,
    *,
    threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    context_threshold: float = DEFAULT_CONTEXT_THRESHOLD,
    k: int = SEMANTIC_CANDIDATES,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every file of ``files`` (label -> pairs) on its own."""
    vectors = VectorTable(embed, progress=progress)
    result: dict[str, Any] = {
        "threshold": threshold,
        "context_threshold": context_threshold,
        "k": k,
        "files": {
            label: evaluate_file(
                pairs, vectors, threshold=threshold, context_threshold=context_threshold, k=k
            )
            for label, pairs in files.items()
        },
    }
    result["timing"] = {"texts": len(vectors), "embed_seconds": vectors.seconds}
    return result


# -- reporting -----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render_markdown(result: dict[str, Any]) -> str:
    meta = result.get("meta", {})
    lines = [
        "# Multi-turn conversation hit quality",
        "",
        (
            f"Embedder: {meta.get('embedder', '?')}. Question threshold {result['threshold']} "
            f"(the single-prompt default), context threshold {result['context_threshold']}, "
            f"k = {result['k']} candidates. {result['timing']['texts']} texts embedded in "
            f"{result['timing']['embed_seconds']:.1f} s."
        ),
        "",
    ]
    for label, r in result["files"].items():
        lines += [
            f"## {label}: {r['pairs']} pairs ({r['should_hit']} should hit, {r['traps']} traps)",
            "",
            "| subtype | kind | pairs | served, exact context | served, semantic context |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for subtype, row in r["semantic"]["subtypes"].items():
            kind = "should hit" if subtype in SHOULD_HIT else "trap"
            lines.append(
                f"| {subtype} | {kind} | {row['pairs']} "
                f"| {_pct(r['exact']['subtypes'][subtype]['served'])} | {_pct(row['served'])} |"
            )
        lines += [
            (
                f"| **all that should hit** | | {r['should_hit']} "
                f"| **{_pct(r['exact']['should_hit_served'])}** "
                f"| **{_pct(r['semantic']['should_hit_served'])}** |"
            ),
            (
                f"| **all traps** | | {r['traps']} | **{_pct(r['exact']['traps_served'])}** "
                f"| **{_pct(r['semantic']['traps_served'])}** |"
            ),
            "",
            (
                f"Retrieval (one partition of all {r['retrieval']['pool']} conversations of the "
                f"file): the cached side of a should-hit pair is among the {r['retrieval']['k']} "
                f"nearest {_pct(r['retrieval']['search_text'])} of the time with the search-text "
                f"vector, {_pct(r['retrieval']['last_message'])} with the last message alone; "
                "when every conversation asks the same short question "
                f"({', '.join(repr(q) for q in r['retrieval']['shared_questions'])}): "
                f"{_pct(r['retrieval']['search_text_shared_question'])} with the search text, "
                f"{_pct(r['retrieval']['last_message_shared_question'])} with the last message "
                "alone (ties count against). "
                f"Decision on a candidate: {r['decide_microseconds_per_pair']:.0f} µs (the rules "
                "alone, every vector computed beforehand)."
            ),
            "",
            "Why the semantic setting said no:",
            "",
            "| subtype | rejected by |",
            "| --- | --- |",
        ]
        for subtype, counts in r["semantic_rejections"].items():
            text = ", ".join(f"{k} {v}" for k, v in counts.items())
            lines.append(f"| {subtype} | {text} |")
        lines += [
            "",
            "| context threshold | should hit served | traps served |",
            "| ---: | ---: | ---: |",
        ]
        for row in r["context_sweep"]:
            lines.append(
                f"| {row['context_threshold']:.2f} | {_pct(row['should_hit_served'])} "
                f"| {_pct(row['traps_served'])} |"
            )
        served_traps = [m for m in r["mistakes"] if not m["same_answer"]]
        if served_traps:
            lines += ["", "Traps served:", ""]
            for m in served_traps:
                lines.append(f"- [{m['subtype']}, {m['domain']}] {m['a_question']!r}")
        lines.append("")
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "conversation_quality.md", out / "conversation_quality.json"
    md.write_text(render_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return [md, js]


def _label(path: Path) -> str:
    name = path.stem
    return name.removeprefix("conversations_") or name


def wants_conversations(argv: Sequence[str]) -> bool:
    """Whether ``semcache eval ARGS`` is about conversation pairs: ``--conversations``, or a
    pair file (positional or in ``--set``) whose first row's ``a`` is a list of messages."""
    if "--conversations" in argv:
        return True
    files: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--set" and i + 1 < len(argv):
            files += argv[i + 1].partition("=")[2].split(",")
        elif arg.startswith("--set="):
            files += arg.partition("=")[2].partition("=")[2].split(",")
        elif arg.endswith(".jsonl"):
            files.append(arg)
    kinds = {is_conversation_file(f) for f in files if f and os.path.isfile(f)}
    if len(kinds) > 1:
        raise SystemExit("semcache eval: conversation and single-prompt pair files cannot mix")
    return kinds == {True}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="semcache eval --conversations", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("pairs", nargs="*", help="JSONL files (default: tuning and blind)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=PATH[,PATH]",
        help="a named set of one or more conversation pair files (repeatable)",
    )
    parser.add_argument(
        "--conversations", action="store_true", help="(for semcache eval) conversation pairs"
    )
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--threshold", type=float, default=DEFAULT_DISTANCE_THRESHOLD)
    parser.add_argument("--context-threshold", type=float, default=DEFAULT_CONTEXT_THRESHOLD)
    parser.add_argument("-k", type=int, default=SEMANTIC_CANDIDATES, help="candidates per search")
    args = parser.parse_args(argv)

    named = parse_sets(args.pairs, args.sets, {_label(p): [p] for p in DEFAULT_FILES}, label=_label)
    files = {name: [p for f in paths for p in load_pairs(f)] for name, paths in named.items()}
    started = time.perf_counter()
    embed, name = choose_embedder(args.embedder)
    result = evaluate(
        files,
        embed,
        threshold=args.threshold,
        context_threshold=args.context_threshold,
        k=args.k,
    )
    result["meta"] = {
        "embedder": name,
        "files": {label: [str(p) for p in paths] for label, paths in named.items()},
        "load_seconds": time.perf_counter() - started - result["timing"]["embed_seconds"],
    }
    for path in write_outputs(result, args.out):
        print(f"wrote {path}")
    for label, r in result["files"].items():
        print(
            f"{label}: should hit served {_pct(r['semantic']['should_hit_served'])} "
            f"(exact context {_pct(r['exact']['should_hit_served'])}), traps served "
            f"{_pct(r['semantic']['traps_served'])} (exact {_pct(r['exact']['traps_served'])})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
