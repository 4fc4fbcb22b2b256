#!/usr/bin/env bash
# Set up a fresh checkout: a virtual environment with pinned packages, ComfyUI, the
# install-time data beside it (node catalogue, model folder map) and the generated test
# models. Idempotent: a second run checks everything and finishes in seconds.
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
# Custom node packs come from GitHub: production builds install them (scripts/cog_build.sh);
# set CW_INSTALL_CUSTOM_NODES=1 to install them here too.
if [ "${CW_INSTALL_CUSTOM_NODES:-0}" = "1" ]; then
  .venv/bin/python scripts/install_custom_nodes.py --comfyui-dir ComfyUI
fi
[ -f ComfyUI/node_catalogue.json ] || .venv/bin/python scripts/build_node_catalogue.py --comfyui-dir ComfyUI
[ -f ComfyUI/model_folder_map.json ] || .venv/bin/python scripts/build_model_folder_map.py --comfyui-dir ComfyUI
.venv/bin/python scripts/make_test_models.py --out .cache/test-models
