"""filetypes.py is the one table of what a file is: each test here pins a place where two copies had drifted."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from comfyui_wrapper.filetypes import (
    MODEL_EXTENSIONS,
    filename_from_disposition,
    has_model_extension,
    sniff_archive,
    sniff_weights,
)
from comfyui_wrapper.inputs.archives import InputLimits, archive_kind
from comfyui_wrapper.inputs.source import resolve_input_source
from comfyui_wrapper.urls import UrlPolicy
from comfyui_wrapper.weights.manifest import Manifest
from comfyui_wrapper.weights.refs import core_folder_for, find_weights
from tests.support.static_server import serve_directory

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extension", [".pt2", ".pkl", ".gguf", ".sft"])
def test_every_model_extension_makes_an_unmapped_value_a_weight(extension):
    """Two lists once disagreed on .pt2/.pkl: such a value was neither fetched nor reported."""
    assert extension in MODEL_EXTENSIONS and has_model_extension(f"x{extension.upper()}")
    workflow = {"1": {"class_type": "SomeCustomLoader", "inputs": {"model": f"private_model{extension}"},
                      "_meta": {"title": "Loader"}}}
    refs = find_weights(workflow, Manifest([]), {}, core_folder_for, lambda _name: False)
    assert [u.value for u in refs.unknown] == [f"private_model{extension}"]


def test_archives_and_inputs_read_the_same_magic(tmp_path):
    """A spanned zip's marker was a zip to archives.py and not an archive to the input sniffer."""
    spanned = tmp_path / "upload"
    spanned.write_bytes(b"PK\x07\x08" + b"\0" * 600)
    assert sniff_archive(spanned.read_bytes()[:512]) == ".zip" and archive_kind(spanned) == "zip"
    gz = tmp_path / "upload.bin"
    gz.write_bytes(b"\x1f\x8b" + b"\0" * 600)
    assert sniff_archive(gz.read_bytes()) == ".tar.gz" and archive_kind(gz) == "tar"


def test_weights_without_extension_get_one_from_their_bytes():
    assert sniff_weights(b"GGUF" + b"\0" * 12) == ".gguf"
    assert sniff_weights((40).to_bytes(8, "little") + b'{"a":1}') == ".safetensors"
    assert sniff_weights(b"PK\x03\x04" + b"\0" * 12) == ".pt"
    assert sniff_weights(b"\x80\x02" + b"\0" * 14) == ".bin"


def test_an_input_url_is_named_by_content_disposition_as_a_weight_is(tmp_path):
    """Inputs had their own parser: it decoded %20 in a plain filename and knew only UTF-8 filename*."""
    site = tmp_path / "site"
    site.mkdir()
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    (site / "get").write_bytes(buffer.getvalue())
    (site / "star").write_bytes(buffer.getvalue())
    plain = 'attachment; filename="a%20b.png"'
    star = "attachment; filename*=iso-8859-1''caf%E9.png"
    headers = {"/get": {"Content-Disposition": plain}, "/star": {"Content-Disposition": star}}
    limits = InputLimits(max_input_bytes=1024**2, max_archive_files=10, max_compression_ratio=200.0)
    policy = UrlPolicy(allow_private=True, timeout_s=5.0)
    with serve_directory(site, extra_headers=headers) as server:
        got = resolve_input_source(f"{server.base_url}/get", tmp_path / "a", policy, limits)
        got_star = resolve_input_source(f"{server.base_url}/star", tmp_path / "b", policy, limits)
    assert got.name == filename_from_disposition(plain) == "a%20b.png"
    assert got_star.name == filename_from_disposition(star) == "café.png"
