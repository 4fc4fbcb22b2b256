"""The hostile-path table (tests/support/bad_payloads.py), driven row by row, no ComfyUI.

Every row must be refused by the plan before anything is queued, with the exact
error class, naming node and input, and without saying whether a path outside
our folders exists.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from comfyui_wrapper import workflow as wf
from comfyui_wrapper.errors import UnsafeInputError, WorkflowError
from comfyui_wrapper.inputs.paths import PathRoots, check_workflow_paths
from tests.support import bad_payloads as bad

CLIP_INFO = {"CLIPTextEncode": {"input": {"required": {"text": ["STRING", {"multiline": True}]}}}}


@pytest.fixture
def roots(tmp_path: Path) -> PathRoots:
    made = PathRoots(tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    for folder in made.all():
        folder.mkdir()
    return made


@pytest.mark.parametrize("case", bad.HOSTILE_PATHS, ids=[c.attack for c in bad.HOSTILE_PATHS])
def test_hostile_path_is_refused(case: bad.HostileCase, roots: PathRoots) -> None:
    with pytest.raises(case.error) as caught:
        check_workflow_paths(case.payload, roots, CLIP_INFO)
    assert type(caught.value) is case.error
    message = str(caught.value)
    assert "node 1" in message and "How to fix:" in message
    assert "\x00" not in message


@pytest.mark.parametrize("case", bad.ALLOWED_PATHS, ids=[c.attack for c in bad.ALLOWED_PATHS])
def test_ordinary_values_pass(case: bad.HostileCase, roots: PathRoots) -> None:
    check_workflow_paths(case.payload, roots, CLIP_INFO)


def test_absolute_path_even_inside_input_is_refused(roots: PathRoots) -> None:
    """Accepting it would tell a prober where the runtime folder is."""
    (roots.input / "a.png").write_bytes(b"x")
    with pytest.raises(UnsafeInputError, match="absolute path"):
        check_workflow_paths(bad.node("LoadImage", image=str(roots.input / "a.png")), roots)


def test_messages_do_not_tell_whether_an_outside_path_exists(roots: PathRoots, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    messages = []
    for target in (secret, tmp_path / "absent.txt"):
        for value in (str(target), f"../{target.name} [output]"):
            with pytest.raises(UnsafeInputError) as caught:
                check_workflow_paths(bad.node("LoadImage", image=value), roots)
            messages.append(str(caught.value).replace(target.name, "NAME"))
    assert messages[0] == messages[2] and messages[1] == messages[3]


def test_symlink_in_input_leading_out_is_refused(roots: PathRoots, tmp_path: Path) -> None:
    (tmp_path / "outside.png").write_bytes(b"x")
    (roots.input / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(UnsafeInputError, match="through a link"):
        check_workflow_paths(bad.node("LoadImage", image="link.png"), roots)


def test_symlink_to_a_device_is_refused(roots: PathRoots) -> None:
    (roots.output / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(UnsafeInputError):
        check_workflow_paths(bad.node("LoadImage", image="zero.png [output]"), roots)


def test_fifo_and_socket_in_input_are_refused(roots: PathRoots) -> None:
    os.mkfifo(roots.input / "pipe.png")
    with pytest.raises(UnsafeInputError, match="not a regular file"):
        check_workflow_paths(bad.node("LoadImage", image="pipe.png"), roots)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(roots.temp / "s.png"))
        with pytest.raises(UnsafeInputError, match="not a regular file"):
            check_workflow_paths(bad.node("LoadImage", image="s.png [temp]"), roots)
    finally:
        sock.close()


def test_control_characters_are_escaped_in_the_message(roots: PathRoots) -> None:
    workflow = {"1\nOutput: /etc/shadow": {"class_type": "LoadImage\x1b[2J", "inputs": {"image": "/x\n\x1b[31m"}}}
    with pytest.raises(UnsafeInputError) as caught:
        check_workflow_paths(workflow, roots)
    message = str(caught.value)
    assert "\x1b" not in message and "\nOutput" not in message
    assert "\\x1b" in message


def test_workflow_nested_100k_levels_is_a_typed_error() -> None:
    with pytest.raises(WorkflowError, match="nested more than"):
        wf.parse_workflow(bad.deep_json())
    with pytest.raises(WorkflowError, match="nested more than"):
        wf.parse_workflow(bad.deep_json(200))


def test_no_false_positive_on_the_201_oracle_workflows(tmp_path: Path) -> None:
    """Real exported workflows (ComfyUI's templates and the UI cases) all pass the path check."""
    import gzip
    import json

    oracle = Path(__file__).resolve().parents[2] / "fixtures" / "ui_oracle"
    object_info = json.loads(gzip.open(oracle / "object_info.json.gz").read())
    roots = PathRoots(tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    checked = 0
    for path in sorted((oracle / "expected").glob("*.json")):
        api = json.loads(path.read_text()).get("output")
        if isinstance(api, dict):
            check_workflow_paths(api, roots, object_info)
            checked += 1
    assert checked > 150


def test_the_plan_refuses_before_anything_else(tmp_path: Path) -> None:
    """Through make_plan: the one error is the UnsafeInputError (no disk lookups, no weight plan)."""
    import gzip
    import json

    from comfyui_wrapper.plan import PlanContext, make_plan
    from comfyui_wrapper.settings import REPO_ROOT
    from comfyui_wrapper.weights.manifest import Manifest
    from comfyui_wrapper.weights.refs import core_folder_for

    oracle = Path(__file__).resolve().parents[2] / "fixtures" / "ui_oracle"
    object_info = json.loads(gzip.open(oracle / "object_info.json.gz").read())
    ctx = PlanContext(object_info=object_info, manifest=Manifest.load(REPO_ROOT / "weights_manifest.json"),
                      folder_for=core_folder_for, on_disk=lambda name: False, cached_names=lambda specs: set(),
                      input_dir=tmp_path / "input")
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "/dev/zero [output]"}},
                "2": {"class_type": "SaveImageDataSetToFolder",
                      "inputs": {"images": ["1", 0], "folder_name": "../../x", "filename_prefix": "i"}}}
    plan = make_plan(workflow, ctx)
    with pytest.raises(UnsafeInputError, match="node 1 .LoadImage., input 'image'"):
        plan.raise_for_problems()
    del workflow["1"]
    workflow["2"]["inputs"]["images"] = ["3", 0]
    with pytest.raises(UnsafeInputError, match="folder_name"):
        make_plan(workflow, ctx).raise_for_problems()


