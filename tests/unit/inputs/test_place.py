"""inputs/: place.py (input_file), source.py (CLI strings), workflow_urls.py (URLs in a workflow), references.py (checks).

Real media files (Pillow, PyAV), real archives, and a real HTTP server on
127.0.0.1 (tests/support/static_server.py) with UrlPolicy(allow_private=True),
except where the test is that the default policy refuses it.
"""

from __future__ import annotations

import base64
import copy
import http.server
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote_from_bytes

import av
import numpy as np
import pytest
from PIL import Image

from comfyui_wrapper.errors import (
    DownloadError,
    InputFileError,
    InputTooLargeError,
    MissingInputError,
    UnsafeInputError,
)
from comfyui_wrapper.filetypes import looks_like_text, sniff_media
from comfyui_wrapper.inputs.archives import InputLimits
from comfyui_wrapper.inputs.place import place_input_file, safe_filename
from comfyui_wrapper.inputs.references import (
    absolutize_input_paths,
    check_input_references,
    missing_inputs_error,
    require_inputs,
)
from comfyui_wrapper.inputs.source import resolve_input_source
from comfyui_wrapper.inputs.workflow_urls import fetch_workflow_urls
from comfyui_wrapper.urls import UrlPolicy
from tests.support.static_server import serve_directory

LIMITS = InputLimits(max_input_bytes=20 * 1024**2, max_archive_files=100, max_compression_ratio=200.0)
LOCAL = UrlPolicy(allow_private=True, timeout_s=5.0)


# --- real media ----------------------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (16, 12), color: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def video_bytes(container: str, codec: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def audio_bytes(container: str, codec: str, sample_format: str, rate: int = 44100) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        dtype = np.float32 if sample_format.startswith("flt") else np.int16
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), dtype), format=sample_format, layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


MEDIA = {
    ".png": lambda: image_bytes("PNG"),
    ".jpg": lambda: image_bytes("JPEG"),
    ".gif": lambda: image_bytes("GIF"),
    ".webp": lambda: image_bytes("WEBP"),
    ".bmp": lambda: image_bytes("BMP"),
    ".tiff": lambda: image_bytes("TIFF"),
    ".mp4": lambda: video_bytes("mp4", "libx264"),
    ".mov": lambda: video_bytes("mov", "libx264"),
    ".webm": lambda: video_bytes("webm", "libvpx"),
    ".mkv": lambda: video_bytes("matroska", "libx264"),
    ".avi": lambda: video_bytes("avi", "mpeg4"),
    ".wav": lambda: audio_bytes("wav", "pcm_s16le", "s16"),
    ".mp3": lambda: audio_bytes("mp3", "libmp3lame", "s16p"),
    ".flac": lambda: audio_bytes("flac", "flac", "s16"),
    ".ogg": lambda: audio_bytes("ogg", "libopus", "s16", rate=48000),
    ".m4a": lambda: audio_bytes("ipod", "aac", "fltp"),
}


@pytest.mark.parametrize("ext", sorted(MEDIA))
def test_sniff_media_on_real_files(ext):
    assert sniff_media(MEDIA[ext]()[:512]) == ext


def test_text_is_not_media():
    for text in (b"<!DOCTYPE html><html>", b'{"error": "nope"}', b"  [1, 2]", b"Access denied\n", "héllo".encode()):
        assert sniff_media(text) is None and looks_like_text(text)
    assert not looks_like_text(MEDIA[".png"]()[:512]) and not looks_like_text(b"\x00\x01\x02\xff")


# --- place_input_file ------------------------------------------------------------------


def test_single_png_lands_as_input_png_and_its_own_name(tmp_path):
    source = tmp_path / "cat.png"
    source.write_bytes(MEDIA[".png"]())
    placed = place_input_file(source, tmp_path / "input", LIMITS)
    assert placed.kind == "file" and placed.paths == ("input.png", "cat.png")
    assert (tmp_path / "input" / "input.png").read_bytes() == source.read_bytes()
    assert (tmp_path / "input" / "cat.png").read_bytes() == source.read_bytes()
    assert "input.png, cat.png" in placed.describe()
    assert not [p for p in (tmp_path / "input").iterdir() if p.name.startswith(".")]  # no temp files left


