#!/usr/bin/env bash
# Build the Cog image. Cog runs cog.yaml's `run:` steps before it copies the project
# in, so the install scripts reach those steps as build secrets (files mounted
# read-only for one step, never stored in the image).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cog build \
  --secret id=install_comfyui,src=scripts/install_comfyui.py \
  "$@"
