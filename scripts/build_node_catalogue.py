#!/usr/bin/env python3
"""Write <ComfyUI dir>/node_catalogue.json: node class -> the public packs that provide it.

Install-time step (run once per image build, after install_comfyui.py). The
data comes from comfyui-manager 4.3's extension-node-map.json, read from the
pinned, checksummed wheel by manager_catalogue.py; the manager itself is never
installed. The output is the compact format that
comfyui_wrapper/nodes/catalogue.py reads lazily when a workflow names a node
class this ComfyUI does not have.

Standard library only (it runs in the Docker build before the project is copied).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manager_catalogue  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FORMAT = 1
OUT_NAME = "node_catalogue.json"


def compact(extension_node_map: dict[str, Any]) -> dict[str, Any]:
    """The catalogue (format 1) from extension-node-map.json's content (pure; tests call it).

    A class claimed by several packs lists the pack whose ``preemptions`` name
    it first (that is the manager's own tie-break), then the rest in file order.
    Name patterns that Python's ``re`` cannot compile are dropped.
    """
    repos: list[list[str]] = []
    nodes: dict[str, list[int]] = {}
    patterns: list[list[Any]] = []
    preferred: dict[str, int] = {}
    for url, entry in extension_node_map.items():
        classes, meta = (entry + [{}])[:2] if isinstance(entry, list) else ([], {})
        meta = meta if isinstance(meta, dict) else {}
        index = len(repos)
        title = meta.get("title_aux") or meta.get("title") or url.rstrip("/").rsplit("/", 1)[-1]
        repos.append([url, str(title)])
        for name in dict.fromkeys(classes):
            if isinstance(name, str):
                nodes.setdefault(name, []).append(index)
        for name in meta.get("preemptions") or []:
            preferred.setdefault(name, index)
        pattern = meta.get("nodename_pattern")
        if isinstance(pattern, str) and pattern:
            try:
                re.compile(pattern)
            except re.error:
                continue
            patterns.append([pattern, index])
    for name, index in preferred.items():
        ids = nodes.get(name)
        if ids and index in ids:
            ids.remove(index)
            ids.insert(0, index)
    return {
        "format": FORMAT,
        "source": f"{manager_catalogue.NAME}=={manager_catalogue.VERSION} comfyui_manager/extension-node-map.json",
        "repos": repos,
        "nodes": nodes,
        "patterns": patterns,
    }


def write(catalogue: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(catalogue, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", type=Path,
                        default=Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI"))
    parser.add_argument("--out", type=Path, help=f"default: <comfyui-dir>/{OUT_NAME}")
    parser.add_argument("--cache-dir", type=Path, default=manager_catalogue.DEFAULT_CACHE,
                        help="where the comfyui-manager wheel is kept")
    args = parser.parse_args(argv)
    out = args.out or args.comfyui_dir / OUT_NAME
    catalogue = compact(manager_catalogue.extension_node_map(args.cache_dir))
    write(catalogue, out)
    print(f"wrote {out}: {len(catalogue['nodes'])} node classes from {len(catalogue['repos'])} packs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
