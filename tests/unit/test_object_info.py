"""object_info.py is the one reader of /object_info: hostile shapes answer "unknown", never raise."""

from __future__ import annotations

import pytest

from comfyui_wrapper import workflow as wf
from comfyui_wrapper.inputs.paths import PathRoots, check_workflow_paths
from comfyui_wrapper.object_info import (
    combo_choices,
    input_options,
    input_spec,
    is_multiline_text,
    node_inputs,
    spec_options,
)

INFO = {"KSampler": {"input": {"required": {"seed": ["INT", {"min": 0, "max": 99}]},
                               "optional": {"note": ("STRING", {"multiline": True})}}}}


@pytest.mark.parametrize("info", [None, [], {"KSampler": "text"}, {"KSampler": {"input": ["x"]}},
                                  {"KSampler": {"input": {"required": ["seed"]}}}])
def test_hostile_object_info_is_unknown_not_an_exception(info):
    assert node_inputs(info, "KSampler") == {} and input_spec(info, "KSampler", "seed") is None
    assert input_options(info, "KSampler") == {}
    assert wf.seed_range(info, "KSampler", "seed") == (0, 2**32 - 1)
    workflow = {"1": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    assert wf.output_nodes(workflow, info) == []
    assert wf.pure_nodes(workflow, info, lambda c, n: "checkpoints", lambda v: False) == set()


def test_a_tuple_spec_is_a_spec_everywhere():
    """One reader took only lists, another anything not None: a tuple spec meant two things."""
    assert input_spec(INFO, "KSampler", "note") == ["STRING", {"multiline": True}]
    assert is_multiline_text(input_spec(INFO, "KSampler", "note"))
    assert spec_options(input_spec(INFO, "KSampler", "seed")) == {"min": 0, "max": 99}
    assert wf.seed_range(INFO, "KSampler", "seed") == (0, 99)


def test_the_path_check_survives_a_hostile_object_info(tmp_path):
    roots = PathRoots(input=tmp_path / "input", output=tmp_path / "output", temp=tmp_path / "temp")
    workflow = {"1": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    check_workflow_paths(workflow, roots, {"KSampler": "not a definition"})


@pytest.mark.parametrize("spec, choices", [
    ([["a.safetensors", "b.ckpt"]], ["a.safetensors", "b.ckpt"]),
    (("COMBO", {"options": ["a.safetensors"]}), ["a.safetensors"]),
    (["COMBO", {"options": "a.safetensors"}], None),
    (["COMBO"], None),
    (["STRING", {"options": ["x"]}], None),
    ([], None),
    (None, None),
])
def test_one_reader_of_combo_choices_for_both_spellings(spec, choices):
    """Three readers of a combo's choices (weights.refs, workflow.pure_nodes, new_model) are now one."""
    assert combo_choices(spec) == choices


def test_a_combo_choice_in_the_newer_spelling_keeps_a_loader_pure():
    info = {"Loader": {"input": {"required": {"ckpt_name": ["COMBO", {"options": ["a.safetensors"]}],
                                              "mode": ("COMBO", {"options": ["fast", "slow"]})}},
                       "output_node": False}}
    workflow = {"1": {"class_type": "Loader", "inputs": {"ckpt_name": "a.safetensors", "mode": "fast"}},
                "2": {"class_type": "Loader", "inputs": {"ckpt_name": "a.safetensors", "mode": "other"}}}
    folder_for = lambda class_type, name: "checkpoints" if name == "ckpt_name" else None  # noqa: E731
    assert wf.pure_nodes(workflow, info, folder_for, lambda value: False) == {"1"}
