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
    assert "- node 1 has no class_type" in message
    assert "- node 2 (SaveImage), input 'images' links to node 99, which is not in the workflow" in message


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


ISOLATION_INFO = {
    "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"]]}}},
    "LoraLoader": {"input": {"required": {"model": ["MODEL"], "lora_name": [["l.safetensors"]],
                                          "strength_model": ["FLOAT", {}]}}},
    "PackLoader": {"input": {"required": {"ckpt_name": [["a.safetensors"]], "mode": [["fast", "slow"]],
                                          "extra": ["STRING", {}]}}},
    "HiddenLoader": {"input": {"required": {"ckpt_name": [["a.safetensors"]]}, "hidden": {"prompt": "PROMPT"}}},
    "LoadImage": {"input": {"required": {"image": [["input.png"]]}}},
    "ImageScale": {"input": {"required": {"image": ["IMAGE"]}}},
    "SaveImage": {"input": {"required": {"images": ["IMAGE"]}}, "output_node": True},
}
MODEL_INPUTS = {("CheckpointLoaderSimple", "ckpt_name"), ("LoraLoader", "lora_name"), ("PackLoader", "ckpt_name"),
                ("HiddenLoader", "ckpt_name")}


def folder_for(class_type, name):
    return "checkpoints" if (class_type, name) in MODEL_INPUTS else None


def test_only_loaders_reading_model_names_numbers_and_input_free_choices_are_pure():
    data = {"input.png", "frames", "1a2b3c4d/x.safetensors"}
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "lora_name": "l.safetensors",
                                                      "strength_model": 0.5}},
        "3": {"class_type": "PackLoader", "inputs": {"ckpt_name": "a.safetensors", "mode": "fast"}},
        "4": {"class_type": "PackLoader", "inputs": {"ckpt_name": "a.safetensors", "mode": "fast", "extra": "x"}},
        "5": {"class_type": "HiddenLoader", "inputs": {"ckpt_name": "a.safetensors"}},
        "6": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "1a2b3c4d/x.safetensors"}},
        "7": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "../../input/input.png"}},
        "8": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "/abs/a.safetensors"}},
        "9": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors", "undeclared": "x"}},
        "10": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0]}},
        "12": {"class_type": "Unknown", "inputs": {}},
    }
    pure = wf.pure_nodes(workflow, ISOLATION_INFO, folder_for, lambda value: value in data)
    # 4: a free STRING; 5: hidden PROMPT; 6: fetched by URL; 7, 8: paths out of the folder; 9: undeclared.
    assert pure == {"1", "2", "3"}


def test_run_tokens_are_on_every_impure_node_and_every_node_downstream_of_one():
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
        "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "lora_name": "l.safetensors",
                                                      "strength_model": 1.0, "clip": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
        "6": {"class_type": "ImageScale", "inputs": {"image": ["7", 0]}},  # a cycle of impure nodes
        "7": {"class_type": "ImageScale", "inputs": {"image": ["6", 0]}},
    }
    marked = wf.mark_run(workflow, "tok", {"1", "4"})
    tokened = {nid for nid, node in marked.items() if node["inputs"].get("cw_run") == "tok"}
    # every node but the pure loader with a pure ancestry: its own token keys its object too (server/launch.py)
    assert tokened == set(workflow) - {"1"}
    assert not wf.ancestors(workflow, "1") & tokened
    assert "cw_run" not in json.dumps(workflow)  # the given workflow is not changed
    assert "cw_run" not in json.dumps(wf.strip_run_tokens(marked))


def test_one_title_rule_for_every_message():
    """Four helpers read _meta.title four ways (str() of a number in one, None vs '' in others)."""
    assert wf.meta_title({"_meta": {"title": "Style"}}) == "Style"
    for hostile in ({"_meta": {"title": 7}}, {"_meta": "x"}, {"_meta": {"title": ""}}, [], None, "node"):
        assert wf.meta_title(hostile) is None
    workflow = {"1": {"class_type": "KSampler", "_meta": {"title": 7}}}
    assert wf.node_title(workflow, "1") == "KSampler"
    assert wf.NodeInput.of(workflow, "1").describe() == "node 1 (KSampler)"


def test_one_link_rule():
    assert wf.is_link(["4", 0]) and wf.is_link([4, 1])
    assert not wf.is_link(["4", True]) and not wf.is_link(["4", 0, 1]) and not wf.is_link(("4", 0))
