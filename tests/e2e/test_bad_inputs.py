"""The bad-input matrix: every broken or hostile thing a user can send, through the real runner.

Each row of CASES runs one prediction on a shared WorkflowRunner (real ComfyUI,
the misbehaving test nodes, a local weights CDN as its manifest, a local media
host) and checks the four promises a user relies on:

1. the exact error class (not merely a parent class);
2. a message that names the culprit (node id, input, URL, file or entry) and says how to fix it;
3. nothing left behind: input/, output/, temp/, results/ empty, no extraction staging in the
   runtime folder, and in the weight cache no ``*.incomplete``, no staging entry and no new file;
4. the next, ordinary prediction succeeds.

A sample of the rows also goes through the real Cog HTTP server (tests at the end).

Rows that need other settings (private URLs refused, a small weights budget) run under
``settings_variant``, which swaps the runner's settings and what it derives from them for one
prediction: a second ComfyUI would cost ~10 s of boot on this machine.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from PIL import Image

from comfyui_wrapper import workflow as wf
from comfyui_wrapper.errors import (
    CacheBudgetError,
    ChecksumMismatchError,
    ComfyUICrashedError,
    DownloadError,
    ExecutionError,
    InputFileError,
    InputTooLargeError,
    MissingInputError,
    NoOutputsError,
    OutputFormatError,
    PredictionTimeoutError,
    PromptValidationError,
    UIFormatError,
    UnknownNodeError,
    UnknownWeightError,
    UnsafeInputError,
    WeightDownloadError,
    WorkflowError,
    WrapperError,
)
from comfyui_wrapper.inputs.archives import InputLimits
from comfyui_wrapper.runner import RunRequest, WorkflowRunner
from comfyui_wrapper.server.process import cuda_present
from comfyui_wrapper.urls import UrlPolicy
from tests.conftest import base_settings
from tests.e2e.test_reliability import chain, nodes_yaml
from tests.support import bad_payloads as bad
from tests.support.cog_server import CogServer, cog_server
from tests.support.static_server import ServerControl, serve_directory
from tests.support.weights_cdn import EXAMPLE_CHECKPOINT, MODELS_DIR, local_cdn

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

MiB = 1024 * 1024
PREDICTION_TIMEOUT_S = 5.0
STALL_TIMEOUT_S = 3.0
URL_TIMEOUT_S = 2.0
MAX_INPUT_BYTES = 2 * MiB
UPSCALER = "cw-test-compact-2x.safetensors"  # served by the CDN as a tar, size and sha256 learned
PINNED = "cw-test-compact-2x-pinned.safetensors"  # manifest pins the true sha256; the CDN serves other bytes
CACHE_META_KEEP = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm")


# --- the environment every row runs in ---------------------------------------------------------


@dataclass
class Env:
    runner: WorkflowRunner
    cdn: ServerControl  # the weights CDN
    web: ServerControl  # an image host on 127.0.0.1
    spy: ServerControl  # stands where an SSRF target would be; must never see a request
    files: Path  # where rows write their input files
    runtime_entries: set[str] = field(default_factory=set)
    outgoing: list[str] = field(default_factory=list)  # every URL requests was asked for
    scratch: dict[str, Any] = field(default_factory=dict)


@contextmanager
def settings_variant(runner: WorkflowRunner, **changes: Any) -> Iterator[None]:
    """Run with some settings changed: the runner's, its cache's, and the policies built from them."""
    if not changes:
        yield
        return
    saved = (runner.settings, runner.cache.settings, runner.cache.policy, runner.url_policy, runner.limits)
    settings = dataclasses.replace(runner.settings, **changes)
    runner.settings = runner.cache.settings = settings
    runner.cache.policy = UrlPolicy(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s)
    runner.url_policy = UrlPolicy(allow_private=settings.allow_private_urls, timeout_s=settings.url_timeout_s)
    runner.limits = InputLimits.from_settings(settings)
    try:
        yield
    finally:
        runner.settings, runner.cache.settings, runner.cache.policy, runner.url_policy, runner.limits = saved


def _test_model(name: str) -> dict[str, Any]:
    records = json.loads((MODELS_DIR / "test_models.json").read_text())
    return next(r for r in records if r["name"] == name)


def pin_a_corrupt_weight(manifest: Path, cdn_root: Path) -> None:
    """Add PINNED to the manifest with the upscaler's true size and sha256, served corrupted."""
    record = _test_model(UPSCALER)
    data = bytearray((MODELS_DIR / record["folder"] / UPSCALER).read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x5a" * 64  # same size, other bytes
    served = cdn_root / "corrupt" / PINNED
    served.parent.mkdir(parents=True, exist_ok=True)
    served.write_bytes(bytes(data))
    doc = json.loads(manifest.read_text())
    base = doc["weights"][0]["url"].rsplit("/direct/", 1)[0]
    doc["weights"].append({
        "name": PINNED, "folder": "upscale_models", "url": f"{base}/corrupt/{PINNED}", "archive": "file",
        "size": record["size"], "sha256": record["sha256"], "synonyms": [], "mirrors": [], "approx_size": None,
    })
    manifest.write_text(json.dumps(doc, indent=2))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("bad_inputs")
    web_root = tmp / "web"
    web_root.mkdir()
    (web_root / "page.html").write_bytes(bad.html_page())
    bad.big_png(web_root / "big.png", MAX_INPUT_BYTES + MiB)
    (web_root / "ok.png").write_bytes(bad.png_bytes())
    spy_root = tmp / "spy"
    spy_root.mkdir()
    files = tmp / "files"
    files.mkdir()
    with local_cdn(tmp / "cdn") as (cdn, manifest), \
            serve_directory(web_root, hang_paths={"/hang.png"}) as web, \
            serve_directory(spy_root) as spy, \
            pytest.MonkeyPatch.context() as patch:
        pin_a_corrupt_weight(manifest, cdn.root)
        settings = base_settings(
            tmp, extra_model_paths=(nodes_yaml(tmp),), manifest_path=manifest,
            prediction_timeout_s=PREDICTION_TIMEOUT_S, stall_timeout_s=STALL_TIMEOUT_S,
            url_timeout_s=URL_TIMEOUT_S, max_input_bytes=MAX_INPUT_BYTES,
        )
        runner = WorkflowRunner(settings)
        environment = Env(runner, cdn, web, spy, files)
        original = requests.Session.request

        def recording(self, method, url, *args, **kwargs):  # every outbound request, to prove none was made
            environment.outgoing.append(str(url))
            return original(self, method, url, *args, **kwargs)

        patch.setattr(requests.Session, "request", recording)
        runner.start()
        try:
            assert_recovers(environment)  # the baseline works; and ComfyUI has made its folders
            environment.runtime_entries = {p.name for p in settings.runtime_dir.iterdir()}
            yield environment
        finally:
            runner.stop()


# --- what every row checks ----------------------------------------------------------------------


def weight_files(root: Path) -> set[str]:
    """Every file under the weight cache except the index and lock files."""
    found = set()
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(".cache/locks/") or relative in {f".cache/{n}" for n in CACHE_META_KEEP}:
            continue
        if not path.is_dir():
            found.add(relative)
    return found


def assert_no_leftovers(env: Env, weights_before: set[str] | None) -> None:
    s = env.runner.settings
    for folder in (s.input_dir, s.output_dir, s.temp_dir, s.results_dir, s.runtime_dir / "incoming"):
        assert sorted(p.name for p in folder.iterdir()) == [], f"{folder} holds leftovers"
    extra = {p.name for p in s.runtime_dir.iterdir()} - env.runtime_entries
    assert not extra, f"the runtime folder gained {extra} (extraction or download staging?)"
    staging = s.weights_dir / ".cache" / "staging"
    assert sorted(p.name for p in staging.iterdir()) == [], "weight staging holds leftovers"
    partial = [p for p in s.weights_dir.rglob("*") if p.name.endswith((".incomplete", ".part", ".partial", ".tmp"))]
    assert partial == [], f"partial files in the weight cache: {partial}"
    if weights_before is not None:
        assert weight_files(s.weights_dir) == weights_before, "a failed prediction changed the weight cache"


def assert_recovers(env: Env) -> None:
    result = env.runner.run(RunRequest(workflow_json=json.dumps(chain()), output_format="png"))
    [path] = result.files
    with Image.open(path) as image:
        assert image.size == (8, 8)


def run(env: Env, **request: Any):
    if isinstance(request.get("workflow_json"), (dict, list)):
        request["workflow_json"] = json.dumps(request["workflow_json"])
    # Rows build their files here and pass them as Paths (their own); a str is what a Cog request sends.
    request.setdefault("input_file_is_local", isinstance(request.get("input_file"), Path))
    return env.runner.run(RunRequest(**request))


# --- workflows the rows use ----------------------------------------------------------------------


def load_and_save(name: str) -> dict:
    return {
        "10": {"class_type": "LoadImage", "inputs": {"image": name}, "_meta": {"title": "my photo"}},
        "99": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "ok"}},
    }


