"""new-model: a workflow becomes its own typed Cog model (unit tests without ComfyUI, then e2e through Cog)."""

from __future__ import annotations

import ast
import base64
import gzip
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
from PIL import Image

from comfyui_wrapper import new_model
from comfyui_wrapper.cli import main
from comfyui_wrapper.errors import ModelInputError
from comfyui_wrapper.workflow import EXAMPLE_WORKFLOW
from tests.support.cog_server import cog_server
from tests.support.weights_cdn import EXAMPLE_CHECKPOINT, local_cdn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OBJECT_INFO = FIXTURES / "object_info_subset.json"
UI_CASE = FIXTURES / "ui_oracle" / "cases" / "dict_widgets_values.json"
EXAMPLE_FLAGS = ["prompt=6.text:The prompt", "seed=3.seed", "width=5.width", "height=5.height", "steps=3.steps"]
INVERT_WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Photo"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
}


@pytest.fixture(scope="module")
def full_info(tmp_path_factory) -> Path:
    """The UI oracle's /object_info dump: every core node (the subset lacks ImageInvert)."""
    path = tmp_path_factory.mktemp("info") / "object_info.json"
    path.write_bytes(gzip.decompress((FIXTURES / "ui_oracle" / "object_info.json.gz").read_bytes()))
    return path


@pytest.fixture(autouse=True)
def private_runtime(tmp_path, monkeypatch):
    """Generation plans the workflow; keep its runtime folders out of the checkout."""
    monkeypatch.setenv("CW_RUNTIME_DIR", str(tmp_path / "gen-runtime"))


def generate(tmp: Path, workflow: str | Path, *flags: str, object_info: Path = OBJECT_INFO,
             extra: tuple[str, ...] = ()) -> tuple[int, Path]:
    out = tmp / "model"
    argv = ["new-model", str(workflow), "--out", str(out), "--object-info", str(object_info), *extra]
    for flag in flags:
        argv += ["--input", flag]
    return main(argv), out


def predict_inputs(predict_py: Path) -> dict[str, dict[str, ast.expr]]:
    """Each predict() parameter's Input(...) keyword arguments, from the source (as Cog's static reader sees it)."""
    tree = ast.parse(predict_py.read_text())
    [predict] = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "predict"]
    args = predict.args.args[1:]
    defaults = predict.args.defaults
    assert len(args) == len(defaults)
    result = {}
    for arg, default in zip(args, defaults):
        assert isinstance(default, ast.Call) and getattr(default.func, "id", None) == "Input"
        result[arg.arg] = {kw.arg: kw.value for kw in default.keywords}
    return result


