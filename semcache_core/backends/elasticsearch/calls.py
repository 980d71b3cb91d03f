"""Elasticsearch steps: a client :class:`Call` described as data, and its :class:`Reply`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from semcache_core.flow import Step


@dataclass(frozen=True, slots=True)
class Call(Step):
    """One client API call: ``api`` is the method path (``"mget"``, ``"indices.refresh"``).

    ``ignore`` lists HTTP statuses returned as a :class:`Reply` instead of raised; ``admin``
    selects the longer admin timeout; a ``soft`` call never raises (its failure is a
    ``Reply(0, None)``): used for housekeeping that must not fail the operation around it.
    """

    api: str
    kwargs: dict[str, Any]
    ignore: tuple[int, ...] = ()
    admin: bool = False
    soft: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any


def error_of(body: Any) -> tuple[str, str]:
    """``(type, reason)`` of an error body (``{"error": {...}}`` or a bulk item's error)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        return str(error.get("type", "")), str(error.get("reason", ""))
    if error is not None:
        return "", str(error)
    return "", ""
