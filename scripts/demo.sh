#!/usr/bin/env bash
# Set up and run the demo on a fresh machine: no server, the embedded backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh langchain,models
exec .venv/bin/semcache demo "$@"
