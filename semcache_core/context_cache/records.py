"""What the registry stores in its backend namespace, and what it hands to callers.

=====================  ===========================================================================
``ctx:<key>``          the cache of a context: name, model, tokens, expiry (JSON); a refresh
                       claim; or a tombstone after the provider refused it
``lease:<key>``        held (set-if-absent, expires after ``create_wait``) while one worker
                       creates the cache; ``failed`` for a few seconds after a failed create
``small:<key>``        the context is under the model's minimum: send it inline (``min_size_memory``)
``min:<model>``        the minimum the provider reported for a model (``min_size_memory``)
=====================  ===========================================================================
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcache_core.codecs import canonical_json, loads_untrusted

logger = logging.getLogger("semcache")

DISPLAY_PREFIX = "semcache:"
KEY_CHARS = 32  # stable_hash hex digest

REC, LEASE, SMALL, MIN = "ctx:", "lease:", "small:", "min:"
FAILED_LEASE = b"failed"
TOMBSTONE_TTL = 60.0


@dataclass(frozen=True)
class CachedContext:
    """A provider cache to use for one call: pass :attr:`name` as ``cached_content``."""

    key: str
    name: str
    model: str
    expire_time: float
    tokens: int
    record: bytes = field(repr=False, default=b"")


@dataclass(frozen=True)
class SweepReport:
    records: int
    live: int
    stale_records_removed: list[str]
    orphans: list[str]
    orphans_deleted: list[str]


@dataclass
class Outcome:
    """What a call flow ends with: the attempt's result, the cache it used, the counters."""

    result: Any
    context: CachedContext | None
    counts: Counter[str]


def encode(record: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(record)).encode()


#: Fields of a registry record the flows compute with, and the type each must have: a record
#: is untrusted input (any process, or anyone, may have written the key), so one that breaks
#: these is ignored as corrupt rather than raising from ``float()`` or arithmetic later.
_NUMBER_FIELDS = ("expire_time", "created_at")
_OPTIONAL_NUMBER_FIELDS = ("tokens", "min_tokens", "claim")  # a number or null
_TEXT_FIELDS = ("name", "model")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """A registry record, or None when absent or corrupt (not JSON, nested too deep, not an
    object, or a field of the wrong type), with a warning for the corrupt ones."""
    if raw is None:
        return None
    try:
        value = loads_untrusted(raw)
    except (ValueError, UnicodeDecodeError):
        value = None
    if (
        isinstance(value, dict)
        and all(_is_number(value[name]) for name in _NUMBER_FIELDS if name in value)
        and all(
            value[name] is None or _is_number(value[name])
            for name in _OPTIONAL_NUMBER_FIELDS
            if name in value
        )
        and all(isinstance(value[name], str) for name in _TEXT_FIELDS if name in value)
    ):
        return value
    logger.warning("semcache: ignoring a corrupt context-cache record")
    return None


def live_context(key: str, raw: bytes | None, now: float) -> CachedContext | None:
    """The cache a ``ctx:`` record names, unless it is gone or expires within a second."""
    record = decode(raw)
    if not record or "name" not in record or float(record.get("expire_time", 0)) <= now + 1:
        return None
    return CachedContext(
        key=key,
        name=str(record["name"]),
        model=str(record.get("model", "")),
        expire_time=float(record["expire_time"]),
        tokens=int(record.get("tokens") or 0),
        record=raw or b"",
    )


def model_id(model: str) -> str:
    return model.removeprefix("models/")
