#!/usr/bin/env bash
# Create (or reuse) the project virtualenv at .venv and install semcache with the given extras.
# Usage: scripts/setup_venv.sh [EXTRAS]   e.g. scripts/setup_venv.sh test,models
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [[ ",$extras," == *",models,"* ]]; then
    # The CPU build of torch first: asked for by version it comes from the local wheel,
    # and the models extra then finds it satisfied instead of pulling the CUDA build.
    .venv/bin/python -m pip install --quiet "torch==2.13.0" || echo "torch 2.13.0 not available here; the models extra may pull another build"
fi
if [ -n "$extras" ]; then
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
    .venv/bin/python -m pip install --quiet -e .
fi
