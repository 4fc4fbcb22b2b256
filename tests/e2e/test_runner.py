"""The runner against the real ComfyUI: weightless workflows with exact pixel checks."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from comfyui_wrapper.errors import (
    NoOutputsError,
    OutputFormatError,
    PromptValidationError,
    UIFormatError,
    UnknownNodeError,
    WorkflowError,
)
from tests.conftest import run_workflow

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server


def solid(node: str, color: int, size: int = 8) -> dict:
    return {node: {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}}


def invert_and_save(color: int = 0x123456) -> dict:
    return {
        **solid("1", color),
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }


def pixels(path) -> set:
    with Image.open(path) as image:
        return {color for _, color in image.convert("RGB").getcolors()}


def test_invert_gives_exact_pixels(runner):
    result = run_workflow(runner, invert_and_save(0x123456), output_format="png")
    assert len(result.files) == 1
    assert result.files[0].suffix == ".png"
    assert pixels(result.files[0]) == {(0xFF - 0x12, 0xFF - 0x34, 0xFF - 0x56)}


def test_two_output_nodes_come_back_in_node_order(runner):
    # Node 12 must come after node 9 although "12" < "9" as text.
    workflow = {
        **solid("1", 0xFF0000),
        **solid("2", 0x0000FF),
        "12": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "a_blue"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "z_red"}},
    }
    result = run_workflow(runner, workflow, output_format="png")
    assert [pixels(p) for p in result.files] == [{(255, 0, 0)}, {(0, 0, 255)}]


def test_preview_files_only_with_return_temp_files(runner):
    workflow = {**invert_and_save(0), "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    without = run_workflow(runner, workflow, output_format="png")
    assert [pixels(p) for p in without.files] == [{(255, 255, 255)}]
    with_temp = run_workflow(runner, workflow, output_format="png", return_temp_files=True)
    assert [pixels(p) for p in with_temp.files] == [{(255, 255, 255)}, {(0, 0, 0)}]


def test_only_previews_without_temp_files_says_what_to_do(runner):
    workflow = {**solid("1", 0), "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    with pytest.raises(NoOutputsError) as caught:
        run_workflow(runner, workflow)
    assert "return_temp_files" in str(caught.value)
    assert "node 2 (PreviewImage" in str(caught.value)


@pytest.mark.parametrize("fmt,suffix,pil_format", [("webp", ".webp", "WEBP"), ("jpg", ".jpg", "JPEG"), ("png", ".png", "PNG")])
def test_every_output_format(runner, fmt, suffix, pil_format):
    result = run_workflow(runner, invert_and_save(0), output_format=fmt, output_quality=90)
    [path] = result.files
    assert path.suffix == suffix
    with Image.open(path) as image:
        assert image.format == pil_format
        assert image.size == (8, 8)


def test_rgba_image_converts_to_jpg(runner):
    # JoinImageWithAlpha makes an RGBA image; SaveImage writes an RGBA PNG.
    workflow = {
        **solid("1", 0x00FF00),
        "2": {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 8, "height": 8}},
        "3": {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "rgba"}},
    }
    png = run_workflow(runner, workflow, output_format="png")
    with Image.open(png.files[0]) as image:
        assert image.mode == "RGBA"
    jpg = run_workflow(runner, workflow, output_format="jpg")
    with Image.open(jpg.files[0]) as image:
        assert image.format == "JPEG" and image.mode == "RGB"


def test_identical_prompt_twice_returns_files_both_times(runner):
    workflow = invert_and_save(0x010203)
    first = run_workflow(runner, workflow, output_format="png", randomise_seeds=False)
    second = run_workflow(runner, workflow, output_format="png", randomise_seeds=False)
    assert len(first.files) == len(second.files) == 1
    assert second.files[0].is_file()
    assert pixels(second.files[0]) == {(0xFE, 0xFD, 0xFC)}


def test_force_reset_cache_still_returns_files(runner):
    result = run_workflow(runner, invert_and_save(0), output_format="png", force_reset_cache=True)
    assert len(result.files) == 1


def test_validation_error_names_node_input_and_reason(runner):
    workflow = invert_and_save(0)
    workflow["1"]["inputs"]["width"] = 0
    workflow["1"]["_meta"] = {"title": "My canvas"}
    with pytest.raises(PromptValidationError) as caught:
        run_workflow(runner, workflow)
    message = str(caught.value)
    assert "node 1 \"My canvas\" (EmptyImage)" in message
    assert "input 'width'" in message
    assert "smaller than min" in message
    assert "received 0" in message


def test_a_ui_workflow_that_cannot_be_converted_gets_a_clear_error(runner):
    ui = {"last_node_id": 1, "last_link_id": 0, "version": 0.4, "links": [],
          "nodes": [{"id": 1, "type": "NoSuchNodeXYZ", "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}]}
    with pytest.raises(UIFormatError) as caught:
        run_workflow(runner, ui)
    message = str(caught.value)
    assert "NoSuchNodeXYZ" in message and "1" in message
    assert "Export (API)" in message


def test_unknown_node_is_named_before_queueing(runner):
    workflow = {**invert_and_save(0), "7": {"class_type": "NoSuchNode", "inputs": {}, "_meta": {"title": "Mystery"}}}
    with pytest.raises(UnknownNodeError) as caught:
        run_workflow(runner, workflow)
    assert 'node 7 "Mystery" (NoSuchNode)' in str(caught.value)


def test_bad_json_and_bad_format_are_clear(runner):
    with pytest.raises(WorkflowError, match="not valid JSON"):
        run_workflow(runner, "{nope")
    with pytest.raises(WorkflowError, match="not a list"):
        run_workflow(runner, json.dumps([1, 2]))
    with pytest.raises(OutputFormatError):
        run_workflow(runner, invert_and_save(0), output_format="gif")


def test_a_workflow_without_output_node_is_refused(runner):
    with pytest.raises(WorkflowError, match="no output node"):
        run_workflow(runner, solid("1", 0))


def test_folders_are_fresh_for_each_prediction(runner):
    settings = runner.settings
    run_workflow(runner, invert_and_save(0), output_format="png")
    (settings.input_dir / "left_over.png").write_bytes(b"x")
    run_workflow(runner, invert_and_save(0), output_format="png")
    assert not (settings.input_dir / "left_over.png").exists()
    assert list(settings.output_dir.iterdir()) == []


def test_workflow_json_may_be_a_url(runner, tmp_path):
    from tests.support.static_server import serve_directory

    (tmp_path / "wf.json").write_text(json.dumps(invert_and_save(0x000000)))
    with serve_directory(tmp_path) as server:
        result = run_workflow(runner, f"{server.base_url}/wf.json", output_format="png")
        assert pixels(result.files[0]) == {(255, 255, 255)}
        from comfyui_wrapper.errors import DownloadError

        with pytest.raises(DownloadError, match="HTTP 404"):
            run_workflow(runner, f"{server.base_url}/missing.json")


def test_comfyuis_history_forgets_each_prediction(runner):
    run_workflow(runner, invert_and_save())
    assert runner.client.http.get(f"{runner.client.base_url}/history", timeout=5).json() == {}


def test_core_model_loaders_are_pure_and_input_readers_are_not(runner):
    """With the real /object_info and model folder map: loaders stay cached, file readers re-run."""
    from comfyui_wrapper import workflow as wf

    object_info = runner.client.object_info()
    loaders = {
        "1": ("CheckpointLoaderSimple", {"ckpt_name": "a.safetensors"}),
        "2": ("LoraLoader", {"model": ["1", 0], "clip": ["1", 1], "lora_name": "l.safetensors",
                             "strength_model": 0.8, "strength_clip": 1.0}),
        "3": ("VAELoader", {"vae_name": "v.safetensors"}),
        "4": ("CLIPLoader", {"clip_name": "c.safetensors", "type": "stable_diffusion"}),
        "5": ("UNETLoader", {"unet_name": "u.safetensors", "weight_dtype": "default"}),
        "6": ("UpscaleModelLoader", {"model_name": "up.pth"}),
        "7": ("ControlNetLoader", {"control_net_name": "cn.safetensors"}),
    }
    readers = {
        "20": ("LoadImage", {"image": "input.png"}),
        "21": ("LoadImageDataSetFromFolder", {"folder": "ds"}),
        "22": ("EmptyImage", {"width": 8, "height": 8, "batch_size": 1, "color": 0}),
        "23": ("SaveImage", {"images": ["20", 0], "filename_prefix": "x"}),
    }
    workflow = {nid: {"class_type": cls, "inputs": inputs} for nid, (cls, inputs) in {**loaders, **readers}.items()}
    context = runner.plan_context(object_info)
    assert wf.pure_nodes(workflow, object_info, context.folder_for, lambda value: False) == set(loaders)
