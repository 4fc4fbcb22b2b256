"""Isolation between predictions, through the real Cog HTTP server, as two users would meet it.

Each test sends the same workflow twice in one warm container with different data
(a red image, then a blue one) and checks the second result is blue: ComfyUI's node
cache must never hand one prediction's data to the next, whichever node read it.
The checkpoint test checks the other side: a loaded model stays cached.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e.test_reliability import nodes_yaml
from tests.support.cog_server import cog_server
from tests.support.weights_cdn import EXAMPLE_CHECKPOINT, local_cdn

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def cdn(tmp_path_factory):
    with local_cdn(tmp_path_factory.mktemp("isolation_cdn")) as served:
        yield served


@pytest.fixture(scope="module")
def cog(cdn, tmp_path_factory):
    _, manifest = cdn
    tmp = tmp_path_factory.mktemp("isolation_cog")
    env = {"CW_EXTRA_MODEL_PATHS": str(nodes_yaml(tmp)), "CW_WEIGHTS_MANIFEST": str(manifest),
           "CW_ALLOW_PRIVATE_URLS": "1"}
    with cog_server(tmp, env=env) as server:
        assert server.health()["status"] == "READY", server.log()[-3000:]
        yield server


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def save(loader: dict) -> str:
    return json.dumps({"1": loader, "2": {"class_type": "SaveImage",
                                          "inputs": {"images": ["1", 0], "filename_prefix": "iso"}}})


def colors(body: dict) -> list[tuple[int, int, int]]:
    assert body["status"] == "succeeded", body.get("error") or body
    found = []
    for uri in body["output"]:
        _, _, payload = uri.partition(",")
        with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
            found.append(tuple(int(c) for c in np.median(pixels, axis=0)))
    return found


def run_twice(cog, workflow: str, first: str, second: str, **options) -> tuple[list, list]:
    """The same workflow with input_file ``first`` (red) then ``second`` (blue)."""
    a = cog.post({"workflow_json": workflow, "input_file": first, "output_format": "png", **options}).json()
    b = cog.post({"workflow_json": workflow, "input_file": second, "output_format": "png", **options}).json()
    return colors(a), colors(b)


def test_a_file_loader_without_is_changed_sees_the_new_upload(cog):
    workflow = save({"class_type": "CWTestLoadImageNoHash", "inputs": {"image": "input.png"}})
    a, b = run_twice(cog, workflow, data_uri(png_bytes(RED), "image/png"), data_uri(png_bytes(BLUE), "image/png"))
    assert a == [RED] and b == [BLUE]


def test_a_folder_loader_without_is_changed_fed_by_a_zip_sees_the_new_frames(cog):
    workflow = save({"class_type": "CWTestLoadFolderNoHash", "inputs": {"folder": "frames"}})
    first = zip_of({"frames/0001.png": png_bytes(RED), "frames/0002.png": png_bytes(RED)})
    second = zip_of({"frames/0001.png": png_bytes(BLUE), "frames/0002.png": png_bytes(BLUE)})
    a, b = run_twice(cog, workflow, data_uri(first, "application/zip"), data_uri(second, "application/zip"))
    assert set(a) == {RED} and set(b) == {BLUE}


def test_a_node_taking_a_file_path_as_a_string_sees_the_new_file(cog):
    workflow = save({"class_type": "CWTestLoadPathString", "inputs": {"path": "input.png"}})
    a, b = run_twice(cog, workflow, data_uri(png_bytes(RED), "image/png"), data_uri(png_bytes(BLUE), "image/png"))
    assert a == [RED] and b == [BLUE]


def test_a_node_that_keeps_data_on_its_object_gets_a_new_object_each_prediction(cog):
    """ComfyUI keeps node objects per (id, class) between prompts; launch.py adds the run token to that key."""
    workflow = json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "2": {"class_type": "CWTestRememberFirst", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "iso"}},
    })
    a, b = run_twice(cog, workflow, data_uri(png_bytes(RED), "image/png"), data_uri(png_bytes(BLUE), "image/png"))
    assert a == [RED] and b == [BLUE]
    assert "node objects are kept" not in cog.log()  # launch.UNPATCHED: the patch applied to this ComfyUI


def test_the_core_dataset_loader_sees_the_new_folder(cog):
    workflow = save({"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": "ds"}})
    first = zip_of({"ds/a.png": png_bytes(RED)})
    second = zip_of({"ds/a.png": png_bytes(BLUE)})
    a, b = run_twice(cog, workflow, data_uri(first, "application/zip"), data_uri(second, "application/zip"))
    assert a == [RED] and b == [BLUE]


def test_an_input_url_is_fetched_again_and_its_new_content_used(cog, cdn):
    control, _ = cdn
    media = Path(control.root) / "media"
    media.mkdir(exist_ok=True)
    workflow = save({"class_type": "CWTestLoadPathString",
                     "inputs": {"path": f"{control.base_url}/media/picture.png"}})
    (media / "picture.png").write_bytes(png_bytes(RED))
    a = colors(cog.post({"workflow_json": workflow, "output_format": "png"}).json())
    (media / "picture.png").write_bytes(png_bytes(BLUE))
    b = colors(cog.post({"workflow_json": workflow, "output_format": "png"}).json())
    assert a == [RED] and b == [BLUE]


def vae_only(seed_color_from: str | None = None) -> str:
    """Checkpoint -> VAE decode of an empty latent -> SaveImage: the cheapest workflow that loads it."""
    return json.dumps({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": EXAMPLE_CHECKPOINT}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "vae"}},
    })


def test_the_checkpoint_stays_loaded_across_predictions(cog):
    first = cog.post({"workflow_json": vae_only(), "output_format": "png"}).json()
    assert first["status"] == "succeeded", first.get("error")
    second = cog.post({"workflow_json": vae_only(), "output_format": "png"}).json()
    assert second["status"] == "succeeded", second.get("error")
    # ComfyUI's execution_cached event names the loader: it was not run (nor the file read) again.
    assert "Running node 4: CheckpointLoaderSimple" not in second["logs"], second["logs"]
    assert "4 (CheckpointLoaderSimple)" in second["logs"], second["logs"]
    # Everything that is not a model loader ran again.
    assert "Running node 5: EmptyLatentImage" in second["logs"] and "Running node 9: SaveImage" in second["logs"]


def test_returned_pngs_carry_the_workflow_as_it_ran_and_no_internals(cog):
    workflow = save({"class_type": "CWTestLoadImageNoHash", "inputs": {"image": "input.png"}})
    body = cog.post({"workflow_json": workflow, "input_file": data_uri(png_bytes(RED), "image/png"),
                     "output_format": "png"}).json()
    assert body["status"] == "succeeded", body.get("error")
    [uri] = body["output"]
    with Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))) as image:
        chunks = dict(image.text)
    assert set(chunks) == {"prompt"}, chunks
    prompt = json.loads(chunks["prompt"])
    assert prompt == json.loads(workflow)  # the user's graph: no run token, no container path
    assert "cw_run" not in chunks["prompt"] and "/runtime/" not in chunks["prompt"]
    webp = cog.post({"workflow_json": workflow, "input_file": data_uri(png_bytes(RED), "image/png"),
                     "output_format": "webp"}).json()
    raw = base64.b64decode(webp["output"][0].partition(",")[2])
    assert b"cw_run" not in raw and b"/runtime/" not in raw
    with Image.open(io.BytesIO(raw)) as image:
        assert json.loads(image.getexif()[0x0110].removeprefix("prompt:")) == json.loads(workflow)


def test_comfyuis_own_model_load_lines_are_in_the_prediction_log(cog):
    body = cog.post({"workflow_json": vae_only(), "output_format": "png", "force_reset_cache": True}).json()
    assert body["status"] == "succeeded", body.get("error")
    assert "[ComfyUI] model_type EPS" in body["logs"] and "[ComfyUI] Requested to load" in body["logs"], body["logs"]


def test_comfyuis_traceback_of_a_failing_node_is_in_the_prediction_log(cog):
    workflow = json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                                          "color": 0}},
                           "2": {"class_type": "CWTestRaise", "inputs": {"image": ["1", 0], "message": "kaboom"}},
                           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}})
    body = cog.post({"workflow_json": workflow}).json()
    assert body["status"] == "failed" and "CWTestRaise says kaboom" in body["error"]
    # Coglet returns no logs with a failed prediction; the worker's stream (what the platform records) has them.
    deadline = time.monotonic() + 5
    while "CWTestRaise says kaboom" not in cog.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = cog.log()
    assert "[ComfyUI] !!! Exception during processing !!!" in log
    assert "[ComfyUI] Traceback (most recent call last):" in log and "[ComfyUI] ValueError: CWTestRaise says kaboom" in log
