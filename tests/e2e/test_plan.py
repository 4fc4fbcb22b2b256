"""The pre-flight plan: every problem at once, before any download or queueing; the plan CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from comfyui_wrapper.errors import MissingInputError, PreflightError, UnknownWeightError
from tests.conftest import REPO_ROOT, run_workflow

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

BROKEN = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "holiday.png"}, "_meta": {"title": "Photo"}},
    "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "no_such_model_v9.safetensors"}},
    "3": {"class_type": "TotallyUnknownNode", "inputs": {"image": ["1", 0]}, "_meta": {"title": "Magic"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def test_every_problem_is_reported_at_once_before_anything_runs(runner):
    with pytest.raises(PreflightError) as caught:
        run_workflow(runner, BROKEN)
    message = str(caught.value)
    assert 'node 3 "Magic" (TotallyUnknownNode)' in message
    assert "no_such_model_v9.safetensors" in message and "node 2" in message
    assert "holiday.png" in message and "node 1" in message.lower()
    kinds = {type(e).__name__ for e in caught.value.errors}
    assert kinds == {"UnknownNodeError", "UnknownWeightError", "MissingInputError"}
    assert list(runner.settings.output_dir.iterdir()) == []


def test_a_single_kind_of_problem_keeps_its_own_class(runner):
    only_weight = {k: v for k, v in BROKEN.items() if k in ("2",)}
    only_weight["4"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}
    only_weight["5"] = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    with pytest.raises(UnknownWeightError):
        run_workflow(runner, only_weight)
    only_input = {"1": BROKEN["1"], "4": BROKEN["4"]}
    with pytest.raises(MissingInputError):
        run_workflow(runner, only_input)


def test_plan_lists_weights_inputs_urls_and_seeds(runner):
    workflow = {
        **BROKEN,
        "5": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 5}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "https://example.invalid/cat.png"}},
    }
    del workflow["3"]
    plan = runner.plan(workflow)
    data = plan.as_dict()
    assert data["schema_version"] == 1 and data["can_run"] is False
    assert data["output_nodes"] == ["4"]
    [weight] = data["weights"]
    assert weight["status"] == "unknown" and weight["folder"] == "checkpoints" and len(weight["suggestions"]) == 3
    assert [i["path"] for i in data["inputs"]] == ["holiday.png"] and data["inputs"][0]["present"] is False
    assert data["urls"] == [{"node_id": "6", "input_name": "image", "url": "https://example.invalid/cat.png",
                             "purpose": "input"}]
    assert data["seeds"] == [{"node_id": "5", "input_name": "noise_seed"}]
    assert data["disk"]["free_bytes"] > 0


def test_plan_cli_with_an_object_info_dump_needs_no_comfyui(runner, tmp_path):
    dump = tmp_path / "object_info.json"
    dump.write_text(json.dumps(runner.client.object_info()))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(BROKEN))
    env = {**os.environ, "CW_RUNTIME_DIR": str(tmp_path / "rt"), "CW_WEIGHTS_DIR": str(tmp_path / "w")}
    command = [sys.executable, "-m", "comfyui_wrapper", "plan", str(broken), "--object-info", str(dump), "--json"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    document = json.loads(result.stdout)
    assert document["can_run"] is False and len(document["errors"]) == 3
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}))
    text = subprocess.run(command[:4] + [str(good), "--object-info", str(dump)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Ready to run." in text.stdout