@pytest.mark.parametrize("case", bad.HOSTILE_ARCHIVES, ids=[c.attack for c in bad.HOSTILE_ARCHIVES])
def test_hostile_archive_is_refused(case: bad.HostileCase, tmp_path: Path) -> None:
    from comfyui_wrapper.inputs.archives import InputLimits, extract_archive

    source = tmp_path / "src"
    source.mkdir()
    archive = case.payload(source)
    target = tmp_path / "runtime" / "input"
    with pytest.raises(case.error) as caught:
        extract_archive(archive, target, InputLimits(**bad.ARCHIVE_LIMITS))
    assert type(caught.value) is case.error
    assert not target.exists() or not any(target.iterdir())
    assert sorted(p.name for p in target.parent.iterdir()) in ([], ["input"])  # no staging left


# --- log forging and server internals (items 11 and 14) -----------------------------------------------

FORGED = "x\nOutput: /etc/shadow\x1b[2J\u202e"


def assert_one_clean_line(text: str) -> None:
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text, repr(text)


def test_log_arguments_are_escaped_by_the_handler_filter() -> None:
    import io
    import logging

    from comfyui_wrapper.errors import PrintableArgs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PrintableArgs())
    logger = logging.getLogger("test.forging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Output: %s", Path("/results") / FORGED)
        logger.warning("Seed of node %s (%s): %d", FORGED, "seed", 3)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith(("Output:", "Seed of node")) for line in lines)
    assert "\\x1b" in lines[0] and "\\u202e" in lines[0]


