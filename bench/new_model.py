#!/usr/bin/env python3
"""new-model, measured: generation time, and setup() of a generated model against the main model's.

1. Generation: `new-model example --object-info` (no ComfyUI), N times in one
   process and once as a fresh `python -m comfyui_wrapper` (what a user runs).
   Goal: < 1 s.
2. Setup, side by side on the same local CDN (tests/support/weights_cdn.py), each
   with an empty weights cache: the main model's setup() (WorkflowRunner.start())
   plus its first prediction's weights phase (where it downloads), against the
   generated model's setup() (start + fetch of weights.json) plus its first
   prediction's weights phase (a cache hit). Also the first prediction's total.

Usage: .venv/bin/python bench/new_model.py [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comfyui_wrapper.cli import main  # noqa: E402
from comfyui_wrapper.model_runtime import WorkflowModel  # noqa: E402
from comfyui_wrapper.runner import RunRequest, WorkflowRunner  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402
from tests.support.weights_cdn import local_cdn  # noqa: E402

OBJECT_INFO = ROOT / "tests" / "fixtures" / "object_info_subset.json"
FLAGS = ["--input", "prompt=6.text", "--input", "seed=3.seed", "--input", "width=5.width",
         "--input", "height=5.height", "--input", "steps=3.steps"]
SMALL = {"width": 64, "height": 64, "steps": 2, "seed": 1}


def generation(runs: int, work: Path) -> None:
    times = []
    for i in range(runs):
        began = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            assert main(["new-model", "example", "--out", str(work / f"m{i}"), "--object-info", str(OBJECT_INFO),
                         *FLAGS]) == 0
        times.append(time.perf_counter() - began)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "comfyui_wrapper", "new-model", "example", "--out", str(work / "cold"),
                    "--object-info", str(OBJECT_INFO), *FLAGS], cwd=ROOT, check=True, capture_output=True)
    cold = time.perf_counter() - began
    print(f"generation: median {statistics.median(times):.3f} s in-process ({runs} runs, "
          f"min {min(times):.3f}), {cold:.2f} s as a fresh `python -m comfyui_wrapper new-model` (goal < 1 s)")


def settings_for(tmp: Path, manifest: Path) -> Settings:
    base = Settings.from_env({})
    return dataclasses.replace(base, runtime_dir=tmp / "runtime", weights_dir=tmp / "weights",
                               manifest_path=manifest, allow_private_urls=True)


def main_model(tmp: Path, manifest: Path) -> dict[str, float]:
    runner = WorkflowRunner(settings_for(tmp, manifest))
    began = time.perf_counter()
    runner.start()
    setup = time.perf_counter() - began
    workflow = json.loads((ROOT / "comfyui_wrapper" / "examples" / "text_to_image.json").read_text())
    workflow["5"]["inputs"].update(width=64, height=64)
    workflow["3"]["inputs"].update(steps=2, seed=1)
    try:
        began = time.perf_counter()
        result = runner.run(RunRequest(workflow_json=json.dumps(workflow), randomise_seeds=False,
                                       output_format="png"))
        first = time.perf_counter() - began
    finally:
        runner.stop()
    return {"setup": setup, "weights": result.timings.get("weights", 0.0), "first": first,
            "downloaded": result.stats["weights_downloaded"]}


def generated_model(tmp: Path, manifest: Path, folder: Path) -> dict[str, float]:
    exposed = {"prompt": ("6", "text", "value"), "seed": ("3", "seed", "value"), "width": ("5", "width", "value"),
               "height": ("5", "height", "value"), "steps": ("3", "steps", "value")}
    model = WorkflowModel(folder, exposed, settings_for(tmp, manifest))
    began = time.perf_counter()
    model.setup()
    setup = time.perf_counter() - began
    try:
        began = time.perf_counter()
        result = model.run({**SMALL, "prompt": "photograph of a lighthouse"}, output_format="png")
        first = time.perf_counter() - began
    finally:
        model.stop()
    assert model.setup_report is not None
    return {"setup": setup, "weights": result.timings.get("weights", 0.0), "first": first,
            "downloaded": result.stats["weights_downloaded"], "setup_download": model.setup_report.seconds}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="cw-bench-new-model-") as tmp_name:
        tmp = Path(tmp_name)
        generation(args.runs, tmp / "gen")
        folder = tmp / "gen" / "m0"
        with local_cdn(tmp / "cdn") as (_, manifest):
            ours = main_model(tmp / "main", manifest)
            gen = generated_model(tmp / "generated", manifest, folder)
    print(f"main model:      setup() {ours['setup']:.2f} s; first prediction {ours['first']:.2f} s of which "
          f"weights {ours['weights']:.2f} s ({ours['downloaded']:.0f} downloaded); "
          f"setup + weights {ours['setup'] + ours['weights']:.2f} s")
    print(f"generated model: setup() {gen['setup']:.2f} s (weights fetch {gen['setup_download']:.2f} s inside); "
          f"first prediction {gen['first']:.2f} s of which weights {gen['weights']:.3f} s "
          f"({gen['downloaded']:.0f} downloaded)")


if __name__ == "__main__":
    main_bench()
