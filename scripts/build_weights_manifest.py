#!/usr/bin/env python3
"""Build weights_manifest.json from the public sources, so every entry can be traced.

Sources (nothing else is ever written into the manifest):

1. ``any-comfyui-workflow-weights.json`` (default: /work/shared/sources/): the
   weights the public any-comfyui-workflow model offers. Each becomes one entry:
   ``url = url_pattern.format(cdn_dir, name)``, ``archive = "tar"``,
   ``folder = comfyui_folder``, synonyms from its ``synonyms`` map. Sizes and
   sha256 are unknown there, so they stay null (the cache learns them).
2. comfyui-manager 4.3's ``model-list.json`` (read through scripts/manager_catalogue.py):
   where it offers the same file, its direct URL is added as a mirror and its
   approximate size as ``approx_size`` (estimates only). A file name counts as
   "the same file" only when that is unambiguous, see ``_mirror_candidates``.

Usage::

    python scripts/build_weights_manifest.py            # write weights_manifest.json
    python scripts/build_weights_manifest.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from generated_file import write_or_check  # noqa: E402

from comfyui_wrapper.weights.manifest import Manifest, WeightSpec  # noqa: E402

DEFAULT_SOURCE = Path("/work/shared/sources/any-comfyui-workflow-weights.json")
DEFAULT_OUTPUT = REPO_ROOT / "weights_manifest.json"

# model-list.json puts some files under save_path "default": the folder then follows the type.
_DEFAULT_FOLDER_BY_TYPE = {"upscale": "upscale_models", "clip": "text_encoders", "VAE": "vae",
                           "diffusion_model": "diffusion_models", "checkpoint": "checkpoints",
                           "lora": "loras", "controlnet": "controlnet", "embedding": "embeddings"}
# ComfyUI's own legacy folder names (folder_paths.map_legacy).
_LEGACY_FOLDERS = {"clip": "text_encoders", "unet": "diffusion_models"}
# File stems many unrelated repositories use; never matched on the name alone.
_GENERIC_STEMS = {"model", "model.fp16", "diffusion_pytorch_model", "diffusion_pytorch_model.fp16",
                  "pytorch_model", "pytorch_lora_weights", "ip-adapter", "prompt", "config"}
_SIZE = re.compile(r"^([\d.]+)\s*(B|KB|MB|GB|TB)$")


def parse_approx_size(text: str | None) -> int | None:
    """'4.71MB' -> 4710000. Decimal units: the catalogue's figures match decimal file sizes."""
    match = _SIZE.match((text or "").strip())
    if not match:
        return None
    factor = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}[match.group(2)]
    return int(float(match.group(1)) * factor)


def _is_direct_url(url: str) -> bool:
    """Only URLs that serve the file: github.com/.../blob/... is an HTML page, and a few
    entries hold a Hugging Face repository id instead of a URL."""
    if not url.startswith("https://"):
        return False
    parts = urlsplit(url)
    return not (parts.hostname == "github.com" and "/blob/" in parts.path)


def _manager_folder(entry: dict[str, Any]) -> tuple[str, str]:
    """(ComfyUI folder, subfolder below it) for a model-list.json entry."""
    top, _, rest = entry.get("save_path", "").partition("/")
    if top == "default":
        top = _DEFAULT_FOLDER_BY_TYPE.get(entry.get("type", ""), "")
    return _LEGACY_FOLDERS.get(top, top), rest


