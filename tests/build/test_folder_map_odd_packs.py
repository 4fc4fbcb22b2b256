"""The model folder map survives packs that register folders in odd shapes.

ComfyUI-VideoHelperSuite registers ``folder_names_and_paths["VHS_video_formats"]
= ((), {".json"})``: a tuple of paths that cannot be appended to. With 69 packs
installed, one such pack used to fail the image build's last step. Every shape
must be handled, and a registration the probe cannot use at all is reported
with the pack's name and skipped, never fatal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = REPO / "ComfyUI"
SCRIPT = REPO / "scripts" / "build_model_folder_map.py"

# Shaped like VideoHelperSuite at its pin: a tuple registration and a loader listing that folder.
VHS_LIKE = '''
import folder_paths

folder_paths.folder_names_and_paths["VHS_video_formats"] = ((), {".json"})


class CWVideoCombine:
    @classmethod
    def INPUT_TYPES(cls):
        formats = ["image/gif"] + ["video/" + n[:-5] for n in folder_paths.get_filename_list("VHS_video_formats")]
        return {"required": {"format": (formats,)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, format):
        return (format,)


NODE_CLASS_MAPPINGS = {"CWVideoCombine": CWVideoCombine}
'''

# Other shapes seen in the wild, and one the probe cannot use at all.
ODD_SHAPES = '''
import folder_paths

folder_paths.folder_names_and_paths["cw_set_paths"] = ({"/nonexistent/cw"}, [".bin"])
folder_paths.folder_names_and_paths["cw_bare_list"] = ["/nonexistent/cw2"]
folder_paths.folder_names_and_paths["cw_missing"] = None
folder_paths.folder_names_and_paths["cw_empty"] = ([], set())


class CWOddLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (folder_paths.get_filename_list("cw_empty"),)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, name):
        return (name,)


NODE_CLASS_MAPPINGS = {"CWOddLoader": CWOddLoader}
'''

BROKEN_SHAPE = '''
import folder_paths

folder_paths.folder_names_and_paths["cw_broken_folder"] = 42
NODE_CLASS_MAPPINGS = {}
'''


@pytest.mark.e2e
@pytest.mark.skipif(not (COMFYUI_DIR / "main.py").is_file(), reason="ComfyUI is not installed")
def test_odd_registrations_are_mapped_and_a_broken_one_is_named_and_skipped(tmp_path: Path) -> None:
    comfy = tmp_path / "comfy"
    # A hard-linked copy of our ComfyUI (ComfyUI finds custom_nodes/ from main.py's real path),
    # with the packs installed in its own custom_nodes/.
    subprocess.run(["cp", "-al", str(COMFYUI_DIR), str(comfy)], check=True)
    nodes = comfy / "custom_nodes"
    for entry in nodes.iterdir():
        subprocess.run(["rm", "-rf", str(entry)], check=True)
    for name, source in {"ComfyUI-VideoHelperSuite": VHS_LIKE, "cw-odd-shapes": ODD_SHAPES,
                         "cw-broken-shape": BROKEN_SHAPE}.items():
        (nodes / name).mkdir(parents=True)
        (nodes / name / "__init__.py").write_text(source)
    out = tmp_path / "map.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--comfyui-dir", str(comfy), "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["inputs"]["CWVideoCombine"] == {"format": ["VHS_video_formats"]}
    assert data["extensions"]["VHS_video_formats"] == [".json"]
    assert data["inputs"]["CWOddLoader"] == {"name": ["cw_empty"]}
    assert {"cw_set_paths", "cw_bare_list", "cw_missing", "cw_empty", "VHS_video_formats"} <= set(data["folders"])
    assert data["inputs"]["CheckpointLoaderSimple"] == {"ckpt_name": ["checkpoints"]}
    skipped = data["skipped_folders"]
    assert list(skipped) == ["cw_broken_folder"] and skipped["cw_broken_folder"]["packs"] == ["cw-broken-shape"]
    assert "cw_broken_folder" in result.stderr and "cw-broken-shape" in result.stderr


def test_build_time_wait_is_long_enough_for_many_packs() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_model_folder_map
        from image_build import __main__ as image_build
    finally:
        sys.path.pop(0)
    assert build_model_folder_map.DEFAULT_TIMEOUT_S >= 600
    assert image_build.FOLDER_MAP_TIMEOUT_S >= 900
