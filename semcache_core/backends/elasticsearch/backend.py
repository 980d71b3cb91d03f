"""The Elasticsearch backend: values, vectors (kNN) and counters in one index, via the official
client (``elasticsearch.Elasticsearch`` and ``AsyncElasticsearch``; no hand-written HTTP).

Connecting
----------
* ``elasticsearch+http://host:9200`` or ``elasticsearch+https://user:pass@host:9243/my-index``:
  the path, if any, is the index (or alias) name; the default index is ``semcache``. Options
  may also be given in the query string (``?refresh=false&request_timeout=5``).
* ``elasticsearch+https://`` with ``cloud_id=...`` (and ``api_key=...``): Elastic Cloud.
* ``connect(Elasticsearch(...))`` / ``ElasticsearchBackend.from_client(client)``: a client you
  built; semcache never closes it. One kind of client is enough: from an ``Elasticsearch``
  semcache builds the ``AsyncElasticsearch`` of the async methods (one per event loop), from an
  ``AsyncElasticsearch`` the sync ``Elasticsearch``, on the same nodes (the transport's node
  configurations: hosts, TLS settings and certificates, connections per node, compression,
  the URL's credentials) with the same client settings (headers, so ``basic_auth``,
  ``api_key`` and ``bearer_auth``; ``max_retries``, ``retry_on_timeout``,
  ``retry_on_status``). Not copied: sniffing (the built client uses the nodes known at
  construction), custom serializers and node classes (the built client uses the default HTTP
  library of its kind). A client that cannot be copied (a ``requests`` auth object, a custom
  transport) is refused at construction; then pass both: ``from_client(client,
  async_client=AsyncElasticsearch(...))`` (or an ``AsyncElasticsearch`` with
  ``sync_client=...``). From a URL, semcache owns its clients (one ``AsyncElasticsearch`` per
  event loop); ``close()``/``aclose()`` release the clients semcache built.

Options: ``index``; ``refresh`` (below); ``request_timeout`` (seconds, default 2, applied to
every request semcache makes, on your client too, through ``client.options()``; ``None`` keeps
the client's own); ``admin_timeout`` (60 s: index creation, clear, purge); ``purge_interval``
(below); ``num_candidates`` (kNN candidates per shard, default 100); ``page_size`` (1000,
``iter_keys``); ``vector_index_options`` (``{"type": "hnsw"}``: exact float scores, so a
threshold means what it means on the other backends; ``int8_hnsw`` saves memory at the cost of
approximate distances); ``index_settings`` (used when semcache creates the index); for URLs
``cloud_id``, ``api_key``, ``ca_certs``, ``verify_certs`` and ``client_options`` (any other
``Elasticsearch()`` keyword; URL-built clients retry a failed connection once, never a timed
out request, with up to 100 connections). Connection, timeout and server errors raise
``BackendError``.

Layout
------
See :mod:`semcache_core.backends.elasticsearch.schema`: document ids ``<namespace>:<key>`` (values),
``<namespace>:vec:<id>``, ``<namespace>:ctr:<name>``; a ``dynamic: strict`` mapping with keyword
``ns``/``kind``/``key``/``part``/``tags``, ``binary`` (base64) ``value`` and ``vector``, an
``epoch_millis`` date ``expires_at``. The searchable ``dense_vector`` fields are named by their
dimension, ``knn_384``, and added with ``put_mapping`` when the first vector of that dimension
arrives: a mapping needs ``dims``, and namespaces using different embedding models can share
the index. They are excluded from ``_source`` (the base64 ``vector`` is the stored copy). An
index whose mapping conflicts raises ``SchemaConflictError``. A name may be an alias; writes
then pass ``require_alias=True``. An alias over several indices (rollover) needs a write index:
reads go through every index (the write index's copy of a key first), writes go to the write
index, deletes to every index (:attr:`~.schema.IndexSchema.read_indices`).

Refresh
-------
Reads by id (``mget``/``get``) are realtime in Elasticsearch; searches see a write only after
the next refresh (every ``refresh_interval``, 1 s by default). So no write forces a refresh:

* values (``set_many``, ``delete_many``, ``expire_many``) are written without refresh: exact
  caches and ByteStores read them by id. ``iter_keys`` (and ``clear``) refresh the index once
  before scanning instead, so a scan lists keys written just before it.
* vector writes (``add_vectors``, and ``delete_many`` of ``vec:`` keys) use the ``refresh`` option, default
  ``"wait_for"``: the call returns once the next scheduled refresh made the write searchable
  (it waits up to ``refresh_interval``, but adds no refresh work), so a paraphrase asked right
  after an update is a semantic hit. ``refresh=False`` makes those writes return at once and
  searchable within ``refresh_interval`` (a repeated identical prompt is still an exact hit:
  it is read by id), and ``iter_keys`` then does not refresh either; ``refresh=True`` forces a
  refresh per vector write (small segments, for tests and tiny indices only).

TTL
---
Elasticsearch has no per-document TTL. Each document stores ``expires_at``; reads by id check
it in Python and searches filter on it, so an expired entry is never returned. Expired
documents are deleted with ``delete_by_query``: on a write at most every ``purge_interval``
seconds per process (default 300; ``None`` or 0 disables; the request runs as a server task,
``wait_for_completion=false``, and its failure never fails the write), with ``clear`` for its
namespace, and on demand with :meth:`ElasticsearchBackend.purge_expired`.

Operations and transport
------------------------
Every operation is written once, as a flow in :mod:`~semcache_core.backends.elasticsearch.ops`
that yields the client calls it needs as data (:class:`~semcache_core.backends.elasticsearch.
calls.Call`) and receives their results. This class is their transport:
:meth:`ElasticsearchBackend.execute` performs a call with the sync client and
:meth:`ElasticsearchBackend.aexecute` awaits it on the async client. This is the role unasync
plays for langchain-elasticsearch (generated sync code), without a generated file that can go
stale. ``iter_keys`` pages by key with ``search_after`` (no point in time is opened, so an
abandoned scan leaves nothing open on the server).
"""

