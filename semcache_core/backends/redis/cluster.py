"""Redis Cluster: recognising one, building its clients, and sending a round to it.

A cluster is recognised from ``redis+cluster://host:port[,host:port...]`` (``rediss+cluster``
for TLS), from a ``redis.cluster.RedisCluster`` / ``redis.asyncio.cluster.RedisCluster``
client, or from a ``redis://`` URL to any node: before its first client is built the backend
asks that node ``INFO cluster`` and builds a ``RedisCluster`` when it reports
``cluster_enabled:1``. redis-py's cluster client keeps the slot map, follows ``MOVED`` and
``ASK`` redirections and refreshes the map after a connection error (a failover).

A :class:`~semcache_core.backends.redis.commands.Round` is sent as one redis-py cluster
pipeline: it groups the commands by the primary that owns their slot and writes every
primary's pipeline before reading any reply, so a round costs one round trip per primary it
touches, whatever the number of slots. A round that names a ``node`` (``SCAN`` of one
primary, a keyless probe) is sent to that node only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import redis  # redis-py's cluster module is untyped: its calls are made through Any
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import ResponseError

from semcache_core.backends.redis.commands import Round
from semcache_core.errors import SemcacheInputError

__all__ = [
    "CLUSTER_SCHEMES",
    "asend",
    "async_client",
    "async_from",
    "asyncio_primaries",
    "is_cluster_client",
    "is_cluster_info",
    "primaries",
    "send",
    "sync_client",
    "sync_from",
]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

ClusterClient = redis.cluster.RedisCluster
AsyncClusterClient = redis.asyncio.cluster.RedisCluster
_SyncNode: Any = redis.cluster.ClusterNode
_AsyncNode: Any = redis.asyncio.cluster.ClusterNode

#: Connection settings that redis-py's standalone and cluster clients, sync and asyncio, all
#: take by the same names: copied from a user's client when the backend builds the other side.
CONNECTION_SETTINGS = (
    "username",
    "password",
    "credential_provider",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "client_name",
    "protocol",
    "encoding",
    "encoding_errors",
    "decode_responses",
    "health_check_interval",
    "ssl_keyfile",
    "ssl_certfile",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_data",
    "ssl_check_hostname",
    "ssl_password",
    "ssl_min_version",
    "ssl_ciphers",
)
# A cluster client keeps TLS as one flag; it has no database number (always db 0).
_SHARED_SETTINGS = (*CONNECTION_SETTINGS, "ssl")


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, (ClusterClient, AsyncClusterClient))


def is_cluster_info(info: Any) -> bool:
    """Whether an ``INFO cluster`` reply (parsed by redis-py) says ``cluster_enabled:1``."""
    if isinstance(info, Mapping):
        value = info.get("cluster_enabled", info.get(b"cluster_enabled", 0))
        return str(value).strip() in ("1", "b'1'")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_enabled:1" in text


def _parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """``redis+cluster://[user[:password]@]host:port[,host:port...][/]`` as startup nodes and
    settings (credentials, TLS)."""
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    credentials, at, hosts = netloc.rpartition("@")
    settings: dict[str, Any] = {}
    if at:
        user, colon, password = credentials.partition(":")
        if user:
            settings["username"] = unquote(user)
        if colon:
            settings["password"] = unquote(password)
    if scheme.lower() == "rediss+cluster":
        settings["ssl"] = True
    nodes: list[tuple[str, int]] = []
    for address in filter(None, hosts.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit():
            host, port = address, "6379"
        nodes.append((host.strip("[]") or "localhost", int(port)))
    if not nodes:
        raise SemcacheInputError(f"no host:port in Redis Cluster URL {scheme}://...")
    return nodes, settings


def _client(
    client_class: Any,
    node_class: Any,
    url: str,
    *,
    retry: Any,
    options: Mapping[str, Any],
    pool_limits: Mapping[str, Any],
) -> Any:
    """A cluster client of ``client_class`` for ``url`` (a cluster URL or a ``redis://`` URL to
    one node), with up to ``max_connections`` per node (redis-py's cluster client has no
    blocking pool on either side: a caller beyond that fails at once, which the engine turns
    into a miss). The sync and asyncio clients take the same settings, so one function builds
    both."""
    settings = {**options, "retry": retry, "max_connections": pool_limits["max_connections"]}
    if url.split("://", 1)[0].lower() in CLUSTER_SCHEMES:
        nodes, from_url = _parse_cluster_url(url)
        startup = [node_class(host, port) for host, port in nodes]
        return client_class(startup_nodes=startup, **from_url, **settings)
    return client_class.from_url(url, **settings)


def sync_client(
    url: str, *, retry: Any, options: Mapping[str, Any], pool_limits: Mapping[str, Any]
) -> ClusterClient:
    """A ``RedisCluster`` for ``url`` (see :func:`_client`)."""
    return _client(  # type: ignore[no-any-return]
        ClusterClient, _SyncNode, url, retry=retry, options=options, pool_limits=pool_limits
    )


def async_client(
    url: str, *, retry: Any, options: Mapping[str, Any], pool_limits: Mapping[str, Any]
) -> AsyncClusterClient:
    """The asyncio ``RedisCluster`` for ``url`` (see :func:`_client`)."""
    return _client(  # type: ignore[no-any-return]
        AsyncClusterClient, _AsyncNode, url, retry=retry, options=options, pool_limits=pool_limits
    )


def sync_from(client: AsyncClusterClient, *, retry: Any) -> ClusterClient:
    """A sync ``RedisCluster`` on the cluster of an asyncio one (same nodes and settings)."""
    given = dict(getattr(client, "connection_kwargs", {}) or {})
    startup = [
        _SyncNode(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()
    ]
    settings = {name: given[name] for name in _SHARED_SETTINGS if name in given}
    if given.get("connection_class") is not None and "SSL" in given["connection_class"].__name__:
        settings["ssl"] = True
    return ClusterClient(startup_nodes=startup, retry=retry, **settings)


def async_from(client: ClusterClient, *, retry: Any) -> AsyncClusterClient:
    """An asyncio ``RedisCluster`` on the cluster of a sync one (same nodes and settings)."""
    manager = client.nodes_manager
    given = dict(manager.connection_kwargs or {})
    startup = [_AsyncNode(node.host, node.port) for node in manager.startup_nodes.values()]
    settings = {name: given[name] for name in _SHARED_SETTINGS if name in given}
    if given.get("connection_class") is not None and "SSL" in given["connection_class"].__name__:
        settings["ssl"] = True
    return AsyncClusterClient(startup_nodes=startup, retry=retry, **settings)


# -- sending ---------------------------------------------------------------------------------


def primaries(client: Any) -> list[str]:
    """The primaries of the client's slot map, as sorted ``host:port`` names."""
    return sorted(node.name for node in client.get_primaries())


