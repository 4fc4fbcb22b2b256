"""Inputs end to end: uploads, archives and URLs reach the REAL ComfyUI's loaders intact.

Everything goes through WorkflowRunner against a real ComfyUI (one boot for the
module), then once through the real Cog server and once through the CLI.
Pixels are compared with the source files, not just counted: a wrong file, a
mixed-up download or a stale ComfyUI cache fails. LoadImage divides by 255 in
float32 and SaveImage truncates, so a value may come back one level lower;
every comparison allows exactly that and no more.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_wrapper.errors import (
    DownloadError,
    InputFileError,
    InputTooLargeError,
    MissingInputError,
    UnsafeInputError,
    WrapperError,
)
from comfyui_wrapper.inputs.place import upload_name
from comfyui_wrapper.runner import RunRequest, RunResult, WorkflowRunner
from tests.conftest import REPO_ROOT, base_settings
from tests.support.cog_server import cog_server
from tests.support.static_server import serve_directory
from tests.unit.inputs.test_archives import make_tar, make_zip, tar_special

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

# Small enough that an oversized URL is cheap to serve, big enough for every other input here.
MAX_INPUT_BYTES = 3 * 1024**2


# --- media and workflows ------------------------------------------------------------


def write_image(path: Path, seed: int, *, mode: str = "RGB", size: tuple[int, int] = (12, 8), **save) -> np.ndarray:
    """A noise image (every pixel different, so swaps and stale copies show); returns its decoded pixels."""
    channels = len(mode)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path, **save)
    with Image.open(path) as image:  # what a decoder sees (JPEG is lossy)
        return np.asarray(image.convert(mode)).copy()


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def close(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Equal up to SaveImage's float truncation (one level)."""
    expected = np.asarray(expected).astype(int)
    return actual.shape == expected.shape and int(np.abs(actual - expected).max()) <= 1


def invert_workflow(*names: str) -> dict:
    """For each name: LoadImage(name) -> ImageInvert -> SaveImage(prefix out<i>)."""
    workflow: dict = {}
    for index, name in enumerate(names):
        base = 10 * (index + 1)
        workflow[str(base)] = {"class_type": "LoadImage", "inputs": {"image": name}, "_meta": {"title": f"Load {index}"}}
        workflow[str(base + 1)] = {"class_type": "ImageInvert", "inputs": {"image": [str(base), 0]}}
        workflow[str(base + 2)] = {"class_type": "SaveImage",
                                   "inputs": {"images": [str(base + 1), 0], "filename_prefix": f"out{index}"}}
    return workflow


def by_prefix(result: RunResult) -> dict[str, list[np.ndarray]]:
    """SaveImage names files <prefix>_<counter>_.png: group the returned pixels by prefix."""
    grouped: dict[str, list[np.ndarray]] = {}
    for path in result.files:
        grouped.setdefault(path.name.rsplit("_", 2)[0], []).append(rgb(path))
    return grouped


def run(runner: WorkflowRunner, workflow: dict, input_file: Path | str | None = None) -> RunResult:
    return runner.run(RunRequest(workflow_json=json.dumps(workflow), input_file=input_file, output_format="png",
                                 input_file_is_local=True))


