#!/usr/bin/env bash
# Build the Cog image. Cog runs cog.yaml's `run:` steps before it copies the project in,
# so the files those steps need reach them as build secrets (mounted read-only for one
# step, never stored in the image). Extra arguments go to `cog build` (e.g. -t NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cog build \
  --secret id=install_comfyui,src=scripts/install_comfyui.py \
  --secret id=install_custom_nodes,src=scripts/install_custom_nodes.py \
  --secret id=build_node_catalogue,src=scripts/build_node_catalogue.py \
  --secret id=manager_catalogue,src=scripts/manager_catalogue.py \
  --secret id=build_model_folder_map,src=scripts/build_model_folder_map.py \
  --secret id=custom_nodes_json,src=custom_nodes.json \
  --secret id=constraints,src=requirements/constraints.txt \
  "$@"