def test_jpeg_with_original_name_from_a_temp_path(tmp_path):
    source = tmp_path / "tmpa1b2c3"  # what Cog hands over: no name, no extension
    source.write_bytes(MEDIA[".jpg"]())
    placed = place_input_file(source, tmp_path / "input", LIMITS, original_name="my_photo.jpg")
    assert placed.paths == ("input.jpg", "my_photo.jpg")
    with Image.open(tmp_path / "input" / "my_photo.jpg") as image:
        assert image.format == "JPEG" and image.size == (16, 12)


@pytest.mark.parametrize("ext", [".png", ".webp", ".mp4", ".webm", ".wav", ".flac"])
def test_no_extension_is_sniffed(tmp_path, ext):
    source = tmp_path / "upload"
    source.write_bytes(MEDIA[ext]())
    placed = place_input_file(source, tmp_path / "input", LIMITS)
    assert placed.paths == (f"input{ext}", "upload")


def test_wrong_extension_keeps_a_media_name_but_fixes_a_generic_one(tmp_path):
    source = tmp_path / "photo.bin"
    source.write_bytes(MEDIA[".png"]())
    assert place_input_file(source, tmp_path / "in1", LIMITS).paths == ("input.png", "photo.bin")
    other = tmp_path / "model.glb"  # not media, but a named file is placed as named
    other.write_bytes(b"glTF\x02\x00\x00\x00" + b"\x00" * 20)
    assert place_input_file(other, tmp_path / "in2", LIMITS).paths == ("input.glb", "model.glb")


def test_unrecognisable_file_without_extension_is_refused(tmp_path):
    source = tmp_path / "mystery"
    source.write_bytes(b"\x00\x01\x02\x03" * 100)
    with pytest.raises(InputFileError, match="Cannot tell what kind of file"):
        place_input_file(source, tmp_path / "input", LIMITS)
    assert not (tmp_path / "input").exists()


