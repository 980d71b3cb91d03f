"""Redis Sentinel: the ``redis+sentinel://`` URL, and clients that follow the master.

URL form (TLS: ``rediss+sentinel://``)::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db][?option=value&...]

* ``host:port`` pairs are the **sentinels** (default port 26379), tried in order;
* ``service_name`` is the master's name in the sentinels' configuration (``sentinel monitor
  <service_name> ...``): required, so that a typo never reaches another master;
* ``db`` is the database number on the master (default 0);
* the user and password before ``@`` are the **master's** (what ``requirepass`` / an ACL user on
  the Redis server asks for), as in kombu and Celery; the sentinels' own credentials, when they
  have ``requirepass`` set, are the options ``sentinel_password`` (and ``sentinel_username``).
  Credentials in the URL are percent-decoded (``%40`` for ``@``);
* ``rediss+sentinel`` speaks TLS to the sentinels and to the master, with the same ``ssl_*``
  options;
* other options: redis-py's URL options (``socket_timeout``, ``socket_connect_timeout``,
  ``health_check_interval``, ``protocol``, ``client_name``, ...) and its TLS settings
  (``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
  ``ssl_check_hostname``, ...); an unknown option is an error.

Example: ``redis+sentinel://:masterpw@10.0.0.1:26379,10.0.0.2:26379/mymaster/0?sentinel_password=s3``.

The clients are redis-py's own: :class:`redis.sentinel.Sentinel` (and
:class:`redis.asyncio.sentinel.Sentinel`) ``.master_for(service_name)``, whose
``SentinelConnectionPool`` asks the sentinels for the master's address on every new connection,
drops idle connections when the address changed, and turns the ``READONLY`` reply of a demoted
master into a connection error (retried once by the backend, on a connection to the new
master): a failover is followed without a restart. That pool does not block: a caller beyond
``max_connections`` fails at once (a miss), as on a cluster.

A client built by ``Sentinel.master_for`` can also be passed to
:meth:`~semcache_core.backends.redis.RedisBackend.from_client`: the other side (sync or asyncio)
is built from its sentinels' and master's connection settings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import URL_QUERY_ARGUMENT_PARSERS as _REDIS_URL_OPTIONS

from semcache_core.backends.redis.cluster import CONNECTION_SETTINGS
from semcache_core.errors import SemcacheInputError

__all__ = [
    "DEFAULT_SENTINEL_PORT",
    "SENTINEL_SCHEMES",
    "SentinelTarget",
    "async_master",
    "is_sentinel_client",
    "parse_sentinel_url",
    "sync_master",
    "target_of",
]

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
# redis-py's sentinel module is untyped: its classes are called through Any.
_SyncSentinel: Any = redis.sentinel.Sentinel
_AsyncSentinel: Any = redis.asyncio.sentinel.Sentinel
_FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]"

# TLS settings given as text (redis-py's SSL connections parse them themselves).
_TLS_OPTIONS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
    "ssl_ciphers",
)
# What a sentinel connection shares with the master's: timeouts, keepalive, TLS.
_SHARED_WITH_SENTINELS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_keepalive_options",
    "ssl_check_hostname",
    "ssl_min_version",
    *_TLS_OPTIONS,
)


def _text_option(value: str) -> str:
    return value


# redis-py's own parsers of its URL options (typed loosely there).
_REDIS_PY_PARSERS: Mapping[str, Callable[[str], Any]] = _REDIS_URL_OPTIONS  # type: ignore[assignment]
_OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    **{name: parser for name, parser in _REDIS_PY_PARSERS.items() if name != "db"},
    **dict.fromkeys((*_TLS_OPTIONS, "client_name"), _text_option),
}
_SENTINEL_CREDENTIALS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class SentinelTarget:
    """A master reached through sentinels: everything a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    #: Settings of the master's connections (db, credentials, TLS, timeouts, ...).
    master_settings: Mapping[str, Any] = field(default_factory=dict)
    #: Settings of the connections to the sentinels (their credentials, TLS, timeouts).
    sentinel_settings: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The target without any password (for ``repr`` and errors)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinels {hosts}, service {self.service_name!r}"


