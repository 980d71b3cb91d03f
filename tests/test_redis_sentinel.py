"""Redis behind Sentinel: ``redis+sentinel://`` URLs and Sentinel clients, against a real
sentinel (``redis-server --sentinel``) and master started by ``tests/servers.py``.

The main setup has passwords on both sides (the master's ``requirepass`` and the sentinel's
own), so every test also checks that each password goes where it belongs. The failover test
has its own master, replica and sentinel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from langchain_core.outputs import Generation

from langchain_semcache import ExactCache, SemanticCache
from semcache_core import connect
from semcache_core.backends.redis import RedisBackend
from semcache_core.backends.redis.sentinel import parse_sentinel_url
from semcache_core.errors import BackendError, SemcacheInputError
from tests import servers
from tests.backends import BACKEND_KINDS
from tests.fakes import WordHashEmbeddings

pytestmark = pytest.mark.redis

if "redis" not in BACKEND_KINDS:
    pytest.skip("the redis backend kind is not selected", allow_module_level=True)

MASTER_PASSWORD = "m@ster pw/1"  # characters that need percent-encoding in a URL
SENTINEL_PASSWORD = "sentinel:pw"
QUESTION = "What is the capital of France?"
PARAPHRASE = "what's the capital city of France"


@pytest.fixture(scope="module")
def sentinel_setup() -> Iterator[servers.RunningSentinel]:
    running = servers.start_redis_sentinel(
        master_password=MASTER_PASSWORD, sentinel_password=SENTINEL_PASSWORD
    )
    yield running
    running.stop()


@pytest.fixture
def master(sentinel_setup: servers.RunningSentinel) -> Iterator[redis.Redis]:
    """A plain client on the master itself (to check where the data went)."""
    client = redis.Redis.from_url(sentinel_setup.master.url)
    yield client
    client.close()


def _keys(client: redis.Redis, namespace: str) -> set[bytes]:
    return set(client.scan_iter(match=f"{namespace}:*", count=1000))


# -- round trips through the sentinel URL --------------------------------------------------------


def test_exact_and_semantic_round_trip(
    sentinel_setup: servers.RunningSentinel, master: redis.Redis, namespace: str
) -> None:
    backend = connect(sentinel_setup.url(db=0))
    try:
        assert backend.topology == "sentinel"  # type: ignore[attr-defined]
        assert backend.vector_search == "mirror"  # type: ignore[attr-defined]
        exact = ExactCache(backend, namespace=namespace, on_backend_error="raise")
        semantic = SemanticCache(
            backend,
            embeddings=WordHashEmbeddings(),
            namespace=namespace + "-sem",
            on_backend_error="raise",
        )
        assert exact.lookup(QUESTION, "llm") is None
        exact.update(QUESTION, "llm", [Generation(text="Paris")])
        assert exact.lookup(QUESTION, "llm") == [Generation(text="Paris")]
        semantic.update(QUESTION, "llm", [Generation(text="Paris")])
        assert semantic.lookup(PARAPHRASE, "llm") == [Generation(text="Paris")]
        assert semantic.lookup("How do I bake bread?", "llm") is None
        # The entries are on the master the sentinel names.
        assert _keys(master, namespace) and _keys(master, namespace + "-sem")
        exact.clear()
        semantic.clear()
        assert not _keys(master, namespace)
    finally:
        backend.close()


async def test_exact_and_semantic_round_trip_async(
    sentinel_setup: servers.RunningSentinel, master: redis.Redis, namespace: str
) -> None:
    backend = connect(sentinel_setup.url())
    try:
        exact = ExactCache(backend, namespace=namespace, on_backend_error="raise")
        semantic = SemanticCache(
            backend,
            embeddings=WordHashEmbeddings(),
            namespace=namespace + "-sem",
            on_backend_error="raise",
        )
        assert await exact.alookup(QUESTION, "llm") is None
        await exact.aupdate(QUESTION, "llm", [Generation(text="Paris")])
        assert await exact.alookup(QUESTION, "llm") == [Generation(text="Paris")]
        await semantic.aupdate(QUESTION, "llm", [Generation(text="Paris")])
        assert await semantic.alookup(PARAPHRASE, "llm") == [Generation(text="Paris")]
        assert _keys(master, namespace) and _keys(master, namespace + "-sem")
        # What the async side wrote, the sync side reads (the same master).
        assert exact.lookup(QUESTION, "llm") == [Generation(text="Paris")]
        await exact.aclear()
        await semantic.aclear()
    finally:
        await backend.aclose()


def test_database_number_in_the_path(
    sentinel_setup: servers.RunningSentinel, namespace: str
) -> None:
    backend = connect(sentinel_setup.url(db=3))
    db3 = redis.Redis.from_url(sentinel_setup.master.url.removesuffix("/0") + "/3")
    try:
        backend.set_many(namespace, [("kv:a", b"1")])
        assert db3.get(f"{namespace}:kv:a") == b"1"
        backend.clear(namespace)
    finally:
        backend.close()
        db3.close()


# -- passwords -----------------------------------------------------------------------------------


def test_without_the_master_password_the_master_refuses(
    sentinel_setup: servers.RunningSentinel, namespace: str
) -> None:
    url = sentinel_setup.url(master_password=None)
    cache = ExactCache(url, namespace=namespace)
    assert cache.lookup(QUESTION, "llm") is None  # a miss, not an exception
    cache.update(QUESTION, "llm", [Generation(text="x")])  # a skipped write
    strict = ExactCache(url, namespace=namespace, on_backend_error="raise")
    with pytest.raises(BackendError, match=r"(?i)auth"):
        strict.lookup(QUESTION, "llm")
    wrong = ExactCache(
        sentinel_setup.url(master_password="wrong"), namespace=namespace, on_backend_error="raise"
    )
    with pytest.raises(BackendError):
        wrong.lookup(QUESTION, "llm")


def test_without_the_sentinel_password_no_master_is_found(
    sentinel_setup: servers.RunningSentinel, namespace: str
) -> None:
    strict = ExactCache(
        sentinel_setup.url(sentinel_password=None), namespace=namespace, on_backend_error="raise"
    )
    with pytest.raises(BackendError, match="No master found"):
        strict.lookup(QUESTION, "llm")


def test_passwords_are_not_shown(sentinel_setup: servers.RunningSentinel) -> None:
    backend = connect(sentinel_setup.url())
    try:
        shown = repr(backend)
        assert "semcache-test" in shown and sentinel_setup.sentinel_address in shown
        assert "m@ster" not in shown and "sentinel:pw" not in shown
    finally:
        backend.close()
    with pytest.raises(SemcacheInputError) as caught:
        connect("redis+sentinel://:secret1@127.0.0.1:26379/?sentinel_password=secret2")
    assert "secret1" not in str(caught.value) and "secret2" not in str(caught.value)


# -- malformed URLs: refused at construction -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://127.0.0.1:26379", "service name"),
        ("redis+sentinel://127.0.0.1:26379/", "service name"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/x", "database must be a number"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/0/extra", "path has 3 parts"),
        ("redis+sentinel://127.0.0.1:notaport/mymaster", "not a number from 1 to 65535"),
        ("redis+sentinel://127.0.0.1:70000/mymaster", "not a number from 1 to 65535"),
        ("redis+sentinel://127.0.0.1:26379,/mymaster", "empty host"),
        ("redis+sentinel://:26379/mymaster", "has no host"),
        ("redis+sentinel://127.0.0.1/mymaster?sentinel_pasword=x", "unknown option"),
        ("redis+sentinel://127.0.0.1/mymaster?socket_timeout=soon", "bad value 'soon'"),
        ("redis+sentinel://127.0.0.1/mymaster?ssl_cert_reqs=none", "use rediss+sentinel://"),
    ],
)
def test_malformed_sentinel_url(url: str, problem: str) -> None:
    with pytest.raises(SemcacheInputError) as caught:
        connect(url)
    message = str(caught.value)
    assert problem in message
    # What is allowed is in the message too.
    assert "redis+sentinel://[[user]:password@]host[:port]" in message


def test_url_forms_parsed() -> None:
    target = parse_sentinel_url(
        "rediss+sentinel://app:p%40ss@h1,h2:26380,[::1]:26381/cache/2"
        "?sentinel_password=s&sentinel_username=sentinel-user&ssl_cert_reqs=none"
        "&socket_timeout=0.5",
        {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    )
    assert target.sentinels == (("h1", 26379), ("h2", 26380), ("::1", 26381))
    assert target.service_name == "cache"
    master, sentinel = dict(target.master_settings), dict(target.sentinel_settings)
    assert master["db"] == 2 and master["username"] == "app" and master["password"] == "p@ss"
    assert master["ssl"] is True and master["ssl_cert_reqs"] == "none"
    assert master["socket_timeout"] == 0.5  # the URL's option wins over the keyword default
    assert sentinel["password"] == "s" and sentinel["username"] == "sentinel-user"
    # The sentinels get TLS and timeouts, never the master's credentials.
    assert sentinel["ssl"] is True and sentinel["ssl_cert_reqs"] == "none"
    assert sentinel["socket_timeout"] == 0.5 and sentinel["socket_connect_timeout"] == 1.0
    assert "db" not in sentinel
    plain = parse_sentinel_url("redis+sentinel://h1/cache")
    assert "ssl" not in plain.master_settings and "ssl" not in plain.sentinel_settings
    assert "password" not in plain.master_settings and "password" not in plain.sentinel_settings


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_setup() -> Iterator[servers.RunningSentinel]:
    running = servers.start_redis_sentinel(
        tls=True, master_password=MASTER_PASSWORD, sentinel_password=SENTINEL_PASSWORD
    )
    yield running
    running.stop()


async def test_tls_round_trip_sync_and_async(
    tls_setup: servers.RunningSentinel, namespace: str
) -> None:
    backend = connect(tls_setup.url(scheme="rediss+sentinel"))
    master = redis.Redis.from_url(tls_setup.master.url)
    try:
        exact = ExactCache(backend, namespace=namespace, on_backend_error="raise")
        exact.update(QUESTION, "llm", [Generation(text="Paris")])
        assert await exact.alookup(QUESTION, "llm") == [Generation(text="Paris")]
        await exact.aupdate("Largest planet?", "llm", [Generation(text="Jupiter")])
        assert exact.lookup("Largest planet?", "llm") == [Generation(text="Jupiter")]
        assert len(_keys(master, namespace)) == 2  # on the TLS-only master
        await exact.aclear()
    finally:
        await backend.aclose()
        master.close()


def test_tls_servers_refuse_a_plain_sentinel_url(
    tls_setup: servers.RunningSentinel, namespace: str
) -> None:
    plain = tls_setup.url().split("&ssl_ca_certs=")[0]  # no TLS options: a valid plain URL
    assert plain.startswith("redis+sentinel://")
    strict = ExactCache(plain, namespace=namespace, on_backend_error="raise")
    with pytest.raises(BackendError, match="No master found"):
        strict.lookup(QUESTION, "llm")
    # The TLS options on a plain URL are refused at construction.
    with pytest.raises(SemcacheInputError, match="use rediss\\+sentinel://"):
        connect(tls_setup.url())


# -- Sentinel clients passed in ------------------------------------------------------------------


def _managers(running: servers.RunningSentinel) -> tuple[Any, Any]:
    host, port = running.sentinel_address.rsplit(":", 1)
    nodes = [(host, int(port))]
    settings = {"password": SENTINEL_PASSWORD}
    return (
        redis.sentinel.Sentinel(nodes, sentinel_kwargs=settings),
        redis.asyncio.sentinel.Sentinel(nodes, sentinel_kwargs=settings),
    )


async def test_sync_sentinel_client_alone_serves_both_sides(
    sentinel_setup: servers.RunningSentinel, master: redis.Redis, namespace: str
) -> None:
    sync_manager, _ = _managers(sentinel_setup)
    client = sync_manager.master_for(
        sentinel_setup.service_name, password=MASTER_PASSWORD, decode_responses=True
    )
    backend = connect(client)
    try:
        assert backend.topology == "sentinel"  # type: ignore[attr-defined]
        await backend.aset_many(namespace, [("kv:a", b"\x00\xff")])  # the built asyncio side
        assert backend.get_many(namespace, ["kv:a"]) == [b"\x00\xff"]
        assert master.get(f"{namespace}:kv:a") == b"\x00\xff"
        await backend.aclear(namespace)
    finally:
        await backend.aclose()
    assert client.ping()  # never closed by the backend
    client.close()


async def test_async_sentinel_client_alone_serves_both_sides(
    sentinel_setup: servers.RunningSentinel, master: redis.Redis, namespace: str
) -> None:
    _, async_manager = _managers(sentinel_setup)
    client = async_manager.master_for(sentinel_setup.service_name, password=MASTER_PASSWORD)
    backend = connect(client)
    try:
        backend.set_many(namespace, [("kv:a", b"1")])  # the built sync side
        assert await backend.aget_many(namespace, ["kv:a"]) == [b"1"]
        assert master.get(f"{namespace}:kv:a") == b"1"
        backend.clear(namespace)
    finally:
        await backend.aclose()
    assert await client.ping()
    await client.aclose()


def test_sentinel_replica_client_alone_is_refused(sentinel_setup: servers.RunningSentinel) -> None:
    sync_manager, _ = _managers(sentinel_setup)
    replica = sync_manager.slave_for(sentinel_setup.service_name, password=MASTER_PASSWORD)
    with pytest.raises(SemcacheInputError, match="replica client"):
        RedisBackend.from_client(replica)
    replica.close()


async def test_password_protected_standalone_client_alone_serves_both_sides(
    sentinel_setup: servers.RunningSentinel, namespace: str
) -> None:
    """The master is a plain Redis with a password too: a client on it (not through the
    sentinel) copies its password, database and decoding to the side the backend builds."""
    url = sentinel_setup.master.url.removesuffix("/0") + "/2"
    sync_client = redis.Redis.from_url(url, decode_responses=True)
    async_client = redis.asyncio.Redis.from_url(url)
    db2 = redis.Redis.from_url(url)
    try:
        sync_only = connect(sync_client)
        await sync_only.aset_many(namespace, [("kv:a", b"\xff")])
        async_only = connect(async_client)
        assert async_only.get_many(namespace, ["kv:a"]) == [b"\xff"]
        assert db2.get(f"{namespace}:kv:a") == b"\xff"
        assert sync_only.topology == "standalone"  # type: ignore[attr-defined]
        await sync_only.aclear(namespace)
        await sync_only.aclose()
        await async_only.aclose()
    finally:
        sync_client.close()
        await async_client.aclose()
        db2.close()


# -- failover ------------------------------------------------------------------------------------


def _port(server: servers.RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def failover_setup() -> Iterator[servers.RunningSentinel]:
    running = servers.start_redis_sentinel(replicas=1, master_password=MASTER_PASSWORD)
    yield running
    running.stop()


@pytest.mark.parametrize("how", ["the master dies", "SENTINEL FAILOVER"])
async def test_a_failover_is_followed_sync_and_async(
    failover_setup: servers.RunningSentinel, namespace: str, how: str
) -> None:
    backend = connect(failover_setup.url())
    try:
        backend.set_many(namespace, [("kv:before", b"1")])
        assert await backend.aget_many(namespace, ["kv:before"]) == [b"1"]
        replica = failover_setup.replicas[0]
        servers.wait_replica_in_sync(replica)
        if how == "the master dies":
            failover_setup.master.stop()
            servers.wait_sentinel_master(failover_setup, _port(replica))
            promoted = replica
        else:
            # The old master stays up, demoted: it answers the clients' writes on their open
            # connections with READONLY.
            promoted = servers.force_failover(failover_setup)
        assert _port(promoted) != _port(failover_setup.master)
        # Both clients hold connections to the old master: the failure of their next command
        # sends them to the sentinel, then to the new master (the one retry).
        backend.set_many(namespace, [("kv:after-sync", b"2")])
        await backend.aset_many(namespace, [("kv:after-async", b"3")])
        new_master = redis.Redis.from_url(promoted.url)
        try:
            assert new_master.info("replication")["role"] == "master"
            keys = [f"{namespace}:kv:{name}" for name in ("before", "after-sync", "after-async")]
            assert new_master.mget(keys) == [b"1", b"2", b"3"]
        finally:
            new_master.close()
        assert backend.get_many(namespace, ["kv:after-async"]) == [b"3"]
        assert await backend.aget_many(namespace, ["kv:after-sync"]) == [b"2"]
    finally:
        await backend.aclose()
