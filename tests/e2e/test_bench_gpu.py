"""bench/gpu.py runs end to end at --tiny size on this CPU machine (the full size needs a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.weights_cdn import EXAMPLE_CHECKPOINT

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (REPO / "ComfyUI" / "main.py").is_file(), reason="ComfyUI is not installed"),
]


def test_gpu_bench_tiny_prints_one_table(tmp_path: Path) -> None:
    env = dict(os.environ, CW_WEIGHTS_DIR=str(tmp_path / "weights"), CW_FORCE_CPU="1",
               CW_WARM_WEIGHTS=EXAMPLE_CHECKPOINT)
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--tiny", "--local-cdn", "--runs", "1", "--boots", "1",
         "--json", str(tmp_path / "figures.json")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["size"] == 64 and figures["steps"] == 2
    for key in ("bare_boot_s", "setup_s", "first_prediction_s", "ours_s", "bare_s"):
        assert figures[key] > 0, key
    # CW_WARM_WEIGHTS fetched the example's checkpoint (from --local-cdn) during setup(): the first
    # prediction downloads nothing.
    assert figures["first_weights_downloaded"] == 0
    assert (tmp_path / "weights" / "checkpoints" / EXAMPLE_CHECKPOINT).is_file()
    assert figures["it_per_s"] is None or figures["it_per_s"] > 0
    assert figures["peak_vram_used"] is None  # a CPU has no VRAM to report
    for row in ("bare ComfyUI boot", "our setup()", "our overhead per prediction", "sampler speed", "peak VRAM"):
        assert row in out.stdout


def test_gpu_bench_refuses_full_size_without_a_gpu() -> None:
    if Path("/proc/driver/nvidia/version").exists():
        pytest.skip("this machine has a GPU")
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py")], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "--tiny" in out.stderr
