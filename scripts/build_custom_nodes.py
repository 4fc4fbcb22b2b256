#!/usr/bin/env python3
"""Build custom_nodes.json from the public list of packs the reference model ships.

Why a script rather than a hand-edited file: every repository URL and pinned
commit must come from the source file
(``any-comfyui-workflow-custom-nodes.json``), never from memory, and a test
re-runs ``build()`` to prove the committed file still equals what the source
gives. Our own decisions (which nodes we refuse, which packs skip their
requirements, notes) live in the small tables below, so they stay reviewable
beside the data they change.

Usage: python scripts/build_custom_nodes.py [--source FILE] [--out custom_nodes.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_NAME = "any-comfyui-workflow-custom-nodes.json"
DEFAULT_SOURCE = Path("/work/shared/sources") / SOURCE_NAME
DEFAULT_OUT = REPO_ROOT / "custom_nodes.json"

# Nodes we refuse even when their pack is installed, with the reason users see.
# The line we draw: a node is refused when it sends data to, or fetches from, a
# URL chosen by the workflow (that bypasses the container's URL checks and its
# weights cache), or needs hardware or a personal account the container lacks.
# Nodes that download a fixed model from a fixed host (the "DownloadAndLoad..."
# family) stay allowed: the weights list pre-places their files.
# Every class name here appears in comfyui-manager 4.3's extension-node-map.json
# for that pack (or for a repository of the same name); a test checks it.
UNSUPPORTED_NODES: dict[str, dict[str, str]] = {
    "ComfyUI-GlifNodes": {
        "LoraLoaderFromURL": (
            "it downloads a LoRA from a URL inside ComfyUI, outside this container's URL checks "
            "and weights cache. Put the URL in a LoraLoader's lora_name instead; the wrapper "
            "downloads, checks and caches it."
        ),
    },
    "ComfyUI-KJNodes": {
        "WebcamCaptureCV2": "it captures from a webcam, and this container has none. Send the image as input_file.",
    },
    "was-node-suite-comfyui": {
        "Image Send HTTP": (
            "it sends images to a URL chosen by the workflow; this container returns outputs only "
            "as prediction files."
        ),
        "True Random.org Number Generator": (
            "it calls the random.org web service with a personal API key. Use a Seed or "
            "Random Number node instead."
        ),
    },
}

# Packs whose requirements.txt must not be installed (none known yet: a
# production build reports conflicts by pack and package; record decisions here).
SKIP_REQUIREMENTS: dict[str, str] = {}

NOTES: dict[str, str] = {
    "ComfyUI_ColorMod": (
        "CV2TonemapDurand is not registered: it needs OpenCV's non-free xphoto module, which no "
        "PyPI OpenCV wheel has (measured with opencv-contrib-python-headless)."
    ),
}

_SHORT_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_REPO = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def pack_name(repo: str) -> str:
    """The folder name under custom_nodes/: the repository's own name, as ComfyUI-Manager uses."""
    name = repo.rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".git") else name


def build(source: dict[str, Any]) -> dict[str, Any]:
    """custom_nodes.json's content from the parsed source file (pure; the test calls it)."""
    packs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for item in source["packs"]:
        repo, commit = item["repo"], item["commit"]
        if not _REPO.match(repo):
            raise ValueError(f"source entry {item!r}: repository is not a github.com URL")
        if not _SHORT_COMMIT.match(commit):
            raise ValueError(f"source entry {item!r}: commit is not a hex commit id")
        name = pack_name(repo)
        if name.lower() in seen:
            raise ValueError(f"two packs would share the folder custom_nodes/{name}: {seen[name.lower()]} and {repo}")
        seen[name.lower()] = repo
        entry: dict[str, Any] = {
            "name": name,
            "repo": repo,
            "commit": commit,
            "install_requirements": name not in SKIP_REQUIREMENTS,
            "unsupported_nodes": dict(sorted(UNSUPPORTED_NODES.get(name, {}).items())),
        }
        note = NOTES.get(name) or SKIP_REQUIREMENTS.get(name)
        if note:
            entry["notes"] = note
        packs.append(entry)
    for table in (UNSUPPORTED_NODES, SKIP_REQUIREMENTS, NOTES):
        unknown = sorted(set(table) - {p["name"] for p in packs})
        if unknown:
            raise ValueError(f"curated tables name packs the source does not have: {unknown}")
    return {
        "_generated_by": "scripts/build_custom_nodes.py from " + SOURCE_NAME + "; edit the script, not this file",
        "source": source.get("source", ""),
        "packs": packs,
    }


def render(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs from what the source gives")
    args = parser.parse_args(argv)
    text = render(build(json.loads(args.source.read_text())))
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date; run scripts/build_custom_nodes.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(json.loads(text)['packs'])} packs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
