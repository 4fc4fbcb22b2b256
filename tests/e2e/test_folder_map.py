"""scripts/build_model_folder_map.py against the real ComfyUI, read through comfyui_wrapper.weights.folders.

The map is built once per session (one ComfyUI boot, ~10-15 s) with two small
custom node packs beside the real nodes: one registers a folder of its own and
a loader merging two folders, the other replaces a core folder's entry the way
some packs do. Both must be mapped as exactly as the core loaders. The module's
and the script's pieces without a boot are in tests/unit/weights/test_folders.py.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path

import pytest

from comfyui_wrapper.weights.folders import ModelFolderMap
from tests.unit.weights.test_folders import COMFYUI_DIR, _run_script

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (COMFYUI_DIR / "main.py").is_file(), reason="ComfyUI is not installed")]

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


def test_inputs_that_are_not_model_files_have_no_folder(folder_map: ModelFolderMap) -> None:
    assert folder_map.folder_for("UNETLoader", "weight_dtype") is None
    assert folder_map.folder_for("DualCLIPLoader", "type") is None
    assert folder_map.folder_for("LoadImage", "image") is None  # input/, not a model folder
    assert folder_map.folder_for("KSampler", "seed") is None
    assert folder_map.folder_for("NoSuchNode", "ckpt_name") is None
    assert not folder_map.is_model_input("CWThingLoader", "strength")


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


def test_loading_the_map_is_cheap(built: tuple[Path, str]) -> None:
    path = built[0]
    best = min(timeit.repeat(lambda: ModelFolderMap.load(path), number=1, repeat=30))
    assert best < 0.005, f"{best * 1000:.2f} ms"