def assert_inverted(result: RunResult, *sources: np.ndarray) -> None:
    outputs = by_prefix(result)
    assert sorted(outputs) == [f"out{i}" for i in range(len(sources))], [p.name for p in result.files]
    for index, source in enumerate(sources):
        [out] = outputs[f"out{index}"]
        assert close(out, 255 - source.astype(int)), f"out{index} does not hold the inverted source"


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    runner = WorkflowRunner(base_settings(tmp_path_factory.mktemp("inputs_e2e"), max_input_bytes=MAX_INPUT_BYTES))
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A local image host: /a/photo.png and /b/photo.png (same basename, different pixels), big.png."""
    root = tmp_path_factory.mktemp("site")
    pixels = {
        "/a/photo.png": write_image(root / "a" / "photo.png", 101),
        "/b/photo.png": write_image(root / "b" / "photo.png", 102),
        "/cli_source.png": write_image(root / "cli_source.png", 103),
        "/cog/cog_source.png": write_image(root / "cog" / "cog_source.png", 104),
    }
    # Random bytes with a PNG signature: larger than MAX_INPUT_BYTES and incompressible.
    big = root / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(MAX_INPUT_BYTES + 1024))
    with serve_directory(root) as control:
        yield control, pixels


# --- single files ------------------------------------------------------------------


def test_png_upload_comes_through_exactly_as_input_png_and_under_its_own_name(runner, tmp_path):
    source = write_image(tmp_path / "my photo (1).png", 1)
    result = run(runner, invert_workflow("input.png", "my photo (1).png"), tmp_path / "my photo (1).png")
    assert_inverted(result, source, source)


def test_jpeg_upload_comes_through_exactly_as_input_jpg_and_under_its_own_name(runner, tmp_path):
    source = write_image(tmp_path / "Holiday.JPG", 2, format="JPEG", quality=90)
    result = run(runner, invert_workflow("input.jpg", "Holiday.JPG"), tmp_path / "Holiday.JPG")
    assert_inverted(result, source, source)


def test_the_same_workflow_with_two_uploads_gives_two_results(runner, tmp_path):
    """ComfyUI caches node results: the second user's image must not get the first user's output."""
    first = write_image(tmp_path / "one" / "same_name.png", 3)
    second = write_image(tmp_path / "two" / "same_name.png", 4)
    workflow = invert_workflow("input.png")
    a = run(runner, workflow, tmp_path / "one" / "same_name.png")
    assert_inverted(a, first)
    out_a = by_prefix(a)["out0"][0]
    b = run(runner, workflow, tmp_path / "two" / "same_name.png")
    assert_inverted(b, second)
    assert np.abs(by_prefix(b)["out0"][0] - out_a).mean() > 20


def test_input_file_given_as_a_data_uri_or_a_url_string(runner, site, tmp_path):
    """RunRequest.input_file also takes the CLI's strings: a data: URI and an http(s) URL."""
    control, served = site
    source = write_image(tmp_path / "d.png", 5)
    uri = "data:image/png;base64," + base64.b64encode((tmp_path / "d.png").read_bytes()).decode()
    assert_inverted(run(runner, invert_workflow("input.png"), uri), source)
    url = f"{control.base_url}/a/photo.png"
    result = run(runner, invert_workflow("input.png", "photo.png"), url)
    assert_inverted(result, served["/a/photo.png"], served["/a/photo.png"])


def test_load_image_mask_reads_the_channel_values(runner, tmp_path):
    rgba = write_image(tmp_path / "with_alpha.png", 6, mode="RGBA")
    workflow = {}
    for index, channel in enumerate(("alpha", "red")):
        base = 10 * (index + 1)
        workflow[str(base)] = {"class_type": "LoadImageMask", "inputs": {"image": "with_alpha.png", "channel": channel}}
        workflow[str(base + 1)] = {"class_type": "MaskToImage", "inputs": {"mask": [str(base), 0]}}
        workflow[str(base + 2)] = {"class_type": "SaveImage",
                                   "inputs": {"images": [str(base + 1), 0], "filename_prefix": f"out{index}"}}
    outputs = by_prefix(run(runner, workflow, tmp_path / "with_alpha.png"))
    [alpha_mask], [red_mask] = outputs["out0"], outputs["out1"]
    # LoadImageMask inverts alpha (opaque = not masked); MaskToImage repeats the mask in R, G and B.
    assert close(alpha_mask, np.repeat(255 - rgba[..., 3:4].astype(int), 3, axis=2))
    assert close(red_mask, np.repeat(rgba[..., 0:1], 3, axis=2))


# --- archives --------------------------------------------------------------------


def build_archive(kind: str, path: Path, files: dict[str, bytes]) -> Path:
    if kind == "zip":
        return make_zip(path, list(files.items()))
    return make_tar(path, list(files.items()), mode="w:gz")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_with_nested_folders_feeds_file_loaders_and_a_folder_loader(runner, tmp_path, kind):
    src = tmp_path / "src"
    main = write_image(src / "my_img.png", 7)
    ref1 = write_image(src / "references" / "my_reference_01.jpg", 8, format="JPEG", quality=92)
    ref2 = write_image(src / "references" / "my_reference_02.png", 9, size=(10, 6))
    names = ["my_img.png", "references/my_reference_01.jpg", "references/my_reference_02.png"]
    archive = build_archive(kind, tmp_path / f"inputs.{kind}", {name: (src / name).read_bytes() for name in names})
    workflow = invert_workflow("my_img.png", "references/my_reference_01.jpg")
    # The core folder loader: LoadImageDataSetFromFolder's `folder` lists input/'s subfolders.
    workflow["90"] = {"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": "references"}}
    workflow["91"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "folder"}}
    result = run(runner, workflow, archive)
    outputs = by_prefix(result)
    [out0], [out1] = outputs["out0"], outputs["out1"]
    assert close(out0, 255 - main.astype(int))
    assert close(out1, 255 - ref1.astype(int))
    folder = outputs["folder"]
    assert len(folder) == 2, "both images of references/ must be loaded"
    assert sorted(any(close(out, ref) for out in folder) for ref in (ref1, ref2)) == [True, True]


