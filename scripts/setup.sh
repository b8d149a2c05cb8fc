#!/usr/bin/env bash
# One-time set-up on Debian/Ubuntu with Python 3.11+: system library for open3d, a .venv, torch, the toolkit
# with every extra ([recon3d] 3D stack, [train] tensorboard, [serve] FastAPI/uvicorn, [docs] the documentation
# site, [dev] test tools).
#   TORCH_SPEC   which torch to install (default torch==2.13.0; e.g. "torch==2.13.0 --index-url
#                https://download.pytorch.org/whl/cu128" for a specific CUDA build)
#   PYTHON       interpreter used to create .venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

# open3d's wheel links against libusb-1.0; a fresh Debian/Ubuntu image may not have it.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing libusb-1.0-0 (needed by open3d)"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "setup: warning: libusb-1.0 not found and apt-get unavailable; install it for open3d" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  PY="${PYTHON:-python3}"
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed, but $PY is $("$PY" -V 2>&1); set PYTHON, e.g. PYTHON=python3.11" >&2
    exit 2
  fi
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulled in by a dependency can be a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
fi
.venv/bin/python -m pip install -q -e ".[recon3d,train,serve,docs,dev]"
echo "setup: done. Try: .venv/bin/prefpaint doctor --smoke"
