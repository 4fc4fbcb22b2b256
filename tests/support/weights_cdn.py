"""A local stand-in for the weights CDN, serving the generated test models.

``scripts/make_test_models.py`` builds random-weight models that ComfyUI loads
as real ones (an SD1.5-shaped checkpoint, a LoRA, an upscaler). This module
serves them from 127.0.0.1 the way the production CDN serves weights — one as
a plain file, others as tar archives holding the file — and writes a weights
manifest (same schema as weights_manifest.json) that points there. The
example workflow's checkpoint name is served by the test checkpoint, so the
built-in example runs end to end on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tests.support.static_server import ServerControl, serve_directory

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / ".cache" / "test-models"
EXAMPLE_CHECKPOINT = "Realistic_Vision_V6.0_NV_B1_fp16.safetensors"


def ensure_test_models(models_dir: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """Generate the test models if needed (a second call takes well under a second)."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_test_models.py"), "--out", str(models_dir)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((models_dir / "test_models.json").read_text())


def _tar_of(source: Path, tar_path: Path, member_name: str) -> None:
    if tar_path.is_file() and tar_path.stat().st_mtime >= source.stat().st_mtime:
        return
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tar_path.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(source, arcname=member_name)
    partial.replace(tar_path)


def build_site(site: Path, models_dir: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """Lay out the CDN's files under ``site``; return manifest entries with paths instead of URLs."""
    records = {r["name"]: r for r in ensure_test_models(models_dir)}
    entries = []
    checkpoint = records["cw-test-sd15.safetensors"]
    # The example's checkpoint name, served as a plain file (as a direct mirror would).
    link = site / "direct" / EXAMPLE_CHECKPOINT
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        # A hard link: the server refuses symlinks that leave its root, and a copy costs 450 MB.
        os.link(models_dir / "checkpoints" / checkpoint["name"], link)
    entries.append({"name": EXAMPLE_CHECKPOINT, "folder": "checkpoints", "path": f"direct/{EXAMPLE_CHECKPOINT}",
                    "archive": "file", "size": checkpoint["size"], "sha256": checkpoint["sha256"],
                    "synonyms": ["cw-test-sd15.safetensors"]})
    # The others as the CDN serves them: a tar holding the file under its name; size and
    # sha256 unknown in advance (learned at first download, as in production).
    for name in ("cw-test-sd15-lora.safetensors", "cw-test-compact-2x.safetensors"):
        record = records[name]
        _tar_of(models_dir / record["folder"] / name, site / record["folder"] / f"{name}.tar", name)
        entries.append({"name": name, "folder": record["folder"], "path": f"{record['folder']}/{name}.tar",
                        "archive": "tar", "size": None, "sha256": None, "synonyms": []})
    return entries


def write_manifest(entries: list[dict[str, Any]], base_url: str, path: Path) -> Path:
    weights = [{key: value for key, value in entry.items() if key != "path"}
               | {"url": f"{base_url}/{entry['path']}", "mirrors": [], "approx_size": None} for entry in entries]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "weights": weights}, indent=2))
    return path


@contextmanager
def local_cdn(work: Path, **server_options: Any) -> Iterator[tuple[ServerControl, Path]]:
    """Serve the test models; yields the server control and the manifest path."""
    site = work / "cdn"
    entries = build_site(site)
    with serve_directory(site, **server_options) as control:
        manifest = write_manifest(entries, control.base_url, work / "test_weights_manifest.json")
        yield control, manifest
