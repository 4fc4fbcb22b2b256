#!/usr/bin/env python3
"""Pack the image build's scripts and data into requirements/wheels/cw_build-*.whl.

Cog runs cog.yaml's `run:` steps before it copies the project in, and build
secrets are left out of BuildKit's cache key (and absent in `cog predict`/`cog
serve`). A local wheel listed in python_requirements is staged with a
checksummed COPY instead, so this wheel carries everything the `run:` step
reads: the install scripts, custom_nodes.json, the packs' overrides and measured
results, and the constraints (the ComfyUI pin lives in install_comfyui.py). Any change to them changes the wheel's bytes,
and Cog rebuilds from there.

The wheel is byte-for-byte reproducible (fixed timestamps and order), committed,
and kept in step by a test: `--check` fails when it is stale.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NAME, VERSION = "cw_build", "1.0.0"
WHEEL_NAME = f"{NAME}-{VERSION}-py3-none-any.whl"
OUT = REPO_ROOT / "requirements" / "wheels" / WHEEL_NAME
# (path in the repository, name inside the package)
MEMBERS = (
    ("scripts/image_build/__main__.py", "__main__.py"),
    ("scripts/install_comfyui.py", "install_comfyui.py"),
    ("scripts/install_custom_nodes.py", "install_custom_nodes.py"),
    ("scripts/build_node_catalogue.py", "build_node_catalogue.py"),
    ("scripts/manager_catalogue.py", "manager_catalogue.py"),
    ("scripts/build_model_folder_map.py", "build_model_folder_map.py"),
    ("scripts/check_custom_nodes.py", "check_custom_nodes.py"),
    ("custom_nodes.json", "custom_nodes.json"),
    ("custom_nodes_measured.json", "custom_nodes_measured.json"),
    ("requirements/constraints.txt", "constraints.txt"),
    ("requirements/custom_nodes_overrides.txt", "custom_nodes_overrides.txt"),
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(root: Path = REPO_ROOT) -> bytes:
    """The wheel's bytes from the files under ``root``."""
    files: list[tuple[str, bytes]] = [(f"{NAME}/__init__.py", b'"""The image build, packed for cog.yaml\'s run: step."""\n')]
    files += [(f"{NAME}/{inside}", (root / source).read_bytes()) for source, inside in MEMBERS]
    dist = f"{NAME}-{VERSION}.dist-info"
    files += [
        (f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
                             "Summary: any-comfyui-workflow image build steps (generated)\n".encode()),
        (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: scripts/build_image_wheel.py\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files) + f"{dist}/RECORD,,\n"
    files.append((f"{dist}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed wheel is stale")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="project to pack (default: this one)")
    args = parser.parse_args(argv)
    out = args.root / OUT.relative_to(REPO_ROOT)
    data = build(args.root)
    if args.check:
        if not out.is_file() or out.read_bytes() != data:
            print(f"{out} is stale: run python scripts/build_image_wheel.py", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f"{NAME}-*.whl"):
        if old != out:
            old.unlink()
    out.write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