def assert_static_rules(predict_py: Path) -> None:
    """Cog's static rules: description one plain string literal, default a literal, choices a list of
    literals, ge/le number literals."""
    for name, kwargs in predict_inputs(predict_py).items():
        description = kwargs["description"]
        assert isinstance(description, ast.Constant) and isinstance(description.value, str), name
        if "default" in kwargs:
            assert isinstance(kwargs["default"], ast.Constant), name
        if "choices" in kwargs:
            assert isinstance(kwargs["choices"], ast.List), name
            assert all(isinstance(e, ast.Constant) for e in kwargs["choices"].elts), name
        for bound in ("ge", "le"):
            if bound in kwargs:
                value = kwargs[bound]
                assert isinstance(value, ast.Constant) and isinstance(value.value, (int, float)), name
    # The build's own checker: reads predict.py as the Cog CLI does (tree-sitter) and compares it with
    # the generated project's committed schema.
    checker = ROOT / "scripts" / "check_cog_static.py"
    schema = predict_py.parent / ".cog" / "openapi_schema.json"
    result = subprocess.run([sys.executable, str(checker), "--predict", str(predict_py), "--schema", str(schema)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def schema_inputs(out: Path) -> tuple[dict, dict]:
    schema = json.loads((out / ".cog" / "openapi_schema.json").read_text())
    schemas = schema["components"]["schemas"]
    return schemas["Input"]["properties"], schemas


# --- unit: flags, types, errors ---------------------------------------------------------------


def example_workflow() -> dict:
    return json.loads(EXAMPLE_WORKFLOW.read_text())


def object_info() -> dict:
    return json.loads(OBJECT_INFO.read_text())


def test_flag_parsing():
    flag = new_model.parse_input_flag("neg=7.text:What to avoid: blur")
    assert (flag.name, flag.node_id, flag.input_name, flag.description) == ("neg", "7", "text", "What to avoid: blur")
    sub = new_model.parse_input_flag("steps=12:3.steps")  # subgraph node ids hold a colon
    assert (sub.node_id, sub.input_name) == ("12:3", "steps")
    with pytest.raises(ModelInputError, match="NAME=NODE_ID.INPUT"):
        new_model.parse_input_flag("prompt6text")


def test_types_ranges_and_choices_come_from_object_info():
    workflow, info = example_workflow(), object_info()
    typed = {f.name: new_model.type_input(f, workflow, info) for f in map(new_model.parse_input_flag, [
        "prompt=6.text", "seed=3.seed", "cfg=3.cfg", "sampler=3.sampler_name", "width=5.width"])}
    assert typed["prompt"].py_type == "str" and typed["prompt"].default.startswith("photograph of a lighthouse")
    assert "CLIP Text Encode" in typed["prompt"].description and "node 6" in typed["prompt"].description
    assert (typed["seed"].py_type, typed["seed"].ge, typed["seed"].le) == ("int", 0, 2**64 - 1)
    assert (typed["cfg"].py_type, typed["cfg"].default, typed["cfg"].ge, typed["cfg"].le) == ("float", 8.0, 0.0, 100.0)
    assert typed["sampler"].py_type == "str" and "dpmpp_2m" in typed["sampler"].choices
    assert typed["sampler"].default == "euler"
    assert (typed["width"].ge, typed["width"].le, typed["width"].default) == (16, 16384, 512)
    image = new_model.type_input(new_model.parse_input_flag("photo=1.image"), INVERT_WORKFLOW, info)
    assert image.py_type == "Path" and image.kind == "path" and image.default is None


def test_suggestions_for_the_example():
    flags = new_model.suggest_inputs(example_workflow(), object_info())
    assert [(f.name, f.node_id, f.input_name) for f in flags] == [
        ("prompt", "6", "text"), ("negative_prompt", "7", "text"), ("seed", "3", "seed"),
        ("steps", "3", "steps"), ("width", "5", "width"), ("height", "5", "height")]
    assert [f.name for f in new_model.suggest_inputs(INVERT_WORKFLOW, object_info())] == ["image"]


@pytest.mark.parametrize("flag, message", [
    ("prompt=99.text", "has no node 99."),
    ("prompt=6.txt", "input 'txt' does not exist. Its inputs: text, clip (linked)"),
    ("model=3.model", "is linked to output 0 of node 4 \"Load Checkpoint\" (CheckpointLoaderSimple); only literal inputs can be exposed"),
    ("2prompt=6.text", "not usable as a Python parameter name"),
    ("class=6.text", "not usable as a Python parameter name"),
    ("output_format=6.text", "clashes with a standard input"),
])
def test_bad_inputs_are_refused_and_nothing_is_written(tmp_path, capsys, flag, message):
    status, out = generate(tmp_path, "example", flag)
    err = capsys.readouterr().err
    assert status == 1 and message in err and "How to fix:" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")], "no staging folder left behind"


def test_duplicate_names_and_targets_are_refused():
    info, workflow = object_info(), example_workflow()
    with pytest.raises(ModelInputError, match="given twice"):
        new_model.check_names([new_model.parse_input_flag(f) for f in ("a=6.text", "a=7.text")])
    with pytest.raises(ModelInputError, match="both set 6.text"):
        new_model.check_names([new_model.parse_input_flag(f) for f in ("a=6.text", "b=6.text")])
    assert isinstance(new_model.type_input(new_model.parse_input_flag("s=3.steps"), workflow, info).default, int)


def test_an_existing_non_empty_out_folder_is_left_alone(tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    status, _ = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    assert status == 1 and "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failure_after_staging_leaves_nothing(tmp_path, monkeypatch):
    def broken(project: Path) -> None:
        raise ModelInputError("schema writer failed")

    monkeypatch.setattr(new_model, "write_schema", broken)
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    assert status == 1 and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]


# --- unit: the project folder --------------------------------------------------------------------


def test_generated_project_from_the_example(tmp_path, capsys):
    began = time.monotonic()
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    seconds = time.monotonic() - began
    assert status == 0, capsys.readouterr().err
    print(f"generation took {seconds:.2f} s")
    for name in ("predict.py", "cog.yaml", "README.md", "custom_nodes.json", "workflow_api.json", "weights.json",
                 "weights_manifest.json", ".cog/openapi_schema.json", "comfyui_wrapper/runner.py",
                 "scripts/write_openapi_schema.py", "requirements/constraints.txt"):
        assert (out / name).exists(), name
    assert not list(out.rglob("__pycache__"))
    assert_static_rules(out / "predict.py")
    props, schemas = schema_inputs(out)
    assert list(props) == ["prompt", "seed", "width", "height", "steps", "output_format", "output_quality",
                           "randomise_seeds"]
    assert props["prompt"]["type"] == "string" and props["prompt"]["description"] == "The prompt"
    assert props["width"]["type"] == "integer" and (props["width"]["minimum"], props["width"]["maximum"]) == (16, 16384)
    assert props["seed"]["type"] == "integer" and props["seed"]["default"] == 156680208700286
    assert props["randomise_seeds"]["default"] is False, "an exposed seed is used as given unless asked"
    assert schemas["output_format"]["enum"] == ["webp", "jpg", "png"]
    assert json.loads((out / "weights.json").read_text())["weights"] == [
        {"name": EXAMPLE_CHECKPOINT, "folder": "checkpoints", **_size_of(EXAMPLE_CHECKPOINT)}]
    assert json.loads((out / "custom_nodes.json").read_text())["packs"] == []
    readme = (out / "README.md").read_text()
    assert "replicate.run(" in readme and '"prompt": "photograph of a lighthouse' in readme
    # The schema is what the project's own writer makes from this predict.py.
    check = subprocess.run([sys.executable, "scripts/write_openapi_schema.py", "--check"], cwd=out,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    # The image build's wheel is the project's own: it carries the trimmed custom_nodes.json.
    wheel = subprocess.run([sys.executable, "scripts/build_image_wheel.py", "--check", "--root", str(out)], cwd=out,
                           capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stderr
    with zipfile.ZipFile(next((out / "requirements" / "wheels").glob("cw_build-*.whl"))) as packed:
        assert json.loads(packed.read("cw_build/custom_nodes.json"))["packs"] == []


def _size_of(name: str) -> dict:
    from comfyui_wrapper.settings import Settings
    from comfyui_wrapper.weights.manifest import Manifest

    spec = Manifest.load(Settings.from_env().manifest_path).get(name)
    return {"size": spec.size} if spec and spec.size else {}


def test_generated_model_imports_only_its_own_copy(tmp_path):
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    assert status == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", "import predict, comfyui_wrapper; print(comfyui_wrapper.__file__)"],
                           cwd=out, env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).resolve().is_relative_to(out.resolve())


def test_suggested_set_is_printed_and_used(tmp_path, capsys):
    status, out = generate(tmp_path, "example")
    err = capsys.readouterr().err
    assert status == 0
    assert "--input prompt=6.text" in err and "--input negative_prompt=7.text" in err and "--input seed=3.seed" in err
    assert list(predict_inputs(out / "predict.py"))[:6] == ["prompt", "negative_prompt", "seed", "steps", "width",
                                                            "height"]


def ui_workflow(tmp: Path) -> Path:
    """A UI-format workflow (as ComfyUI's Save writes it) whose checkpoint the test CDN serves."""
    path = tmp / "ui_workflow.json"
    path.write_text(UI_CASE.read_text().replace("sd15.safetensors", EXAMPLE_CHECKPOINT))
    return path


def test_generation_from_a_ui_format_workflow(tmp_path, capsys, full_info):
    status, out = generate(tmp_path, ui_workflow(tmp_path), object_info=full_info)
    assert status == 0, capsys.readouterr().err
    stored = json.loads((out / "workflow_api.json").read_text())
    assert all("class_type" in node for node in stored.values()), "stored in API format"
    assert_static_rules(out / "predict.py")
    props, _ = schema_inputs(out)
    assert {"prompt", "seed"} <= set(props)
    assert props["seed"]["type"] == "integer"


def test_loadimage_model_takes_a_path(tmp_path, full_info):
    workflow = tmp_path / "invert.json"
    workflow.write_text(json.dumps(INVERT_WORKFLOW))
    status, out = generate(tmp_path, workflow, "photo=1.image:The photo to invert", object_info=full_info)
    assert status == 0
    props, schemas = schema_inputs(out)
    assert props["photo"]["type"] == "string" and props["photo"]["format"] == "uri"
    assert "photo" in schemas["Input"]["required"]
    assert props["randomise_seeds"]["default"] is True, "no seed exposed: seeds vary as in the main model"


def test_custom_nodes_json_keeps_only_the_packs_used(tmp_path, full_info):
    info = json.loads(full_info.read_text())
    info["FaceDetailer"] = {**info["ImageInvert"], "python_module": "custom_nodes.ComfyUI-Impact-Pack"}
    info_path = tmp_path / "info.json"
    info_path.write_text(json.dumps(info))
    workflow = {**json.loads(json.dumps(INVERT_WORKFLOW))}
    workflow["2"] = {"class_type": "FaceDetailer", "inputs": {"image": ["1", 0]}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow))
    status, out = generate(tmp_path, path, "photo=1.image", object_info=info_path)
    assert status == 0
    assert [p["name"] for p in json.loads((out / "custom_nodes.json").read_text())["packs"]] == ["ComfyUI-Impact-Pack"]


# e2e: the local CDN serves the generated test checkpoint (450 MB; made with ComfyUI's code when absent)
@pytest.mark.e2e
def test_bake_weights_fetches_them_into_the_project_cache(tmp_path, capsys):
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS, extra=("--bake-weights",))
    assert status == 0, capsys.readouterr().err
    assert "!.cache/weights/" in (out / ".dockerignore").read_text()
    with local_cdn(tmp_path / "cdn") as (control, manifest):
        env = {**os.environ, "CW_WEIGHTS_MANIFEST": str(manifest), "CW_ALLOW_PRIVATE_URLS": "1"}
        env.pop("CW_WEIGHTS_DIR", None)
        baked = subprocess.run([sys.executable, "bake_weights.py"], cwd=out, env=env, capture_output=True, text=True)
        assert baked.returncode == 0, baked.stderr
        assert control.requests[f"/direct/{EXAMPLE_CHECKPOINT}"] >= 1
        assert (out / ".cache" / "weights" / "checkpoints" / EXAMPLE_CHECKPOINT).is_file()
        before = sum(control.requests.values())
        again = subprocess.run([sys.executable, "bake_weights.py"], cwd=out, env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "1 already cached" in again.stderr
        assert sum(control.requests.values()) == before


# --- end to end: the generated model under the real Cog server ------------------------------------


def png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def output_image(body: dict) -> Image.Image:
    [uri] = body["output"]
    return Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2])))


