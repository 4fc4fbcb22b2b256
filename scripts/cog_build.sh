#!/usr/bin/env bash
# Build or push the Cog image:  scripts/cog_build.sh [build|push] [cog arguments...]
#   scripts/cog_build.sh -t any-comfyui-workflow          (same as: build -t ...)
#   scripts/cog_build.sh push r8.im/OWNER/MODEL
# It ships our committed .cog/openapi_schema.json (--openapi-schema; without it Cog writes
# its own over it), refuses a stale build wheel or schema, and refuses a Cog CLI without
# replicate/cog#3160 (uv-managed CUDA 13 bases), which this cog.yaml (cuda 13.0) needs.
set -euo pipefail
cd "$(dirname "$0")/.."
command="build"
if [ "${1:-}" = "build" ] || [ "${1:-}" = "push" ]; then command="$1"; shift; fi

COG="${COG:-cog}"
version_line="$("$COG" --version 2>/dev/null | head -n1 || true)"
# cog#3160 (commit 6110c912) came after v0.22.0: a release after 0.22.0, or a dev build of it.
version="$(printf '%s\n' "$version_line" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)"
newer_than_0_22_0() {
  [ -n "$1" ] && [ "$1" != "0.22.0" ] && [ "$(printf '0.22.0\n%s\n' "$1" | sort -V | tail -n1)" = "$1" ]
}
if ! newer_than_0_22_0 "$version" && [ "${COG_ALLOW_ANY_VERSION:-0}" != "1" ]; then
  echo "error: '$COG --version' says '${version_line:-nothing}'; this build needs a Cog CLI newer than 0.22.0" >&2
  echo "  (one that includes replicate/cog#3160, for uv-managed CUDA 13 base images). Install a newer Cog," >&2
  echo "  or set COG_ALLOW_ANY_VERSION=1 if you know your CLI has that fix." >&2
  exit 1
fi

python3 scripts/build_image_wheel.py --check >/dev/null || {
  echo "error: requirements/wheels/cw_build-*.whl is stale: run python3 scripts/build_image_wheel.py" >&2; exit 1; }

exec "$COG" "$command" --openapi-schema .cog/openapi_schema.json "$@"
