"""Record the trap guard's verdict on every pair of every data file, both ways, and compare.

    PYTHONHASHSEED=0 python -m benchmarks.guard_verdicts record OUT.json
    python -m benchmarks.guard_verdicts compare BEFORE.json AFTER.json

(Record with the same fixed ``PYTHONHASHSEED``: a few rejection details name the first of
several words in the order of a set of strings, which follows the hash seed.)

A tool for changes to the guard that must not change what it decides (cost passes): record
with the old code, record with the new, compare. For every pair of prompts of
``benchmarks/data/*.jsonl`` (both directions) it keeps the verdict of :meth:`TrapGuard.check`
(ok, reason, detail) and of :meth:`TrapGuard.explain` (every check's own verdict); for each
prompt also the pairs with the stored prompts of the next three pairs of its file, as a lookup
compares a query with unrelated neighbours. Conversation files: every message of ``a``
against every message of ``b`` (full guard and the conversation stage's fact guard), and the
whole :func:`match_conversation` decision with every threshold open, so that the question
guard and the fact comparison of the earlier turns both run.

``compare`` prints, per file, the number of comparisons and of differences. For files named
``blind*`` it prints counts only, never which pairs differ or what the guard decided, so that
the blind sets stay blind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def _prompt_pairs(rows: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    for i, row in enumerate(rows):
        a, b = row["a"], row["b"]
        yield f"{i}:ab", a, b
        yield f"{i}:ba", b, a
        for k in range(1, 4):  # unrelated neighbours, as in a lookup of 4 candidates
            other = rows[(i + k) % len(rows)]["b"]
            if other not in (a, b):
                yield f"{i}:a~{k}", a, other
                yield f"{i}:~{k}a", other, a


def _verdicts_of_prompts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from semcache_core.guard import TrapGuard

    guard = TrapGuard()
    out: dict[str, Any] = {}
    for key, new, cached in _prompt_pairs(rows):
        v = guard.check(new, cached)
        explained = guard.explain(new, cached)
        out[key] = [
            [v.ok, v.reason, v.detail],
            {name: [e.ok, e.detail] for name, e in explained.items()},
        ]
    return out


def _verdicts_of_conversations(file: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from semcache_core.conversation import match_conversation
    from semcache_core.conversation.facts import fact_verdict, has_facts
    from semcache_core.guard import TrapGuard
    from semcache_core.quality import hash_embedder
    from semcache_core.quality_chat import load_pairs

    guard = TrapGuard()
    embed = hash_embedder()
    out: dict[str, Any] = {}
    for i, row in enumerate(rows):
        ta = [m["content"] for m in row["a"]]
        tb = [m["content"] for m in row["b"]]
        for x, new in enumerate(ta):
            for y, cached in enumerate(tb):
                for key, n, c in ((f"{i}:a{x}b{y}", new, cached), (f"{i}:b{y}a{x}", cached, new)):
                    v = guard.check(n, c)
                    out[key] = [[v.ok, v.reason, v.detail], list(fact_verdict([n], [c]))]
        for x, text in enumerate(ta):
            out[f"{i}:facts-a{x}"] = has_facts(text)
        for y, text in enumerate(tb):
            out[f"{i}:facts-b{y}"] = has_facts(text)
        out[f"{i}:facts-ab"] = list(fact_verdict(ta, tb))
        out[f"{i}:facts-ba"] = list(fact_verdict(tb, ta))
    for i, pair in enumerate(load_pairs(file)):  # as the engine compares them: padding stripped
        for key, n, c in ((f"{i}:match-ab", pair.a, pair.b), (f"{i}:match-ba", pair.b, pair.a)):
            d = match_conversation(
                n, c, embed=embed, threshold=9.0, guard=guard, context_threshold=9.0
            )
            out[key] = [d.ok, d.stage, d.reason, d.detail]
    return out


def record(path: str) -> None:
    from semcache_core.guard import clear_caches

    result: dict[str, Any] = {}
    for file in sorted(DATA.glob("*.jsonl")):
        clear_caches()
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line]
        if rows and isinstance(rows[0]["a"], list):
            result[file.name] = _verdicts_of_conversations(file, rows)
        else:
            result[file.name] = _verdicts_of_prompts(rows)
    Path(path).write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
    print(f"wrote {path}: {sum(len(v) for v in result.values())} comparisons")


def compare(before_path: str, after_path: str) -> int:
    before = json.loads(Path(before_path).read_text(encoding="utf-8"))
    after = json.loads(Path(after_path).read_text(encoding="utf-8"))
    total = total_pairs = differences = verdict_differences = 0
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, {}), after.get(name, {})
        keys = sorted(set(old) | set(new))
        differ = [k for k in keys if old.get(k) != new.get(k)]
        # the hard rule: the accept/reject of each data pair, both ways
        pair_keys = [k for k in keys if k.endswith((":ab", ":ba", "match-ab", "match-ba"))]

        def ok(entry: Any) -> Any:
            return (
                None if entry is None else entry[0][0] if isinstance(entry[0], list) else entry[0]
            )

        verdict_differ = [k for k in pair_keys if ok(old.get(k)) != ok(new.get(k))]
        total += len(keys)
        total_pairs += len(pair_keys)
        differences += len(differ)
        verdict_differences += len(verdict_differ)
        line = (
            f"{name}: {len(pair_keys)} pair verdicts, {len(verdict_differ)} differ; "
            f"{len(keys)} comparisons in all (verdict, reason, detail, every check), "
            f"{len(differ)} differ"
        )
        if differ and not name.startswith("blind"):
            line += f": {differ[:10]}"
        print(line)
    print(
        f"total: {total_pairs} pair verdicts (both ways), {verdict_differences} differ; "
        f"{total} comparisons in all, {differences} differ"
    )
    return 1 if differences else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "record":
        record(argv[1])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
