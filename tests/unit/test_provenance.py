"""provenance.json: what reproduces a result, fit to share (no run tokens, no container paths, no URL secrets)."""

from __future__ import annotations

import json
from pathlib import Path

from comfyui_wrapper.provenance import SCHEMA_VERSION, build_provenance, shareable_workflow, write_provenance
from comfyui_wrapper.weights.manifest import WeightSpec
from comfyui_wrapper.workflow import RUN_TOKEN_INPUT, SeedChange

SECRET = "hf_s3cr3t_t0ken"


def test_the_shareable_workflow_has_no_tokens_and_no_container_paths(tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "VHS_LoadVideoPath",
                      "inputs": {"video": str(tmp_path / "runtime" / "input" / "clip.mp4"), RUN_TOKEN_INPUT: "tok",
                                 "other": f"{tmp_path}/runtime/temp/x", "seed": 5,
                                 "sibling": f"{tmp_path}/runtime2/y", "link": ["2", 0]}},
                "2": "not a node", "3": {"class_type": "Note", "inputs": "not inputs"}}
    clean = shareable_workflow(workflow, [tmp_path / "runtime" / "input", tmp_path / "runtime"])
    assert clean["1"] == {"class_type": "VHS_LoadVideoPath",
                          "inputs": {"video": "clip.mp4", "other": "temp/x", "seed": 5,
                                     "sibling": f"{tmp_path}/runtime2/y", "link": ["2", 0]}}
    assert clean["2"] == "not a node" and clean["3"]["inputs"] == "not inputs"
    assert workflow["1"]["inputs"][RUN_TOKEN_INPUT] == "tok"  # the running workflow is untouched


def provenance(tmp_path: Path) -> dict:
    (tmp_path / "comfyui_install.json").write_text(json.dumps({"version": "0.3.75", "commit": "abc"}))
    specs = [WeightSpec("base.safetensors", "checkpoints", f"https://hf.co/x/base.safetensors?token={SECRET}"),
             WeightSpec("vae.safetensors", "vae", f"https://user:{SECRET}@cdn.example/vae.safetensors")]
    return build_provenance(
        workflow={"1": {"class_type": "KSampler", "inputs": {"seed": 42}}},
        seeds=[SeedChange("1", "seed", 1, 42)],
        specs=specs,
        url_weights={f"https://cdn.example/lora.safetensors?X-Amz-Signature={SECRET}": "lora-1a2b.safetensors"},
        sha_for=lambda spec: "f" * 64 if spec.name == "base.safetensors" else None,
        comfyui_dir=tmp_path,
        custom_nodes=[{"name": "pack", "repo": "https://github.com/o/pack", "commit": "0" * 40}],
        options={"output_format": "webp"},
    )


def test_provenance_names_everything_a_rerun_needs(tmp_path: Path) -> None:
    data = provenance(tmp_path)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["comfyui"] == {"version": "0.3.75", "commit": "abc"}
    assert data["custom_nodes"][0]["commit"] == "0" * 40
    assert [(w["name"], w["folder"], w["sha256"]) for w in data["weights"]] == \
        [("base.safetensors", "checkpoints", "f" * 64), ("vae.safetensors", "vae", None)]
    assert data["seeds"] == [{"node_id": "1", "input_name": "seed", "old": 1, "new": 42}]
    assert data["workflow"]["1"]["inputs"]["seed"] == 42 and data["options"] == {"output_format": "webp"}
    assert data["weights_by_url"][0]["name"] == "lora-1a2b.safetensors"


def test_provenance_carries_no_url_secret(tmp_path: Path) -> None:
    text = json.dumps(provenance(tmp_path))
    assert SECRET not in text
    assert "https://hf.co/x/base.safetensors?token=***" in text


def test_written_provenance_is_json_even_without_an_install_record(tmp_path: Path) -> None:
    path = write_provenance(tmp_path / "provenance.json", workflow={}, seeds=[], specs=[], url_weights={},
                            sha_for=lambda spec: None, comfyui_dir=tmp_path / "nowhere", custom_nodes=[],
                            options={"when": tmp_path})
    data = json.loads(path.read_text())
    assert data["comfyui"] is None and data["options"] == {"when": str(tmp_path)}
