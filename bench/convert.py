#!/usr/bin/env python3
"""Time comfyui_wrapper.ui.convert.convert on a 50-node UI workflow (goal: median < 20 ms).

The /object_info dump is the one recorded with the oracle fixtures and is
loaded before timing starts. The first call also builds the frontend view of
each node class it meets (cached per object_info dict afterwards); it is
reported separately. A second figure uses the largest shipped template that
has a recorded oracle output (subgraphs included), when the templates package
is installed.

    .venv/bin/python bench/convert.py [--runs 200]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comfyui_wrapper.ui.convert import convert  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ui_oracle"


def fifty_node_workflow() -> dict[str, Any]:
    """Seven txt2img chains (7 nodes each) and one Primitive feeding every seed: 50 nodes."""
    nodes: list[dict[str, Any]] = []
    links: list[list[Any]] = []

    def node(nid: int, type_: str, wv: list[Any], inputs: list[tuple[str, str, bool]], outputs: list[tuple[str, str]]) -> None:
        nodes.append({
            "id": nid, "type": type_, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": len(nodes), "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None, **({"widget": {"name": n}} if w else {})} for n, t, w in inputs],
            "outputs": [{"name": n, "type": t, "links": []} for n, t in outputs],
            "properties": {"Node name for S&R": type_}, "widgets_values": wv,
        })

    def link(src: int, slot: int, dst: int, name: str) -> None:
        link_id = len(links) + 1
        source = next(n for n in nodes if n["id"] == src)
        target = next(n for n in nodes if n["id"] == dst)
        source["outputs"][slot]["links"].append(link_id)
        index = next(i for i, x in enumerate(target["inputs"]) if x["name"] == name)
        target["inputs"][index]["link"] = link_id
        links.append([link_id, src, slot, dst, index, source["outputs"][slot]["type"]])

    node(1, "PrimitiveNode", [1234, "fixed"], [], [("INT", "INT")])
    nodes[0]["outputs"][0]["widget"] = {"name": "seed"}
    for chain in range(7):
        base = 10 + chain * 10
        node(base, "CheckpointLoaderSimple", [f"model_{chain}.safetensors"], [], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")])
        node(base + 1, "CLIPTextEncode", [f"a photo {chain} // comment"], [("clip", "CLIP", False)], [("CONDITIONING", "CONDITIONING")])
        node(base + 2, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", False)], [("CONDITIONING", "CONDITIONING")])
        node(base + 3, "EmptyLatentImage", [512, 512, 1], [], [("LATENT", "LATENT")])
        node(base + 4, "KSampler", [0, "fixed", 20, 7.5, "euler", "normal", 1],
             [("model", "MODEL", False), ("positive", "CONDITIONING", False), ("negative", "CONDITIONING", False),
              ("latent_image", "LATENT", False), ("seed", "INT", True)], [("LATENT", "LATENT")])
        node(base + 5, "VAEDecode", [], [("samples", "LATENT", False), ("vae", "VAE", False)], [("IMAGE", "IMAGE")])
        node(base + 6, "SaveImage", [f"chain{chain}_%KSampler.seed%"], [("images", "IMAGE", False)], [])
        link(base, 0, base + 4, "model")
        link(base, 1, base + 1, "clip")
        link(base, 1, base + 2, "clip")
        link(base, 2, base + 5, "vae")
        link(base + 1, 0, base + 4, "positive")
        link(base + 2, 0, base + 4, "negative")
        link(base + 3, 0, base + 4, "latent_image")
        link(base + 4, 0, base + 5, "samples")
        link(base + 5, 0, base + 6, "images")
        link(1, 0, base + 4, "seed")
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def largest_template() -> tuple[str, dict[str, Any]] | None:
    best: tuple[int, str, dict[str, Any]] | None = None
    for path in sorted((FIXTURES / "expected").glob("template__*.json")):
        fixture = json.loads(path.read_text(encoding="utf-8"))
        if "output" not in fixture:
            continue
        spec = importlib.util.find_spec(fixture["source"]["package"])
        if spec is None or not spec.submodule_search_locations:
            return None
        ui = json.loads((Path(list(spec.submodule_search_locations)[0]) / fixture["source"]["file"]).read_text(encoding="utf-8"))
        count = len(ui["nodes"]) + sum(len(s.get("nodes", [])) for s in (ui.get("definitions") or {}).get("subgraphs", []))
        if best is None or count > best[0]:
            best = (count, path.stem, ui)
    return (f"{best[1]} ({best[0]} UI nodes)", best[2]) if best else None


def timed(ui: dict[str, Any], object_info: dict[str, Any], runs: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    out = convert(ui, object_info)
    first = time.perf_counter() - start
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        convert(ui, object_info)
        samples.append(time.perf_counter() - start)
    return first * 1000, statistics.median(samples) * 1000, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as fh:
        object_info = json.loads(fh.read())
    ui = fifty_node_workflow()
    first, median, emitted = timed(ui, object_info, args.runs)
    print(f"50-node workflow ({len(ui['nodes'])} UI nodes -> {emitted} API nodes): "
          f"median {median:.2f} ms over {args.runs} runs (goal < 20 ms); first call {first:.2f} ms")
    template = largest_template()
    if template is not None:
        name, tui = template
        first, median, emitted = timed(tui, object_info, args.runs)
        print(f"{name} -> {emitted} API nodes: median {median:.2f} ms; first call {first:.2f} ms")


if __name__ == "__main__":
    main()