def test_a_missing_folder_is_listed_with_a_suggestion(runner, tmp_path):
    image = tmp_path / "x.png"
    write_image(image, 13)
    archive = make_zip(tmp_path / "refs.zip", [("references/x.png", image.read_bytes())])
    workflow = {"1": {"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": "reference"}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "f"}}}
    with pytest.raises(MissingInputError) as caught:
        run(runner, workflow, archive)
    assert ("node 1 (LoadImageDataSetFromFolder), input 'folder': folder 'reference' is missing; "
            "did you mean 'references'?") in str(caught.value)


def test_a_missing_input_is_listed_with_node_input_and_a_suggestion(runner, tmp_path):
    write_image(tmp_path / "my_image.png", 10)
    workflow = invert_workflow("my_imag.png", "input.png")
    workflow["30"] = {"class_type": "LoadImageMask", "inputs": {"image": "refs/mask.png", "channel": "red"},
                      "_meta": {"title": "The mask"}}
    workflow["31"] = {"class_type": "MaskToImage", "inputs": {"mask": ["30", 0]}}
    workflow["32"] = {"class_type": "SaveImage", "inputs": {"images": ["31", 0], "filename_prefix": "m"}}
    with pytest.raises(MissingInputError) as caught:
        run(runner, workflow, tmp_path / "my_image.png")
    message = str(caught.value)
    assert "2 file(s)" in message, message
    assert "node 10 \"Load 0\" (LoadImage), input 'image': file 'my_imag.png' is missing; did you mean 'my_image.png'?" \
        in message
    assert "node 30 \"The mask\" (LoadImageMask), input 'image': file 'refs/mask.png' is missing" in message
    assert "input/ holds: input.png, my_image.png" in message
    assert_input_dir_empty(runner)


def assert_input_dir_empty(runner: WorkflowRunner) -> None:
    s = runner.settings
    for folder in (s.input_dir, s.output_dir, s.temp_dir, s.runtime_dir / "incoming"):
        assert list(folder.iterdir()) == [], f"{folder} holds leftovers"