def test_empty_missing_and_folder_inputs(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        place_input_file(empty, tmp_path / "input", LIMITS)
    with pytest.raises(MissingInputError):
        place_input_file(tmp_path / "nope.png", tmp_path / "input", LIMITS)
    with pytest.raises(InputFileError, match="folder"):
        place_input_file(tmp_path, tmp_path / "input", LIMITS)


def test_oversized_single_file_is_refused(tmp_path):
    source = tmp_path / "big.png"
    source.write_bytes(MEDIA[".png"]() + b"\0" * 5000)
    with pytest.raises(InputTooLargeError):
        place_input_file(source, tmp_path / "input", InputLimits(max_input_bytes=1000))


def test_path_in_original_name_is_dropped(tmp_path):
    source = tmp_path / "x"
    source.write_bytes(MEDIA[".png"]())
    placed = place_input_file(source, tmp_path / "input", LIMITS, original_name="C:\\Users\\me\\..\\photo [1].png")
    assert placed.paths == ("input.png", "photo [1].png")
    assert safe_filename("../../etc/passwd") == "passwd" and safe_filename("..") == ""


def test_zip_input_is_extracted_with_folders(tmp_path):
    archive = tmp_path / "upload"  # no name: detected from content
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("frames/001.png", MEDIA[".png"]())
        zf.writestr("frames/002.png", MEDIA[".png"]())
        zf.writestr("__MACOSX/frames/._001.png", b"x")
    placed = place_input_file(archive, tmp_path / "input", LIMITS, original_name="frames.zip")
    assert placed.kind == "zip"
    assert sorted(placed.paths) == ["frames/001.png", "frames/002.png"]
    assert placed.skipped == ("__MACOSX/frames/._001.png",)
    assert "zip archive" in placed.describe()


def test_empty_archive_places_nothing(tmp_path):
    archive = tmp_path / "empty.zip"
    zipfile.ZipFile(archive, "w").close()
    placed = place_input_file(archive, tmp_path / "input", LIMITS)
    assert placed.paths == () and "nothing placed" in placed.describe()


# --- resolve_input_source ------------------------------------------------------------------


def test_local_path_is_returned_as_is(tmp_path):
    source = tmp_path / "a.png"
    source.write_bytes(MEDIA[".png"]())
    assert resolve_input_source(str(source), tmp_path / "tmp", LOCAL, LIMITS) == source
    with pytest.raises(MissingInputError):
        resolve_input_source(str(tmp_path / "missing.png"), tmp_path / "tmp", LOCAL, LIMITS)


def test_base64_data_uri_becomes_input_png(tmp_path):
    png = MEDIA[".png"]()
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    path = resolve_input_source(uri, tmp_path / "tmp", LOCAL, LIMITS)
    assert path.name == "input.png" and path.read_bytes() == png
    placed = place_input_file(path, tmp_path / "input", LIMITS, original_name=path.name)
    assert placed.paths == ("input.png",)


@pytest.mark.parametrize("name", ["x.png/", "a/.png", "..png"])
def test_data_uri_name_that_sanitises_to_nothing_falls_back_to_input_ext(tmp_path, name):
    """A ;name= whose safe form is empty once named the temp folder itself (IsADirectoryError)."""
    png = MEDIA[".png"]()
    uri = f"data:image/png;name={name};base64," + base64.b64encode(png).decode()
    path = resolve_input_source(uri, tmp_path / "tmp", LOCAL, LIMITS)
    assert path.parent == tmp_path / "tmp" and path.suffix == ".png" and path.read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no stray .part beside it


def test_percent_encoded_data_uri_and_sniffed_type(tmp_path):
    wav = MEDIA[".wav"]()
    path = resolve_input_source("data:," + quote_from_bytes(wav), tmp_path / "tmp", LOCAL, LIMITS)
    assert path.name == "input.wav" and path.read_bytes() == wav
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("a/b.png", MEDIA[".png"]())
    path = resolve_input_source("data:application/zip;base64," + base64.b64encode(zipped.getvalue()).decode(),
                                tmp_path / "tmp2", LOCAL, LIMITS)
    assert path.name == "input.zip"
    assert place_input_file(path, tmp_path / "input", LIMITS).paths == ("a/b.png",)


def test_bad_data_uris(tmp_path):
    with pytest.raises(InputFileError, match="base64"):
        resolve_input_source("data:image/png;base64,@@@@", tmp_path, LOCAL, LIMITS)
    with pytest.raises(InputFileError, match="malformed"):
        resolve_input_source("data:image/png;base64", tmp_path, LOCAL, LIMITS)
    big = "data:image/png;base64," + base64.b64encode(b"\0" * 3000).decode()
    with pytest.raises(InputTooLargeError):
        resolve_input_source(big, tmp_path, LOCAL, InputLimits(max_input_bytes=1000))


@pytest.fixture
def site(tmp_path: Path) -> Iterator:
    root = tmp_path / "site"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "cat.png").write_bytes(MEDIA[".png"]())
    (root / "a" / "cat.png").write_bytes(image_bytes("PNG", color=(1, 2, 3)))
    (root / "b" / "cat.png").write_bytes(image_bytes("PNG", color=(4, 5, 6)))
    (root / "clip.mp4").write_bytes(MEDIA[".mp4"]())
    (root / "noext").write_bytes(MEDIA[".webp"]())
    (root / "page.html").write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>" * 20)
    (root / "fake.png").write_bytes(b"<html><body>Not found, but 200</body></html>" * 20)
    (root / "data.json").write_bytes(b'{"images": []}')
    (root / "big.png").write_bytes(MEDIA[".png"]() + bytes(300_000))
    with zipfile.ZipFile(root / "bundle.zip", "w") as zf:
        zf.writestr("set/one.png", MEDIA[".png"]())
    with serve_directory(root) as server:
        yield server


def test_url_input_file_is_downloaded_with_its_name(site, tmp_path):
    path = resolve_input_source(f"{site.base_url}/clip.mp4", tmp_path / "tmp", LOCAL, LIMITS)
    assert path.name == "clip.mp4" and path.read_bytes() == (Path(site.root) / "clip.mp4").read_bytes()
    sniffed = resolve_input_source(f"{site.base_url}/noext", tmp_path / "tmp", LOCAL, LIMITS)
    assert sniffed.name == "noext.webp"
    bundle = resolve_input_source(f"{site.base_url}/bundle.zip", tmp_path / "tmp", LOCAL, LIMITS)
    assert place_input_file(bundle, tmp_path / "input", LIMITS).paths == ("set/one.png",)


