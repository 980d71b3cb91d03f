"""Backend selection: a URL string, a client object, a backend instance, or ``None``.

=====================================  ==================================================
``None`` or ``"memory://"``            in-process dictionaries (no server, one process)
``"sqlite:///file.db"``                embedded backend on a SQLite file (several processes)
``"redis://"``, ``"rediss://"``,        Redis, with or without the Query Engine
``"unix://"``
``"redis+cluster://h:p[,h:p...]"``      Redis Cluster (also detected from ``redis://``)
``"redis+sentinel://h:p[,h:p]/name"``   Redis behind Sentinel (``rediss+sentinel`` for TLS)
``"elasticsearch+http(s)://"``         Elasticsearch
a ``redis.Redis`` / ``redis.asyncio``  wrapped as it is; semcache never closes it, and
client (or a ``RedisCluster``), an     builds the other kind (sync/asyncio) from it
``Elasticsearch`` client
=====================================  ==================================================

Backend modules are imported lazily, so ``import semcache_core`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from semcache_core.backends.base import Backend, VectorHit, VectorRecord
from semcache_core.errors import SemcacheInputError, UnknownBackendError

__all__ = ["Backend", "VectorHit", "VectorRecord", "connect", "known_schemes"]

# scheme -> "module:Class"; each class has from_url(url, **options).
_SCHEMES: dict[str, str] = {
    "memory": "semcache_core.backends.memory:MemoryBackend",
    "sqlite": "semcache_core.backends.embedded:EmbeddedBackend",
    "redis": "semcache_core.backends.redis:RedisBackend",
    "rediss": "semcache_core.backends.redis:RedisBackend",
    "unix": "semcache_core.backends.redis:RedisBackend",
    "redis+cluster": "semcache_core.backends.redis:RedisBackend",
    "rediss+cluster": "semcache_core.backends.redis:RedisBackend",
    "redis+sentinel": "semcache_core.backends.redis:RedisBackend",
    "rediss+sentinel": "semcache_core.backends.redis:RedisBackend",
    "elasticsearch+http": "semcache_core.backends.elasticsearch:ElasticsearchBackend",
    "elasticsearch+https": "semcache_core.backends.elasticsearch:ElasticsearchBackend",
}

# Top-level package of a client object -> backend accepting it via from_client(client).
_CLIENT_PACKAGES: dict[str, str] = {
    "redis": "semcache_core.backends.redis:RedisBackend",
    "elasticsearch": "semcache_core.backends.elasticsearch:ElasticsearchBackend",
}


def known_schemes() -> list[str]:
    return sorted(_SCHEMES)


def _load(target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def connect(backend: Backend | str | Any | None = None, **options: Any) -> Backend:
    """Return a :class:`Backend` for ``backend`` (see the module docstring)."""
    if backend is None:
        backend = "memory://"
    if isinstance(backend, Backend):
        if options:
            raise SemcacheInputError(
                f"backend options {sorted(options)} cannot be applied to an existing backend"
            )
        return backend
    if isinstance(backend, str):
        if "://" not in backend:
            raise SemcacheInputError(
                f"malformed backend URL {backend!r}: expected 'scheme://...', "
                f"known schemes: {', '.join(known_schemes())}"
            )
        try:
            scheme = urlsplit(backend).scheme.lower()
        except ValueError as exc:
            raise SemcacheInputError(f"malformed backend URL {backend!r}: {exc}") from exc
        target = _SCHEMES.get(scheme)
        if target is None:
            raise UnknownBackendError(
                f"unknown backend scheme {scheme!r} in {backend!r}; "
                f"known schemes: {', '.join(known_schemes())}"
            )
        return _load(target).from_url(backend, **options)  # type: ignore[no-any-return]
    package = type(backend).__module__.split(".", 1)[0]
    target = _CLIENT_PACKAGES.get(package)
    if target is None:
        raise TypeError(
            "backend must be None, a URL string, a semcache Backend, a redis-py client or an "
            f"Elasticsearch client; got {type(backend).__module__}.{type(backend).__name__}"
        )
    return _load(target).from_client(backend, **options)  # type: ignore[no-any-return]