from __future__ import annotations

import asyncio
import logging
import operator
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from elastic_transport import Transport
from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch, TransportError

from semcache_core.backends.base import Backend
from semcache_core.backends.elasticsearch.calls import Call, Reply, error_of
from semcache_core.backends.elasticsearch.ops import ElasticsearchOperations
from semcache_core.backends.elasticsearch.schema import MAX_WINDOW, SCHEMA_ERRORS, Refresh
from semcache_core.backends.elasticsearch.trim import trim as trim_flow
from semcache_core.backends.loops import Guard, close_at_loop_end, close_in_loop
from semcache_core.errors import BackendError, SchemaConflictError, SemcacheInputError
from semcache_core.flow import Step, arun, run

__all__ = ["DEFAULT_INDEX", "ElasticsearchBackend"]

logger = logging.getLogger("semcache")

T = TypeVar("T")
C = TypeVar("C", Elasticsearch, AsyncElasticsearch)

DEFAULT_INDEX = "semcache"
_WRITE_APIS = frozenset({"bulk", "index", "update", "indices.create", "indices.put_mapping"})
# Elasticsearch index names: lowercase, none of these characters, not starting with -_+.
_INDEX_NAME = re.compile(r'^(?![-_+])[^A-Z\\/*?"<>| ,#:]{1,255}$')


class _Clients(Generic[C]):
    """A client and its per-call variants (timeout, statuses returned instead of raised)."""

    def __init__(
        self, client: C, request_timeout: float | None, admin_timeout: float | None
    ) -> None:
        self.client: C = client
        self._timeouts = (request_timeout, admin_timeout)
        self._variants: dict[tuple[bool, tuple[int, ...]], C] = {}

    def get(self, call: Call) -> C:
        key = (call.admin, call.ignore)
        variant = self._variants.get(key)
        if variant is None:
            options: dict[str, Any] = {}
            timeout = self._timeouts[1] if call.admin else self._timeouts[0]
            if timeout is not None:
                options["request_timeout"] = timeout
            if call.ignore:
                options["ignore_status"] = call.ignore
            # options() returns a copy sharing the connection pool; the original is unchanged.
            variant = self.client.options(**options) if options else self.client
            self._variants[key] = variant
        return variant


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_refresh(text: str) -> Refresh:
    if text.strip().lower() == "wait_for":
        return "wait_for"
    return _parse_bool(text)


def _parse_optional_float(text: str) -> float | None:
    return None if text.strip().lower() in ("", "none", "null") else float(text)


_QUERY_OPTIONS: dict[str, Callable[[str], Any]] = {
    "index": str,
    "refresh": _parse_refresh,
    "request_timeout": _parse_optional_float,
    "admin_timeout": _parse_optional_float,
    "purge_interval": _parse_optional_float,
    "num_candidates": int,
    "page_size": int,
    "cloud_id": str,
    "api_key": str,
    "ca_certs": str,
    "verify_certs": _parse_bool,
}
_CONNECTION_OPTIONS = ("cloud_id", "api_key", "ca_certs", "verify_certs")


