"""predict.py through the real Cog HTTP server (coglet), end to end."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.e2e.test_reliability import chain, nodes_yaml
from tests.support.cog_server import cog_server

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

INVERT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 0x00FF00}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cog"}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cog")
    env = {"CW_EXTRA_MODEL_PATHS": str(nodes_yaml(tmp))}
    with cog_server(tmp, env=env) as running:
        assert running.health()["status"] == "READY", running.log()[-3000:]
        yield running


def decode_data_uri(uri: str) -> Image.Image:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_prediction_returns_the_image(server):
    response = server.post({"workflow_json": json.dumps(INVERT), "output_format": "png"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "succeeded", body
    [uri] = body["output"]
    image = decode_data_uri(uri)
    assert image.size == (16, 8)
    assert {c for _, c in image.convert("RGB").getcolors()} == {(255, 0, 255)}
    assert "Running node 3: SaveImage" in body["logs"]
    assert "Timings:" in body["logs"]


@pytest.mark.parametrize("inputs,field", [({"output_quality": 101}, "output_quality"), ({"output_format": "gif"}, "output_format")])
def test_invalid_inputs_get_422(server, inputs, field):
    response = server.post(inputs)
    assert response.status_code == 422
    assert field in json.dumps(response.json())


def test_a_user_error_fails_the_prediction_with_the_message_and_server_stays_healthy(server):
    body = server.post({"workflow_json": "{not json"}).json()
    assert body["status"] == "failed"
    assert "not valid JSON" in body["error"] and "How to fix" in body["error"]
    assert server.settled_status() == "READY"
    again = server.post({"workflow_json": json.dumps(INVERT)}).json()
    assert again["status"] == "succeeded"


def test_openapi_lists_the_inputs_in_order(server):
    import requests

    schema = requests.get(f"{server.base_url}/openapi.json", timeout=10).json()
    props = schema["components"]["schemas"]["Input"]["properties"]
    ordered = sorted(props, key=lambda name: props[name]["x-order"])
    assert ordered[:7] == ["workflow_json", "input_file", "return_temp_files", "output_format",
                           "output_quality", "randomise_seeds", "force_reset_cache"]


def test_metrics_record_time_per_phase(server):
    body = server.post({"workflow_json": json.dumps(INVERT)}).json()
    assert body["status"] == "succeeded"
    for phase in ("prepare", "inputs", "queue", "queue_wait", "execution", "outputs"):
        assert f"{phase}_seconds" in body["metrics"], body["metrics"]


def test_cancel_interrupts_the_run_and_the_next_prediction_succeeds(server):
    import threading
    import time

    import requests

    slow = json.dumps(chain(("CWTestSleep", {"seconds": 120.0, "report_progress": True})))
    answer: dict = {}

    def run_slow():
        answer["body"] = requests.put(f"{server.base_url}/predictions/slow-one", json={"input": {"workflow_json": slow}},
                                      timeout=300).json()

    worker = threading.Thread(target=run_slow)
    worker.start()
    time.sleep(4)
    began = time.monotonic()
    cancel = requests.post(f"{server.base_url}/predictions/slow-one/cancel", timeout=30)
    assert cancel.status_code == 200
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert answer["body"]["status"] == "canceled", answer["body"]
    assert time.monotonic() - began < 30
    assert server.settled_status() == "READY"
    began = time.monotonic()
    after = server.post({"workflow_json": json.dumps(INVERT)}).json()
    assert after["status"] == "succeeded", after
    assert time.monotonic() - began < 10


def test_a_setup_that_cannot_boot_comfyui_is_setup_failed_with_the_reason(tmp_path):
    broken = tmp_path / "ComfyUI"
    broken.mkdir()
    (broken / "main.py").write_text("raise SystemExit('this ComfyUI is broken on purpose')\n")
    with cog_server(tmp_path, env={"CW_COMFYUI_DIR": str(broken)}) as server:
        health = server.health()
        assert health["status"] == "SETUP_FAILED"
        assert "broken on purpose" in json.dumps(health) or "broken on purpose" in server.log()