def save_dataset_to(folder_name: str) -> dict:
    workflow = load_and_save("photo.png")
    workflow["99"] = {"class_type": "SaveImageDataSetToFolder",
                      "inputs": {"images": ["10", 0], "folder_name": folder_name, "filename_prefix": "x"}}
    return workflow


def small_text_to_image(ckpt: str = EXAMPLE_CHECKPOINT) -> dict:
    workflow = json.loads(wf.EXAMPLE_WORKFLOW.read_text())
    workflow["4"]["inputs"]["ckpt_name"] = ckpt
    workflow["5"]["inputs"].update(width=64, height=64)
    workflow["3"]["inputs"]["steps"] = 2
    return workflow


def with_lora_url(url: str) -> dict:
    workflow = small_text_to_image()
    workflow["10"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "strength_model": 1.0, "strength_clip": 1.0, "lora_name": url}}
    workflow["3"]["inputs"]["model"] = ["10", 0]
    workflow["6"]["inputs"]["clip"] = ["10", 1]
    workflow["7"]["inputs"]["clip"] = ["10", 1]
    return workflow


def upscale(model_name: str) -> dict:
    workflow = chain()
    workflow["2"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model_name}}
    workflow["3"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}}
    workflow["99"]["inputs"]["images"] = ["3", 0]
    return workflow