def test_configure_logging_installs_the_filter() -> None:
    from comfyui_wrapper.errors import PrintableArgs
    from comfyui_wrapper.server.progress import configure_logging

    configure_logging()
    # On the package logger's handler: every module logs below it (logging.getLogger(__name__)).
    package = logging.getLogger("comfyui_wrapper")
    assert any(isinstance(f, PrintableArgs) for handler in package.handlers for f in handler.filters)
    assert logging.getLogger("comfyui_wrapper.runner").parent is package


def test_placed_inputs_describe_escapes_entry_names() -> None:
    from comfyui_wrapper.inputs.place import PlacedInputs

    placed = PlacedInputs(source_name=FORGED, kind="zip", paths=(FORGED, "ok.png"), total_bytes=3)
    assert_one_clean_line(placed.describe())


def test_archive_entry_names_are_escaped_in_errors(tmp_path: Path) -> None:
    import zipfile

    from comfyui_wrapper.inputs.archives import InputLimits, extract_archive

    archive = tmp_path / "forge.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../" + FORGED, b"x")
    with pytest.raises(UnsafeInputError) as caught:
        extract_archive(archive, tmp_path / "input", InputLimits())
    assert_one_clean_line(caught.value.message)


def test_execution_error_shows_the_message_not_the_traceback_or_server_paths() -> None:
    from comfyui_wrapper.runner import execution_error

    payload = {
        "node_id": "2" + FORGED, "exception_type": "FileNotFoundError",
        "exception_message": "[Errno 2] No such file or directory: '/src/ComfyUI/input/photos/a.png'\x1b[31m",
        "traceback": ['  File "/src/ComfyUI/execution.py", line 496, in execute\n',
                      '  File "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/x.py", line 3\n'],
    }
    error = execution_error(payload, {"2": {"class_type": "LoadImage", "inputs": {}}})
    message = error.message
    assert_one_clean_line(message)
    assert "Traceback" not in message and "execution.py" not in message and "/src/" not in message
    assert "FileNotFoundError" in message and "a.png" in message


def test_hide_server_paths_keeps_urls_and_relative_names() -> None:
    from comfyui_wrapper.errors import hide_server_paths

    text = "open '/src/ComfyUI/models/x.safetensors' for http://h.com/a/b and input/a/b.png"
    assert hide_server_paths(text) == "open '\u2026/x.safetensors' for http://h.com/a/b and input/a/b.png"


def test_comfyui_validation_errors_escape_user_text_and_hide_server_paths() -> None:
    from comfyui_wrapper.server.events import validation_error

    payload = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
               "node_errors": {"7": {"class_type": "LoadImage", "errors": [{
                   "type": "custom_validation_failed", "message": "Custom validation failed for node",
                   "details": "image - Invalid image file: /src/runtime/input/a.png\x1b[2J",
                   "extra_info": {"input_name": "image" + FORGED}}]}}}
    error = validation_error(payload, {"7": {"class_type": "LoadImage", "inputs": {}, "_meta": {"title": FORGED}}})
    for line in error.message.splitlines():
        assert "\x1b" not in line and "\u202e" not in line
    assert len(error.message.splitlines()) == 2
    assert "/src/runtime" not in error.message and "a.png" in error.message


def test_damaged_archive_message_hides_the_staging_path(tmp_path: Path) -> None:
    from comfyui_wrapper.inputs.archives import damaged

    error = damaged(tmp_path / "x.zip", OSError(5, "Input/output error", "/src/runtime/.input-extract-ab/x"))
    assert "/src/runtime" not in error.message and "Input/output error" in error.message


@pytest.mark.parametrize("case", bad.HOSTILE_INPUT_FILES, ids=[c.attack for c in bad.HOSTILE_INPUT_FILES])
def test_hostile_input_file_is_refused_without_touching_the_disk(case: bad.HostileCase, monkeypatch) -> None:
    from comfyui_wrapper.inputs import source as inputs

    def no_disk(*args, **kwargs):
        raise AssertionError("the file system was consulted")

    monkeypatch.setattr(os, "stat", no_disk)
    monkeypatch.setattr(os, "lstat", no_disk)
    with pytest.raises(case.error) as caught:
        inputs.check_input_origin(case.payload, local_allowed=False)
    monkeypatch.undo()
    assert type(caught.value) is case.error
    assert str(caught.value).startswith("input_file must be an uploaded file")  # same words, exists or not