def output_bytes(body: dict) -> bytes:
    """The pixels (the PNG's metadata names the run, so the files always differ)."""
    return output_image(body).convert("RGB").tobytes()


def model_env(tmp: Path, manifest: Path | None = None) -> dict[str, str]:
    (tmp / "cog").mkdir(exist_ok=True)
    env = {"CW_COMFYUI_DIR": str(ROOT / "ComfyUI"), "CW_ALLOW_PRIVATE_URLS": "1"}
    if manifest is not None:
        env["CW_WEIGHTS_MANIFEST"] = str(manifest)
    return env


@pytest.mark.e2e
def test_example_model_under_cog(tmp_path, capsys):
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    assert status == 0, capsys.readouterr().err
    with local_cdn(tmp_path / "cdn") as (control, manifest):
        began = time.monotonic()
        with cog_server(tmp_path / "cog", env=model_env(tmp_path, manifest), root=out) as server:
            setup_seconds = time.monotonic() - began
            assert server.health()["status"] == "READY", server.log()[-3000:]
            print(f"generated model: ready after {setup_seconds:.1f} s (setup incl. weight download)")
            assert control.requests[f"/direct/{EXAMPLE_CHECKPOINT}"] >= 1, "setup fetched the weight"
            assert "1 weight(s) downloaded" in server.log()
            after_setup = sum(control.requests.values())

            schema = requests.get(f"{server.base_url}/openapi.json", timeout=10).json()
            props = schema["components"]["schemas"]["Input"]["properties"]
            assert props["width"]["type"] == "integer" and props["width"]["minimum"] == 16
            assert props["seed"]["type"] == "integer" and props["prompt"]["type"] == "string"
            refused = server.post({"width": 8})
            assert refused.status_code == 422, refused.text

            small = {"width": 64, "height": 64, "steps": 2, "seed": 42, "output_format": "png"}
            first = server.post({**small, "prompt": "a red apple"}).json()
            assert first["status"] == "succeeded", first.get("error")
            assert output_image(first).size == (64, 64)
            same = server.post({**small, "prompt": "a red apple"}).json()
            assert output_bytes(same) == output_bytes(first), "same seed and prompt give the same image"
            other = server.post({**small, "prompt": "a blue car at night"}).json()
            assert other["status"] == "succeeded" and output_bytes(other) != output_bytes(first)
            assert first["metrics"]["weights_downloaded"] == 0 and first["metrics"]["weights_cache_hits"] == 1
            assert sum(control.requests.values()) == after_setup, "predictions download nothing"


