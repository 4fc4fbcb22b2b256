"""comfyui_wrapper.weights.folders and the pieces of scripts/build_model_folder_map.py, without a boot.

The map of the real ComfyUI (the script run against it) is checked in
tests/e2e/test_folder_map.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_wrapper.errors import ModelFolderMapError, WrapperError
from comfyui_wrapper.weights.folders import ModelFolderMap, default_map_path

REPO_ROOT = Path(__file__).resolve().parents[3]
COMFYUI_DIR = REPO_ROOT / "ComfyUI"
SCRIPT = REPO_ROOT / "scripts" / "build_model_folder_map.py"


def _run_script(*args: str, timeout: float = 200, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


# --- the module on its own ----------------------------------------------------------------


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "model_folder_map.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD = {
    "schema": 1, "comfyui_version": "0.3.75", "custom_nodes": ["pack_a"],
    "folders": ["checkpoints", "diffusion_models", "loras"], "aliases": {"unet": "diffusion_models"},
    "extensions": {"loras": [".safetensors"]},
    "inputs": {"LoraLoader": {"lora_name": ["loras"]}, "Both": {"name": ["diffusion_models", "checkpoints"]}},
}


def test_from_json_answers_questions(tmp_path: Path) -> None:
    folder_map = ModelFolderMap.load(_write(tmp_path, GOOD))
    assert len(folder_map) == 2
    assert folder_map.folder_for("Both", "name") == "diffusion_models"
    assert folder_map.inputs_for_folder("unet") == [("Both", "name")]
    assert folder_map.inputs_for_folder("nothing_here") == []
    assert folder_map.folders == {"checkpoints", "diffusion_models", "loras"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "unreadable"),
        ({"schema": 2, "folders": [], "inputs": {}}, 'expected a JSON object with "schema": 1'),
        ({"schema": 1, "folders": "loras", "inputs": {}}, '"folders" must be a list'),
        ({"schema": 1, "folders": ["loras"], "inputs": []}, '"inputs" must map'),
        ({"schema": 1, "folders": ["loras"], "inputs": {"L": {"n": ["vae"]}}}, "L.n must list known folders"),
        ({"schema": 1, "folders": ["loras"], "inputs": {"L": {"n": []}}}, "L.n must list known folders"),
    ],
)
def test_malformed_maps_fail_with_the_file_named(tmp_path: Path, content: object, expected: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ModelFolderMapError, match=expected) as caught:
        ModelFolderMap.load(path)
    assert str(path) in str(caught.value) and "build_model_folder_map.py" in str(caught.value)
    assert isinstance(caught.value, (WrapperError, RuntimeError))


def test_missing_map_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderMapError, match="does not exist") as caught:
        ModelFolderMap.load(default_map_path(tmp_path))
    assert "How to fix: Rebuild it" in str(caught.value)


def test_stale_reasons_notice_new_custom_nodes_and_versions(tmp_path: Path) -> None:
    folder_map = ModelFolderMap.from_json(GOOD)
    (tmp_path / "custom_nodes" / "pack_a").mkdir(parents=True)
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.3.75"\n')
    assert folder_map.stale_reasons(tmp_path) == []
    (tmp_path / "custom_nodes" / "pack_b").mkdir()
    (tmp_path / "custom_nodes" / "old.disabled").mkdir()
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.4.0"\n')
    reasons = folder_map.stale_reasons(tmp_path)
    assert len(reasons) == 2 and "0.3.75" in reasons[0] and "added ['pack_b']" in reasons[1]


# --- the script's pieces, without a boot -------------------------------------------------------


def _script_module():
    spec = importlib.util.spec_from_file_location("build_model_folder_map", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_object_info_parsing_reads_old_new_and_nested_specs() -> None:
    script = _script_module()
    object_info = {
        "Old": {"input": {"required": {"name": [["a.safetensors", "__cwprobe_001__.safetensors"], {"tooltip": "x"}]}}},
        "New": {"input": {"optional": {"name": ["COMBO", {"options": ["__cwprobe_000__.pt", "__cwprobe_001__.bin"]}]}}},
        "Dir": {"input": {"required": {"path": [["__cwprobe_002__dir", "__cwprobe_002__dir/config.json"]]}}},
        "Plain": {"input": {"required": {"seed": ["INT", {"default": 0}], "text": ["STRING", {"default": "__cwprobe_x"}]}}},
        "NoInputs": {},
    }
    got = script.inputs_by_folder(object_info, {"000": "checkpoints", "001": "loras", "002": "diffusers"})
    assert got == {"Dir": {"path": ["diffusers"]}, "New": {"name": ["checkpoints", "loras"]}, "Old": {"name": ["loras"]}}


def test_script_reports_a_comfyui_that_does_not_start(tmp_path: Path) -> None:
    result = _run_script("--comfyui-dir", str(tmp_path), "--out", str(tmp_path / "m.json"), timeout=30)
    assert result.returncode == 1 and "No ComfyUI at" in result.stderr
    if (COMFYUI_DIR / "main.py").is_file():
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        result = _run_script("--comfyui-dir", str(COMFYUI_DIR), "--out", str(tmp_path / "m.json"),
                             "--python", "/bin/false", timeout=30, env={"TMPDIR": str(scratch)})
        assert result.returncode == 1 and "ComfyUI exited with code 1 before answering" in result.stderr
        assert list(scratch.iterdir()) == []  # the probe tree is removed on failure too
    assert not (tmp_path / "m.json").exists()