def _positive(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SemcacheInputError(f"{name} must be a positive number, got {value!r}")


class ElasticsearchBackend(Backend):
    """Values, vectors and counters in an Elasticsearch index (see the module docstring)."""

    schemes = ("elasticsearch+http", "elasticsearch+https")

    def __init__(
        self,
        client: Elasticsearch | None = None,
        *,
        async_client: AsyncElasticsearch | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        index: str = DEFAULT_INDEX,
        refresh: Refresh = "wait_for",
        request_timeout: float | None = 2.0,
        admin_timeout: float | None = 60.0,
        purge_interval: float | None = 300.0,
        num_candidates: int = 100,
        page_size: int = 1000,
        vector_index_options: Mapping[str, Any] | None = None,
        index_settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(index, str) or not _INDEX_NAME.match(index) or index in (".", ".."):
            raise SemcacheInputError(
                f"invalid Elasticsearch index name {index!r}: use lowercase letters, digits "
                "and '-', '_', '.', not starting with '-', '_' or '+'"
            )
        if refresh not in (True, False, "wait_for"):
            raise SemcacheInputError(f"refresh must be True, False or 'wait_for', got {refresh!r}")
        _positive("request_timeout", request_timeout, optional=True)
        _positive("admin_timeout", admin_timeout, optional=True)
        if purge_interval is not None and purge_interval != 0:
            _positive("purge_interval", purge_interval)
        for name, number in (("num_candidates", num_candidates), ("page_size", page_size)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise SemcacheInputError(f"{name} must be an int, got {number!r}")
            if not 1 <= number <= MAX_WINDOW:
                raise SemcacheInputError(f"{name} must be between 1 and {MAX_WINDOW}")
        if client_kwargs is not None and (client is not None or async_client is not None):
            raise SemcacheInputError("pass either client objects or client_kwargs, not both")
        if client_kwargs is None and client is None and async_client is None:
            raise SemcacheInputError(
                "ElasticsearchBackend needs a URL (connect('elasticsearch+http://host:9200')), "
                "an Elasticsearch/AsyncElasticsearch client, or client_kwargs"
            )
        if client is not None and not isinstance(client, Elasticsearch):
            raise TypeError(f"client must be an Elasticsearch client, got {type(client).__name__}")
        if async_client is not None and not isinstance(async_client, AsyncElasticsearch):
            raise TypeError(
                f"async_client must be an AsyncElasticsearch client, got "
                f"{type(async_client).__name__}"
            )
        self._timeouts = (request_timeout, admin_timeout)
        #: Keywords of the ``AsyncElasticsearch`` semcache builds per event loop (from the URL,
        #: or copied from the sync client given alone); ``None`` when one was given.
        self._async_kwargs: dict[str, Any] | None = None
        sync_kwargs: dict[str, Any] | None = None
        if client_kwargs is not None:
            self._async_kwargs = sync_kwargs = dict(client_kwargs)
        elif async_client is None and client is not None:
            self._async_kwargs = _copied_client_kwargs(client, "AsyncElasticsearch")
        elif client is None and async_client is not None:
            sync_kwargs = _copied_client_kwargs(async_client, "Elasticsearch")
        self._owned_sync: Elasticsearch | None = None
        if sync_kwargs is not None:
            try:
                client = self._owned_sync = Elasticsearch(**sync_kwargs)
            except (TypeError, ValueError) as exc:
                raise SemcacheInputError(f"invalid Elasticsearch client options: {exc}") from exc
        self._sync = None if client is None else _Clients(client, *self._timeouts)
        self._async = None if async_client is None else _Clients(async_client, *self._timeouts)
        self._async_by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _Clients[AsyncElasticsearch]
        ] = weakref.WeakKeyDictionary()
        self._loop_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Guard] = (
            weakref.WeakKeyDictionary()
        )
        self.ops: ElasticsearchOperations = ElasticsearchOperations(
            index=index,
            refresh=refresh,
            purge_interval=purge_interval or None,
            num_candidates=num_candidates,
            page_size=page_size,
            vector_index_options=vector_index_options or {"type": "hnsw"},
            index_settings=index_settings,
        )

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> ElasticsearchBackend:
        """``elasticsearch+http(s)://[user:pass@]host[:port][/index][?option=value...]``."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SemcacheInputError(f"malformed Elasticsearch URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in cls.schemes:
            raise SemcacheInputError(
                f"malformed Elasticsearch URL {url!r}: the scheme must be "
                "'elasticsearch+http' or 'elasticsearch+https'"
            )
        for name, text in parse_qsl(parts.query, keep_blank_values=True):
            parser = _QUERY_OPTIONS.get(name)
            if parser is None:
                raise SemcacheInputError(
                    f"unknown option {name!r} in Elasticsearch URL {url!r}; known: "
                    f"{', '.join(sorted(_QUERY_OPTIONS))}"
                )
            if name in options:
                raise SemcacheInputError(f"option {name!r} given both in the URL and as keyword")
            try:
                options[name] = parser(text)
            except ValueError as exc:
                raise SemcacheInputError(f"bad value for {name!r} in {url!r}: {exc}") from exc
        index = unquote(parts.path).strip("/")
        if index:
            if "index" in options:
                raise SemcacheInputError("the index is given both in the URL path and as option")
            options["index"] = index
        # 100 connections (as the Redis pool): the client's default of 10 makes an 11th thread
        # wait for a connection, then pay its own timeout after the first ten paid theirs.
        client_kwargs: dict[str, Any] = {
            "max_retries": 1,
            "retry_on_timeout": False,
            "connections_per_node": 100,
        }
        client_kwargs.update(options.pop("client_options", None) or {})
        for name in _CONNECTION_OPTIONS:
            if name in options:
                client_kwargs[name] = options.pop(name)
        host = parts.hostname
        if host and "cloud_id" in client_kwargs:
            raise SemcacheInputError("give either a host in the URL or cloud_id, not both")
        if host:
            host = f"[{host}]" if ":" in host else host
            http = scheme.split("+", 1)[1]
            client_kwargs["hosts"] = [f"{http}://{host}:{port or 9200}"]
        elif "cloud_id" not in client_kwargs:
            raise SemcacheInputError(
                f"malformed Elasticsearch URL {url!r}: give a host "
                "('elasticsearch+https://host:9200') or the cloud_id option"
            )
        if parts.username is not None:
            client_kwargs["basic_auth"] = (unquote(parts.username), unquote(parts.password or ""))
        timeout = options.get("request_timeout", 2.0)
        if timeout is not None:
            client_kwargs.setdefault("request_timeout", timeout)
        return cls(client_kwargs=client_kwargs, **options)

    @classmethod
    def from_client(cls, client: Any, **options: Any) -> ElasticsearchBackend:
        """Wrap a client you own (never closed by semcache); see the module docstring."""
        if isinstance(client, AsyncElasticsearch):
            return cls(options.pop("sync_client", None), async_client=client, **options)
        if isinstance(client, Elasticsearch):
            return cls(client, **options)
        raise TypeError(
            f"expected an Elasticsearch or AsyncElasticsearch client, got {type(client).__name__}"
        )

    @property
    def index(self) -> str:
        """The index (or alias) name."""
        return self.ops.index

    @property
    def is_alias(self) -> bool:
        """Whether the name is an alias (known after the first call)."""
        return self.ops.is_alias

    # -- the drivers -----------------------------------------------------------------------
    def _sync_clients(self) -> _Clients[Elasticsearch]:
        assert self._sync is not None  # given, or built at construction
        return self._sync

    async def _async_clients(self) -> _Clients[AsyncElasticsearch]:
        if self._async is not None:
            return self._async
        assert self._async_kwargs is not None  # from the URL or copied at construction
        # Clients semcache builds: one per event loop (aiohttp sessions belong to a loop).
        loop = asyncio.get_running_loop()
        clients = self._async_by_loop.get(loop)
        if clients is None:
            client = AsyncElasticsearch(**self._async_kwargs)
            clients = _Clients(client, *self._timeouts)
            self._async_by_loop[loop] = clients
            # Closed when its loop ends, even if aclose() is never called there.
            self._loop_guards[loop] = await close_at_loop_end(client.close)
        return clients

    def _failure(self, call: Call, exc: Exception) -> Exception:
        where = f"Elasticsearch {call.api} on {self.ops.index!r}"
        if isinstance(exc, ApiError):
            error_type, reason = error_of(exc.body) if isinstance(exc.body, Mapping) else ("", "")
            if error_type == "index_not_found_exception":
                self.ops.forget_index()
            message = (
                f"{where} failed (HTTP {exc.meta.status}): "
                f"{error_type or type(exc).__name__}: {reason or exc.message}"
            )
            if error_type in SCHEMA_ERRORS and call.api in _WRITE_APIS:
                return SchemaConflictError(message)
            return BackendError(message)
        return BackendError(f"{where} failed: {type(exc).__name__}: {exc}")

    def execute(self, step: Step) -> Reply:
        call = _call(step)
        method = operator.attrgetter(call.api)(self._sync_clients().get(call))
        try:
            response = method(**call.kwargs)
        except (ApiError, TransportError) as exc:
            return self._failed(call, exc)
        return Reply(response.meta.status, response.body)

    async def aexecute(self, step: Step) -> Reply:
        call = _call(step)
        method = operator.attrgetter(call.api)((await self._async_clients()).get(call))
        try:
            response = await method(**call.kwargs)
        except (ApiError, TransportError) as exc:
            return self._failed(call, exc)
        return Reply(response.meta.status, response.body)

    def _failed(self, call: Call, exc: ApiError | TransportError) -> Reply:
        if call.soft:
            logger.debug("semcache: Elasticsearch %s failed (ignored): %s", call.api, exc)
            return Reply(0, None)
        raise self._failure(call, exc) from exc

    # -- namespace-wide --------------------------------------------------------------------

    def purge_expired(self, namespace: str | None = None) -> int:
        """Delete expired entries now (of ``namespace``, or all); returns how many."""
        return run(self.ops.purge_expired(namespace), self)

    async def apurge_expired(self, namespace: str | None = None) -> int:
        return await arun(self.ops.purge_expired(namespace), self)

    def trim(self, namespace: str, max_entries: int) -> int:
        """Delete the oldest entries of ``namespace`` beyond ``max_entries`` (expired ones
        first); returns how many live entries it evicted (see :mod:`.trim`)."""
        return run(trim_flow(self.ops, namespace, max_entries), self)

    async def atrim(self, namespace: str, max_entries: int) -> int:
        return await arun(trim_flow(self.ops, namespace, max_entries), self)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close the clients semcache built from a URL (a client you passed stays open).

        Async clients are closed in their event loop: when it ends, or by :meth:`aclose`.
        """
        if self._owned_sync is not None:
            self._owned_sync.close()
        for loop in list(self._async_by_loop):
            if loop.is_closed():
                self._async_by_loop.pop(loop, None)
                self._loop_guards.pop(loop, None)

    async def aclose(self) -> None:
        """Close every client semcache built, each async one in its own event loop."""
        for loop in list(self._async_by_loop):
            self._async_by_loop.pop(loop, None)
            guard = self._loop_guards.pop(loop, None)
            if guard is not None:
                await close_in_loop(loop, guard)
        self.close()

    def __repr__(self) -> str:
        return f"ElasticsearchBackend(index={self.ops.index!r})"


# Per-request settings an elasticsearch-py client keeps for itself (its own options() copies
# them the same way); DEFAULT means the transport's default.
_CLIENT_SETTINGS = {
    "_max_retries": "max_retries",
    "_retry_on_timeout": "retry_on_timeout",
    "_retry_on_status": "retry_on_status",
    "_request_timeout": "request_timeout",
}


def _copied_client_kwargs(
    client: Elasticsearch | AsyncElasticsearch, target: str
) -> dict[str, Any]:
    """Keywords of a ``target`` client (the other kind: sync or async) on the nodes of ``client``
    with its settings; a :class:`SemcacheInputError` naming what cannot be copied."""
    given = type(client).__name__
    other = "async_client=AsyncElasticsearch(...)"
    if target == "Elasticsearch":
        other = "sync_client=Elasticsearch(...)"
    hint = f"; pass both clients: ElasticsearchBackend.from_client(client, {other})"
    transport = getattr(client, "transport", None)
    if not isinstance(transport, Transport):
        raise SemcacheInputError(
            f"cannot build an {target} from the given {given}: its transport is "
            f"{type(transport).__module__}.{type(transport).__name__}, and semcache copies only "
            f"elastic_transport's own{hint}"
        )
    nodes = transport.node_pool.all()
    configs = [node.config for node in nodes]
    for node, config in zip(nodes, configs, strict=True):
        extras = sorted(getattr(config, "_extras", None) or {})
        # A requests auth object is moved from the node's config to its requests session.
        if getattr(getattr(node, "session", None), "auth", None) is not None:
            extras.append("requests.session.auth")
        if extras:
            raise SemcacheInputError(
                f"cannot build an {target} from the given {given}: its node {config.host} has "
                f"settings only its HTTP library understands ({', '.join(extras)}, e.g. a "
                f"requests auth object){hint}"
            )
    headers = getattr(client, "_headers", None)
    if not configs or headers is None:
        raise SemcacheInputError(
            f"cannot build an {target} from the given {given}: no nodes or headers found{hint}"
        )
    kwargs: dict[str, Any] = {"hosts": configs, "headers": dict(headers)}
    for attribute, keyword in _CLIENT_SETTINGS.items():
        value = getattr(client, attribute, DEFAULT)
        if value is not DEFAULT:
            kwargs[keyword] = value
    return kwargs


def _call(step: Step) -> Call:
    if not isinstance(step, Call):
        raise TypeError(f"the Elasticsearch backend cannot execute {step!r}")
    return step