@pytest.mark.e2e
def test_ui_format_model_under_cog(tmp_path, capsys, full_info):
    status, out = generate(tmp_path, ui_workflow(tmp_path), object_info=full_info)
    assert status == 0, capsys.readouterr().err
    props, _ = schema_inputs(out)
    with local_cdn(tmp_path / "cdn") as (control, manifest):
        with cog_server(tmp_path / "cog", env=model_env(tmp_path, manifest), root=out) as server:
            assert server.health()["status"] == "READY", server.log()[-3000:]
            small = {k: v for k, v in {"width": 64, "height": 64, "steps": 1}.items() if k in props}
            body = server.post({**small, "prompt": "a lighthouse", "output_format": "png"}).json()
            assert body["status"] == "succeeded", body.get("error")
            assert control.requests[f"/direct/{EXAMPLE_CHECKPOINT}"] >= 1
            assert body["metrics"]["weights_downloaded"] == 0


@pytest.mark.e2e
def test_loadimage_model_under_cog_uses_the_uploaded_image(tmp_path, capsys, full_info):
    workflow = tmp_path / "invert.json"
    workflow.write_text(json.dumps(INVERT_WORKFLOW))
    status, out = generate(tmp_path, workflow, "photo=1.image:The photo to invert", object_info=full_info)
    assert status == 0, capsys.readouterr().err
    with cog_server(tmp_path / "cog", env=model_env(tmp_path), root=out) as server:
        assert server.health()["status"] == "READY", server.log()[-3000:]
        photo = Image.new("RGB", (12, 8), (10, 200, 30))
        body = server.post({"photo": png_data_uri(photo), "output_format": "png"}).json()
        assert body["status"] == "succeeded", body.get("error")
        result = output_image(body).convert("RGB")
        assert result.size == (12, 8)
        assert all(abs(got - want) <= 2 for got, want in zip(result.getpixel((3, 3)), (245, 55, 225))), \
            "the output is the uploaded photo, inverted"
        missing = server.post({"output_format": "png"})
        assert missing.status_code == 422
        # A path on the server is never read, whether it exists or not (cog.types.Path would make one of it).
        for server_path in ("/etc/hostname", "/nonexistent/secret.png"):
            refused = server.post({"photo": server_path, "output_format": "png"}).json()
            assert refused["status"] == "failed" and "a path on the server is refused" in refused["error"]


