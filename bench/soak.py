#!/usr/bin/env python3
"""Soak: many sequential predictions through the real Cog HTTP server, some failing on purpose.

Reports throughput, p50/p95 latency per outcome, the wrapper's (Cog worker's)
RSS and open file descriptors at start and end, files left in the runtime
folders, and ComfyUI restarts. Not part of the test run.

Usage: .venv/bin/python bench/soak.py [--predictions 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.test_reliability import chain, nodes_yaml  # noqa: E402
from tests.support.cog_server import cog_server  # noqa: E402


def cases() -> list[tuple[str, dict, bool]]:
    """(name, inputs, should succeed)."""
    two_outputs = chain()
    two_outputs["98"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "second"}}
    bad_value = chain()
    bad_value["1"]["inputs"]["width"] = 0
    unknown = {**chain(), "5": {"class_type": "NoSuchNode", "inputs": {}}}
    preview = {**chain(), "97": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    return [
        ("invert", {"workflow_json": json.dumps(chain(("ImageInvert", {})))}, True),
        ("two_outputs_jpg", {"workflow_json": json.dumps(two_outputs), "output_format": "jpg"}, True),
        ("bad_json", {"workflow_json": "{oops"}, False),
        ("validation_error", {"workflow_json": json.dumps(bad_value)}, False),
        ("node_raises", {"workflow_json": json.dumps(chain(("CWTestRaise", {"message": "soak"})))}, False),
        ("unknown_node", {"workflow_json": json.dumps(unknown)}, False),
        ("short_sleep", {"workflow_json": json.dumps(chain(("CWTestSleep", {"seconds": 0.2, "report_progress": True})))}, True),
        ("preview_temp_png", {"workflow_json": json.dumps(preview), "return_temp_files": True, "output_format": "png"}, True),
    ]


def worker_process(server_pid: int) -> psutil.Process:
    """The Cog worker: the python child of the server that runs predict.py (ComfyUI is its child)."""
    for child in psutil.Process(server_pid).children(recursive=True):
        if any("server/launch.py" in part for part in child.cmdline()):
            return child.parent()
    raise RuntimeError("Cog worker process not found")


def files_left(runtime: Path) -> int:
    return sum(1 for name in ("input", "output", "temp") for p in (runtime / name).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=200)
    args = parser.parse_args()
    mix = cases()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with cog_server(tmp, env={"CW_EXTRA_MODEL_PATHS": str(nodes_yaml(tmp))}) as server:
            worker = worker_process(server.process.pid)
            comfy_pid = next(c.pid for c in worker.children() if "server/launch.py" in " ".join(c.cmdline()))
            for _, inputs, _ in mix:  # warm up: one-time loads (the node catalogue...) are not growth
                server.post(inputs)
            rss_start, fds_start = worker.memory_info().rss, worker.num_fds()
            rss_half = rss_start
            latencies: dict[str, list[float]] = {}
            wrong = 0
            began = time.perf_counter()
            for i in range(args.predictions):
                name, inputs, should_succeed = mix[i % len(mix)]
                t0 = time.perf_counter()
                body = server.post(inputs).json()
                latencies.setdefault(name, []).append(time.perf_counter() - t0)
                if i == args.predictions // 2:
                    rss_half = worker.memory_info().rss
                if (body.get("status") == "succeeded") != should_succeed:
                    wrong += 1
                    print(f"unexpected outcome for {name}: {body.get('status')} {str(body.get('error'))[:200]}")
            elapsed = time.perf_counter() - began
            rss_end, fds_end = worker.memory_info().rss, worker.num_fds()
            comfy_now = next(c.pid for c in worker.children() if "server/launch.py" in " ".join(c.cmdline()))
            restarts = server.log().count("restarting it")
            left = files_left(tmp / "runtime")
    every = [value for values in latencies.values() for value in values]
    print(f"{args.predictions} predictions in {elapsed:.1f} s: {args.predictions / elapsed:.1f} per second; "
          f"{wrong} unexpected outcomes")
    print(f"latency all: p50 {statistics.median(every) * 1000:.1f} ms, "
          f"p95 {statistics.quantiles(every, n=20)[18] * 1000:.1f} ms")
    for name, values in latencies.items():
        print(f"  {name:18s} n={len(values):3d} p50 {statistics.median(values) * 1000:7.1f} ms  "
              f"max {max(values) * 1000:7.1f} ms")
    print(f"worker RSS after warm-up: start {rss_start / 2**20:.1f} MiB, half-way {rss_half / 2**20:.1f} MiB, "
          f"end {rss_end / 2**20:.1f} MiB ({(rss_end - rss_start) / 2**20:+.1f} MiB)")
    print(f"worker open fds: start {fds_start}, end {fds_end}")
    print(f"files left in input/output/temp: {left}")
    print(f"ComfyUI restarts: {restarts} (pid {'unchanged' if comfy_now == comfy_pid else 'changed'})")


if __name__ == "__main__":
    main()
