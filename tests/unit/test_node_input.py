"""One way to say where in a workflow: workflow.NodeInput.describe(), used by every error that names a node.

Three formats used to appear (``node 5 (LoadImage, "title")``, ``Node 5 (LoadImage), input 'image'``,
``Node 5 'title' (LoadImage), input 'image'``), sometimes in one error. Each site below builds its
message from a real call (no ComfyUI) and must contain exactly what NodeInput.describe() says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyui_wrapper.errors import UnknownWeightError, UnsafeInputError, WorkflowError
from comfyui_wrapper.inputs.archives import InputLimits
from comfyui_wrapper.inputs.paths import PathRoots, check_workflow_paths
from comfyui_wrapper.inputs.references import check_input_references, missing_inputs_error
from comfyui_wrapper.inputs.workflow_urls import fetch_workflow_urls
from comfyui_wrapper.nodes.packs import NodeProblem
from comfyui_wrapper.runner import execution_error
from comfyui_wrapper.server.events import validation_error
from comfyui_wrapper.urls import UrlPolicy
from comfyui_wrapper.weights.manifest import Manifest
from comfyui_wrapper.weights.refs import core_folder_for, find_weights
from comfyui_wrapper.workflow import NodeInput, check_shape

REPO = Path(__file__).resolve().parents[2]
TITLE = "Reference photo"
WORKFLOW = {
    "7": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}, "_meta": {"title": TITLE}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}},
}
NODE = NodeInput("7", "LoadImage", TITLE)
IMAGE = NodeInput("7", "LoadImage", TITLE, "image")
OLD_FORMATS = ("Node ", "(LoadImage, ", f"'{TITLE}'")


def assert_names(message: str, where: NodeInput) -> None:
    assert where.describe() in message
    for old in OLD_FORMATS:
        assert old not in message, f"an old format ({old!r}) in: {message}"


# --- the format ------------------------------------------------------------------------------


def test_the_one_format():
    assert IMAGE.describe() == "node 7 \"Reference photo\" (LoadImage), input 'image'"
    assert NODE.describe() == 'node 7 "Reference photo" (LoadImage)'
    assert NodeInput("7", "LoadImage", "LoadImage", "image").describe() == "node 7 (LoadImage), input 'image'"
    assert NodeInput("7").describe() == "node 7"
    assert NodeInput("3", "Load3D", "", "image", at=("image", 0)).describe() == (
        "node 3 (Load3D), input 'image' at ['image'][0]")


def test_user_text_is_escaped_to_one_line():
    hostile = NodeInput("7\n[INFO] ok", "Load\x1b[2JImage", "a\u202etitle", "im\nage", at=("k\n",))
    text = hostile.describe()
    assert len(text.splitlines()) == 1 and "\x1b" not in text and "\u202e" not in text
    assert "\\n" in text and "\\x1b" in text and "\\u202e" in text


def test_of_reads_class_and_title_and_names_the_outer_node_of_an_expanded_one():
    assert NodeInput.of(WORKFLOW, "7", "image") == IMAGE
    assert NodeInput.of(WORKFLOW, "7:12") == NODE  # a node group node 7 expanded into, at run time
    assert NodeInput.of(WORKFLOW, "44") == NodeInput("44")
    assert NodeInput.of({"1": ["not", "a", "node"]}, "1") == NodeInput("1")
    assert NodeInput.of({"1": {"class_type": 5, "_meta": {"title": 7}}}, "1") == NodeInput("1")


# --- every site that says where --------------------------------------------------------------


@pytest.fixture()
def roots(tmp_path: Path) -> PathRoots:
    made = PathRoots(tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    for folder in made.all():
        folder.mkdir()
    return made


def with_image(value: object) -> dict:
    workflow = json.loads(json.dumps(WORKFLOW))
    workflow["7"]["inputs"]["image"] = value
    return workflow


def test_path_check(roots: PathRoots):
    with pytest.raises(UnsafeInputError) as caught:
        check_workflow_paths(with_image("../secret.png"), roots)
    assert_names(caught.value.message, IMAGE)
    assert caught.value.message.startswith(IMAGE.describe() + ":")
    assert (caught.value.node_id, caught.value.input_name) == ("7", "image")


def test_path_check_inside_a_nested_value(roots: PathRoots):
    with pytest.raises(UnsafeInputError) as caught:
        check_workflow_paths(with_image({"files": ["ok.png", "/etc/passwd"]}), roots)
    assert_names(caught.value.message, NodeInput("7", "LoadImage", TITLE, "image", at=("files", 1)))


def test_reference_checks(tmp_path: Path):
    with pytest.raises(UnsafeInputError) as caught:
        check_input_references(with_image("../x.png"), {}, tmp_path)
    assert_names(caught.value.message, IMAGE)
    error = missing_inputs_error(check_input_references(WORKFLOW, {}, tmp_path), tmp_path)
    assert error is not None
    assert_names(error.message, IMAGE)


def test_workflow_urls(tmp_path: Path):
    with pytest.raises(UnsafeInputError) as caught:  # refused before any request
        fetch_workflow_urls(with_image("data:image/png;base64,AAAA"), tmp_path, UrlPolicy(), InputLimits())
    assert_names(caught.value.message, IMAGE)
    with pytest.raises(UnsafeInputError) as caught:
        fetch_workflow_urls(with_image("http://127.0.0.1:9/a.png"), tmp_path, UrlPolicy(), InputLimits())
    assert_names(caught.value.message, IMAGE)


def test_execution_error_from_comfyui():
    error = execution_error({"node_id": "7", "exception_type": "ValueError", "exception_message": "bad"}, WORKFLOW)
    assert_names(error.message, NODE)
    assert error.message.startswith(NODE.describe() + " failed: ValueError: bad")


def test_validation_error_from_comfyui():
    payload = {"error": {"message": "Prompt outputs failed validation"},
               "node_errors": {"7": {"class_type": "LoadImage", "errors": [
                   {"message": "Invalid image file", "details": "image - photo.png", "extra_info": {"input_name": "image"}},
                   {"message": "Something else", "details": "", "extra_info": {}}]}}}
    error = validation_error(payload, WORKFLOW)
    assert_names(error.message, IMAGE)
    assert f"- {NODE.describe()}: Something else" in error.message


def test_weight_refs():
    workflow = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nowhere.safetensors"},
                      "_meta": {"title": "My model"}}}
    object_info = json.loads((REPO / "tests" / "fixtures" / "object_info_subset.json").read_text())
    refs = find_weights(workflow, Manifest.load(REPO / "weights_manifest.json"), object_info, core_folder_for,
                        lambda _name: False)
    error = refs.error()
    assert isinstance(error, UnknownWeightError)
    assert_names(error.message, NodeInput("4", "CheckpointLoaderSimple", "My model", "ckpt_name"))


def test_workflow_shape_and_node_problems():
    broken = with_image("photo.png")
    broken["9"]["inputs"]["images"] = ["42", 0]
    with pytest.raises(WorkflowError) as caught:
        check_shape(broken)
    assert_names(caught.value.message, NodeInput("9", "SaveImage", "", "images"))
    assert NodeInput("42").describe() + ", which is not in the workflow" in caught.value.message
    problem = NodeProblem("7", "LoadImage", TITLE, "unsupported", "refused here")
    assert problem.describe() == f"{NODE.describe()}: refused here"


def test_plan_report_and_its_budget_error():
    from comfyui_wrapper.plan import InputItem, Plan, UrlItem, WeightItem

    plan = Plan(node_count=2, output_nodes=["9"],
                inputs=[InputItem("7", "LoadImage", "image", "photo.png", "file", False)],
                weights=[WeightItem("4", "CheckpointLoaderSimple", "ckpt_name", "m.safetensors", "checkpoints", "unknown")],
                urls=[UrlItem("7\n  - present", "image", "https://example.com/a.png", "input")])
    report = plan.report()
    assert f"[{NodeInput('7', 'LoadImage', '', 'image').describe()}]" in report
    assert f"[{NodeInput('4', 'CheckpointLoaderSimple', '', 'ckpt_name').describe()}]" in report
    assert "[node 7\\n  - present, input 'image']" in report  # a forged id stays on its line