async def asyncio_primaries(client: AsyncClusterClient) -> list[str]:
    await client.initialize()
    return sorted(node.name for node in client.get_primaries())


def send(client: Any, round_: Round, raw: Mapping[str, Any]) -> Any:
    """Send ``round_`` on a sync cluster client; the reply as ``Round.replies`` expects it."""
    if round_.node is not None:
        node = client.get_node(node_name=round_.node)
        if node is None:
            raise redis.exceptions.ConnectionError(f"{round_.node} is no longer a cluster node")
        replies = []
        for command in round_.commands:  # the node's own client: no cross-node merging
            try:
                replies.append(node.redis_connection.execute_command(*command, **raw))
            except ResponseError as exc:
                if not round_.tolerate:
                    raise
                replies.append(exc)
        return replies[0] if len(replies) == 1 else replies
    if len(round_.commands) == 1:
        return client.execute_command(*round_.commands[0], **raw)
    pipe = client.pipeline()
    for command in round_.commands:
        pipe.execute_command(*command, **raw)
    return pipe.execute(raise_on_error=not round_.tolerate)


async def asend(client: AsyncClusterClient, round_: Round, raw: Mapping[str, Any]) -> Any:
    """:func:`send` on an asyncio cluster client."""
    if round_.node is not None:
        await client.initialize()
        node = client.get_node(node_name=round_.node)
        if node is None:
            raise redis.exceptions.ConnectionError(f"{round_.node} is no longer a cluster node")
        replies = []
        for command in round_.commands:  # the node itself: no cross-node merging
            try:
                replies.append(await node.execute_command(*command, **raw))
            except ResponseError as exc:
                if not round_.tolerate:
                    raise
                replies.append(exc)
        return replies[0] if len(replies) == 1 else replies
    if len(round_.commands) == 1:
        return await client.execute_command(*round_.commands[0], **raw)
    pipe = client.pipeline()
    for command in round_.commands:
        pipe.execute_command(*command, **raw)
    return await pipe.execute(raise_on_error=not round_.tolerate)
