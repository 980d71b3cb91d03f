"""The Elasticsearch backend (needs the ``elasticsearch`` extra).

Modules: :mod:`.backend` (clients and the transport), :mod:`.ops` (the operations),
:mod:`.schema` (document layout, index checks), :mod:`.bulk` (bulk writes, purging),
:mod:`.calls` (steps and replies).
"""

from semcache_core.extras import require

require("elasticsearch", extra="elasticsearch", what="the Elasticsearch backend")

from semcache_core.backends.elasticsearch.backend import (  # noqa: E402
    DEFAULT_INDEX,
    ElasticsearchBackend,
)

__all__ = ["DEFAULT_INDEX", "ElasticsearchBackend"]