def test_input_file_origin_accepts_urls_governed_downloads_and_own_files(tmp_path: Path) -> None:
    from comfyui_wrapper.inputs import source as inputs

    inputs.check_input_origin("https://example.com/a.png", local_allowed=False)
    inputs.check_input_origin("data:image/png;base64,AAAA", local_allowed=False)
    inputs.check_input_origin("/home/me/a.png", local_allowed=True)
    downloaded = tmp_path / "a.png"
    inputs._COG_DOWNLOADS.add(str(downloaded))
    inputs.check_input_origin(downloaded, local_allowed=False)
    inputs.forget_cog_download(downloaded)
    with pytest.raises(UnsafeInputError):
        inputs.check_input_origin(downloaded, local_allowed=False)


def test_governed_cog_convert_applies_our_policy(monkeypatch) -> None:
    """URLPath.convert (what coglet calls before predict) now refuses a loopback URL without a request."""
    import cog.types as cog_types

    from comfyui_wrapper.inputs import source as inputs
    from comfyui_wrapper.inputs.archives import InputLimits
    from comfyui_wrapper.urls import UrlPolicy

    original = cog_types.URLPath.convert
    try:
        assert inputs.govern_cog_downloads(lambda: (UrlPolicy(allow_private=False), InputLimits()))
        value = cog_types.Path.validate("http://127.0.0.1:9/secret.png")
        with pytest.raises(UnsafeInputError, match="loopback"):
            value.convert()
        ok = cog_types.Path.validate("data:image/png;base64," + __import__("base64").b64encode(bad.png_bytes()).decode())
        path = ok.convert()
        inputs.check_input_origin(path, local_allowed=False)  # a governed download is accepted
        assert path.read_bytes() == bad.png_bytes()
        inputs.forget_cog_download(path)
        assert not path.parent.exists()  # its temp folder goes with it
        with pytest.raises(UnsafeInputError):
            inputs.check_input_origin(path, local_allowed=False)  # and it cannot be named again
    finally:
        cog_types.URLPath.convert = original


@pytest.mark.parametrize("case", bad.HOSTILE_WORKFLOW_TEXTS, ids=[c.attack for c in bad.HOSTILE_WORKFLOW_TEXTS])
def test_hostile_workflow_text_is_a_typed_error(case: bad.HostileCase) -> None:
    with pytest.raises(case.error) as caught:
        wf.parse_workflow(case.payload)
    assert type(caught.value) is case.error


def test_the_table_names_every_case_once() -> None:
    """One table: unit rows here, e2e rows in the bad-input matrix (the first 44 and the new ones)."""
    from tests.e2e.test_bad_inputs import CASES, COG_CASES

    rows = [(name, c.attack, c.error) for name, table in bad.all_tables().items() for c in table]
    rows += [("e2e", c.id, c.error) for c in CASES] + [("cog", c[0], None) for c in COG_CASES]
    ids = [(table, attack) for table, attack, _ in rows]
    assert len(ids) == len(set(ids))
    assert all(error is None or issubclass(error, Exception) for _, _, error in rows)
    assert len(CASES) >= 33 + 4 and len(rows) > 140  # URL table included; the first turn's 33 matrix rows + 11 through Cog or alone


def test_a_link_in_output_is_checked_for_save_prefixes_too(roots: PathRoots, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (roots.output / "videos").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeInputError, match="through a link"):
        check_workflow_paths(bad.node("SaveImage", images=["2", 0], filename_prefix="videos"), roots)


def test_forgetting_a_governed_download_removes_it_and_its_folder(tmp_path: Path) -> None:
    import tempfile

    from comfyui_wrapper.inputs import source as inputs

    folder = Path(tempfile.mkdtemp(prefix="cw-cog-input-"))
    path = folder / "a.png"
    path.write_bytes(b"x")
    inputs._COG_DOWNLOADS.add(str(path))
    inputs.forget_cog_download(path)
    assert not folder.exists()
    other = tmp_path / "mine.png"
    other.write_bytes(b"x")
    inputs.forget_cog_download(other)  # not ours: left alone
    assert other.exists()
