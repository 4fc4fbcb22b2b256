#!/usr/bin/env python3
"""Start-up with every installed custom node pack, with and without precompiled bytecode.

Measures, alternated, in one run:

1. bare ComfyUI boot without packs (main.py --disable-all-custom-nodes, until
   /system_stats answers);
2. our setup() (WorkflowRunner.start()) with every pack in custom_nodes/ and no
   bytecode for the packs (their __pycache__ removed, PYTHONDONTWRITEBYTECODE=1:
   what every fresh container pays when the image was built without compileall);
3. the same with the packs compiled (python -m compileall custom_nodes/, what
   scripts/install_custom_nodes.py does at build time).

Also prints the packs' own import time (ComfyUI's "Import times for custom
nodes" summary of that boot). Goal: setup() with all packs <= bare boot + the
packs' import time + 1 s.

Run it with the interpreter of the environment that holds the packs'
requirements, pointing CW_COMFYUI_DIR at the ComfyUI that holds the packs:

    CW_COMFYUI_DIR=/path/ComfyUI /path/env/bin/python bench/custom_nodes_boot.py [--boots 2]

Measured 2026-12-01 with the 52 packs that import here (ComfyUI 0.3.75, CPU, on a
2-core machine shared with other jobs, so single boots vary by several seconds),
--boots 3, medians:

    bare ComfyUI boot, no packs            7.32 s
    setup(), all packs, no bytecode       17.57 s  (packs' imports 10.10 s; goal 18.42 s: met)
    setup(), all packs, compiled          14.90 s  (packs' imports  6.30 s; goal 14.62 s: 0.28 s over)

An earlier --boots 2 run: bare 14.15 s, no bytecode 21.88 s (imports 11.30 s), compiled
20.47 s (imports 8.85 s); both met the goal. Compiled bytecode saves 1.4-2.7 s per
start, so scripts/install_custom_nodes.py compiles custom_nodes/ at build time. The
rest above bare + imports is mostly /object_info with 1950 node classes (0.25 s here)
and the packs' own registration work outside their import.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from install_custom_nodes import compile_bytecode, parse_import_log  # noqa: E402

from bench import overhead  # noqa: E402
from comfyui_wrapper.runner import WorkflowRunner  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402


def bare_boot(settings: Settings) -> float:
    """ComfyUI without any pack, until its API answers."""
    return overhead.bare_boot(settings, "--disable-all-custom-nodes")


def drop_bytecode(custom_nodes: Path) -> None:
    for cache in custom_nodes.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def our_setup(settings: Settings, *, compiled: bool) -> tuple[float, float]:
    """setup()'s start of ComfyUI with every pack: seconds, and the packs' own import seconds."""
    custom_nodes = settings.comfyui_dir / "custom_nodes"
    if compiled:
        compile_bytecode(custom_nodes, sys.executable)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        drop_bytecode(custom_nodes)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        began = time.perf_counter()
        runner = WorkflowRunner(settings)
        runner.start()
        elapsed = time.perf_counter() - began
        log = "\n".join(runner.server.boot_log)
        runner.stop()
    finally:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    imports = parse_import_log(log)
    return elapsed, sum(r["seconds"] for r in imports.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("comfyui_wrapper").setLevel(logging.ERROR)
    bare, cold, warm, cold_imports, warm_imports = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(Settings.from_env(), runtime_dir=Path(tmp) / "runtime")
        for folder in (settings.input_dir, settings.output_dir):
            folder.mkdir(parents=True, exist_ok=True)
        packs = [p for p in (settings.comfyui_dir / "custom_nodes").iterdir() if p.is_dir() and p.name != "__pycache__"]
        print(f"{len(packs)} packs in {settings.comfyui_dir / 'custom_nodes'}")
        for _ in range(args.boots):
            bare.append(bare_boot(settings))
            seconds, imports = our_setup(settings, compiled=False)
            cold.append(seconds)
            cold_imports.append(imports)
            seconds, imports = our_setup(settings, compiled=True)
            warm.append(seconds)
            warm_imports.append(imports)

    def show(label: str, values: list[float]) -> None:
        print(f"  {label:<44} median {statistics.median(values):6.2f} s  {['%.2f' % v for v in values]}")

    print(f"start-up ({args.boots} each, alternated):")
    show("bare ComfyUI boot, no packs", bare)
    show("setup() with all packs, no bytecode", cold)
    show("  packs' own import time (ComfyUI's summary)", cold_imports)
    show("setup() with all packs, compiled", warm)
    show("  packs' own import time (ComfyUI's summary)", warm_imports)
    for label, total, imports in (("no bytecode", cold, cold_imports), ("compiled", warm, warm_imports)):
        budget = statistics.median(bare) + statistics.median(imports) + 1.0
        print(f"  goal ({label}): {statistics.median(total):.2f} s <= bare + imports + 1 s = {budget:.2f} s: "
              f"{'met' if statistics.median(total) <= budget else 'NOT met'}")


if __name__ == "__main__":
    main()
