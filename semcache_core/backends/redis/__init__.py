"""The Redis backend (needs the ``redis`` extra: ``pip install 'semcache[redis]'``).

Modules: :mod:`.backend` (clients and the transport), :mod:`.ops` (the operations),
:mod:`.strategy` with :mod:`.query_engine` and :mod:`.log_mirror` (vector search, chosen once),
:mod:`.lua` (write scripts), :mod:`.keys` (key layout), :mod:`.commands` (steps and replies).
"""

from semcache_core.extras import require

require("redis", extra="redis", what="the Redis backend")

from semcache_core.backends.redis.backend import RedisBackend  # noqa: E402
from semcache_core.backends.redis.query_engine import IndexDimensionError  # noqa: E402

__all__ = ["IndexDimensionError", "RedisBackend"]
