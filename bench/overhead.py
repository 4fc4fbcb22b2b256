#!/usr/bin/env python3
"""What the wrapper costs on top of bare ComfyUI, measured side by side in one run.

1. Per prediction: on one warm ComfyUI, N runs of a tiny workflow through our
   WorkflowRunner and N through bare ComfyUI (POST /prompt + websocket wait),
   interleaved, with an input varied every run so ComfyUI's cache never skips
   the work. Prints the median of each, the median overhead in ms and the ratio.
   Goal: <= 3 ms median overhead.
2. Start-up: WorkflowRunner.start() (what setup() does) against a bare ComfyUI
   boot (main.py until /system_stats answers), alternated. Goal: <= +1 s.

Usage: .venv/bin/python bench/overhead.py [--runs 40] [--boots 3]   (0 skips that part)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from comfyui_wrapper.runner import RunRequest, WorkflowRunner  # noqa: E402
from comfyui_wrapper.server.process import cuda_present, free_port  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402


def tiny_workflow(color: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench"}},
    }


def bare_run(base_url: str, ws: websocket.WebSocket, client_id: str, workflow: dict) -> None:
    """What a minimal client of ComfyUI does: queue, then wait for the end of its prompt."""
    prompt_id = uuid.uuid4().hex
    response = requests.post(f"{base_url}/prompt", json={"prompt": workflow, "client_id": client_id, "prompt_id": prompt_id})
    response.raise_for_status()
    while True:
        message = ws.recv()
        if not isinstance(message, str):
            continue
        data = json.loads(message)
        if data.get("type") in ("executing", "execution_success") and data["data"].get("prompt_id") == prompt_id:
            if data["type"] == "execution_success" or data["data"].get("node") is None:
                return


def bench_predictions(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(Settings.from_env(), runtime_dir=Path(tmp) / "runtime")
        runner = WorkflowRunner(settings)
        runner.start()
        try:
            base_url = runner.server.base_url
            client_id = uuid.uuid4().hex
            ws = websocket.create_connection(f"{base_url.replace('http', 'ws')}/ws?clientId={client_id}", skip_utf8_validation=True)
            ours, bare = [], []
            color = 1
            for i in range(runs + 3):  # the first 3 pairs warm up
                color += 1
                began = time.perf_counter()
                runner.run(RunRequest(json.dumps(tiny_workflow(color)), output_format="png", randomise_seeds=False))
                ours_s = time.perf_counter() - began
                color += 1
                began = time.perf_counter()
                bare_run(base_url, ws, client_id, tiny_workflow(color))
                bare_s = time.perf_counter() - began
                if i >= 3:
                    ours.append(ours_s)
                    bare.append(bare_s)
            ws.close()
        finally:
            runner.stop()
    ours_ms, bare_ms = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    paired = statistics.median((o - b) * 1000 for o, b in zip(ours, bare))
    print(f"predictions ({runs} each, interleaved, tiny workflow):")
    print(f"  bare ComfyUI median  {bare_ms:8.2f} ms")
    print(f"  our runner median    {ours_ms:8.2f} ms")
    print(f"  overhead (median of paired differences) {paired:+.2f} ms; ratio ours/bare {ours_ms / bare_ms:.3f}")


def bare_boot(settings: Settings, *extra_args: str) -> float:
    """Seconds until a bare ComfyUI (no wrapper) answers its API; ``extra_args`` go to its main.py."""
    port = free_port()
    args = [sys.executable, str(settings.comfyui_dir / "main.py"), "--listen", "127.0.0.1", "--port", str(port),
            "--disable-auto-launch", "--input-directory", str(settings.input_dir),
            "--output-directory", str(settings.output_dir), "--temp-directory", str(settings.runtime_dir),
            *extra_args]
    if not cuda_present():
        args.append("--cpu")
    began = time.perf_counter()
    process = subprocess.Popen(args, cwd=settings.comfyui_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/system_stats", timeout=1).status_code == 200:
                    return time.perf_counter() - began
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise SystemExit("bare ComfyUI exited before answering")
    finally:
        process.terminate()
        process.wait()


def our_setup(settings: Settings) -> float:
    began = time.perf_counter()
    runner = WorkflowRunner(settings)
    runner.start()
    elapsed = time.perf_counter() - began
    runner.stop()
    return elapsed


def bench_boot(boots: int) -> None:
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(Settings.from_env(), runtime_dir=Path(tmp) / "runtime")
        for folder in (settings.input_dir, settings.output_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for _ in range(boots):
            bare.append(bare_boot(settings))
            ours.append(our_setup(settings))
    print(f"start-up ({boots} each, alternated):")
    print(f"  bare ComfyUI boot median {statistics.median(bare):6.2f} s  {['%.2f' % b for b in bare]}")
    print(f"  our setup() median       {statistics.median(ours):6.2f} s  {['%.2f' % o for o in ours]}")
    print(f"  difference {statistics.median(ours) - statistics.median(bare):+.2f} s; "
          f"ratio {statistics.median(ours) / statistics.median(bare):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--boots", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("comfyui_wrapper").setLevel(logging.WARNING)
    if args.runs > 0:  # 0 skips a part
        bench_predictions(args.runs)
    if args.boots > 0:
        bench_boot(args.boots)


if __name__ == "__main__":
    main()
