#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, offline, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q -ra --durations=15 "$@"