# e2e: the local CDN serves the generated test checkpoint (450 MB; made with ComfyUI's code when absent)
@pytest.mark.e2e
def test_weights_given_by_url_are_listed_and_fetched_once(tmp_path, capsys):
    """A loader given a URL: weights.json lists it, and setup's fetch downloads it once (local CDN)."""
    from comfyui_wrapper.model_runtime import fetch_listed_weights
    from comfyui_wrapper.weights.cache import WeightCache
    from comfyui_wrapper.weights.manifest import Manifest
    from tests.conftest import base_settings

    with local_cdn(tmp_path / "cdn") as (control, manifest_path):
        url = f"{control.base_url}/direct/{EXAMPLE_CHECKPOINT}"
        workflow = example_workflow()
        workflow["4"]["inputs"]["ckpt_name"] = url
        path = tmp_path / "by_url.json"
        path.write_text(json.dumps(workflow))
        status, out = generate(tmp_path, path, *EXAMPLE_FLAGS)
        assert status == 0, capsys.readouterr().err
        listing = json.loads((out / "weights.json").read_text())
        assert listing == {"weights": [], "urls": [{"url": url, "folder": "checkpoints"}]}
        assert json.loads((out / "workflow_api.json").read_text())["4"]["inputs"]["ckpt_name"] == url
        manifest = Manifest.load(manifest_path)
        cache = WeightCache(base_settings(tmp_path / "run"), manifest)
        try:
            first = fetch_listed_weights(cache, manifest, out / "weights.json")
            again = fetch_listed_weights(cache, manifest, out / "weights.json")
        finally:
            cache.close()
        assert (first.downloaded, again.downloaded, again.hits) == (1, 0, 1)
        assert control.requests[f"/direct/{EXAMPLE_CHECKPOINT}"] >= 1


