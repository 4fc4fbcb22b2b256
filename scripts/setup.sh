#!/usr/bin/env bash
# Set up a fresh checkout: a virtual environment with pinned packages, ComfyUI, and the
# generated test models. Idempotent: a second run checks everything and finishes quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input \
  -r requirements/runtime.txt -r requirements/dev.txt -c requirements/constraints.txt
.venv/bin/python scripts/install_comfyui.py
