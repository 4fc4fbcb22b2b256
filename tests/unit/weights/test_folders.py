"""scripts/build_model_folder_map.py against the real ComfyUI, and comfyui_wrapper.weights.folders.

The map is built once per session (one ComfyUI boot, ~10-15 s) with two small
custom node packs beside the real nodes: one registers a folder of its own and
a loader merging two folders, the other replaces a core folder's entry the way
some packs do. Both must be mapped as exactly as the core loaders.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import timeit
from pathlib import Path

import pytest

from comfyui_wrapper.errors import ModelFolderMapError, WrapperError
from comfyui_wrapper.weights.folders import ModelFolderMap, default_map_path

REPO_ROOT = Path(__file__).resolve().parents[3]
COMFYUI_DIR = REPO_ROOT / "ComfyUI"
SCRIPT = REPO_ROOT / "scripts" / "build_model_folder_map.py"
needs_comfyui = pytest.mark.skipif(not (COMFYUI_DIR / "main.py").is_file(), reason="ComfyUI is not installed")

PACK_OWN_FOLDER = '''
import os
import folder_paths

folder_paths.folder_names_and_paths["cw_things"] = ([os.path.join(os.path.dirname(__file__), "things")], {".thing"})


class CWThingLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"thing_name": (folder_paths.get_filename_list("cw_things"),)},
                "optional": {"strength": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"
    CATEGORY = "cw_test"

    def load(self, thing_name, strength=1.0):
        return (thing_name,)


class CWMergedLoader:
    @classmethod
    def INPUT_TYPES(cls):
        names = folder_paths.get_filename_list("checkpoints") + folder_paths.get_filename_list("unet")
        return {"required": {"model_name": (names,), "mode": (["a", "b"],)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"
    CATEGORY = "cw_test"

    def load(self, model_name, mode):
        return (model_name,)


NODE_CLASS_MAPPINGS = {"CWThingLoader": CWThingLoader, "CWMergedLoader": CWMergedLoader}
'''

# Assigning the entry (instead of add_model_folder_path) drops every path added before.
PACK_REPLACES_FOLDER = '''
import os
import folder_paths

folder_paths.folder_names_and_paths["upscale_models"] = ([os.path.join(os.path.dirname(__file__), "up")], {".pth"})
NODE_CLASS_MAPPINGS = {}
'''


def _run_script(*args: str, timeout: float = 200, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(map path, script stdout) for the real ComfyUI plus the two test packs."""
    root = tmp_path_factory.mktemp("folder-map")
    packs = root / "packs"
    (packs / "cw_pack_own_folder").mkdir(parents=True)
    (packs / "cw_pack_own_folder" / "__init__.py").write_text(PACK_OWN_FOLDER)
    (packs / "cw_pack_replaces_folder.py").write_text(PACK_REPLACES_FOLDER)
    yaml = root / "extra.yaml"
    yaml.write_text(f"cw_test_packs:\n  custom_nodes: {json.dumps(str(packs))}\n")
    out = root / "model_folder_map.json"
    result = _run_script("--comfyui-dir", str(COMFYUI_DIR), "--out", str(out), "--extra-model-paths-config", str(yaml))
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stdout


@pytest.fixture(scope="session")
def folder_map(built: tuple[Path, str]) -> ModelFolderMap:
    return ModelFolderMap.load(built[0])


# --- the map of the real ComfyUI -------------------------------------------------------


