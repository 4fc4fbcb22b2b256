#!/usr/bin/env python3
"""Time the pre-flight plan on a 50-node workflow (goal: median < 20 ms).

Uses the 50-node UI workflow of bench/convert.py, converted once to API format,
the /object_info dump recorded with the oracle fixtures, the production weights
manifest and a real (empty) weights cache and input folder: everything make_plan
consults at run time except a live ComfyUI. Loading those is not timed.

    .venv/bin/python bench/plan.py [--runs 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from convert import FIXTURES, fifty_node_workflow  # noqa: E402

from comfyui_wrapper.plan import make_plan  # noqa: E402
from comfyui_wrapper.runner import WorkflowRunner  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402
from comfyui_wrapper.ui.convert import convert  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as handle:
        object_info = json.loads(handle.read())
    api = convert(fifty_node_workflow(), object_info)
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(Settings.from_env(), runtime_dir=Path(tmp) / "rt", weights_dir=Path(tmp) / "w")
        runner = WorkflowRunner(settings)  # not started: only its manifest, cache and packs are used
        context = runner.plan_context(object_info)
        # As written, the workflow names checkpoints nobody has (the error path, with suggestions);
        # the same workflow with real manifest names is the path every good prediction takes.
        known = json.loads(json.dumps(api))
        checkpoints = [spec.name for spec in runner.manifest if spec.folder == "checkpoints"]
        for index, node in enumerate(n for n in known.values() if n["class_type"] == "CheckpointLoaderSimple"):
            node["inputs"]["ckpt_name"] = checkpoints[index]
        for label, workflow in (("known weights", known), ("unknown weights", api)):
            first_began = time.perf_counter()
            plan = make_plan(workflow, context)
            first = time.perf_counter() - first_began
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                make_plan(workflow, context)
                times.append(time.perf_counter() - began)
            print(f"plan, {len(workflow)}-node API workflow, {label} ({len(plan.weights)} weight refs, "
                  f"{len(plan.errors)} errors): first {first * 1000:.1f} ms, median "
                  f"{statistics.median(times) * 1000:.2f} ms, p95 {statistics.quantiles(times, n=20)[18] * 1000:.2f} ms "
                  f"over {args.runs} runs (goal < 20 ms)")
        runner.stop()


if __name__ == "__main__":
    main()