def ui_chain(middle: str | None) -> dict:
    """A UI-format (saved, not exported) workflow: EmptyImage -> [middle] -> SaveImage."""
    def node(node_id, type_, inputs, outputs, widgets, order):
        return {"id": node_id, "type": type_, "pos": [300 * order, 100], "size": [250, 120], "flags": {},
                "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": type_}, "widgets_values": widgets}

    def out(links):
        return [{"name": "IMAGE", "type": "IMAGE", "links": links, "slot_index": 0}]

    nodes = [node(1, "EmptyImage", [], out([1]), [8, 8, 1, 0], 0)]
    links = [[1, 1, 0, 2 if middle else 3, 0, "IMAGE"]]
    if middle:
        nodes.append(node(2, middle, [{"name": "image", "type": "IMAGE", "link": 1}], out([2]), [], 1))
        links.append([2, 2, 0, 3, 0, "IMAGE"])
    nodes.append(node(3, "SaveImage", [{"name": "images", "type": "IMAGE", "link": links[-1][0]}], [], ["ok"], 2))
    return {"last_node_id": 3, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


def without_class_type() -> dict:
    workflow = chain(("ImageInvert", {}))
    del workflow["2"]["class_type"]
    return workflow


def dangling_link() -> dict:
    workflow = chain()
    workflow["99"]["inputs"]["images"] = ["42", 0]
    return workflow


def missing_required_input() -> dict:
    workflow = chain()
    del workflow["1"]["inputs"]["width"]
    return workflow


def out_of_range() -> dict:
    workflow = chain()
    workflow["1"]["inputs"]["width"] = 999999
    return workflow


def nothing_saved() -> dict:
    workflow = chain()
    workflow["99"] = {"class_type": "CWTestSaveNothing", "inputs": {"image": ["1", 0]}}
    return workflow


def kill_comfyui_soon(env: Env) -> None:
    # First an earlier prediction's traceback in ComfyUI's log: the crash report must not show it.
    with pytest.raises(ExecutionError):
        run(env, workflow_json=chain(("CWTestRaise", {"message": "secret prompt of an earlier user"})))
    process = env.runner.server.process
    env.scratch["killed_pid"] = process.pid
    threading.Timer(1.5, lambda: process.poll() is None and os.kill(process.pid, signal.SIGKILL)).start()


def assert_only_this_runs_log(env: Env, error: WrapperError) -> None:
    assert "secret prompt of an earlier user" not in str(error)
    assert not env.runner.server.is_alive()


def assert_restarted(env: Env) -> None:
    assert env.runner.server.process.pid != env.scratch["killed_pid"]


def assert_not_requested(*needles: str) -> Callable[[Env, WrapperError], None]:
    def check(env: Env, _error: WrapperError) -> None:
        assert sum(env.spy.requests.values()) == 0, env.spy.requests
        hits = [url for url in env.outgoing if any(n in url for n in needles)]
        assert hits == [], f"requests were made: {hits}"
    return check


def assert_absent(*relative: str) -> Callable[[Env, WrapperError], None]:
    """Nothing was written where an escaping entry pointed (relative to the runtime folder)."""
    def check(env: Env, _error: WrapperError) -> None:
        for rel in relative:
            target = env.runner.settings.runtime_dir / rel
            assert not os.path.lexists(target), f"{target} was written"
    return check


def assert_cdn_untouched(env: Env, _error: WrapperError) -> None:
    assert sum(env.cdn.requests.values()) == env.scratch["cdn_before"], "the CDN was asked for bytes"


# --- the matrix -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    error: type[WrapperError]
    request: Callable[[Env], dict[str, Any]]  # RunRequest fields (workflow_json may be a dict)
    names: Callable[[Env], list[str]]  # what the message must contain (the culprit)
    settings: dict[str, Any] = field(default_factory=dict)
    before: Callable[[Env], None] | None = None
    check: Callable[[Env, WrapperError], None] | None = None
    recovered: Callable[[Env], None] | None = None


def archive_case(id_: str, error: type[WrapperError], build: Callable[[Path], Path], names: list[str],
                 check: Callable[[Env, WrapperError], None] | None = None) -> Case:
    return Case(id_, error, lambda e: {"workflow_json": load_and_save(bad.MEMBER), "input_file": build(e.files)},
                lambda e: names, check=check)


CASES = [
    # --- the workflow text ------------------------------------------------------------------
    Case("not-json", WorkflowError, lambda e: {"workflow_json": '{"1": {"class_type": "EmptyImage",}'},
         lambda e: ["not valid JSON", "line 1, column"]),
    Case("json-list", WorkflowError, lambda e: {"workflow_json": [chain()["1"]]},
         lambda e: ["must be a JSON object of nodes, not a list"]),
    Case("ui-format-unknown-node", UIFormatError, lambda e: {"workflow_json": ui_chain("CWNoSuchNode")},
         lambda e: ["UI-format", "CWNoSuchNode", "node 2"]),
    Case("node-without-class_type", WorkflowError, lambda e: {"workflow_json": without_class_type()},
         lambda e: ['node 2 "my ImageInvert" has no class_type']),
    Case("link-to-missing-node", WorkflowError, lambda e: {"workflow_json": dangling_link()},
         lambda e: ["node 99 (SaveImage), input 'images' links to node 42"]),
    Case("unknown-node", UnknownNodeError, lambda e: {"workflow_json": chain(("CWNoSuchNode", {}))},
         lambda e: ["CWNoSuchNode", "2"]),
    Case("missing-required-input", PromptValidationError, lambda e: {"workflow_json": missing_required_input()},
         lambda e: ["node 1 (EmptyImage", "'width'"]),
    Case("value-out-of-range", PromptValidationError, lambda e: {"workflow_json": out_of_range()},
         lambda e: ["node 1 (EmptyImage", "'width'", "999999"]),
    # --- weights ----------------------------------------------------------------------------------
    Case("unknown-weight", UnknownWeightError,
         lambda e: {"workflow_json": small_text_to_image("no_such_model_v9.safetensors")},
         lambda e: ["no_such_model_v9.safetensors", "node 4"]),
    Case("weight-url-404", WeightDownloadError,
         lambda e: {"workflow_json": with_lora_url(f"{e.cdn.base_url}/loras/missing_lora.safetensors")},
         lambda e: [f"{e.cdn.base_url}/loras/missing_lora.safetensors", "404"]),
    Case("cdn-serves-corrupt-bytes", ChecksumMismatchError, lambda e: {"workflow_json": upscale(PINNED)},
         lambda e: [PINNED, f"{e.cdn.base_url}/corrupt/{PINNED}", _test_model(UPSCALER)["sha256"]]),
    Case("weights-over-budget", CacheBudgetError, lambda e: {"workflow_json": small_text_to_image()},
         lambda e: [EXAMPLE_CHECKPOINT, "budget"], settings={"weights_budget_bytes": 50_000_000},
         check=assert_cdn_untouched),
    # --- URLs in the workflow --------------------------------------------------------------------
    Case("ssrf-loopback-spy", UnsafeInputError,
         lambda e: {"workflow_json": load_and_save(f"{e.spy.base_url}/interrupt")},
         lambda e: [f"{e.spy.base_url}/interrupt", "node 10", "'image'", "loopback"],
         settings={"allow_private_urls": False}, check=assert_not_requested("/interrupt")),
    Case("ssrf-comfyui-port", UnsafeInputError,
         lambda e: {"workflow_json": load_and_save("http://127.0.0.1:8188/interrupt")},
         lambda e: ["http://127.0.0.1:8188/interrupt", "node 10"],
         settings={"allow_private_urls": False}, check=assert_not_requested("127.0.0.1:8188")),
    Case("ssrf-cloud-metadata", UnsafeInputError,
         lambda e: {"workflow_json": load_and_save("http://169.254.169.254/latest/meta-data/")},
         lambda e: ["http://169.254.169.254/latest/meta-data/", "node 10"],
         settings={"allow_private_urls": False}, check=assert_not_requested("169.254.169.254")),
    Case("file-url", UnsafeInputError, lambda e: {"workflow_json": load_and_save("file:///etc/passwd")},
         lambda e: ["file:///etc/passwd", "'file'", "node 10"]),
    Case("url-to-html", InputFileError, lambda e: {"workflow_json": load_and_save(f"{e.web.base_url}/page.html")},
         lambda e: [f"{e.web.base_url}/page.html", "text/html", "node 10"]),
    Case("url-over-limit", InputTooLargeError, lambda e: {"workflow_json": load_and_save(f"{e.web.base_url}/big.png")},
         lambda e: [f"{e.web.base_url}/big.png", str(MAX_INPUT_BYTES), "node 10"]),
    Case("url-never-answers", DownloadError, lambda e: {"workflow_json": load_and_save(f"{e.web.base_url}/hang.png")},
         lambda e: [f"{e.web.base_url}/hang.png", f"did not answer within {URL_TIMEOUT_S:g} s", "node 10"]),
    # --- input files ---------------------------------------------------------------------------
    Case("missing-input-file", MissingInputError, lambda e: {"workflow_json": load_and_save("nope.png")},
         lambda e: ["nope.png", "node 10"]),
    # --- paths outside their folders, refused in the plan (issue 12, items 3-6; unit rows: HOSTILE_PATHS)
    Case("load-dev-zero-output", UnsafeInputError, lambda e: {"workflow_json": load_and_save("/dev/zero [output]")},
         lambda e: ["'/dev/zero [output]'", "is an absolute path", "node 10"]),
    Case("load-dotdot-output", UnsafeInputError,
         lambda e: {"workflow_json": load_and_save("../../weights/x.png [output]")},
         lambda e: ["'..'", "node 10"]),
    Case("dataset-save-escape", UnsafeInputError, lambda e: {"workflow_json": save_dataset_to("../../escape")},
         lambda e: ["'../../escape'", "folder_name", "node 99"], check=assert_absent("../escape")),
    Case("load3d-dict-absolute", UnsafeInputError,
         lambda e: {"workflow_json": {**load_and_save("photo.png"), "20": {"class_type": "Load3D", "inputs": {
             "model_file": "m.glb", "image": {"image": "/etc/hostname", "mask": "m.png", "normal": "n.png"},
             "width": 64, "height": 64}}}},
         lambda e: ["node 20 (Load3D), input 'image'", "'/etc/hostname'", "is an absolute path"]),
    Case("input-file-server-path", UnsafeInputError,
         lambda e: {"workflow_json": chain(), "input_file": "/etc/hostname"},
         lambda e: ["a path on the server is refused"]),
    Case("dotdot-in-input-name", UnsafeInputError, lambda e: {"workflow_json": load_and_save("../comfyui.log")},
         lambda e: ["../comfyui.log", "'..'", "node 10"]),
    archive_case("zip-slip", UnsafeInputError, bad.zip_slip, ["../evil.png", "'..'"], check=assert_absent("evil.png")),
    archive_case("tar-symlink-escape", UnsafeInputError, bad.tar_symlink_escape,
                 ["photos/link.png", "symbolic link", "../../../../etc/passwd"],
                 check=assert_absent("input/photos/link.png")),
    archive_case("tar-hardlink", UnsafeInputError, bad.tar_hardlink, ["photos/hard.png", "hard link"],
                 check=assert_absent("input/photos/hard.png")),
    archive_case("tar-device-file", UnsafeInputError, bad.tar_device, ["photos/null", "device"],
                 check=assert_absent("input/photos/null")),
    archive_case("zip-bomb-size", InputTooLargeError, lambda d: bad.zip_bomb(d, "bomb.zip", 64 * MiB),
                 ["bomb.zip", str(MAX_INPUT_BYTES)]),
    archive_case("zip-bomb-ratio", InputTooLargeError, lambda d: bad.zip_bomb(d, "dense.zip", MiB),
                 ["photos/zeros.bin", "CW_MAX_COMPRESSION_RATIO"]),
    archive_case("corrupt-zip", InputFileError, bad.corrupt_zip, ["broken.zip"]),
    # --- the run ----------------------------------------------------------------------------------
    Case("node-raises", ExecutionError,
         lambda e: {"workflow_json": chain(("CWTestRaise", {"message": "kaboom"}))},
         lambda e: ['node 2 "my CWTestRaise" (CWTestRaise) failed', "CWTestRaise says kaboom"]),
    Case("node-past-deadline", PredictionTimeoutError,
         lambda e: {"workflow_json": chain(("CWTestSleep", {"seconds": 60.0, "report_progress": True}))},
         lambda e: [f"within {PREDICTION_TIMEOUT_S:g} s", "node 2"]),
    Case("comfyui-killed", ComfyUICrashedError,
         lambda e: {"workflow_json": chain(("CWTestSleep", {"seconds": 30.0, "report_progress": True}))},
         lambda e: ['node 2 "my CWTestSleep" (CWTestSleep)', "exit code -9"], before=kill_comfyui_soon,
         check=assert_only_this_runs_log, recovered=assert_restarted),
    # --- options and outputs ------------------------------------------------------------------
    Case("output-format-gif", OutputFormatError, lambda e: {"workflow_json": chain(), "output_format": "gif"},
         lambda e: ["'gif'", "webp, jpg, png"]),
    Case("output-node-writes-nothing", NoOutputsError, lambda e: {"workflow_json": nothing_saved()},
         lambda e: ["node 99 (CWTestSaveNothing"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(env: Env, case: Case) -> None:
    weights_before = weight_files(env.runner.settings.weights_dir)
    env.scratch["cdn_before"] = sum(env.cdn.requests.values())
    env.outgoing.clear()
    request = case.request(env)
    if case.before:
        case.before(env)
    began = time.monotonic()
    with settings_variant(env.runner, **case.settings):
        with pytest.raises(WrapperError) as caught:
            run(env, **request)
    took = time.monotonic() - began
    error = caught.value
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    message = str(error)
    for fragment in case.names(env):
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "\nHow to fix: " in message
    assert took < 20, f"took {took:.1f} s to fail"
    assert_no_leftovers(env, weights_before)
    if case.check:
        case.check(env, error)
    assert_recovers(env)
    if case.recovered:
        case.recovered(env)


# --- the rows that succeed ------------------------------------------------------------------------


def test_empty_workflow_is_the_example_and_can_run(env: Env) -> None:
    """Empty workflow_json is the built-in example; with the CDN manifest every weight resolves.

    The full run (512x512, 20 steps) takes 2 to 6 minutes on this 2-core CPU, so here the plan
    is checked; test_empty_workflow_runs_the_example runs it when a GPU or CW_SLOW_TESTS=1 allows.
    """
    text = wf.load_workflow_text("")
    assert text == wf.EXAMPLE_WORKFLOW.read_text()
    plan = env.runner.plan(wf.check_shape(wf.parse_workflow(text)))
    assert plan.can_run, plan.report()
    [weight] = plan.weights
    assert (weight.name, weight.folder, weight.status) == (EXAMPLE_CHECKPOINT, "checkpoints", "download")
    assert plan.output_nodes == ["9"]


def _fast_enough_for_the_example() -> bool:
    """A GPU ComfyUI will use (the runner's own test, no torch import), or CW_SLOW_TESTS=1."""
    return os.environ.get("CW_SLOW_TESTS") == "1" or cuda_present()


@pytest.mark.skipif(not _fast_enough_for_the_example(), reason="the example takes minutes on a CPU; CW_SLOW_TESTS=1")
def test_empty_workflow_runs_the_example(env: Env) -> None:
    with settings_variant(env.runner, prediction_timeout_s=1800.0, stall_timeout_s=600.0):
        result = run(env, workflow_json="", output_format="png")
    [path] = result.files
    with Image.open(path) as image:
        assert image.size == (512, 512)
    assert result.stats["weights_downloaded"] + result.stats["weights_cache_hits"] == 1


def test_good_archive_runs(env: Env) -> None:
    """The archive rows' workflow succeeds with a good archive: their failures are the bad entries'."""
    result = run(env, workflow_json=load_and_save(bad.MEMBER), input_file=bad.good_zip(env.files), output_format="png")
    [path] = result.files
    with Image.open(path) as image:
        assert image.size == (8, 8)


def test_ui_format_without_the_unknown_node_converts_and_runs(env: Env) -> None:
    """The UI-format row fails for its unknown node, not for a malformed file."""
    result = run(env, workflow_json=ui_chain(None), output_format="png")
    assert len(result.files) == 1


def test_a_corrupt_cached_weight_is_fetched_again_once(env: Env) -> None:
    cdn_path = f"/upscale_models/{UPSCALER}.tar"
    s = env.runner.settings
    cached = s.weights_dir / "upscale_models" / UPSCALER
    cached.unlink(missing_ok=True)
    env.runner.cache.invalidate(UPSCALER, "upscale_models")
    before = env.cdn.requests[cdn_path]
    first = run(env, workflow_json=upscale(UPSCALER), output_format="png")
    with Image.open(first.files[0]) as image:
        assert image.size == (16, 16)
    one_fetch = env.cdn.requests[cdn_path] - before
    assert one_fetch >= 1
    good_sha = _test_model(UPSCALER)["sha256"]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == good_sha
    weights = weight_files(s.weights_dir)

    assert_recovers(env)  # another prompt, so ComfyUI no longer holds the loaded upscaler
    size = cached.stat().st_size
    with cached.open("r+b") as handle:  # a damaged disk block: same size, zeros at the start
        handle.write(bytes(4096))
    assert cached.stat().st_size == size
    before = env.cdn.requests[cdn_path]
    second = run(env, workflow_json=upscale(UPSCALER), output_format="png", force_reset_cache=True)
    with Image.open(second.files[0]) as image:
        assert image.size == (16, 16)
    assert env.cdn.requests[cdn_path] - before == one_fetch, "fetched again exactly once"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == good_sha
    assert env.runner.cache.verify(UPSCALER, "upscale_models")
    assert weight_files(s.weights_dir) == weights
    staging = s.weights_dir / ".cache" / "staging"
    assert list(staging.iterdir()) == []


# --- a sample through the real Cog server ------------------------------------------------------------


@pytest.fixture(scope="module")
def cog(tmp_path_factory, env: Env) -> Iterator[tuple[CogServer, Path]]:
    tmp = tmp_path_factory.mktemp("bad_inputs_cog")
    with cog_server(tmp, env={"CW_EXTRA_MODEL_PATHS": str(nodes_yaml(tmp)), "CW_ALLOW_PRIVATE_URLS": "0"}) as running:
        assert running.health()["status"] == "READY", running.log()[-3000:]
        yield running, tmp / "runtime"


def settles_ready(server: CogServer, within_s: float = 5.0) -> bool:
    """READY again soon after a response (Cog says BUSY for a few ms while it wraps up)."""
    deadline = time.monotonic() + within_s
    while server.health()["status"] != "READY":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


COG_CASES = [
    ("ui-format-unknown-node", lambda e: {"workflow_json": json.dumps(ui_chain("CWNoSuchNode"))},
     ["CWNoSuchNode", "node 2"]),
    ("unknown-node", lambda e: {"workflow_json": json.dumps(chain(("CWNoSuchNode", {})))}, ["CWNoSuchNode"]),
    ("zip-slip-upload", lambda e: {"workflow_json": json.dumps(load_and_save(bad.MEMBER)),
                                   "input_file": data_uri(bad.zip_slip(e.files), "application/zip")},
     ["../evil.png", "'..'"]),
    ("missing-input-file", lambda e: {"workflow_json": json.dumps(load_and_save("nope.png"))},
     ["nope.png", "node 10"]),
    ("ssrf-loopback", lambda e: {"workflow_json": json.dumps(load_and_save(f"{e.spy.base_url}/interrupt"))},
     ["/interrupt", "loopback"]),
    ("node-raises", lambda e: {"workflow_json": json.dumps(chain(("CWTestRaise", {"message": "kaboom"})))},
     ['node 2 "my CWTestRaise" (CWTestRaise) failed', "CWTestRaise says kaboom"]),
    # issue 12, item 4: a server path in input_file is refused, whether it exists or not, the same way
    ("input-file-server-path", lambda e: {"workflow_json": json.dumps(chain()), "input_file": "/etc/hostname"},
     ["a path on the server is refused"]),
    ("input-file-missing-server-path", lambda e: {"workflow_json": json.dumps(chain()),
                                                  "input_file": "/etc/no-such-file.png"},
     ["a path on the server is refused"]),
    ("input-file-file-url", lambda e: {"workflow_json": json.dumps(chain()), "input_file": "file:///etc/hostname"},
     ["a path on the server is refused"]),
    # item 7: Cog's own download of input_file goes through our URL policy
    ("input-file-loopback-url", lambda e: {"workflow_json": json.dumps(chain()),
                                           "input_file": f"{e.spy.base_url}/secret.png"},
     ["/secret.png", "loopback"]),
    # item 5 through Cog: a path outside input/ in the workflow
    ("load-dev-zero-output", lambda e: {"workflow_json": json.dumps(load_and_save("/dev/zero [output]"))},
     ["node 10", "is an absolute path"]),
]


@pytest.mark.parametrize("inputs,names", [c[1:] for c in COG_CASES], ids=[c[0] for c in COG_CASES])
def test_bad_input_through_cog(cog: tuple[CogServer, Path], env: Env, inputs, names) -> None:
    server, runtime = cog
    spy_before = sum(env.spy.requests.values())
    body = server.post(inputs(env)).json()
    assert body["status"] == "failed", body
    for fragment in names:
        assert fragment in body["error"], f"{fragment!r} not in:\n{body['error']}"
    assert "How to fix:" in body["error"]
    for folder in ("input", "output", "temp"):
        assert sorted(p.name for p in (runtime / folder).iterdir()) == [], f"{folder}/ holds leftovers"
    assert sum(env.spy.requests.values()) == spy_before
    assert settles_ready(server), server.health()
    again = server.post({"workflow_json": json.dumps(chain()), "output_format": "png"}).json()
    assert again["status"] == "succeeded", again
    assert len(again["output"]) == 1
    assert settles_ready(server), server.health()
