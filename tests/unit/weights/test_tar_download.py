"""Tar weights over HTTP: a member's range fetched as a file, or the stream extracted; no archive on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from comfyui_wrapper.errors import CacheBudgetError, ChecksumMismatchError
from comfyui_wrapper.settings import Settings
from comfyui_wrapper.urls import UrlPolicy
from comfyui_wrapper.weights.cache import WeightCache
from comfyui_wrapper.weights.download import NoWindow, fetch, stream
from comfyui_wrapper.weights.manifest import Manifest, WeightSpec
from comfyui_wrapper.weights.tar import extract_stream, member_window
from tests.support.static_server import serve_directory

PRIVATE_OK = UrlPolicy(allow_private=True)
MB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_tar(path: Path, entries: dict[str, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=fmt) as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(3 * MB + 4321)


LONG = "sub/" * 30 + "a-weight-with-a-long-name.safetensors"  # pax header before the member's own


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
def test_member_range_becomes_the_file(tmp_path: Path, payload: bytes, fmt: int, ranges: bool) -> None:
    root = tmp_path / "srv"
    write_tar(root / "w.tar", {LONG: payload}, fmt=fmt)
    with serve_directory(root, support_ranges=ranges) as server:
        dest = tmp_path / "out" / "w.safetensors"
        result = fetch(server.base_url + "/w.tar", dest, sha256=sha(payload), size=len(payload), policy=PRIVATE_OK,
                       connections=4, part_bytes=256 * 1024, window=member_window(LONG))
        requests = server.requests["/w.tar"]
    assert dest.read_bytes() == payload and result.size == len(payload) and result.sha256 == sha(payload)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["w.safetensors"]  # no archive, no temp file
    if ranges:
        assert requests > 4  # parallel parts of the member's range; the first one also read the headers
    else:
        assert requests == 1  # one stream: headers skipped, member kept, the rest dropped


@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
def test_member_range_resumes_after_a_drop(tmp_path: Path, payload: bytes, ranges: bool) -> None:
    root = tmp_path / "srv"
    write_tar(root / "w.tar", {"w.pt": payload})
    with serve_directory(root, support_ranges=ranges, drop_after_bytes=200_000) as server:
        result = fetch(server.base_url + "/w.tar", tmp_path / "w.pt", sha256=sha(payload), policy=PRIVATE_OK,
                       connections=3, part_bytes=512 * 1024, window=member_window("w.pt"))
    assert result.sha256 == sha(payload) and (tmp_path / "w.pt").read_bytes() == payload


def test_small_member_inside_the_first_read(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    write_tar(root / "t.tar", {"t.pt": b"tiny"})
    with serve_directory(root) as server:
        result = fetch(server.base_url + "/t.tar", tmp_path / "t.pt", policy=PRIVATE_OK, window=member_window("t.pt"))
        assert server.requests["/t.tar"] == 1
    assert (tmp_path / "t.pt").read_bytes() == b"tiny" and result.size == 4


def test_no_window_for_directories_several_members_or_other_names(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    write_tar(root / "d.tar", {"d": None, "d/a.onnx": b"a"})
    write_tar(root / "two.tar", {"w.pt": b"w" * 100, "extra.txt": b"x" * 30_000})
    write_tar(root / "other.tar", {"other.pt": b"o"})
    (root / "plain.bin").write_bytes(os.urandom(5000))
    with serve_directory(root) as server:
        for name, wanted in [("d.tar", "d"), ("two.tar", "w.pt"), ("other.tar", "w.pt"), ("plain.bin", "w.pt")]:
            with pytest.raises(NoWindow):
                fetch(server.base_url + "/" + name, tmp_path / "x", policy=PRIVATE_OK, window=member_window(wanted))
    assert list(tmp_path.glob("*x*")) == []


def test_admit_refuses_before_the_body(tmp_path: Path, payload: bytes) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "w.bin").write_bytes(payload)
    seen: list[int | None] = []

    def admit(size: int | None) -> None:
        seen.append(size)
        raise CacheBudgetError("no room")

    with serve_directory(root) as server:
        with pytest.raises(CacheBudgetError):
            fetch(server.base_url + "/w.bin", tmp_path / "w.bin", policy=PRIVATE_OK, admit=admit)
        assert server.requests["/w.bin"] == 1
    assert seen == [len(payload)] and list(tmp_path.glob("*w.bin*")) == []


def test_window_size_is_checked_against_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    write_tar(root / "w.tar", {"w.pt": b"abc"})
    with serve_directory(root) as server:
        with pytest.raises(ChecksumMismatchError, match="offers 3 bytes, but 4"):
            fetch(server.base_url + "/w.tar", tmp_path / "w.pt", size=4, policy=PRIVATE_OK,
                  window=member_window("w.pt"))


@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
def test_stream_extracts_a_directory_tar_resuming_after_a_drop(tmp_path: Path, ranges: bool) -> None:
    root = tmp_path / "srv"
    files = {"antelopev2/a.onnx": os.urandom(300_000), "antelopev2/b.onnx": os.urandom(200_000)}
    write_tar(root / "antelopev2.tar", {"antelopev2": None, **files})
    with serve_directory(root, support_ranges=ranges, drop_after_bytes=123_456) as server:
        written, transferred = stream(server.base_url + "/antelopev2.tar",
                                      lambda body: extract_stream(body, tmp_path / "x", weight="d", url="u"),
                                      policy=PRIVATE_OK)
    assert written == 500_000
    assert transferred >= (root / "antelopev2.tar").stat().st_size
    for name, data in files.items():
        assert (tmp_path / "x" / name).read_bytes() == data


# --- through the cache ----------------------------------------------------------------------------


def make_cache(tmp_path: Path, specs: list[WeightSpec], log: list[str] | None = None, **changes) -> WeightCache:
    settings = dataclasses.replace(Settings.from_env({}), weights_dir=tmp_path / "weights", allow_private_urls=True,
                                   download_timeout_s=5.0, **changes)
    return WeightCache(settings, Manifest(specs), log=(log if log is not None else []).append)


def test_cache_tar_weight_is_one_request_and_recorded(tmp_path: Path, payload: bytes) -> None:
    root = tmp_path / "srv"
    write_tar(root / "w.safetensors.tar", {"w.safetensors": payload})
    with serve_directory(root) as server:
        spec = WeightSpec("w.safetensors", "checkpoints", f"{server.base_url}/w.safetensors.tar", "tar")
        log: list[str] = []
        cache = make_cache(tmp_path, [spec], log, download_connections=1)
        report = cache.ensure_all([spec])
        assert server.requests["/w.safetensors.tar"] == 1  # no probe: the download's first answer did it all
    assert not any("extracting it as it arrives" in line for line in log), log  # the member range, not a stream
    assert report.downloaded == 1
    assert (tmp_path / "weights/checkpoints/w.safetensors").read_bytes() == payload
    assert cache.record_sha256(spec) == sha(payload) and cache.usage().bytes == len(payload)


def test_cache_unknown_size_evicts_when_the_answer_states_it(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "old.pt").write_bytes(b"o" * 60_000)
    write_tar(root / "new.pt.tar", {"new.pt": b"n" * 60_000})
    with serve_directory(root) as server:
        old = WeightSpec("old.pt", "loras", f"{server.base_url}/old.pt")
        new = WeightSpec("new.pt", "loras", f"{server.base_url}/new.pt.tar", "tar")
        cache = make_cache(tmp_path, [old, new], weights_budget_bytes=100_000)
        cache.ensure_all([old])
        cache.ensure_all([new])  # unknown size: admitted when its first answer says 60 kB, evicting old.pt
        assert not (tmp_path / "weights/loras/old.pt").exists()
        assert (tmp_path / "weights/loras/new.pt").stat().st_size == 60_000
        pinned = make_cache(tmp_path, [old, new], weights_budget_bytes=100_000)
        pinned.invalidate("new.pt")
        pinned.ensure_all([old])
        before = server.requests["/new.pt.tar"]
        with pytest.raises(CacheBudgetError):
            pinned.ensure_all([old, new])  # old.pt is used by the same request: new.pt cannot fit
        assert server.requests["/new.pt.tar"] == before + 1  # refused on the first answer's headers
    assert not (tmp_path / "weights/loras/new.pt").exists()


# --- with urls.Scope and the budget's max_bytes (after the secnet merge) ------------------------------


def test_stream_stops_at_the_scope_deadline(tmp_path: Path) -> None:
    import time

    from comfyui_wrapper.errors import PredictionTimeoutError
    from comfyui_wrapper.urls import Scope

    root = tmp_path / "srv"
    write_tar(root / "d.tar", {"d": None, "d/a.onnx": os.urandom(2 * MB)})
    with serve_directory(root, rate_limit_bps=200_000) as server:
        began = time.monotonic()
        with pytest.raises(PredictionTimeoutError):
            stream(server.base_url + "/d.tar", lambda body: extract_stream(body, tmp_path / "x", weight="d", url="u"),
                   policy=PRIVATE_OK, scope=Scope.within(0.5))
        assert time.monotonic() - began < 3


def test_stream_of_unknown_size_stops_at_max_bytes(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    write_tar(root / "d.tar", {"d": None, "d/a.onnx": os.urandom(300_000)})
    with serve_directory(root) as server:
        with pytest.raises(CacheBudgetError, match="more than the"):  # the size is stated: refused up front
            stream(server.base_url + "/d.tar", lambda body: body.read(), policy=PRIVATE_OK, max_bytes=100_000)
        assert server.requests["/d.tar"] == 1


def test_a_failing_weight_stops_the_others_without_a_probe(tmp_path: Path) -> None:
    import time

    from comfyui_wrapper.errors import WeightDownloadError

    root = tmp_path / "srv"
    write_tar(root / "big.pt.tar", {"big.pt": os.urandom(2 * MB)})
    with serve_directory(root, rate_limit_bps=500_000) as server:  # ~4 s for big.pt alone
        big = WeightSpec("big.pt", "checkpoints", f"{server.base_url}/big.pt.tar", "tar")
        gone = WeightSpec("gone.pt", "loras", f"{server.base_url}/gone.pt.tar", "tar")
        cache = make_cache(tmp_path, [big, gone])
        began = time.monotonic()
        with pytest.raises(WeightDownloadError, match="404"):
            cache.ensure_all([big, gone])
        assert time.monotonic() - began < 2.5  # the 404 stopped big.pt's download
    assert not (tmp_path / "weights/checkpoints/big.pt").exists()
    assert list((tmp_path / "weights/.cache/staging").iterdir()) == []
