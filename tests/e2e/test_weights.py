"""Weights end to end: the text-to-image workflow with a generated SD1.5 checkpoint from a local CDN."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from PIL import Image

from comfyui_wrapper.errors import UnknownWeightError
from comfyui_wrapper.runner import WorkflowRunner
from comfyui_wrapper.workflow import EXAMPLE_WORKFLOW
from tests.conftest import base_settings, run_workflow
from tests.support.weights_cdn import EXAMPLE_CHECKPOINT, local_cdn

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server


def small_text_to_image(steps: int = 2, size: int = 64) -> dict:
    workflow = json.loads(EXAMPLE_WORKFLOW.read_text())
    workflow["5"]["inputs"].update(width=size, height=size)
    workflow["3"]["inputs"]["steps"] = steps
    return workflow


@pytest.fixture(scope="module")
def cdn(tmp_path_factory):
    with local_cdn(tmp_path_factory.mktemp("cdn")) as served:
        yield served


@pytest.fixture(scope="module")
def runner(cdn, tmp_path_factory):
    _, manifest = cdn
    settings = dataclasses.replace(base_settings(tmp_path_factory.mktemp("weights_run")), manifest_path=manifest)
    runner = WorkflowRunner(settings)
    runner.start()
    yield runner
    runner.stop()


def test_text_to_image_downloads_once_and_returns_an_image(runner, cdn):
    control, _ = cdn
    first = run_workflow(runner, small_text_to_image(), output_format="png")
    [path] = first.files
    with Image.open(path) as image:
        assert image.size == (64, 64)
    assert first.stats["weights_downloaded"] == 1
    assert control.requests[f"/direct/{EXAMPLE_CHECKPOINT}"] >= 1
    before = sum(control.requests.values())
    second = run_workflow(runner, small_text_to_image(), output_format="png")
    assert len(second.files) == 1
    assert sum(control.requests.values()) == before, "the second run must download nothing"
    assert second.stats["weights_cache_hits"] == 1 and second.stats["weights_downloaded"] == 0


def test_a_lora_given_by_url_and_a_tar_weight(runner, cdn):
    control, _ = cdn
    workflow = small_text_to_image()
    # A LoRA given by URL (any loader accepts one): the CDN also serves the plain file.
    workflow["10"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "strength_model": 1.0, "strength_clip": 1.0,
        "lora_name": f"{control.base_url}/direct/my_style_lora.safetensors"}}
    site = control.root
    target = site / "direct" / "my_style_lora.safetensors"
    if not target.exists():
        import tarfile

        with tarfile.open(site / "loras" / "cw-test-sd15-lora.safetensors.tar") as archive:
            member = archive.extractfile("cw-test-sd15-lora.safetensors")
            target.write_bytes(member.read())
    workflow["3"]["inputs"]["model"] = ["10", 0]
    workflow["6"]["inputs"]["clip"] = ["10", 1]
    workflow["7"]["inputs"]["clip"] = ["10", 1]
    workflow["11"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "cw-test-compact-2x.safetensors"}}
    workflow["12"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["11", 0], "image": ["8", 0]}}
    workflow["13"] = {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "up"}}
    result = run_workflow(runner, workflow, output_format="png")
    sizes = []
    for path in result.files:
        with Image.open(path) as image:
            sizes.append(image.size)
    assert sizes == [(64, 64), (128, 128)]
    assert re.fullmatch(r"[0-9a-f]{16}/my_style_lora\.safetensors", result.workflow["10"]["inputs"]["lora_name"])
    assert control.requests["/upscale_models/cw-test-compact-2x.safetensors.tar"] >= 1


def test_an_unknown_weight_gets_suggestions(runner):
    workflow = small_text_to_image()
    workflow["4"]["inputs"]["ckpt_name"] = "Realistic_Vision_V6.0_NV_B1_fp17.safetensors"
    with pytest.raises(UnknownWeightError) as caught:
        run_workflow(runner, workflow)
    message = str(caught.value)
    assert "Realistic_Vision_V6.0_NV_B1_fp17.safetensors" in message
    assert EXAMPLE_CHECKPOINT in message
    assert "node 4" in message


def test_provenance_records_what_ran(runner):
    result = run_workflow(runner, small_text_to_image(), output_format="png", return_provenance=True)
    image, provenance_path = result.files
    assert image.suffix == ".png" and provenance_path.name == "provenance.json"
    provenance = json.loads(provenance_path.read_text())
    assert provenance["comfyui"]["comfyui_version"] == "0.3.75"
    [seed] = provenance["seeds"]
    assert provenance["workflow"]["3"]["inputs"]["seed"] == seed["new"] != seed["old"]
    [weight] = provenance["weights"]
    assert weight["name"] == EXAMPLE_CHECKPOINT
    assert weight["sha256"] == "118a1540b60f8ea56066512c5733953eca9b952a2eb3ed67d64aa27fc5df2842"
    assert "cw_run" not in json.dumps(provenance["workflow"])


def test_text_to_image_through_the_cog_server_downloads_once(cdn, tmp_path):
    """The same run as above, but as Replicate runs it: predict.py under the real Cog runtime."""
    import base64
    import io

    from tests.support.cog_server import cog_server

    _, manifest = cdn
    env = {"CW_WEIGHTS_MANIFEST": str(manifest), "CW_ALLOW_PRIVATE_URLS": "1"}
    with cog_server(tmp_path, env=env) as server:
        first = server.post({"workflow_json": json.dumps(small_text_to_image()), "output_format": "png"}).json()
        assert first["status"] == "succeeded", first.get("error")
        [uri] = first["output"]
        with Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))) as image:
            assert image.size == (64, 64)
        assert first["metrics"]["weights_downloaded"] == 1
        second = server.post({"workflow_json": json.dumps(small_text_to_image())}).json()
        assert second["status"] == "succeeded", second.get("error")
        assert second["metrics"]["weights_downloaded"] == 0 and second["metrics"]["weights_cache_hits"] == 1
