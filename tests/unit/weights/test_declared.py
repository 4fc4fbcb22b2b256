"""Models declared in UI workflows (properties.models): the plan finds them, and uses their URLs.

The shipped ComfyUI templates list, on each loader node, the model files they
need. Over every usable template, the plan (run on the frontend-exact API
conversion) must find each declared model among its weights — that is the
recall figure reported in the README.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from comfyui_wrapper.plan import PlanContext, make_plan
from comfyui_wrapper.settings import REPO_ROOT
from comfyui_wrapper.ui.convert import convert
from comfyui_wrapper.weights.declared import embedded_models
from comfyui_wrapper.weights.manifest import Manifest
from comfyui_wrapper.weights.refs import core_folder_for
from tests.unit.ui.test_convert import EXPECTED, FIXTURES, load_input

TEMPLATES = [p for p in EXPECTED if p.stem.startswith("template__")]


@pytest.fixture(scope="module")
def object_info():
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as handle:
        return json.loads(handle.read())


@pytest.fixture(scope="module")
def context(object_info):
    return PlanContext(object_info=object_info, manifest=Manifest.load(REPO_ROOT / "weights_manifest.json"),
                       folder_for=core_folder_for, on_disk=lambda name: False, cached_names=lambda specs: set())


def plan_for(path: Path, context: PlanContext, object_info):
    """The plan of a template, and the declared models its API workflow really uses.

    Templates also declare models of bypassed or muted nodes (an optional LoRA, an
    alternative checkpoint); those never reach the API workflow and are not needed.
    """
    fixture = json.loads(path.read_text())
    ui = load_input(fixture)
    if "error" in fixture:
        return None, []
    api = convert(ui, object_info)
    values = {v for node in api.values() for v in node["inputs"].values() if isinstance(v, str)}
    models = embedded_models(ui)
    plan = make_plan(api, PlanContext(**{**context.__dict__, "embedded_models": tuple(models)}))
    return plan, [m for m in models if m.name in values]


def test_plan_recall_of_declared_models_over_shipped_templates(context, object_info):
    declared = found = 0
    missed: list[str] = []
    for path in TEMPLATES:
        plan, models = plan_for(path, context, object_info)
        if plan is None:
            continue
        names = {w.name for w in plan.weights} | {w.url for w in plan.weights if w.url}
        for model in models:
            declared += 1
            if model.name in names or (model.url and model.url in names) or any(
                    n.endswith("/" + model.name) for n in names if n):
                found += 1
            else:
                missed.append(f"{path.stem}: {model.name}")
    recall = found / declared
    print(f"declared models: {declared}, found by the plan: {found}, recall {recall:.3f}")
    assert declared > 250
    assert recall == 1.0, missed[:20]


def test_declared_urls_make_unknown_names_downloadable(context, object_info):
    for path in TEMPLATES:
        plan, models = plan_for(path, context, object_info)
        if plan is None or not any(m.url for m in models):
            continue
        url_items = [w for w in plan.weights if w.status == "url"]
        unknown = {w.name for w in plan.weights if w.status == "unknown"}
        declared_with_url = {m.name for m in models if m.url}
        assert not (unknown & declared_with_url), path.stem
        if url_items:
            assert all(w.folder for w in url_items)
            return
    pytest.fail("no template had a declared model outside the manifest")


@pytest.mark.parametrize("directory", ["loras/../../etc", "../outside", ".cache", "a\\b", ""])
def test_a_declared_directory_that_is_not_a_plain_folder_is_not_used(context, directory):
    """The directory comes from the user's JSON: only a plain folder name may choose where a URL
    weight is stored (the cache refuses anything else with a bare ValueError at download time)."""
    from comfyui_wrapper.weights.declared import EmbeddedModel

    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "mystery_v1.safetensors"}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    declared = EmbeddedModel("mystery_v1.safetensors", "https://example.com/mystery_v1.safetensors", directory, "1")
    no_folder = PlanContext(**{**context.__dict__, "folder_for": lambda class_type, name: None,
                               "embedded_models": (declared,)})
    plan = make_plan(api, no_folder)
    assert plan.weight_refs.urls == ()
    assert [w.status for w in plan.weights] == ["unknown"]
    # A plain folder name is still honoured.
    ok = PlanContext(**{**no_folder.__dict__, "embedded_models": (
        EmbeddedModel(declared.name, declared.url, "checkpoints", "1"),)})
    assert [u.folder for u in make_plan(api, ok).weight_refs.urls] == ["checkpoints"]