def _mirror_candidates(name: str, folder: str, by_filename: dict[str, list[dict[str, Any]]],
                       own_basenames: dict[str, int]) -> list[dict[str, Any]]:
    """model-list.json entries that are this very file.

    A file name that only one catalogue URL carries, and that is not a generic
    name, is taken as the same file wherever the catalogue files it (it often
    uses a different folder for the same bytes). Otherwise, the catalogue entry
    must sit in the same ComfyUI folder (and the same subfolder when our name
    has one), and exactly one URL may remain.
    """
    subfolder, _, basename = name.rpartition("/")
    entries = [e for e in by_filename.get(basename, []) if _is_direct_url(e["url"])]
    if not entries:
        return []
    stem = basename.rsplit(".", 1)[0].lower()
    unique = len({e["url"] for e in entries}) == 1
    generic = stem in _GENERIC_STEMS or own_basenames[basename] > 1
    if not (unique and not generic):
        entries = [e for e in entries if _manager_folder(e)[0] == folder]
        if subfolder:
            entries = [e for e in entries if _manager_folder(e)[1].lower() == subfolder.lower()]
        if len({e["url"] for e in entries}) != 1:
            return []
    return entries


def build(source_path: Path, model_list: list[dict[str, Any]]) -> dict[str, Any]:
    source = json.loads(source_path.read_text())
    pattern = source["url_pattern"]
    by_filename: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in model_list:
        by_filename[entry.get("filename", "")].append(entry)

    # name -> (folder, url); the source lists two names twice in one category.
    entries: dict[str, tuple[str, str]] = {}
    for info in source["categories"].values():
        for name in info["names"]:
            url = pattern.format(cdn_dir=info["cdn_dir"], name=name)
            value = (info["comfyui_folder"], url)
            if entries.setdefault(name, value) != value:
                raise SystemExit(f"error: {name!r} appears in two categories with different folders or URLs")
    own_basenames: dict[str, int] = defaultdict(int)
    for name in entries:
        own_basenames[name.rpartition("/")[2]] += 1

    synonyms: dict[str, list[str]] = defaultdict(list)
    for synonym, canonical in source.get("synonyms", {}).items():
        if canonical not in entries:
            raise SystemExit(f"error: synonym {synonym!r} points at {canonical!r}, which the source does not list")
        synonyms[canonical].append(synonym)

    specs = []
    for name, (folder, url) in sorted(entries.items(), key=lambda item: (item[1][0].lower(), item[0].lower())):
        matches = _mirror_candidates(name, folder, by_filename, own_basenames)
        mirrors = list(dict.fromkeys(e["url"] for e in matches))
        sizes = [s for s in (parse_approx_size(e.get("size")) for e in matches) if s]
        specs.append(WeightSpec(
            name=name, folder=folder, url=url, archive="tar", size=None, sha256=None,
            synonyms=tuple(sorted(synonyms.get(name, []))), mirrors=tuple(mirrors),
            approx_size=max(sizes) if sizes else None,
        ))
    manifest = Manifest(specs)  # validates: unique names, synonyms that hide nothing
    return {
        "schema_version": 1,
        "generated_by": "scripts/build_weights_manifest.py (do not edit by hand)",
        "sources": [
            f"{source_path.name}: {source.get('source', '')}",
            "comfyui-manager 4.3 model-list.json (PyPI wheel): mirrors and approx_size",
        ],
        "weights": [spec.to_json() for spec in manifest],
    }


def render(data: dict[str, Any]) -> str:
    """One weight per line: small diffs when a source changes."""
    head = {k: v for k, v in data.items() if k != "weights"}
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    lines.append('  "weights": [')
    rows = [json.dumps(w, ensure_ascii=False) for w in data["weights"]]
    lines.extend(f"    {row}," for row in rows[:-1])
    if rows:
        lines.append(f"    {rows[-1]}")
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    args = parser.parse_args(argv)

    import manager_catalogue  # scripts/, fetches the pinned wheel once

    text = render(build(args.source, manager_catalogue.model_list()))
    data = json.loads(text)
    with_mirrors = sum(1 for w in data["weights"] if w["mirrors"])
    return write_or_check(args.output, text, check=args.check, script="build_weights_manifest.py",
                          summary=f"{len(data['weights'])} weights, {with_mirrors} with mirrors")

if __name__ == "__main__":
    raise SystemExit(main())
