"""5. Redis memory per cached entry, against the payload (plus vector) it holds."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from benchmarks.context import REDIS, REDIS_QE, BenchContext, require_module
from benchmarks.harness import Section, Skip, Target, fmt_bytes, fmt_ratio
from benchmarks.workloads import DIM, PrecomputedEmbedder, response_payload, unit_vectors
from semcache_core import Prompt, ResponseCache, VectorRecord
from semcache_core.keys import semantic_entry_id

TITLE = "5. Redis memory per cached entry"
LIMIT = 1.2
_HEX32 = re.compile(rb"[0-9a-f]{32}")


def run(ctx: BenchContext) -> Section:
    n = ctx.sizes.memory_entries
    section = Section(
        key="memory",
        title=TITLE,
        description=(
            f"{n:,} exact entries and {n:,} semantic entries (dimension {DIM}, realistic "
            "~1.8 KB payloads) written through semcache into a fresh namespace. `per entry key` "
            "is the median `MEMORY USAGE key SAMPLES 0` of the keys named after an entry; `all "
            "keys / entry` sums every key the writes created (entry hashes plus per-partition "
            "structures such as the plain-Redis log stream) over the entry count; `index / "
            "entry` is the growth of the Query Engine's `FT.INFO` memory (all `*_sz_mb` parts, "
            "the vector index included: it keeps its own copy of each vector); `total` is the "
            "two together, and what the target compares with the payload plus the float32 "
            "vector. `used_memory Δ / entry` (growth of `INFO memory` `used_memory`) is an "
            "independent cross-check of `total`."
        ),
        columns=[
            "backend",
            "entries",
            "payload + vector",
            "per entry key",
            "all keys / entry",
            "index / entry",
            "total / entry",
            "× payload+vector",
            "used_memory Δ / entry",
        ],
    )
    for kind in (REDIS, REDIS_QE):
        for entry_kind in ("exact", "semantic"):
            label = f"{kind}, {entry_kind}"
            try:
                measured = _measure(ctx, kind, entry_kind, n)
            except Skip as exc:
                section.add_skip(kind, str(exc), entries=f"{n:,} {entry_kind}")
                section.targets.append(
                    Target.skipped(_target_name(label), f"≤ {LIMIT:.1f}×", str(exc))
                )
                continue
            expected = measured["payload_plus_vector"]
            per_all = measured["all_keys_per_entry"]
            index = measured["index_per_entry"]
            r_keys = per_all / expected
            total = per_all + (index or 0.0)
            r = total / expected
            section.add(
                {
                    "backend": kind,
                    "entries": entry_kind,
                    **measured,
                    "ratio_keys": r_keys,
                    "ratio": r,
                },
                backend=kind,
                entries=f"{n:,} {entry_kind}",
                **{
                    "payload + vector": fmt_bytes(expected),
                    "per entry key": fmt_bytes(measured["entry_key_median"]),
                    "all keys / entry": fmt_bytes(per_all),
                    "index / entry": fmt_bytes(index) if index is not None else "–",
                    "total / entry": fmt_bytes(total),
                    "× payload+vector": fmt_ratio(r),
                    "used_memory Δ / entry": fmt_bytes(measured["used_memory_per_entry"]),
                },
            )
            section.targets.append(
                Target.check(
                    _target_name(label),
                    f"≤ {LIMIT:.1f}×",
                    f"{fmt_ratio(r)} ({fmt_bytes(total)} for {fmt_bytes(expected)})",
                    r <= LIMIT,
                    f"keys alone {fmt_ratio(r_keys)}; used_memory Δ "
                    f"{fmt_bytes(measured['used_memory_per_entry'])}",
                )
            )
    _redisvl_rows(ctx, section, n)
    section.notes.append(
        "The Query Engine allocates its vector index in blocks of 1,024 vectors, so its "
        "per-entry figure is only meaningful from a few thousand entries (`--quick` writes "
        "300 and overstates it)."
    )
    section.notes.append(
        "Redis' own per-key overhead (dict entry, key object, expiry) is ~50–90 bytes; the "
        "Query Engine's vector index (HNSW graph or flat blocks, plus its copy of the vector) "
        "is RediSearch's and depends on the index type semcache asks for."
    )
    return section


def _redisvl_rows(ctx: BenchContext, section: Section, n: int) -> None:
    """RedisVL's SemanticCache beside semcache's semantic rows: the same entries through its
    own ``store()`` (langchain-redis stores the same way), and the targets against it."""
    name = "Redis memory per semantic entry ≤ 0.8× RedisVL's"
    try:
        measured = _measure_redisvl(ctx, n)
    except Skip as exc:
        section.add_skip("RedisVL SemanticCache", str(exc), entries=f"{n:,} semantic")
        section.targets.append(Target.skipped(name, "≤ 0.80×", str(exc)))
        return
    theirs = measured["all_keys_per_entry"] + (measured["index_per_entry"] or 0.0)
    section.add(
        {"backend": "RedisVL SemanticCache", "entries": "semantic", **measured},
        backend="RedisVL SemanticCache (redis-qe)",
        entries=f"{n:,} semantic",
        **{
            "payload + vector": fmt_bytes(measured["payload_plus_vector"]),
            "per entry key": fmt_bytes(measured["entry_key_median"]),
            "all keys / entry": fmt_bytes(measured["all_keys_per_entry"]),
            "index / entry": fmt_bytes(measured["index_per_entry"]),
            "total / entry": fmt_bytes(theirs),
            "× payload+vector": fmt_ratio(theirs / measured["payload_plus_vector"]),
            "used_memory Δ / entry": fmt_bytes(measured["used_memory_per_entry"]),
        },
    )
    for row in section.rows:
        data = row.data
        if data.get("entries") != "semantic" or data.get("backend") not in (REDIS, REDIS_QE):
            continue
        ours = data["all_keys_per_entry"] + (data.get("index_per_entry") or 0.0)
        r = ours / theirs
        section.targets.append(
            Target.check(
                f"{name} ({data['backend']})",
                "≤ 0.80×",
                f"{fmt_ratio(r)} ({fmt_bytes(ours)} vs {fmt_bytes(theirs)})",
                r <= 0.8,
            )
        )


def _measure_redisvl(ctx: BenchContext, n: int) -> dict[str, Any]:
    require_module("redisvl", "redisvl")
    import json

    from langchain_core.load import dumps
    from redisvl.extensions.cache.llm import SemanticCache
    from redisvl.utils.vectorize import CustomVectorizer

    from benchmarks.workloads import chat_generation

    client = ctx.redis_client(REDIS_QE)
    url = ctx.server_url(REDIS_QE)
    keys_before = set(client.scan_iter(count=1000))
    index_before = _index_memory(client)
    used_before = int(client.info("memory")["used_memory"])
    zero = [0.0] * DIM
    name = ctx.namespace("rvmem")
    cache = SemanticCache(
        name=name,
        distance_threshold=0.12,
        vectorizer=CustomVectorizer(embed=lambda _text: zero),
        redis_url=url,
    )
    vectors = unit_vectors(n, seed=99)
    sizes = []
    try:
        for i in range(n):
            # What langchain-redis stores for a generation: json of LangChain's dumps().
            response = json.dumps([dumps(chat_generation(i))])
            prompt = f"stored question number {i}"
            cache.store(prompt=prompt, response=response, vector=vectors[i].tolist())
            sizes.append(len(response.encode()) + len(prompt))
        _wait_indexed(client)
        index_after = _index_memory(client)
        used_after = int(client.info("memory")["used_memory"])
        new_keys = [k for k in client.scan_iter(count=1000) if k not in keys_before]
        pipe = client.pipeline(transaction=False)
        for key in new_keys:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        usages = [int(u or 0) for u in pipe.execute()]
    finally:
        cache.delete()
    return {
        "payload_mean": statistics.fmean(sizes),
        "vector_bytes": 4 * DIM,
        "payload_plus_vector": statistics.fmean(sizes) + 4 * DIM,
        "new_keys": len(new_keys),
        "entry_keys": len(new_keys),
        "entry_key_median": statistics.median(usages) if usages else None,
        "all_keys_per_entry": sum(usages) / n,
        "index_per_entry": (
            (index_after - index_before) / n
            if index_after is not None and index_before is not None
            else None
        ),
        "used_memory_per_entry": (used_after - used_before) / n,
    }


def _target_name(label: str) -> str:
    return f"Redis memory per entry ({label}) ≤ 1.2× payload + vector"


def _measure(ctx: BenchContext, kind: str, entry_kind: str, n: int) -> dict[str, Any]:
    backend = ctx.semcache_backend(kind)
    client = ctx.redis_client(kind)
    namespace = ctx.namespace("mem")
    keys_before = set(client.scan_iter(count=1000))
    index_before = _index_memory(client)
    used_before = int(client.info("memory")["used_memory"])
    ids: set[bytes] = set()
    payload_sizes: list[int] = []
    vector_bytes = 0
    if entry_kind == "exact":
        core = ResponseCache(backend, namespace=namespace)
        for i in range(n):
            prompt = Prompt.plain(f"exact prompt number {i}: what is the cancellation policy?")
            body = {"generations": [_generation_json(i)]}
            core.update("bench-llm-string", prompt, body, tokens=180)
            payload_sizes.append(len(response_payload("", i)))
    else:
        vectors = unit_vectors(n, seed=99)
        cache = ResponseCache(
            backend, namespace=namespace, embedder=PrecomputedEmbedder({}), trap_guard=False
        )
        partition = cache.partition("bench-llm-string", Prompt.plain("x"))
        records = []
        for i in range(n):
            query = f"stored question number {i}"
            payload = response_payload(query, i)
            entry_id = semantic_entry_id(namespace, partition, query)
            ids.add(entry_id.encode())
            records.append(VectorRecord(entry_id, vectors[i], payload))
            payload_sizes.append(len(payload))
        for start in range(0, n, 500):
            backend.add_vectors(namespace, partition, records[start : start + 500])
        vector_bytes = 4 * DIM
        _wait_indexed(client)
    index_after = _index_memory(client)
    used_after = int(client.info("memory")["used_memory"])
    new_keys = [k for k in client.scan_iter(count=1000) if k not in keys_before]
    if not new_keys:
        raise Skip("the writes created no keys (cannot attribute memory)")
    pipe = client.pipeline(transaction=False)
    for key in new_keys:
        pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
    usages = [int(u or 0) for u in pipe.execute()]
    if entry_kind == "exact":
        # Exact entries: the keys that appear once per entry are the ones holding an entry hash.
        entry_usages = [u for k, u in zip(new_keys, usages, strict=True) if _HEX32.search(k)]
    else:
        entry_usages = [
            u
            for k, u in zip(new_keys, usages, strict=True)
            if any(m in ids for m in _HEX32.findall(k))
        ]
    index_delta = (
        (index_after - index_before) / n
        if index_after is not None and index_before is not None
        else None
    )
    return {
        "payload_mean": statistics.fmean(payload_sizes),
        "vector_bytes": vector_bytes,
        "payload_plus_vector": statistics.fmean(payload_sizes) + vector_bytes,
        "new_keys": len(new_keys),
        "entry_keys": len(entry_usages),
        "entry_key_median": statistics.median(entry_usages) if entry_usages else None,
        "all_keys_per_entry": sum(usages) / n,
        "index_per_entry": index_delta if kind == REDIS_QE else None,
        "used_memory_per_entry": (used_after - used_before) / n,
    }


def _generation_json(i: int) -> dict[str, Any]:
    from langchain_core.load import dumpd

    from benchmarks.workloads import chat_generation

    return dumpd(chat_generation(i))  # type: ignore[no-any-return]


def _ft_info(client: Any, index: Any) -> dict[str, Any]:
    raw = client.execute_command("FT.INFO", index)
    if isinstance(raw, dict):
        return {_text(k): v for k, v in raw.items()}
    return {_text(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}


def _index_memory(client: Any) -> float | None:
    """Bytes of every RediSearch index (``None`` without the Query Engine)."""
    try:
        names = client.execute_command("FT._LIST")
    except Exception:
        return None
    total = 0.0
    for name in names:
        info = _ft_info(client, name)
        # Every part; ``total_index_memory_sz_mb`` leaves out ``vector_index_sz_mb``.
        for key, value in info.items():
            if key.endswith(("_sz_mb", "_size_mb")) and key != "total_index_memory_sz_mb":
                try:
                    total += float(_text(value))
                except ValueError:
                    continue
    return total * 1024 * 1024


def _wait_indexed(client: Any, timeout: float = 60.0) -> None:
    """Wait for the Query Engine to finish indexing (no-op without it)."""
    try:
        names = client.execute_command("FT._LIST")
    except Exception:
        return
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            info = _ft_info(client, name)
            if str(_text(info.get("indexing", "0"))) in ("0", "0.0"):
                break
            time.sleep(0.1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