def hostile_archive(case: str, tmp: Path, outside: Path) -> tuple[Path, type[WrapperError]]:
    """An archive that tries to write into ``outside`` (or past input/), and the error class expected."""
    good = ("good.png", b"\x89PNG\r\n\x1a\n" + b"x" * 64)
    if case == "zip_slip":
        return make_zip(tmp / "slip.zip", [good, ("../" * 20 + str(outside / "evil.png").lstrip("/"), b"evil")]), \
            UnsafeInputError
    if case == "zip_absolute":
        return make_zip(tmp / "abs.zip", [good, (str(outside / "evil.png"), b"evil")]), UnsafeInputError
    if case == "tar_dotdot":
        return make_tar(tmp / "dotdot.tar.gz", [good, ("a/" + "../" * 21 + str(outside / "evil.png").lstrip("/"),
                                                       b"evil")]), UnsafeInputError
    if case == "tar_absolute":
        return make_tar(tmp / "abs.tar.gz", [good, (str(outside / "evil.png"), b"evil")]), UnsafeInputError
    if case == "tar_symlink_escape":  # a link to outside, then a file written "through" it
        return make_tar(tmp / "link.tar", [good, tar_special("dir", tarfile.SYMTYPE, str(outside)),
                                           ("dir/evil.png", b"evil")], mode="w"), UnsafeInputError
    if case == "tar_hardlink":
        return make_tar(tmp / "hard.tar.gz", [good, tar_special("hard.png", tarfile.LNKTYPE, "/etc/passwd")]), \
            UnsafeInputError
    if case == "tar_device":
        return make_tar(tmp / "dev.tar.gz", [good, tar_special("null.png", tarfile.CHRTYPE)]), UnsafeInputError
    if case == "zip_bomb":
        # 2.5 MiB of zeros deflate to a few KiB: far past the 200x ratio, under the byte limit.
        path = tmp / "bomb.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(*good)
            archive.writestr("zeros.png", b"\0" * (5 * 1024**2 // 2))
        return path, InputTooLargeError
    raise AssertionError(case)


# What each refusal must say about the culprit.
HOSTILE = {"zip_slip": "contains '..'", "zip_absolute": "absolute path", "tar_dotdot": "contains '..'",
           "tar_absolute": "absolute path", "tar_symlink_escape": "symbolic link", "tar_hardlink": "hard link",
           "tar_device": "device file", "zip_bomb": "zip bomb"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_nothing_escapes_and_the_next_run_works(runner, tmp_path, caplog, case):
    caplog.set_level(logging.INFO, logger="comfyui_wrapper")
    outside = tmp_path / "outside"
    outside.mkdir()
    archive, expected = hostile_archive(case, tmp_path, outside)
    with pytest.raises(expected) as caught:
        run(runner, invert_workflow("good.png"), archive)
    assert HOSTILE[case] in str(caught.value) and "How to fix" in str(caught.value)
    assert not any("placed in input/" in record.getMessage() for record in caplog.records)
    assert list(outside.iterdir()) == []
    assert not (runner.settings.runtime_dir.parent / "evil.png").exists()
    after = sorted(p.relative_to(runner.settings.runtime_dir).as_posix()
                   for p in runner.settings.runtime_dir.rglob("*") if "evil" in p.name or "zeros" in p.name)
    assert after == []
    assert_input_dir_empty(runner)
    assert [p.name for p in runner.settings.runtime_dir.iterdir() if p.name.startswith(".input-extract-")] == []
    # The next, ordinary prediction works.
    source = write_image(tmp_path / "after.png", 11)
    assert_inverted(run(runner, invert_workflow("input.png"), tmp_path / "after.png"), source)


def test_a_corrupt_zip_is_reported_as_damaged(runner, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("good.png", os.urandom(4096))
    data = bytearray(buffer.getvalue())
    data[60:200] = os.urandom(140)  # the member's compressed bytes
    (tmp_path / "broken.zip").write_bytes(bytes(data))
    with pytest.raises(InputFileError) as caught:
        run(runner, invert_workflow("good.png"), tmp_path / "broken.zip")
    assert "damaged" in str(caught.value) and "broken.zip" in str(caught.value)
    assert_input_dir_empty(runner)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_empty_archive_leads_to_the_missing_input_report(runner, tmp_path, kind):
    archive = build_archive(kind, tmp_path / f"empty.{kind}", {})
    with pytest.raises(MissingInputError) as caught:
        run(runner, invert_workflow("my_img.png"), archive)
    message = str(caught.value)
    assert "node 10 \"Load 0\" (LoadImage), input 'image': file 'my_img.png' is missing" in message
    assert "input/ is empty" in message


# --- URLs in the workflow --------------------------------------------------------------


def test_a_url_used_by_two_nodes_is_downloaded_once(runner, site):
    control, served = site
    url = f"{control.base_url}/a/photo.png"
    before = control.requests["/a/photo.png"]
    result = run(runner, invert_workflow(url, url))
    assert control.requests["/a/photo.png"] - before == 1
    assert result.stats["input_urls_fetched"] == 1
    assert_inverted(result, served["/a/photo.png"], served["/a/photo.png"])


def test_two_urls_with_the_same_basename_keep_their_own_pixels(runner, site):
    control, served = site
    result = run(runner, invert_workflow(f"{control.base_url}/a/photo.png", f"{control.base_url}/b/photo.png"))
    assert result.stats["input_urls_fetched"] == 2
    assert_inverted(result, served["/a/photo.png"], served["/b/photo.png"])
    assert not close(by_prefix(result)["out0"][0], by_prefix(result)["out1"][0])


def test_a_404_url_is_refused_naming_node_input_and_url(runner, site):
    control, _ = site
    url = f"{control.base_url}/nope/missing.png"
    with pytest.raises(DownloadError) as caught:
        run(runner, invert_workflow(url))
    message = str(caught.value)
    assert "node 10 \"Load 0\" (LoadImage), input 'image'" in message
    assert url in message and "404" in message
    assert_input_dir_empty(runner)


def test_an_oversized_url_body_is_refused(runner, site):
    control, _ = site
    with pytest.raises(InputTooLargeError) as caught:
        run(runner, invert_workflow(f"{control.base_url}/big.png"))
    assert str(MAX_INPUT_BYTES) in str(caught.value) and "node 10" in str(caught.value)
    assert_input_dir_empty(runner)


# --- the Cog server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    # Empty CW_ALLOW_PRIVATE_URLS: the production default (private URLs refused) whatever the caller's env.
    with cog_server(tmp_path_factory.mktemp("cog_inputs"), env={"CW_ALLOW_PRIVATE_URLS": ""}) as server:
        assert server.health()["status"] == "READY", server.log()[-3000:]
        yield server


def cog_pixels(body: dict) -> dict[str, np.ndarray]:
    assert body["status"] == "succeeded", body.get("error") or body
    result = {}
    for uri in body["output"]:
        header, _, payload = uri.partition(",")
        assert header.startswith("data:image/png")
        with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
            result[f"out{len(result)}"] = np.asarray(image.convert("RGB")).astype(int)
    return result


def test_cog_input_file_as_a_data_uri(cog, tmp_path):
    source = write_image(tmp_path / "upload.png", 12)
    uri = "data:image/png;base64," + base64.b64encode((tmp_path / "upload.png").read_bytes()).decode()
    body = cog.post({"workflow_json": json.dumps(invert_workflow("input.png")), "input_file": uri,
                     "output_format": "png"}).json()
    [out] = cog_pixels(body).values()
    assert close(out, 255 - source.astype(int))


@pytest.fixture(scope="module")
def cog_trusting(tmp_path_factory):
    """A Cog server on a trusted network (CW_ALLOW_PRIVATE_URLS=1): loopback URLs may be fetched."""
    with cog_server(tmp_path_factory.mktemp("cog_inputs_private"), env={"CW_ALLOW_PRIVATE_URLS": "1"}) as server:
        assert server.health()["status"] == "READY", server.log()[-3000:]
        yield server


def test_cog_input_file_url_goes_through_our_url_policy(cog, site):
    """Cog fetches URL file inputs before predict(); we govern that fetch: a loopback URL is refused."""
    control, _ = site
    before = control.requests["/cog/cog_source.png"]
    body = cog.post({"workflow_json": json.dumps(invert_workflow("input.png", "cog_source.png")),
                     "input_file": f"{control.base_url}/cog/cog_source.png", "output_format": "png"}).json()
    assert body["status"] == "failed" and "loopback" in body["error"], body
    assert control.requests["/cog/cog_source.png"] == before  # never contacted


def test_cog_input_file_as_an_http_url(cog_trusting, site):
    control, served = site
    before = control.requests["/cog/cog_source.png"]
    # Our fetcher keeps the URL's own file name; the workflow finds it under that name and as input.png.
    body = cog_trusting.post({"workflow_json": json.dumps(invert_workflow("input.png", "cog_source.png")),
                              "input_file": f"{control.base_url}/cog/cog_source.png", "output_format": "png"}).json()
    outputs = cog_pixels(body)
    assert len(outputs) == 2
    for out in outputs.values():
        assert close(out, 255 - served["/cog/cog_source.png"].astype(int))
    assert control.requests["/cog/cog_source.png"] - before >= 1


def test_cog_default_policy_refuses_a_loopback_url_without_any_request(cog, site):
    control, _ = site
    url = f"{control.base_url}/interrupt"
    body = cog.post({"workflow_json": json.dumps(invert_workflow(url))}).json()
    assert body["status"] == "failed", body
    assert "loopback" in body["error"] and url in body["error"] and "CW_ALLOW_PRIVATE_URLS" in body["error"]
    assert control.requests["/interrupt"] == 0
    again = cog.post({"workflow_json": json.dumps({"1": {"class_type": "EmptyImage", "inputs": {
        "width": 8, "height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "SaveImage", "inputs": {
            "images": ["1", 0], "filename_prefix": "ok"}}})}).json()
    assert again["status"] == "succeeded", again


def test_upload_name_drops_only_cogs_temp_prefix(tmp_path):
    temp = Path(tempfile.gettempdir())
    assert upload_name(temp / "tmpab_12cd3my photo.JPG") == "my photo.JPG"
    assert upload_name(temp / "tmpab12cd3.png") == "tmpab12cd3.png"  # too short to hold a name
    assert upload_name(tmp_path / "tmpab12cd34photo.png") == "tmpab12cd34photo.png"  # not Cog's temp folder
    assert upload_name(temp / "photo.png") == "photo.png"


# --- the CLI -------------------------------------------------------------------------


def test_cli_runs_a_workflow_with_an_input_file_url(site, tmp_path):
    control, served = site
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(invert_workflow("input.png", "cli_source.png")))
    env = {**os.environ, "CW_RUNTIME_DIR": str(tmp_path / "runtime"), "CW_WEIGHTS_DIR": str(tmp_path / "weights"),
           "CW_ALLOW_PRIVATE_URLS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "comfyui_wrapper", "run", str(workflow), "--input-file",
         f"{control.base_url}/cli_source.png", "--output-dir", str(tmp_path / "out"), "--output-format", "png"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    paths = [Path(line) for line in completed.stdout.splitlines() if line.strip()]
    assert sorted(p.parent for p in paths) == [tmp_path / "out"] * 2
    pixels = {p.name.rsplit("_", 2)[0]: rgb(p) for p in paths}
    expected = 255 - served["/cli_source.png"].astype(int)
    assert close(pixels["out0"], expected) and close(pixels["out1"], expected)
    assert control.requests["/cli_source.png"] == 1
