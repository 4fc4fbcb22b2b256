#!/usr/bin/env python3
"""The built-in example on a GPU: boot, setup(), seconds per prediction, it/s, peak VRAM, our overhead.

Measured side by side in one run, on the same machine and the same ComfyUI:

1. Start-up: a bare ComfyUI boot (``main.py`` until ``/system_stats`` answers)
   against our ``setup()`` (``WorkflowRunner.start()``), alternated.
2. First prediction: the built-in example through our runner, weights fetched
   if the cache (CW_WEIGHTS_DIR) does not hold them yet: what a cold container's
   first request costs after setup().
3. Warm predictions: N runs of the example through our runner and N through
   bare ComfyUI (POST /prompt + websocket, as bench/overhead.py does), interleaved,
   each with a new seed so ComfyUI's cache never skips the sampler. Seconds per
   prediction (median), sampler it/s (from ComfyUI's progress events of the
   bare runs: the same sampler runs in both), and the paired overhead.
4. Peak VRAM: ``/system_stats`` sampled every 50 ms during the warm runs; the
   device's used memory (all processes) and torch's reserved memory in ComfyUI.

The example runs at its full size (512x512, 20 steps) unless ``--tiny`` (64x64,
2 steps), which is how the CPU test runs it. Weights come from the manifest
(CW_WEIGHTS_MANIFEST), so a GPU machine needs the network or a warm cache; on a
machine without either, ``--local-cdn`` serves the generated SD1.5-shaped test
checkpoint (random weights, the real architecture, so the same compute) from
127.0.0.1 under the example's checkpoint name (scripts/make_test_models.py
builds it on first use).

    .venv/bin/python bench/gpu.py [--runs 5] [--boots 2] [--tiny] [--local-cdn] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.overhead import bare_boot, our_setup  # noqa: E402
from comfyui_wrapper.runner import RunRequest, WorkflowRunner  # noqa: E402
from comfyui_wrapper.server.process import cuda_present  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402
from comfyui_wrapper.workflow import EXAMPLE_WORKFLOW  # noqa: E402

SAMPLER_NODE = "3"
LATENT_NODE = "5"


def example(size: int, steps: int, seed: int) -> dict[str, Any]:
    workflow = json.loads(EXAMPLE_WORKFLOW.read_text())
    workflow[LATENT_NODE]["inputs"].update(width=size, height=size)
    workflow[SAMPLER_NODE]["inputs"].update(steps=steps, seed=seed)
    return workflow


@dataclasses.dataclass
class BareRun:
    seconds: float
    it_per_s: float | None


def bare_run(base_url: str, ws: websocket.WebSocket, client_id: str, workflow: dict[str, Any]) -> BareRun:
    """Queue on ComfyUI directly and wait; the sampler's it/s from its progress events."""
    prompt_id = uuid.uuid4().hex
    began = time.perf_counter()
    response = requests.post(f"{base_url}/prompt", json={"prompt": workflow, "client_id": client_id,
                                                          "prompt_id": prompt_id}, timeout=60)
    response.raise_for_status()
    ticks: list[tuple[float, int]] = []
    while True:
        message = ws.recv()
        if not isinstance(message, str):
            continue
        data = json.loads(message)
        kind, body = data.get("type"), data.get("data", {})
        if body.get("prompt_id") != prompt_id:
            continue
        if kind == "progress" and str(body.get("node")) == SAMPLER_NODE:
            ticks.append((time.perf_counter(), int(body["value"])))
        if kind == "execution_error":
            raise RuntimeError(f"the example failed in bare ComfyUI: {body.get('exception_message')}")
        if kind == "execution_success" or (kind == "executing" and body.get("node") is None):
            seconds = time.perf_counter() - began
            rate = None
            if len(ticks) >= 2 and ticks[-1][0] > ticks[0][0]:
                rate = (ticks[-1][1] - ticks[0][1]) / (ticks[-1][0] - ticks[0][0])
            return BareRun(seconds, rate)