def test_url_input_file_errors(site, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        resolve_input_source(f"{site.base_url}/missing.png", tmp_path / "tmp", LOCAL, LIMITS)
    with pytest.raises(InputFileError, match="not media"):
        resolve_input_source(f"{site.base_url}/page.html", tmp_path / "tmp", LOCAL, LIMITS)
    with pytest.raises(UnsafeInputError, match="only http and https"):
        resolve_input_source("file:///etc/passwd", tmp_path / "tmp", LOCAL, LIMITS)
    with pytest.raises(UnsafeInputError, match="loopback, private"):
        resolve_input_source(f"{site.base_url}/cat.png", tmp_path / "tmp", UrlPolicy(), LIMITS)
    assert site.requests["/cat.png"] == 0
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == []


# --- fetch_workflow_urls ------------------------------------------------------------------


def load_image(url: str, title: str | None = None) -> dict:
    node = {"class_type": "LoadImage", "inputs": {"image": url}}
    if title:
        node["_meta"] = {"title": title}
    return node


def test_same_url_twice_downloads_once_and_input_is_not_mutated(site, tmp_path):
    url = f"{site.base_url}/cat.png"
    workflow = {"1": load_image(url), "2": load_image(url),
                "3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["4", 0]}}}
    original = copy.deepcopy(workflow)
    new, fetched = fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    assert workflow == original
    assert site.requests["/cat.png"] == 1
    assert len(fetched) == 1 and fetched[0].uses == (("1", "image"), ("2", "image"))
    name = new["1"]["inputs"]["image"]
    assert name == new["2"]["inputs"]["image"] == fetched[0].local_name
    assert name.endswith("_cat.png") and len(name) == len("12345678_cat.png")
    assert (tmp_path / "input" / name).read_bytes() == (Path(site.root) / "cat.png").read_bytes()
    assert new["3"] == workflow["3"]


def test_two_urls_with_the_same_basename_are_both_kept(site, tmp_path):
    workflow = {"1": load_image(f"{site.base_url}/a/cat.png"), "2": load_image(f"{site.base_url}/b/cat.png")}
    new, fetched = fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    first, second = new["1"]["inputs"]["image"], new["2"]["inputs"]["image"]
    assert first != second
    assert (tmp_path / "input" / first).read_bytes() == (Path(site.root) / "a/cat.png").read_bytes()
    assert (tmp_path / "input" / second).read_bytes() == (Path(site.root) / "b/cat.png").read_bytes()


def test_media_urls_in_any_node_and_non_media_untouched(site, tmp_path):
    workflow = {
        "1": {"class_type": "SomeCustomVideoNode", "inputs": {"path": f"{site.base_url}/clip.mp4"}},
        "2": {"class_type": "VHS_LoadVideoPath", "inputs": {"video": f"{site.base_url}/clip.mp4?x=1"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": f"{site.base_url}/noext"}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": f"{site.base_url}/model.safetensors"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a photo like {site.base_url}/cat.png"}},
    }
    new, fetched = fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    assert len(fetched) == 3
    assert new["1"]["inputs"]["path"].endswith("_clip.mp4") and "/" not in new["1"]["inputs"]["path"]
    loaded = Path(new["2"]["inputs"]["video"])  # a *Path node opens paths: gets the absolute one
    assert loaded.is_absolute() and loaded.parent == tmp_path / "input" and loaded.is_file()
    assert new["3"]["inputs"]["image"].endswith("_noext.webp")
    assert new["4"] == workflow["4"] and new["5"] == workflow["5"]
    assert site.requests["/model.safetensors"] == 0


def test_many_urls_download_in_parallel(site, tmp_path):
    root = Path(site.root)
    for i in range(8):
        (root / f"p{i}.png").write_bytes(image_bytes("PNG", color=(i, i, i)) + bytes(200_000))
    site.rate_limit_bps = 400_000  # each file takes ~0.45 s: over 3.5 s one after another
    workflow = {str(i): load_image(f"{site.base_url}/p{i}.png") for i in range(8)}
    started = time.monotonic()
    new, fetched = fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    elapsed = time.monotonic() - started
    assert len(fetched) == 8 and all(site.requests[f"/p{i}.png"] == 1 for i in range(8))
    assert all((tmp_path / "input" / new[str(i)]["inputs"]["image"]).stat().st_size > 200_000 for i in range(8))
    assert elapsed < 2.5, f"8 rate-limited downloads took {elapsed:.1f} s: not parallel"


def test_404_names_node_input_and_redacted_url(site, tmp_path):
    workflow = {"7": load_image(f"{site.base_url}/missing.png?token=SECRET123", title="Reference photo"),
                "8": load_image(f"{site.base_url}/cat.png")}
    with pytest.raises(DownloadError) as caught:
        fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    message = str(caught.value)
    assert "node 7 \"Reference photo\" (LoadImage), input 'image'" in message
    assert "HTTP 404" in message and "/missing.png?token=***" in message and "SECRET123" not in message
    assert caught.value.node_id == "7" and caught.value.input_name == "image"
    assert list((tmp_path / "input").iterdir()) == []  # the good download is removed too


def test_oversized_body_is_refused_and_nothing_left(site, tmp_path):
    limits = InputLimits(max_input_bytes=100_000)
    with pytest.raises(InputTooLargeError, match="larger than the input limit") as caught:
        fetch_workflow_urls({"1": load_image(f"{site.base_url}/big.png")}, tmp_path / "input", LOCAL, limits)
    assert "node 1" in str(caught.value) and "CW_MAX_INPUT_BYTES" in str(caught.value)
    assert list((tmp_path / "input").iterdir()) == []


@contextmanager
def streaming_server(body: bytes, chunk: int = 16384) -> Iterator[str]:
    """Sends body with no Content-Length (HTTP/1.0, close at end): the limit must be enforced while streaming."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for start in range(0, len(body), chunk):
                    self.wfile.write(body[start:start + chunk])
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_body_without_length_is_cut_at_the_limit(tmp_path):
    body = MEDIA[".png"]() + bytes(2_000_000)
    with streaming_server(body) as base:
        with pytest.raises(InputTooLargeError):
            fetch_workflow_urls({"1": load_image(f"{base}/stream.png")}, tmp_path / "input", LOCAL,
                                InputLimits(max_input_bytes=200_000))
    assert list((tmp_path / "input").iterdir()) == []


@pytest.mark.parametrize("path", ["/page.html", "/fake.png", "/data.json"])
def test_html_json_and_text_are_not_media(site, tmp_path, path):
    with pytest.raises(InputFileError, match="not media") as caught:
        fetch_workflow_urls({"3": load_image(site.base_url + path)}, tmp_path / "input", LOCAL, LIMITS)
    assert "node 3" in str(caught.value) and path in str(caught.value)
    assert list((tmp_path / "input").iterdir()) == []


def test_a_url_that_never_answers_times_out(site, tmp_path):
    site.hang_paths.add("/slow.png")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="did not answer within 0.5 s") as caught:
        fetch_workflow_urls({"9": load_image(f"{site.base_url}/slow.png")}, tmp_path / "input",
                            UrlPolicy(allow_private=True, timeout_s=0.5), LIMITS)
    assert time.monotonic() - started < 5
    assert "node 9" in str(caught.value)
    assert list((tmp_path / "input").iterdir()) == []


def test_a_url_that_trickles_hits_the_total_time_limit(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "slow.png").write_bytes(MEDIA[".png"]() + bytes(400_000))
    with serve_directory(tmp_path / "site", rate_limit_bps=100_000) as slow:
        started = time.monotonic()
        with pytest.raises(DownloadError, match="took longer than 1 s") as caught:
            fetch_workflow_urls({"4": load_image(f"{slow.base_url}/slow.png")}, tmp_path / "input",
                                UrlPolicy(allow_private=True, timeout_s=5, total_timeout_s=1.0), LIMITS)
        assert time.monotonic() - started < 3.5
    assert "node 4" in str(caught.value)
    assert list((tmp_path / "input").iterdir()) == []


@pytest.mark.parametrize("value", ["file:///etc/passwd", "ftp://example.com/cat.png", "file:///tmp/x.png"])
def test_non_http_schemes_are_refused(tmp_path, value):
    with pytest.raises(UnsafeInputError, match="only http and https") as caught:
        fetch_workflow_urls({"2": load_image(value)}, tmp_path / "input", LOCAL, LIMITS)
    assert "node 2" in str(caught.value)


def test_data_uri_in_workflow_is_refused(tmp_path):
    uri = "data:image/png;base64," + base64.b64encode(MEDIA[".png"]()).decode()
    with pytest.raises(UnsafeInputError, match="only for input_file"):
        fetch_workflow_urls({"2": load_image(uri)}, tmp_path / "input", LOCAL, LIMITS)


def test_default_policy_refuses_comfyui_itself_without_a_request(site, tmp_path):
    with pytest.raises(UnsafeInputError, match="loopback, private"):
        fetch_workflow_urls({"1": load_image("http://127.0.0.1:8188/interrupt")}, tmp_path / "input",
                            UrlPolicy(), LIMITS)
    # the same against a server we can watch: not a single request reaches it
    workflow = {"1": load_image(f"{site.base_url}/cat.png"), "2": load_image(f"{site.base_url}/interrupt")}
    with pytest.raises(UnsafeInputError):
        fetch_workflow_urls(workflow, tmp_path / "input", UrlPolicy(), LIMITS)
    assert sum(site.requests.values()) == 0
    assert not (tmp_path / "input").exists()


def test_redirect_to_a_404_is_followed_and_reported(site, tmp_path):
    site.redirects["/moved.png"] = "/a/cat.png"
    workflow = {"1": load_image(f"{site.base_url}/moved.png")}
    new, _ = fetch_workflow_urls(workflow, tmp_path / "input", LOCAL, LIMITS)
    saved = tmp_path / "input" / new["1"]["inputs"]["image"]
    assert saved.read_bytes() == (Path(site.root) / "a/cat.png").read_bytes()
    assert saved.name.endswith("_moved.png")  # named after the URL the user gave


# --- validation -----------------------------------------------------------------------------

OBJECT_INFO = {  # the shapes ComfyUI 0.3.75's /object_info gives these nodes
    "LoadImage": {"input": {"required": {"image": [[], {"image_upload": True}]}}},
    "LoadImageMask": {"input": {"required": {"image": [[], {"image_upload": True}],
                                             "channel": [["alpha", "red", "green", "blue"]]}}},
    "LoadImageOutput": {"input": {"required": {"image": ["COMBO", {"image_upload": True, "image_folder": "output"}]}}},
    "LoadVideo": {"input": {"required": {
        "file": ["COMBO", {"multiselect": False, "options": [], "video_upload": True}]}}},
    "LoadAudio": {"input": {"required": {"audio": [[], {"audio_upload": True}]}}},
    "Load3D": {"input": {"required": {"model_file": [[], {"file_upload": True}], "width": ["INT", {"default": 1024}]}}},
    "CLIPTextEncode": {"input": {"required": {"text": ["STRING", {"multiline": True}]}}},
}


def node(class_type: str, title: str | None = None, **inputs) -> dict:
    result = {"class_type": class_type, "inputs": inputs}
    if title:
        result["_meta"] = {"title": title}
    return result


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    root = tmp_path / "input"
    (root / "frames_v2").mkdir(parents=True)
    (root / "frames_v2" / "001.png").write_bytes(MEDIA[".png"]())
    (root / "photo.jpg").write_bytes(MEDIA[".jpg"]())
    (root / "Song.WAV").write_bytes(MEDIA[".wav"]())
    (root / "3d").mkdir()
    (root / "3d" / "model.glb").write_bytes(b"glTF")
    return root


def test_present_inputs_pass_and_refs_are_reported(input_dir):
    workflow = {
        "1": node("LoadImage", image="photo.jpg"),
        "2": node("LoadImage", image="photo.jpg [input]"),
        "3": node("LoadImageOutput", image="ComfyUI_00001_.png [output]"),
        "4": node("VHS_LoadImages", directory="frames_v2"),
        "5": node("Load3D", model_file="3d/model.glb", width=512),
        "6": node("CLIPTextEncode", text="photo.png"),
        "7": node("LoadImage", image=["9", 0]),
        "8": node("LoadImagesFromDir //Inspire", directory="input/frames_v2"),
    }
    refs = require_inputs(workflow, OBJECT_INFO, input_dir)
    assert [(r.node_id, r.relative_path, r.kind) for r in refs] == [
        ("1", "photo.jpg", "file"), ("2", "photo.jpg", "file"), ("4", "frames_v2", "directory"),
        ("5", "3d/model.glb", "file"), ("8", "frames_v2", "directory"),
    ]
    absolute = absolutize_input_paths(workflow, refs)
    assert absolute["8"]["inputs"]["directory"] == str((input_dir / "frames_v2").absolute())
    assert absolute["4"] == workflow["4"] and workflow["8"]["inputs"]["directory"] == "input/frames_v2"


def test_all_missing_inputs_are_listed_at_once_with_suggestions(input_dir):
    workflow = {
        "10": node("LoadImage", "Reference", image="photo.png"),
        "11": node("LoadImageMask", image="masks/mask.png", channel="alpha"),
        "12": node("LoadVideo", file="clip.mp4"),
        "13": node("LoadAudio", audio="song.wav"),
        "14": node("VHS_LoadImages", directory="frames_v1"),
        "15": node("SomeBatchLoader", directory="frames"),
        "16": node("VHS_LoadVideo", video="clip.mp4"),
        "17": node("LoadImage", image="photo.jpg"),  # present
    }
    with pytest.raises(MissingInputError) as caught:
        require_inputs(workflow, OBJECT_INFO, input_dir)
    message = str(caught.value)
    assert "7 file(s) or folder(s)" in message
    for fragment in (
        "node 10 \"Reference\" (LoadImage), input 'image': file 'photo.png' is missing; did you mean 'photo.jpg'?",
        "node 11 (LoadImageMask), input 'image': file 'masks/mask.png' is missing",
        "node 12 (LoadVideo), input 'file': file 'clip.mp4' is missing.",
        "node 13 (LoadAudio), input 'audio': file 'song.wav' is missing; did you mean 'Song.WAV'?",
        "node 14 (VHS_LoadImages), input 'directory': folder 'frames_v1' is missing; did you mean 'frames_v2'?",
        "node 15 (SomeBatchLoader), input 'directory': folder 'frames' is missing; did you mean 'frames_v2'?",
        "node 16 (VHS_LoadVideo), input 'video'",
        "input/ holds: 3d/, frames_v2/,",
        "How to fix:",
    ):
        assert fragment in message, fragment
    assert "node 17" not in message
    assert [ref.node_id for ref in caught.value.missing] == ["10", "11", "12", "13", "14", "15", "16"]
    assert "photo.jpg" in caught.value.present


def test_empty_input_dir_says_so(tmp_path):
    refs = check_input_references({"1": node("LoadImage", image="a.png")}, OBJECT_INFO, tmp_path / "input")
    error = missing_inputs_error(refs, tmp_path / "input")
    assert error is not None and "input/ is empty" in str(error)
    assert missing_inputs_error([], tmp_path) is None


@pytest.mark.parametrize("value", ["../secret.png", "a/../../secret.png", "/etc/passwd", "..\\..\\x.png", "C:/x.png",
                                   "../x.png [input]"])
def test_values_leaving_input_are_refused(input_dir, value):
    with pytest.raises(UnsafeInputError) as caught:
        check_input_references({"4": node("LoadImage", image=value)}, OBJECT_INFO, input_dir)
    assert "node 4 (LoadImage), input 'image'" in str(caught.value)


def test_directory_with_dotdot_is_refused_but_absolute_generic_is_not_ours(input_dir):
    with pytest.raises(UnsafeInputError):
        check_input_references({"4": node("AnyLoader", directory="../elsewhere")}, OBJECT_INFO, input_dir)
    assert check_input_references({"4": node("AnyLoader", directory="/data/frames")}, OBJECT_INFO, input_dir) == []
    assert check_input_references({"4": node("SaveImageToFolder", directory="out")}, OBJECT_INFO, input_dir) == []


def test_absolute_path_inside_input_and_links_out(input_dir, tmp_path):
    inside = str(input_dir / "photo.jpg")
    refs = check_input_references({"1": node("LoadImage", image=inside)}, OBJECT_INFO, input_dir)
    assert refs[0].relative_path == "photo.jpg" and refs[0].exists
    (tmp_path / "outside.png").write_bytes(b"x")
    (input_dir / "sneaky.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(UnsafeInputError, match="through a link"):
        check_input_references({"1": node("LoadImage", image="sneaky.png")}, OBJECT_INFO, input_dir)


def test_real_object_info_marks_the_core_loaders():
    """The upload flags are read from object_info itself, not only from our table."""
    workflow = {"1": node("LoadImageMask", image="m.png", channel="alpha"), "2": node("Load3D", model_file="x.glb")}
    refs = check_input_references(workflow, OBJECT_INFO, Path("/nonexistent-input"))
    assert [(r.node_id, r.input_name, r.exists) for r in refs] == [("1", "image", False), ("2", "model_file", False)]
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "object_info_subset.json"
    real = json.loads(fixture.read_text())
    refs = check_input_references({"1": node("LoadImage", image="x.png")}, real, Path("/nonexistent-input"))
    assert len(refs) == 1 and refs[0].input_name == "image"
