#!/usr/bin/env bash
# The main job on this machine: the built-in text-to-image workflow, end to end on the CPU,
# with the generated test checkpoint served from a local stand-in for the weights CDN.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py --output-dir outputs --output-format png "$@"
