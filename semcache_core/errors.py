"""Exceptions raised by semcache.

Two families, on purpose:

* ``SemcacheInputError`` (a ``ValueError``) and plain ``TypeError`` are raised for bad input:
  a wrong type, a vector of the wrong dimension, a threshold out of range, a malformed URL.
  They always propagate: the caller wrote something wrong and must hear about it.
* ``BackendError`` means the storage did not answer (down, slow, refused). The cache policy in
  :mod:`semcache_core.resilience` turns it into a miss or a skipped write so that a cache can
  never take the application down, unless the user asked for ``on_backend_error="raise"``.
"""

from __future__ import annotations


class SemcacheError(Exception):
    """Base class of every error semcache raises on purpose."""


class SemcacheInputError(SemcacheError, ValueError):
    """A caller passed a value semcache cannot accept; the message says what is allowed."""


class UnknownBackendError(SemcacheInputError):
    """A backend URL uses a scheme no backend is registered for."""


class VectorDimensionError(SemcacheInputError):
    """A vector does not have the dimension of the vectors already stored in its namespace."""


class BackendError(SemcacheError):
    """The storage backend failed to answer (connection refused, timeout, server error)."""


class StorageFullError(BackendError):
    """The storage answered but refused a write because it is full (Redis ``OOM`` under
    ``maxmemory-policy noeviction``, or a volatile policy with nothing left to evict). Reads
    still work, so under ``"warn"`` the write is skipped and the breaker stays closed."""


class SchemaConflictError(SemcacheError):
    """An existing index or table has a layout that differs from the one semcache needs."""
