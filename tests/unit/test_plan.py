"""The pre-flight plan through its injected context: no ComfyUI, no network, a tmp input/ folder.

make_plan consults only what PlanContext hands it (node definitions, manifest, the folder
map, the cache, the disk), so each case below builds that context and checks what the plan
lists and which problems it reports, all at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pytest

from comfyui_wrapper.errors import (
    CacheBudgetError,
    MissingInputError,
    PreflightError,
    UnknownNodeError,
    UnknownWeightError,
    UnsafeInputError,
    WorkflowError,
)
from comfyui_wrapper.plan import PlanContext, make_plan
from comfyui_wrapper.weights.declared import EmbeddedModel
from comfyui_wrapper.weights.manifest import Manifest
from comfyui_wrapper.weights.refs import core_folder_for

REPO = Path(__file__).resolve().parents[2]
OBJECT_INFO = json.loads((REPO / "tests" / "fixtures" / "object_info_subset.json").read_text())
CDN = "https://cdn.example/weights"
SECRET = "hf_s3cr3t_t0ken"

MANIFEST = Manifest.from_json({"schema_version": 1, "weights": [
    {"name": "base.safetensors", "folder": "checkpoints", "url": f"{CDN}/base.safetensors", "archive": "file",
     "size": 6 * 2**30},
    {"name": "style.safetensors", "folder": "loras", "url": f"{CDN}/style.safetensors", "archive": "file",
     "size": 200 * 2**20},
    {"name": "ae.safetensors", "folder": "vae", "url": f"{CDN}/ae.safetensors", "archive": "file"},
]})


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": class_type}}


def img2img(image: str = "cat.png", ckpt: str = "base.safetensors") -> dict[str, Any]:
    return {
        "1": node("CheckpointLoaderSimple", ckpt_name=ckpt),
        "2": node("LoraLoader", lora_name="style.safetensors", model=["1", 0], clip=["1", 1],
                  strength_model=1.0, strength_clip=1.0),
        "3": node("LoadImage", image=image),
        "4": node("CLIPTextEncode", text="a cat", clip=["2", 1]),
        "5": node("KSampler", seed=7, steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
                  model=["2", 0], positive=["4", 0], negative=["4", 0], latent_image=["3", 0]),
        "6": node("VAEDecode", samples=["5", 0], vae=["1", 2]),
        "7": node("SaveImage", filename_prefix="out", images=["6", 0]),
    }


class Disk:
    """The cache and model folders the plan asks about, recording every question."""

    def __init__(self, cached: Sequence[str] = ()) -> None:
        self.cached = set(cached)
        self.asked: list[str] = []

    def on_disk(self, name: str) -> bool:
        self.asked.append(name)
        return False

    def cached_names(self, specs: Sequence[Any]) -> set[str]:
        self.asked += [spec.name for spec in specs]
        return {spec.name for spec in specs if spec.name in self.cached}


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


def context(folder: Path, disk: Disk, **overrides: Any) -> PlanContext:
    fields: dict[str, Any] = dict(object_info=OBJECT_INFO, manifest=MANIFEST, folder_for=core_folder_for,
                                  on_disk=disk.on_disk, cached_names=disk.cached_names, input_dir=folder)
    return PlanContext(**(fields | overrides))


def test_a_ready_workflow_lists_weights_inputs_and_seeds(input_dir: Path) -> None:
    disk = Disk(cached=["base.safetensors"])
    plan = make_plan(img2img(), context(input_dir, disk))
    assert plan.can_run and plan.errors == []
    assert plan.output_nodes == ["7"] and plan.node_count == 7
    status = {(w.node_id, w.name): (w.status, w.folder, w.size) for w in plan.weights}
    assert status == {("1", "base.safetensors"): ("cached", "checkpoints", None),
                      ("2", "style.safetensors"): ("download", "loras", 200 * 2**20)}
    assert plan.download_bytes == 200 * 2**20 and plan.download_unknown_sizes == 0
    assert [(i.node_id, i.input_name, i.path, i.kind, i.present) for i in plan.inputs] == \
        [("3", "image", "cat.png", "file", True)]
    assert plan.seeds == [("5", "seed")]
    assert make_plan(img2img(), context(input_dir, disk), randomise_seeds=False).seeds == []
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["can_run"] is True and data["disk"]["download_bytes"] == 200 * 2**20
    assert "Ready to run." in plan.report()


def test_every_problem_is_reported_at_once(input_dir: Path) -> None:
    workflow = img2img(image="dog.png", ckpt="bse.safetensors")
    workflow["8"] = node("NoSuchNode", x=1)
    plan = make_plan(workflow, context(input_dir, Disk(), budget_bytes=2**20))
    kinds = {type(error) for error in plan.errors}
    assert kinds == {UnknownNodeError, UnknownWeightError, MissingInputError, CacheBudgetError}
    assert [p.class_type for p in plan.node_problems] == ["NoSuchNode"]
    unknown = [w for w in plan.weights if w.status == "unknown"]
    assert [(w.name, w.suggestions) for w in unknown] == [("bse.safetensors", ("base.safetensors",))]
    assert [i.present for i in plan.inputs] == [False]
    with pytest.raises(PreflightError) as raised:
        plan.raise_for_problems()
    assert raised.value.errors == plan.errors
    for error in plan.errors:
        assert error.message in str(raised.value)
    assert "Cannot run: 4 problem(s)" in plan.report()


def test_the_budget_error_names_the_largest_weights_first(input_dir: Path) -> None:
    workflow = img2img()
    workflow["9"] = node("VAELoader", vae_name="ae.safetensors")  # unknown size: not counted in bytes
    plan = make_plan(workflow, context(input_dir, Disk(), budget_bytes=2**30))
    assert plan.download_bytes == 6 * 2**30 + 200 * 2**20 and plan.download_unknown_sizes == 1
    [error] = plan.errors
    assert isinstance(error, CacheBudgetError)
    assert error.needed_bytes == plan.download_bytes and error.budget_bytes == 2**30
    assert error.message.index("base.safetensors") < error.message.index("style.safetensors")


def test_a_path_out_of_input_stops_the_plan_before_any_disk_lookup(input_dir: Path) -> None:
    disk = Disk()
    plan = make_plan(img2img(image="../../etc/passwd"), context(input_dir, disk))
    [error] = plan.errors
    assert isinstance(error, UnsafeInputError) and error.node_id == "3"
    assert plan.weights == [] and plan.inputs == [] and disk.asked == []


def test_urls_are_listed_redacted(input_dir: Path) -> None:
    workflow = img2img(image=f"https://media.example/cat.png?token={SECRET}")
    workflow["2"]["inputs"]["lora_name"] = f"https://user:{SECRET}@cdn.example/lora.safetensors?sig={SECRET}"
    plan = make_plan(workflow, context(input_dir, Disk(cached=["base.safetensors"])))
    assert sorted((u.node_id, u.purpose) for u in plan.urls) == [("2", "weight"), ("3", "input")]
    assert [w.status for w in plan.weights if w.node_id == "2"] == ["url"]
    assert SECRET not in json.dumps(plan.as_dict()) and SECRET not in plan.report()


def test_a_ui_workflows_declared_model_url_fills_an_unknown_weight(input_dir: Path) -> None:
    workflow = img2img(ckpt="declared.safetensors")
    embedded = [EmbeddedModel("declared.safetensors", f"{CDN}/declared.safetensors", "checkpoints", "1"),
                EmbeddedModel("other.safetensors", f"{CDN}/other.safetensors", "../escape", "9")]
    plan = make_plan(workflow, context(input_dir, Disk(), embedded_models=embedded), converted_from_ui=True)
    assert plan.can_run, plan.errors
    [item] = [w for w in plan.weights if w.node_id == "1"]
    assert (item.status, item.folder, item.url) == ("url", "checkpoints", f"{CDN}/declared.safetensors")
    assert plan.weight_refs is not None and plan.weight_refs.rewrites[0].node_id == "1"
    assert plan.as_dict()["converted_from_ui"] is True


@pytest.mark.parametrize("directory, status, folder", [
    ("upscale_models", "url", "upscale_models"),
    ("../upscale_models", "unknown", None),
    ("loras/sub", "unknown", None),
    (".cache", "unknown", None),
])
def test_a_declared_model_directory_is_used_only_when_it_is_one_plain_folder(
        input_dir: Path, directory: str, status: str, folder: str | None) -> None:
    """A pack input the folder map does not know takes its folder from the UI workflow, which is the user's."""
    info = OBJECT_INFO | {"PackLoader": {"input": {"required": {"model": ["STRING", {}]}}, "output": ["MODEL"]}}
    workflow = {"1": node("PackLoader", model="x4.safetensors"), "2": node("SaveImage", images=["1", 0])}
    embedded = [EmbeddedModel("x4.safetensors", f"{CDN}/x4.safetensors", directory, "1")]
    plan = make_plan(workflow, context(input_dir, Disk(), object_info=info, embedded_models=embedded))
    assert [(w.status, w.folder) for w in plan.weights] == [(status, folder)]
    assert plan.can_run is (status == "url")


def test_a_workflow_without_an_output_node_cannot_run(input_dir: Path) -> None:
    workflow = {"1": node("CheckpointLoaderSimple", ckpt_name="base.safetensors")}
    plan = make_plan(workflow, context(input_dir, Disk(cached=["base.safetensors"])))
    [error] = plan.errors
    assert type(error) is WorkflowError and "no output node" in error.message


def test_without_an_input_folder_inputs_are_not_looked_up(input_dir: Path) -> None:
    plan = make_plan(img2img(image="dog.png"), context(input_dir, Disk(cached=["base.safetensors"]), input_dir=None))
    assert plan.inputs == [] and plan.can_run


def test_free_disk_is_measured_at_the_nearest_existing_folder(input_dir: Path) -> None:
    weights_dir = input_dir.parent / "not" / "yet" / "there"
    plan = make_plan(img2img(), context(input_dir, Disk(), weights_dir=weights_dir))
    assert plan.free_bytes is not None and plan.free_bytes > 0 and not weights_dir.exists()