def test_model_runtime_sets_values_and_file_names():
    from comfyui_wrapper.errors import WorkflowError
    from comfyui_wrapper.model_runtime import Exposed, WorkflowModel, input_file_name

    model = WorkflowModel.__new__(WorkflowModel)  # the pure part needs no settings or ComfyUI
    model.workflow = json.loads(json.dumps(INVERT_WORKFLOW))
    model.exposed = {"photo": Exposed("1", "image", "path")}
    changed = model.workflow_with({"photo": "/tmp/x.png"}, {"photo": "photo.png"})
    assert changed["1"]["inputs"]["image"] == "photo.png" and model.workflow["1"]["inputs"]["image"] == "example.png"
    with pytest.raises(WorkflowError, match="Unknown input"):
        model.workflow_with({"nope": 1})
    assert input_file_name("photo", Path("/tmp/tmpab12photo.JPG")) == "photo.jpg"
    assert input_file_name("photo", Path("/tmp/weird.p$g")) == "photo"


@pytest.mark.e2e
def test_the_build_rehearsal_passes_on_a_generated_model(tmp_path, capsys):
    """The folder new-model writes builds as an image would: the build rehearsal (cog.yaml replayed in
    Cog's order, externally managed interpreter, the real Cog server from the copy) runs one
    prediction of the generated model, its weight fetched in setup() from the local CDN."""
    status, out = generate(tmp_path, "example", *EXAMPLE_FLAGS)
    assert status == 0, capsys.readouterr().err
    rehearsal = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rehearse_build.py"), "--project", str(out), "--work", str(tmp_path / "r"),
         "--input", json.dumps({"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1, "output_format": "png"})],
        capture_output=True, text=True, timeout=900)
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:] + rehearsal.stderr[-3000:]
    assert "prediction succeeded" in rehearsal.stdout + rehearsal.stderr
