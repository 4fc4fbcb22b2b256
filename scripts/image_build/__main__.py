"""The image build's one `run:` step: ComfyUI, the packs and their health check, the node catalogue, the model folder map.

Installed from the local wheel that requirements/cog.txt lists (scripts/build_image_wheel.py
packs it), because Cog's `run:` steps run before the project is copied in. Every install
script and data file rides in that wheel, so a change to any of them changes the wheel's
checksum and Cog rebuilds this step; no build secret is involved, so `cog build`, `cog push`
and the dev commands (`cog predict`/`cog serve`) all build the same way.

    python -m cw_build --comfyui-dir /opt/comfyui

A failed step removes the half-built ComfyUI folder and exits non-zero with the step's
message (the failing pack and the fix come from the step itself).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# ComfyUI importing dozens of packs on a build host's CPU takes minutes, not seconds.
FOLDER_MAP_TIMEOUT_S = 900


def steps(comfyui_dir: Path, cache: Path) -> list[tuple[str, list[str]]]:
    py = sys.executable
    return [
        ("ComfyUI", [py, str(HERE / "install_comfyui.py"), "--target", str(comfyui_dir), "--cache-dir", str(cache)]),
        ("custom node packs", [py, str(HERE / "install_custom_nodes.py"), "--comfyui-dir", str(comfyui_dir),
                               "--manifest", str(HERE / "custom_nodes.json"),
                               "--constraints", str(HERE / "constraints.txt"),
                               "--overrides", str(HERE / "custom_nodes_overrides.txt")]),
        # Every pack measured as importing (custom_nodes_measured.json) must import here too.
        ("pack health check", [py, str(HERE / "check_custom_nodes.py"), "--comfyui-dir", str(comfyui_dir),
                               "--manifest", str(HERE / "custom_nodes.json"),
                               "--measured", str(HERE / "custom_nodes_measured.json")]),
        ("node catalogue", [py, str(HERE / "build_node_catalogue.py"), "--comfyui-dir", str(comfyui_dir),
                            "--cache-dir", str(cache)]),
        ("model folder map", [py, str(HERE / "build_model_folder_map.py"), "--comfyui-dir", str(comfyui_dir),
                              "--timeout", str(FOLDER_MAP_TIMEOUT_S)]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cw_build", description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", type=Path, default=Path(os.environ.get("CW_COMFYUI_DIR") or "/opt/comfyui"))
    args = parser.parse_args(argv)
    comfyui_dir = args.comfyui_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="cw-build-") as cache:
        for title, command in steps(comfyui_dir, Path(cache)):
            started = time.monotonic()
            print(f"== {title}", flush=True)
            if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
                shutil.rmtree(comfyui_dir, ignore_errors=True)
                print(f"\nerror: the image build failed at step '{title}' (see its message above); "
                      f"{comfyui_dir} was removed, nothing half-installed is kept.", file=sys.stderr)
                return 1
            print(f"== {title}: done in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
