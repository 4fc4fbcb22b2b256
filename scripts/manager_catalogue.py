"""Read public catalogues carried as data by the PyPI wheel ``comfyui-manager==4.3``.

We never install or run the manager; its wheel is only a pinned, checksummed
source of two JSON files: ``extension-node-map.json`` (node-pack repository ->
node classes) and ``model-list.json`` (public models with download URLs).
The wheel is fetched with ``pip download --no-deps`` into .cache/wheels/.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

NAME = "comfyui-manager"
VERSION = "4.3"
WHEEL_FILE = "comfyui_manager-4.3-py3-none-any.whl"
WHEEL_SHA256 = "521f76f564edebbf494396c30f9802c33f88189aebbf832119076b74ba8c6d8b"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "wheels"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_path(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The verified wheel, downloaded once."""
    wheel = cache_dir / WHEEL_FILE
    if wheel.is_file() and _sha256(wheel) == WHEEL_SHA256:
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
             "--disable-pip-version-check", "-d", tmp, f"{NAME}=={VERSION}"],
            capture_output=True, text=True,
        )
        got = Path(tmp) / WHEEL_FILE
        if result.returncode != 0 or not got.is_file():
            raise SystemExit(f"error: could not download {NAME}=={VERSION}: {result.stderr[-1500:]}")
        if _sha256(got) != WHEEL_SHA256:
            raise SystemExit(f"error: {WHEEL_FILE} does not match its pinned sha256; refusing to use it.")
        got.replace(wheel)
    return wheel


def read_json(member: str, cache_dir: Path = DEFAULT_CACHE) -> Any:
    """Parse ``comfyui_manager/<member>`` from the pinned wheel."""
    with zipfile.ZipFile(wheel_path(cache_dir)) as archive:
        return json.loads(archive.read(f"comfyui_manager/{member}"))


def model_list(cache_dir: Path = DEFAULT_CACHE) -> list[dict[str, Any]]:
    return read_json("model-list.json", cache_dir)["models"]


def extension_node_map(cache_dir: Path = DEFAULT_CACHE) -> dict[str, Any]:
    return read_json("extension-node-map.json", cache_dir)