@needs_comfyui
@pytest.mark.parametrize(
    ("class_type", "input_name", "folder"),
    [
        ("CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
        ("CheckpointLoader", "ckpt_name", "checkpoints"),
        ("CheckpointLoader", "config_name", "configs"),
        ("LoraLoader", "lora_name", "loras"),
        ("LoraLoaderModelOnly", "lora_name", "loras"),
        ("VAELoader", "vae_name", "vae"),
        ("UpscaleModelLoader", "model_name", "upscale_models"),  # a V3 node: "COMBO" spec style
        ("ControlNetLoader", "control_net_name", "controlnet"),
        ("CLIPVisionLoader", "clip_name", "clip_vision"),
        ("UNETLoader", "unet_name", "diffusion_models"),
        ("DualCLIPLoader", "clip_name1", "text_encoders"),
        ("DualCLIPLoader", "clip_name2", "text_encoders"),
        ("CLIPLoader", "clip_name", "text_encoders"),
        ("DiffusersLoader", "model_path", "diffusers"),  # lists directories, not files
        ("StyleModelLoader", "style_model_name", "style_models"),
        ("GLIGENLoader", "gligen_name", "gligen"),
        ("HypernetworkLoader", "hypernetwork_name", "hypernetworks"),
    ],
)
def test_core_loaders_map_to_their_folders(folder_map: ModelFolderMap, class_type: str, input_name: str, folder: str) -> None:
    assert folder_map.folder_for(class_type, input_name) == folder
    assert folder_map.folders_for(class_type, input_name) == (folder,)


@needs_comfyui
def test_inputs_that_are_not_model_files_have_no_folder(folder_map: ModelFolderMap) -> None:
    assert folder_map.folder_for("UNETLoader", "weight_dtype") is None
    assert folder_map.folder_for("DualCLIPLoader", "type") is None
    assert folder_map.folder_for("LoadImage", "image") is None  # input/, not a model folder
    assert folder_map.folder_for("KSampler", "seed") is None
    assert folder_map.folder_for("NoSuchNode", "ckpt_name") is None
    assert not folder_map.is_model_input("CWThingLoader", "strength")


@needs_comfyui
def test_custom_node_folders_are_mapped_including_merged_and_replaced_ones(folder_map: ModelFolderMap) -> None:
    assert folder_map.folder_for("CWThingLoader", "thing_name") == "cw_things"
    assert "cw_things" in folder_map.folders
    assert folder_map.extensions["cw_things"] == (".thing",)
    # Choices merged from two folders keep their order: the first is where files go.
    assert folder_map.folders_for("CWMergedLoader", "model_name") == ("checkpoints", "diffusion_models")
    assert folder_map.folder_for("CWMergedLoader", "mode") is None
    # A pack replaced the upscale_models entry before the probe ran; still mapped.
    assert folder_map.folder_for("UpscaleModelLoader", "model_name") == "upscale_models"
    assert folder_map.extensions["upscale_models"] == (".pth",)


@needs_comfyui
def test_folders_aliases_and_reverse_lookup(folder_map: ModelFolderMap) -> None:
    core = {"checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
            "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
            "latent_upscale_models", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders"}
    assert core <= folder_map.folders
    assert "custom_nodes" not in folder_map.folders
    assert folder_map.canonical_folder("unet") == "diffusion_models"
    assert folder_map.canonical_folder("clip") == "text_encoders"
    assert folder_map.canonical_folder("loras") == "loras"
    assert folder_map.canonical_folder("lora") is None
    loras = folder_map.inputs_for_folder("loras")
    assert {("LoraLoader", "lora_name"), ("LoraLoaderModelOnly", "lora_name")} <= set(loras)
    assert all(folder_map.folder_for(c, i) == "loras" for c, i in loras)
    assert folder_map.inputs_for_folder("unet") == folder_map.inputs_for_folder("diffusion_models")
    assert ("UNETLoader", "unet_name") in folder_map.inputs_for_folder("diffusion_models")


@needs_comfyui
def test_map_file_records_what_it_was_built_from(built: tuple[Path, str], folder_map: ModelFolderMap) -> None:
    path, stdout = built
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    assert data["comfyui_version"] == folder_map.comfyui_version
    assert f'"{data["comfyui_version"]}"' in (COMFYUI_DIR / "comfyui_version.py").read_text()
    assert data["node_classes"] > 400
    assert f"{len(folder_map)} inputs of {len(data['inputs'])} node classes" in stdout
    assert len(folder_map) >= 38  # 36 core + the two test-pack inputs
    assert folder_map.stale_reasons(COMFYUI_DIR) == []
    assert not list(path.parent.glob(".*.incomplete"))


@needs_comfyui
def test_loading_the_map_is_cheap(built: tuple[Path, str]) -> None:
    path = built[0]
    best = min(timeit.repeat(lambda: ModelFolderMap.load(path), number=1, repeat=30))
    assert best < 0.005, f"{best * 1000:.2f} ms"


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
