#!/usr/bin/env bash
# The README's test command: set up (idempotent), lint, then run the whole test suite offline, slow tests included.
#   --quick   everything but the slow tier (learning tests, multi-process runs, browser and live-server tests):
#             a developer's loop of a few minutes. CI runs both tiers (no --quick).
# Any other arguments go to pytest. Under CI=true (.ci/run sets it) a test whose tool or data is missing fails
# instead of skipping. Every run writes each test's time to test-times.json (tests/_test_times.py).
#   PREFPAINT_SHARED   folder holding data/official/V_inverse.pt (default: ../shared beside the clone)
set -euo pipefail
cd "$(dirname "$0")/.."
TIER=()
ARGS=()
for arg in "$@"; do
  if [ "$arg" = "--quick" ]; then TIER=(-m "not slow"); else ARGS+=("$arg"); fi
done
bash scripts/setup.sh

# The HTML report is checked in a real browser: Debian's headless chromium, installed as setup.sh installs libusb.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "test: installing chromium (the browser test renders the HTML report)"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "test: warning: chromium not found and apt-get unavailable; the browser test will skip (or fail under CI=true)" >&2
  fi
fi

# The serve page and the rating page are tested in the same browser through selenium, which needs Debian's chromedriver.
if ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "test: installing chromium-driver (the browser tests of the serve and rating pages drive chromium)"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-driver >/dev/null
  else
    echo "test: warning: chromedriver not found and apt-get unavailable; the serve and rating page tests will skip (or fail under CI=true)" >&2
  fi
fi

# The openai npm package, a second real client of prefpaint serve (tests/test_serve_node.py), pinned by its lock file.
if command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/node/node_modules/openai ]; then
    echo "test: installing the openai npm package (tests/node, for the Node client test of prefpaint serve)"
    (cd tests/node && npm ci --no-audit --no-fund --silent)
  fi
else
  echo "test: warning: npm not found; the Node client test of prefpaint serve will skip (or fail under CI=true)" >&2
fi

.venv/bin/ruff check .
.venv/bin/lint-imports
export HF_HUB_OFFLINE=1
# Two workers (pytest-xdist), one torch/OpenMP thread each: most tests hold a single core, and two threads per
# process on 2 shared cores run slower than one (OpenMP waits on a busy core). 8 min against 13 serially here.
# PYTEST_WORKERS=0 runs in one process.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -q -ra --durations=15 -n "${PYTEST_WORKERS:-2}" ${TIER[@]+"${TIER[@]}"} ${ARGS[@]+"${ARGS[@]}"}
