"""``sweep``: drop records whose cache is gone, find (and delete) caches no record names.

A flow of the registry (:mod:`semcache_core.context_cache.registry`), run by its ``sweep`` and
``asweep``. A provider cache is this registry's when its ``display_name`` is
``semcache:<key>:<namespace>``; one whose lease is held may be one a worker is creating right
now, so it is not an orphan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from semcache_core.backends.base import KeyScan
from semcache_core.context_cache.errors import ProviderError
from semcache_core.context_cache.flow import Remote
from semcache_core.context_cache.records import (
    DISPLAY_PREFIX,
    KEY_CHARS,
    LEASE,
    REC,
    SweepReport,
    decode,
)
from semcache_core.flow import Flow

if TYPE_CHECKING:
    from semcache_core.context_cache.registry import ContextCacheRegistry


def record_keys(registry: ContextCacheRegistry) -> Flow[list[str]]:
    scan = KeyScan(registry.ops, registry.namespace, REC)
    keys: list[str] = []
    while not scan.finished:
        keys += scan.take((yield from registry.guarded("scan_keys", scan.next_page())))
    return keys


def sweep(registry: ContextCacheRegistry, delete_orphans: bool) -> Flow[SweepReport]:
    ns = registry.namespace
    keys = yield from record_keys(registry)
    raws = yield from registry.guarded("get_many", registry.ops.get_many(ns, keys))
    remote = yield Remote("list")
    live = {cache.name for cache in remote}
    now = registry.clock()
    stale: list[str] = []
    known: set[str] = set()
    for record_key, raw in zip(keys, raws, strict=True):
        record = decode(raw) or {}
        name = record.get("name")
        if name in live and float(record.get("expire_time", 0)) > now:
            known.add(str(name))
        else:
            stale.append(record_key)
    if stale:
        yield from registry.guarded("delete_many", registry.ops.delete_many(ns, stale))
    suffix = f":{registry.namespace}"[: 128 - len(DISPLAY_PREFIX) - KEY_CHARS]
    ours = [
        cache
        for cache in remote
        if cache.display_name.startswith(DISPLAY_PREFIX)
        and cache.display_name[len(DISPLAY_PREFIX) + KEY_CHARS :] == suffix
        and cache.name not in known
    ]
    # A cache whose lease is held may be one a worker is creating right now.
    lease_keys = [
        LEASE + c.display_name[len(DISPLAY_PREFIX) : len(DISPLAY_PREFIX) + KEY_CHARS] for c in ours
    ]
    held = yield from registry.guarded("get_many", registry.ops.get_many(ns, lease_keys))
    orphans = [c.name for c, lease in zip(ours, held, strict=True) if lease is None]
    deleted: list[str] = []
    if delete_orphans:
        for name in orphans:
            try:
                yield Remote("delete", (name,))
                deleted.append(name)
            except ProviderError as exc:
                if exc.kind != "refused":
                    raise
    return SweepReport(
        records=len(keys),
        live=len(known),
        stale_records_removed=[k.removeprefix(REC) for k in stale],
        orphans=orphans,
        orphans_deleted=deleted,
    )
