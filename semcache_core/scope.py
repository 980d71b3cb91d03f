"""Context-local cache scopes: per-tenant and per-user caching inside framework apps.

LangChain hands a cache only ``(prompt, llm_string)``, so a multi-tenant app cannot pass a
filter with each call. :func:`cache_scope` sets scope fields for the code it wraps instead::

    with cache_scope(tenant="acme", user="u42"):
        chain.invoke(...)          # every cache lookup and update in here is acme/u42's

The fields live in a :class:`contextvars.ContextVar`: each thread and each asyncio task sees
its own (a task starts with a copy of its creator's); scopes nest and merge, the inner value
winning field by field, and ``None`` removes a field for the inner block.

A cache declares which fields it is partitioned by (``filterable_fields=["tenant", "user"]``)
and then matches **exactly on every declared field**: an entry stored under ``tenant="acme"``
alone is seen by a scope of ``tenant="acme"`` alone, not by ``tenant="acme", user="u42"``, and
a cache used outside any scope sees only unscoped entries. A field that a cache did not declare
is an error at lookup and update (:func:`check_fields`), never ignored: a cache that silently
ignored ``tenant`` would share one tenant's answers with every other.

How the fields reach the storage is :mod:`semcache_core.keys`' business (they are part of the
exact entry key and of the semantic partition; see :func:`semcache_core.keys.scope_text`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any

from semcache_core import keys
from semcache_core.errors import SemcacheInputError

__all__ = [
    "ScopeFields",
    "cache_scope",
    "check_fields",
    "current_scope",
    "merged",
    "validate_filterable_fields",
    "validate_filters",
]

#: Scope fields as a lookup or an update uses them: field name -> value.
ScopeFields = Mapping[str, str]

_EMPTY: ScopeFields = MappingProxyType({})
_ACTIVE: contextvars.ContextVar[ScopeFields] = contextvars.ContextVar(
    "semcache_scope", default=_EMPTY
)
#: Longest field name and value: they become part of keys and payloads.
MAX_FIELD_LENGTH = 256


def _field_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} names must be str, got {type(name).__name__}: {name!r}")
    if not name.isidentifier() or not name.isascii() or len(name) > MAX_FIELD_LENGTH:
        raise SemcacheInputError(
            f"invalid {what} name {name!r}: use an ASCII Python identifier "
            f"(letters, digits, '_'; not starting with a digit) of at most {MAX_FIELD_LENGTH} "
            "characters"
        )
    return name


def _field_value(name: str, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(
            f"{what} field {name!r} must be a str (or None to remove it), "
            f"got {type(value).__name__}: {value!r}"
        )
    if len(value) > MAX_FIELD_LENGTH:
        raise SemcacheInputError(
            f"{what} field {name!r} is {len(value)} characters long; at most "
            f"{MAX_FIELD_LENGTH} are allowed"
        )
    return keys.require_text(value, f"{what} field {name!r}")


def validate_filters(filters: object, *, what: str = "filters") -> dict[str, str | None]:
    """``filters`` (a mapping of field name to a str, or to ``None`` to remove the field) as a
    dict; a clear error for anything else."""
    if filters is None:
        return {}
    if not isinstance(filters, Mapping):
        raise TypeError(f"{what} must be a dict of field name to str, got {type(filters).__name__}")
    checked: dict[str, str | None] = {}
    for name, value in filters.items():
        field = _field_name(name, what)
        checked[field] = None if value is None else _field_value(field, value, what)
    return checked


def merged(base: ScopeFields, overrides: Mapping[str, str | None]) -> dict[str, str]:
    """``base`` with ``overrides`` applied field by field (``None`` removes a field)."""
    fields = dict(base)
    for name, value in overrides.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def current_scope() -> ScopeFields:
    """The scope fields active in this thread or task (empty outside any :func:`cache_scope`)."""
    return _ACTIVE.get()


#: :func:`current_scope` without a Python frame of its own (the context variable's ``get``):
#: for the exact lookup, which asks on every call.
current_scope_now: Callable[[], ScopeFields] = _ACTIVE.get


class cache_scope:  # lowercase: used like a function, as contextlib's context managers
    """Set scope fields for the code inside ``with`` (or ``async with``); see the module
    docstring. ``cache_scope(tenant="acme")`` inside ``cache_scope(user="u42")`` is
    ``tenant="acme", user="u42"``; ``cache_scope(user=None)`` inside it is ``tenant`` alone.

    Values must be ``str`` (``None`` removes the field); field names are identifiers.
    """

    def __init__(self, **fields: str | None) -> None:
        self.fields: Mapping[str, str | None] = MappingProxyType(
            validate_filters(fields, what="cache_scope")
        )
        self._tokens: list[contextvars.Token[ScopeFields]] = []

    def __enter__(self) -> ScopeFields:
        active: ScopeFields = MappingProxyType(merged(_ACTIVE.get(), self.fields))
        self._tokens.append(_ACTIVE.set(active))
        return active

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _ACTIVE.reset(self._tokens.pop())

    async def __aenter__(self) -> ScopeFields:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, traceback)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.fields.items())
        return f"cache_scope({inner})"


def validate_filterable_fields(fields: object) -> tuple[str, ...]:
    """A cache's ``filterable_fields``: distinct identifiers, in the order given."""
    if fields is None:
        return ()
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable):
        raise TypeError(
            "filterable_fields must be a list of field names (e.g. ['tenant', 'user']), "
            f"got {type(fields).__name__}"
        )
    names = [_field_name(name, "filterable_fields") for name in fields]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SemcacheInputError(f"filterable_fields names {repeated} more than once")
    return tuple(names)


def check_fields(fields: Mapping[str, Any], declared: tuple[str, ...], namespace: str) -> None:
    """Raise a clear error when ``fields`` holds a field the cache did not declare."""
    undeclared = sorted(set(fields) - set(declared))
    if undeclared:
        raise SemcacheInputError(
            f"scope field{'s' if len(undeclared) > 1 else ''} {', '.join(map(repr, undeclared))} "
            f"not declared by the cache of namespace {namespace!r} "
            f"(filterable_fields={list(declared)}): declare it in filterable_fields=, or remove "
            "it for this cache's calls (cache_scope(field=None)); an undeclared field is never "
            "ignored, since ignoring it would share answers across that field's values"
        )
