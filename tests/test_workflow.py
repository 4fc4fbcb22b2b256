"""Pure workflow functions: parsing, shape checks, node order, seeds."""

from __future__ import annotations

import base64
import json
import random

import pytest

from comfyui_wrapper import workflow as wf
from comfyui_wrapper.errors import UIFormatError, WorkflowError

OBJECT_INFO = {
    "KSampler": {"input": {"required": {"seed": ["INT", {"default": 0, "min": 0, "max": 2**64 - 1}]}}},
    "SmallSeed": {"input": {"required": {"noise_seed": ["INT", {"default": 0, "min": 5, "max": 9}]}}},
    "SaveImage": {"output_node": True, "input": {"required": {}}},
}


def test_empty_text_gives_the_example():
    example = wf.parse_workflow(wf.load_workflow_text(""))
    assert {n["class_type"] for n in example.values()} >= {"CheckpointLoaderSimple", "KSampler", "SaveImage"}


def test_data_uri_is_decoded():
    body = json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}})
    uri = "data:application/json;base64," + base64.b64encode(body.encode()).decode()
    assert wf.parse_workflow(wf.load_workflow_text(uri)) == json.loads(body)


@pytest.mark.parametrize("text,fragment", [
    ("", None), ("{", "not valid JSON"), ("[]", "not a list"), ("42", "not a int"), ("{}", "has no nodes"),
])
def test_parse_and_shape_errors(text, fragment):
    if fragment is None:
        return
    with pytest.raises(WorkflowError, match=fragment):
        wf.check_shape(wf.parse_workflow(text))


def test_missing_class_type_and_dangling_link_are_listed_together():
    data = {"1": {"inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["99", 0]}}}
    with pytest.raises(WorkflowError) as caught:
        wf.check_shape(data)
    message = str(caught.value)
    assert "node '1' has no class_type" in message
    assert "links to node '99'" in message


def test_ui_format_is_detected():
    assert wf.is_ui_format({"nodes": [], "links": []})
    assert not wf.is_ui_format({"1": {"class_type": "SaveImage", "inputs": {}}})
    with pytest.raises(UIFormatError, match="Export \\(API\\)"):
        wf.check_shape({"nodes": [], "links": []})


def test_node_order_is_numeric_by_parts():
    ids = ["13", "12:3", "9", "12", "100", "2:10", "2:9"]
    assert sorted(ids, key=wf.node_order_key) == ["2:9", "2:10", "9", "12", "12:3", "13", "100"]


def test_seeds_change_only_where_literal_and_within_range():
    workflow = {
        "1": {"class_type": "KSampler", "inputs": {"seed": 1}},
        "2": {"class_type": "KSampler", "inputs": {"seed": ["5", 0]}},
        "3": {"class_type": "SmallSeed", "inputs": {"noise_seed": 6}},
        "4": {"class_type": "SaveImage", "inputs": {"seed": "text"}},
    }
    new, changes = wf.randomise_seeds(workflow, OBJECT_INFO, random.Random(1))
    assert workflow["1"]["inputs"]["seed"] == 1  # the original is untouched
    assert new["2"]["inputs"]["seed"] == ["5", 0]
    assert new["4"]["inputs"]["seed"] == "text"
    assert [(c.node_id, c.input_name) for c in changes] == [("1", "seed"), ("3", "noise_seed")]
    assert new["1"]["inputs"]["seed"] != 1
    for _ in range(50):
        again, _ = wf.randomise_seeds(workflow, OBJECT_INFO)
        assert 5 <= again["3"]["inputs"]["noise_seed"] <= 9
        assert 0 <= again["1"]["inputs"]["seed"] <= 2**64 - 1


def test_fresh_marks_touch_only_output_nodes():
    workflow = {"1": {"class_type": "KSampler", "inputs": {"seed": 1}}, "2": {"class_type": "SaveImage", "inputs": {}}}
    fresh = wf.mark_outputs_fresh(workflow, ["2"], "tok")
    assert fresh["2"]["inputs"]["cw_run"] == "tok"
    assert "cw_run" not in fresh["1"]["inputs"] and "cw_run" not in workflow["2"]["inputs"]