class VramSampler(threading.Thread):
    """Polls /system_stats; keeps the peak device use and the peak torch reservation (bytes)."""

    def __init__(self, base_url: str, every_s: float = 0.05) -> None:
        super().__init__(daemon=True, name="vram-sampler")
        self.base_url = base_url
        self.every_s = every_s
        self.stop_event = threading.Event()
        self.peak_used = 0
        self.peak_torch = 0
        self.device = "?"
        self.samples = 0

    def sample(self, session: requests.Session) -> None:
        stats = session.get(f"{self.base_url}/system_stats", timeout=5).json()
        for device in stats.get("devices", [])[:1]:
            self.device = f"{device.get('name', '?')} ({device.get('type', '?')})"
            if device.get("type") == "cpu":
                continue
            self.peak_used = max(self.peak_used, int(device.get("vram_total", 0)) - int(device.get("vram_free", 0)))
            self.peak_torch = max(self.peak_torch, int(device.get("torch_vram_total", 0)))
        self.samples += 1

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stop_event.is_set():
                try:
                    self.sample(session)
                except (requests.RequestException, ValueError):
                    pass
                self.stop_event.wait(self.every_s)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def settings_for(tmp: Path, manifest: Path | None = None) -> Settings:
    settings = dataclasses.replace(Settings.from_env(), runtime_dir=tmp / "runtime")
    if manifest is not None:
        settings = dataclasses.replace(settings, manifest_path=manifest, allow_private_urls=True)
    for folder in (settings.input_dir, settings.output_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return settings


def bench_boot(settings: Settings, boots: int) -> dict[str, float]:
    bare, ours = [], []
    for _ in range(boots):
        bare.append(bare_boot(settings))
        ours.append(our_setup(settings))
    return {"bare_boot_s": statistics.median(bare), "setup_s": statistics.median(ours)}


def bench_predictions(settings: Settings, size: int, steps: int, runs: int) -> dict[str, Any]:
    runner = WorkflowRunner(settings)
    began = time.perf_counter()
    runner.start()
    figures: dict[str, Any] = {"setup_before_runs_s": time.perf_counter() - began}
    try:
        seed = 1
        began = time.perf_counter()
        first = runner.run(RunRequest(json.dumps(example(size, steps, seed)), output_format="png"))
        figures["first_prediction_s"] = time.perf_counter() - began
        figures["first_weights_downloaded"] = first.stats.get("weights_downloaded", 0)
        figures["first_weights_bytes"] = first.stats.get("weights_bytes_downloaded", 0)
        base_url = runner.server.base_url
        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"{base_url.replace('http', 'ws')}/ws?clientId={client_id}",
                                         skip_utf8_validation=True)
        bare_run(base_url, ws, client_id, example(size, steps, seed + 1))  # warms bare ComfyUI's path
        sampler = VramSampler(base_url)
        sampler.start()
        ours, bare, rates = [], [], []
        phases: dict[str, list[float]] = {}
        try:
            for _ in range(runs):
                seed += 2
                began = time.perf_counter()
                result = runner.run(RunRequest(json.dumps(example(size, steps, seed)), output_format="png",
                                               randomise_seeds=False))
                ours.append(time.perf_counter() - began)
                for phase, seconds in result.timings.items():
                    phases.setdefault(phase, []).append(seconds)
                result = bare_run(base_url, ws, client_id, example(size, steps, seed + 1))
                bare.append(result.seconds)
                if result.it_per_s is not None:
                    rates.append(result.it_per_s)
        finally:
            sampler.stop()
            ws.close()
        figures.update(
            ours_s=statistics.median(ours), bare_s=statistics.median(bare),
            overhead_ms=statistics.median((o - b) * 1000 for o, b in zip(ours, bare)),
            it_per_s=statistics.median(rates) if rates else None,
            peak_vram_used=sampler.peak_used or None, peak_torch_reserved=sampler.peak_torch or None,
            device=sampler.device, vram_samples=sampler.samples,
            our_phases={phase: statistics.median(values) for phase, values in phases.items()},
        )
    finally:
        runner.stop()
    return figures


def _gb(value: int | None) -> str:
    return "n/a" if not value else f"{value / 1e9:.2f} GB"


def table(figures: dict[str, Any], size: int, steps: int, runs: int, boots: int) -> str:
    rate = figures.get("it_per_s")
    rows = [
        ("device", figures.get("device", "?"), ""),
        ("bare ComfyUI boot", f"{figures['bare_boot_s']:.2f} s", f"median of {boots}"),
        ("our setup()", f"{figures['setup_s']:.2f} s",
         f"{figures['setup_s'] - figures['bare_boot_s']:+.2f} s vs bare (median of {boots})"),
        ("first prediction", f"{figures['first_prediction_s']:.2f} s",
         f"{figures['first_weights_downloaded']} weight(s), {figures['first_weights_bytes'] / 1e9:.2f} GB fetched"),
        (f"prediction, ours ({size}x{size}, {steps} steps)", f"{figures['ours_s']:.3f} s", f"median of {runs}"),
        ("prediction, bare ComfyUI", f"{figures['bare_s']:.3f} s", f"median of {runs}"),
        ("our overhead per prediction", f"{figures['overhead_ms']:+.1f} ms",
         f"median of paired differences; ratio {figures['ours_s'] / figures['bare_s']:.3f}"),
        ("  where our time goes", "", ", ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds
                                                 in figures.get("our_phases", {}).items())),
        ("sampler speed", "n/a" if rate is None else f"{rate:.2f} it/s", "from bare runs' progress events"),
        ("peak VRAM, device", _gb(figures.get("peak_vram_used")), f"{figures.get('vram_samples', 0)} samples"),
        ("peak VRAM, torch reserved", _gb(figures.get("peak_torch_reserved")), "in ComfyUI's process"),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'measure':<{width}}  {'value':>{value_width}}  note", "-" * (width + value_width + 40)]
    lines += [f"{name:<{width}}  {value:>{value_width}}  {note}" for name, value, note in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm predictions of each kind (default 5)")
    parser.add_argument("--boots", type=int, default=2, help="boots of each kind (default 2)")
    parser.add_argument("--tiny", action="store_true", help="64x64, 2 steps: for CPU machines and tests")
    parser.add_argument("--local-cdn", action="store_true",
                        help="serve the generated test checkpoint from 127.0.0.1 (no network needed)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not cuda_present() and not args.tiny:
        print("No NVIDIA driver here: the full-size example takes minutes per run on a CPU; "
              "pass --tiny to try the benchmark anyway.", file=sys.stderr)
        sys.exit(2)
    size, steps = (64, 2) if args.tiny else (512, 20)
    logging.getLogger("comfyui_wrapper").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp, contextlib.ExitStack() as stack:
        manifest = None
        if args.local_cdn:
            from tests.support.weights_cdn import local_cdn

            _, manifest = stack.enter_context(local_cdn(Path(tmp) / "cdn"))
        settings = settings_for(Path(tmp), manifest)
        figures = bench_boot(settings, args.boots)
        figures.update(bench_predictions(settings, size, steps, args.runs))
    figures.update(size=size, steps=steps, runs=args.runs, boots=args.boots)
    print(table(figures, size, steps, args.runs, args.boots), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
