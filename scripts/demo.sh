#!/usr/bin/env bash
# The main job on this machine: the built-in text-to-image workflow, end to end on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m comfyui_wrapper run --output-dir outputs --output-format png "$@"
