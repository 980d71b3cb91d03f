"""Validated once per distinct stored entry: a small bounded memo, valid for the exact bytes.

An exact hit reads the same bytes again and again, and decoding them (untrusted JSON, checked)
and validating what an adapter rebuilds from them (LangChain's pydantic models) cost more than
reading them. :class:`EntryMemo` keeps, per cache object, what was validated of the last
distinct entries:

* each memoized entry holds the exact bytes it was validated from, and serves a read only
  when the bytes read are *equal* to them (``==``: every byte); any other bytes (a rewritten
  entry, one planted by another program, a corrupt one) are decoded and validated afresh, and
  what fails validation is never memoized (it is a miss each time, warned each time);
* it is looked up by the entry's key (a short string) rather than by the bytes, so a hit does
  not hash the whole entry, and a rewritten entry replaces its old version instead of leaving
  it in the memo; the bytes comparison is what decides;
* what the memo keeps is never handed out: :attr:`Rebuild.build` makes new objects from it for
  every caller, so no object is shared between two callers or with the memo;
* it is bounded by entries and by bytes (least recently used out first), and entries larger
  than :data:`MAX_ENTRY_BYTES` are not kept.

Why a memo and not a cache of objects: the stored bytes stay the source of truth (an entry
changed in the backend is seen at once, a deleted or expired one is a miss, since the backend
is read on every lookup), and the bytes are compared, not trusted: the memo only saves
recomputing a pure function of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Default bounds of one cache object's memo: distinct entries, and their bytes in total.
MAX_ENTRIES = 1024
MAX_BYTES = 4 * 1024 * 1024
#: Entries larger than this are validated on every hit (their decoding dominates anyway).
MAX_ENTRY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, eq=False)
class Rebuild(Generic[T, R]):
    """How an adapter turns an exact entry's value into what its caller gets, validated once
    per distinct stored entry (:class:`EntryMemo`).

    ``validate(value)``: the entry's value (a JSON object decoded from untrusted bytes, the
    core's entry checks passed) validated into a *template* the memo keeps, or ``None`` when it
    does not rebuild (a miss); nothing else holds ``value``, so the template may keep parts of
    it. ``build(template)``: the caller's own new objects, made without validating again;
    nothing it returns may share a mutable object with the template (``None``: a miss).
    """

    validate: Callable[[dict[str, Any]], T | None]
    build: Callable[[T], R | None]


class EntryMemo(Generic[T]):
    """What was validated of stored entries, by entry key, each valid for its exact bytes
    (see the module docstring).

    Thread-safe; one per cache object (``ResponseCache``), so caches never see each other's
    memo. ``owner`` tells which :class:`Rebuild` made a value: a value of another owner is
    not returned (one cache uses one, so this never thrashes).
    """

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[str, tuple[bytes, object, T]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The bytes of the memoized entries, in total."""
        return self._bytes

    def get(self, key: str, raw: bytes, owner: object) -> T | None:
        """What ``owner`` validated of the entry under ``key`` if it was validated from bytes
        equal to ``raw``, else ``None``."""
        # Without the lock: each of these OrderedDict calls is one atomic C call under the
        # GIL; the entry may be replaced or evicted between them, which only makes this a
        # miss of the memo (the bytes compared are the ones stored with the value).
        found = self._entries.get(key)
        if found is None or found[1] is not owner or (found[0] is not raw and found[0] != raw):
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than the call it guards
            self._entries.move_to_end(key)
        except KeyError:
            pass
        return found[2]

    def put(self, key: str, raw: bytes, owner: object, value: T) -> None:
        """Keep ``value``, validated from ``raw``, for ``key`` (replacing what was kept for
        it); skipped when ``raw`` is over :attr:`max_entry_bytes`."""
        if type(raw) is not bytes or len(raw) > self.max_entry_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._entries[key] = (raw, owner, value)
            self._bytes += len(raw)
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, (evicted, _, _) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