def _bad(url: str, problem: str) -> SemcacheInputError:
    return SemcacheInputError(
        f"malformed Redis Sentinel URL {_redact(url)!r}: {problem}; expected {_FORM}"
        "[?sentinel_password=...&option=value], e.g. "
        "redis+sentinel://:password@127.0.0.1:26379/mymaster/0"
    )


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, tail = rest.partition("@") if "@" in rest.split("/", 1)[0] else ("", "", rest)
    if at:
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{tail}" if ":" in credentials else f"{user}@{tail}"
    query_start = rest.find("?")
    if query_start >= 0:
        pairs = parse_qsl(rest[query_start + 1 :], keep_blank_values=True)
        shown = "&".join(
            f"{name}={'***' if 'password' in name else value}" for name, value in pairs
        )
        rest = f"{rest[:query_start]}?{shown}"
    return f"{scheme}{sep}{rest}"


def parse_sentinel_url(url: str, options: Mapping[str, Any] | None = None) -> SentinelTarget:
    """The :class:`SentinelTarget` of a ``redis+sentinel://`` URL (see the module docstring).

    ``options`` are connection settings given as keywords (socket timeouts, ``redis_options``);
    the URL's own options win over them. Raises :class:`SemcacheInputError` naming what is wrong.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SENTINEL_SCHEMES:
        raise _bad(url, f"the scheme must be one of {', '.join(SENTINEL_SCHEMES)}")
    location, _, query = rest.partition("?")
    netloc, slash, path = location.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    master: dict[str, Any] = {}
    if at:
        user, colon, password = credentials.partition(":")
        if user:
            master["username"] = unquote(user)
        if colon and password:
            master["password"] = unquote(password)
    sentinels: list[tuple[str, int]] = []
    for address in hosts.split(","):
        address = address.strip()
        if not address:
            raise _bad(url, "give at least one sentinel host (an empty host in the list)")
        if address.startswith("["):  # IPv6: [::1]:26379
            host, bracket, port_text = address[1:].partition("]")
            if not bracket or (port_text and not port_text.startswith(":")):
                raise _bad(url, f"bad IPv6 sentinel address {address!r}")
            port_text = port_text[1:]
        else:
            host, _, port_text = address.partition(":")
        if not host:
            raise _bad(url, f"sentinel address {address!r} has no host")
        if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
            raise _bad(url, f"sentinel port {port_text!r} is not a number from 1 to 65535")
        sentinels.append((host, int(port_text) if port_text else DEFAULT_SENTINEL_PORT))
    parts = [unquote(part) for part in path.split("/")] if slash else []
    while parts and parts[-1] == "":
        parts.pop()  # a trailing slash
    if not parts or not parts[0]:
        raise _bad(url, "the service name (the master's name in the sentinels) is missing")
    if len(parts) > 2:
        raise _bad(url, f"the path has {len(parts)} parts; give /service_name or /service_name/db")
    service_name = parts[0]
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise _bad(url, f"the database must be a number, got {parts[1]!r}")
        master["db"] = int(parts[1])
    sentinel: dict[str, Any] = {}
    given: dict[str, Any] = dict(options or {})
    for name, text in parse_qsl(query, keep_blank_values=True):
        if name in _SENTINEL_CREDENTIALS:
            sentinel[name.removeprefix("sentinel_")] = text
            continue
        parser = _OPTION_PARSERS.get(name)
        if parser is None:
            known = ", ".join(sorted((*_SENTINEL_CREDENTIALS, *_OPTION_PARSERS)))
            raise _bad(url, f"unknown option {name!r} (known: {known})")
        try:
            given[name] = parser(text)
        except (TypeError, ValueError) as exc:
            raise _bad(url, f"bad value {text!r} for option {name!r} ({exc})") from exc
    if scheme == "rediss+sentinel":
        master["ssl"] = sentinel["ssl"] = True
    else:
        tls_options = sorted(name for name in given if name.startswith("ssl"))
        if tls_options:
            raise _bad(
                url,
                f"TLS options ({', '.join(tls_options)}) need TLS: use rediss+sentinel://",
            )
    master.update(given)
    for name in _SHARED_WITH_SENTINELS:
        if name in master:
            sentinel.setdefault(name, master[name])
    return SentinelTarget(tuple(sentinels), service_name, master, sentinel)


# A connection dropped after a failover (the demoted master's READONLY reply) must reconnect
# through the sentinels. redis-py (up to 8.1 at least; redis/redis-py#3874) reconnects in
# send_packed_command by connect_check_health(), which skips the Sentinel-managed connect()
# and dials the old address again; these subclasses reconnect through connect() instead.
class _SyncFollowingConnection(redis.sentinel.SentinelManagedConnection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]  # asks the sentinels for the master
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SyncFollowingSSLConnection(_SyncFollowingConnection, redis.connection.SSLConnection):
    pass


class _AsyncFollowingConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]  # asks the sentinels for the master
        await super().send_packed_command(command, check_health)


class _AsyncFollowingSSLConnection(
    _AsyncFollowingConnection, redis.asyncio.connection.SSLConnection
):
    pass


def _master_settings(target: SentinelTarget, *, sync: bool) -> dict[str, Any]:
    settings = dict(target.master_settings)
    tls = bool(settings.pop("ssl", False))
    if sync:
        settings["connection_class"] = (
            _SyncFollowingSSLConnection if tls else _SyncFollowingConnection
        )
    else:
        settings["connection_class"] = (
            _AsyncFollowingSSLConnection if tls else _AsyncFollowingConnection
        )
    return settings


def sync_master(target: SentinelTarget, *, retry: Any, max_connections: int) -> redis.Redis:
    """A ``redis.Redis`` on the current master of ``target`` (follows failovers)."""
    manager = _SyncSentinel(
        list(target.sentinels),
        sentinel_kwargs={**target.sentinel_settings, "retry": retry},
    )
    client: redis.Redis = manager.master_for(
        target.service_name,
        redis_class=redis.Redis,
        retry=retry,
        max_connections=max_connections,
        **_master_settings(target, sync=True),
    )
    return client


def async_master(
    target: SentinelTarget, *, retry: Any, max_connections: int
) -> redis.asyncio.Redis:
    """The asyncio :func:`sync_master`."""
    manager = _AsyncSentinel(
        list(target.sentinels),
        sentinel_kwargs={**target.sentinel_settings, "retry": retry},
    )
    client: redis.asyncio.Redis = manager.master_for(
        target.service_name,
        redis_class=redis.asyncio.Redis,
        retry=retry,
        max_connections=max_connections,
        **_master_settings(target, sync=False),
    )
    return client


# -- clients passed in -------------------------------------------------------------------------

_SENTINEL_POOLS = (
    redis.sentinel.SentinelConnectionPool,
    redis.asyncio.sentinel.SentinelConnectionPool,
)
# Master settings copied from a user's sentinel-managed client: the ones every redis-py client
# takes by the same name, plus the database number and the CA folder.
_COPIED = ("db", *CONNECTION_SETTINGS, "ssl_ca_path")


def is_sentinel_client(client: Any) -> bool:
    """Whether ``client`` (sync or asyncio) came from ``Sentinel.master_for``."""
    return isinstance(getattr(client, "connection_pool", None), _SENTINEL_POOLS)


def _is_tls(connection_class: Any) -> bool:
    return isinstance(connection_class, type) and issubclass(
        connection_class, (redis.connection.SSLConnection, redis.asyncio.connection.SSLConnection)
    )


def target_of(client: Any) -> SentinelTarget:
    """The :class:`SentinelTarget` of a client built by ``Sentinel.master_for`` (to build the
    other side). Raises :class:`SemcacheInputError` for a replica client (``slave_for``)."""
    pool = client.connection_pool
    if not pool.is_master:
        raise SemcacheInputError(
            "the given Redis client is a Sentinel replica client (slave_for): semcache writes, "
            "so pass a master client (Sentinel.master_for), or pass both clients"
        )
    given = dict(pool.connection_kwargs)
    master = {name: given[name] for name in _COPIED if name in given}
    if _is_tls(pool.connection_class):
        master["ssl"] = True
    nodes: list[tuple[str, int]] = []
    sentinel: dict[str, Any] = {}
    for node in pool.sentinel_manager.sentinels:
        node_pool = node.connection_pool
        node_kwargs = dict(node_pool.connection_kwargs)
        nodes.append((node_kwargs.get("host", "localhost"), int(node_kwargs.get("port", 26379))))
        sentinel = {name: node_kwargs[name] for name in _COPIED if name in node_kwargs}
        sentinel.pop("db", None)
        if _is_tls(node_pool.connection_class):
            sentinel["ssl"] = True
    if not nodes:
        raise SemcacheInputError("the given Sentinel client has no sentinels to ask")
    return SentinelTarget(tuple(nodes), str(pool.service_name), master, sentinel)
