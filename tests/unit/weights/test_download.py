"""comfyui_wrapper.weights.download against local HTTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import threading
import time
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from comfyui_wrapper.errors import (
    CacheBudgetError,
    ChecksumMismatchError,
    UnsafeInputError,
    WeightDownloadError,
    WrapperError,
)
from comfyui_wrapper.filetypes import filename_from_disposition
from comfyui_wrapper.urls import UrlPolicy
from comfyui_wrapper.weights import download
from comfyui_wrapper.weights.download import (
    FetchResult,
    Progress,
    fetch,
    format_progress,
    log_progress,
    probe,
)
from tests.support.fake_dns import fake_dns
from tests.support.static_server import serve_directory

PRIVATE_OK = UrlPolicy(allow_private=True)
MB = 1024 * 1024


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(6 * MB + 12345)  # not a multiple of any part or read size


@pytest.fixture()
def site(tmp_path: Path, payload: bytes) -> Path:
    root = tmp_path / "site"
    (root / "api" / "download" / "models").mkdir(parents=True)
    (root / "w.bin").write_bytes(payload)
    (root / "api" / "download" / "models" / "7").write_bytes(payload[:100_000])
    (root / "empty.bin").write_bytes(b"")
    return root


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_fetched(result: FetchResult, dest: Path, data: bytes) -> None:
    assert dest.read_bytes() == data
    assert result.path == dest and result.size == len(data) and result.sha256 == sha(data)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no temp file left


# --- success paths ----------------------------------------------------------------------


def test_ranged_download_uses_several_connections(site: Path, out: Path, payload: bytes) -> None:
    seen: list[Progress] = []
    with serve_directory(site) as server:
        result = fetch(
            server.base_url + "/w.bin", out / "w.bin", size=len(payload), sha256=sha(payload).upper(),
            policy=PRIVATE_OK, connections=4, part_bytes=MB, progress=seen.append,
        )
        assert server.requests["/w.bin"] >= 6  # 6 MB in parts of at most 1 MB
    check_fetched(result, out / "w.bin", payload)
    assert result.bytes_transferred == len(payload)  # the first answer was cut at its part's end
    assert seen[-1].finished and seen[-1].bytes_done == seen[-1].total == len(payload)
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)


def test_parallel_downloads_are_exact_every_time(site: Path, out: Path, payload: bytes) -> None:
    """Worker threads start in any order; part 0 must still get the first response's bytes."""
    with serve_directory(site) as server:
        for _ in range(25):
            result = fetch(server.base_url + "/w.bin", out / "w.bin", policy=PRIVATE_OK, part_bytes=MB)
            assert result.sha256 == sha(payload)
    assert (out / "w.bin").read_bytes() == payload


def test_server_without_ranges_is_one_stream(site: Path, out: Path, payload: bytes) -> None:
    with serve_directory(site, support_ranges=False) as server:
        result = fetch(server.base_url + "/w.bin", out / "w.bin", sha256=sha(payload), policy=PRIVATE_OK,
                       connections=4, part_bytes=MB)
        assert server.requests["/w.bin"] == 1
    check_fetched(result, out / "w.bin", payload)


def test_small_file_is_one_request(site: Path, out: Path, payload: bytes) -> None:
    with serve_directory(site) as server:
        result = fetch(server.base_url + "/api/download/models/7", out / "small.bin", policy=PRIVATE_OK)
        assert server.requests["/api/download/models/7"] == 1
    check_fetched(result, out / "small.bin", payload[:100_000])


def test_empty_file(site: Path, out: Path) -> None:
    with serve_directory(site) as server:
        result = fetch(server.base_url + "/empty.bin", out / "empty.bin", size=0, policy=PRIVATE_OK)
    check_fetched(result, out / "empty.bin", b"")


@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
def test_dropped_connection_resumes(site: Path, out: Path, payload: bytes, ranges: bool) -> None:
    with serve_directory(site, support_ranges=ranges, drop_after_bytes=300_000) as server:
        result = fetch(server.base_url + "/w.bin", out / "w.bin", sha256=sha(payload), policy=PRIVATE_OK,
                       connections=4, part_bytes=MB)
    check_fetched(result, out / "w.bin", payload)
    if ranges:  # only the missing range was asked for again
        assert result.bytes_transferred == len(payload)
    else:  # the stream was read again from the start, the first 300 kB skipped
        assert server.requests["/w.bin"] == 2
        assert result.bytes_transferred == len(payload) + 300_000


def test_content_disposition_names_a_nameless_url(site: Path, out: Path, payload: bytes) -> None:
    path = "/api/download/models/7"
    headers = {path: {"Content-Disposition": 'attachment; filename="sd_xl_turbo.safetensors"'}}
    with serve_directory(site, extra_headers=headers) as server:
        result = fetch(server.base_url + path, out / "7", policy=PRIVATE_OK)
        found = probe(server.base_url + path, policy=PRIVATE_OK)
    assert result.filename_hint == "sd_xl_turbo.safetensors"
    assert found.filename_hint == "sd_xl_turbo.safetensors"
    assert found.size == 100_000 and found.accepts_ranges


def test_filename_from_disposition_is_a_safe_base_name() -> None:
    assert filename_from_disposition("attachment; filename*=UTF-8''caf%C3%A9%20v2.ckpt; filename=x") == "café v2.ckpt"
    assert filename_from_disposition('attachment; filename="../../etc/passwd"') == "passwd"
    assert filename_from_disposition('attachment; filename="..\\\\evil.pt"') == "evil.pt"
    assert filename_from_disposition('attachment; filename=".."') is None
    assert filename_from_disposition("attachment; filename*=UTF-8''%2E%2E%2Fsecret") == "secret"
    assert filename_from_disposition('attachment; filename="a%20b.pt"') == "a%20b.pt"  # plain names are literal
    assert filename_from_disposition("inline") is None
    assert filename_from_disposition(None) is None


def test_probe_follows_redirects_and_reports_ranges(site: Path) -> None:
    with serve_directory(site, redirects={"/r": "/w.bin"}) as server:
        found = probe(server.base_url + "/r", policy=PRIVATE_OK)
        assert found.url == server.base_url + "/w.bin"
        assert found.size == (site / "w.bin").stat().st_size and found.accepts_ranges
    with serve_directory(site, support_ranges=False) as server:
        found = probe(server.base_url + "/w.bin", policy=PRIVATE_OK)
        assert found.size == (site / "w.bin").stat().st_size and not found.accepts_ranges


# --- failures leave nothing behind ------------------------------------------------------------


def test_wrong_sha256_raises_and_leaves_nothing(site: Path, out: Path, payload: bytes) -> None:
    with serve_directory(site) as server, pytest.raises(ChecksumMismatchError) as caught:
        fetch(server.base_url + "/w.bin", out / "w.bin", sha256="0" * 64, policy=PRIVATE_OK, part_bytes=MB)
    assert "w.bin" in str(caught.value) and sha(payload) in str(caught.value)
    assert list(out.iterdir()) == []


def test_wrong_size_fails_before_downloading(site: Path, out: Path, payload: bytes) -> None:
    with serve_directory(site) as server, pytest.raises(ChecksumMismatchError) as caught:
        fetch(server.base_url + "/w.bin", out / "w.bin", size=len(payload) + 1, policy=PRIVATE_OK, part_bytes=MB)
    assert f"{len(payload)} bytes" in str(caught.value) and "w.bin" in str(caught.value)
    assert server.requests["/w.bin"] == 1
    assert list(out.iterdir()) == []


def test_wrong_size_without_content_length(tmp_path: Path, out: Path) -> None:
    def chunked(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"5\r\nhello\r\n0\r\n\r\n")

    with tiny_server({"/c": chunked}) as (base, _):
        assert fetch(base + "/c", out / "ok.txt", policy=PRIVATE_OK).size == 5
        with pytest.raises(ChecksumMismatchError):
            fetch(base + "/c", out / "c.txt", size=6, policy=PRIVATE_OK)
    assert [p.name for p in out.iterdir()] == ["ok.txt"]


def test_404_is_clear_and_not_retried(site: Path, out: Path) -> None:
    with serve_directory(site) as server, pytest.raises(WeightDownloadError) as caught:
        fetch(server.base_url + "/models/gone.safetensors", out / "gone.safetensors", policy=PRIVATE_OK)
    message = str(caught.value)
    assert "gone.safetensors" in message and "HTTP 404" in message and server.base_url in message
    assert "How to fix:" in message
    assert server.requests["/models/gone.safetensors"] == 1
    assert list(out.iterdir()) == []


def test_server_that_never_answers_times_out(site: Path, out: Path) -> None:
    began = time.monotonic()
    with serve_directory(site, hang_paths={"/w.bin"}) as server, pytest.raises(WeightDownloadError) as caught:
        fetch(server.base_url + "/w.bin", out / "w.bin", policy=PRIVATE_OK, timeout_s=0.3, retries=1)
    assert time.monotonic() - began < 5
    assert "w.bin" in str(caught.value) and "0.3 s" in str(caught.value)
    assert "CW_DOWNLOAD_TIMEOUT" in str(caught.value)
    assert isinstance(caught.value, WrapperError)
    assert list(out.iterdir()) == []


def test_transient_5xx_is_retried(out: Path) -> None:
    answers = iter([503, 500])

    def flaky(handler: http.server.BaseHTTPRequestHandler) -> None:
        status = next(answers, 200)
        body = b"weights!" if status == 200 else b"busy"
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with tiny_server({"/f": flaky}) as (base, seen):
        result = fetch(base + "/f", out / "f.bin", policy=PRIVATE_OK, retries=2)
    assert result.size == 8 and len(seen) == 3

    answers = iter([503] * 10)
    with tiny_server({"/f": flaky}) as (base, seen), pytest.raises(WeightDownloadError) as caught:
        fetch(base + "/f", out / "g.bin", policy=PRIVATE_OK, retries=2)
    assert "HTTP 503" in str(caught.value) and len(seen) == 3
    assert [p.name for p in out.iterdir()] == ["f.bin"]


def test_interrupt_midway_leaves_nothing(site: Path, out: Path, payload: bytes) -> None:
    def interrupt(p: Progress) -> None:
        if p.bytes_done > 0:
            raise KeyboardInterrupt

    with serve_directory(site, rate_limit_bps=2 * MB) as server, pytest.raises(KeyboardInterrupt):
        fetch(server.base_url + "/w.bin", out / "w.bin", policy=PRIVATE_OK, part_bytes=MB, progress=interrupt)
    assert list(out.iterdir()) == []


def test_full_disk_is_a_budget_error(site: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download.shutil, "disk_usage", lambda _: types.SimpleNamespace(free=1000))
    with serve_directory(site) as server, pytest.raises(CacheBudgetError) as caught:
        fetch(server.base_url + "/w.bin", out / "w.bin", policy=PRIVATE_OK)
    assert "w.bin" in str(caught.value) and "Not enough disk space" in str(caught.value)
    assert list(out.iterdir()) == []


# --- the URL policy, tokens and secrets ---------------------------------------------------------


def test_default_policy_refuses_loopback(site: Path, out: Path) -> None:
    with serve_directory(site) as server, pytest.raises(UnsafeInputError) as caught:
        fetch(server.base_url + "/w.bin", out / "w.bin")
    assert "w.bin" in str(caught.value)
    assert server.requests["/w.bin"] == 0
    assert list(out.iterdir()) == []


def test_redirect_to_a_private_address_is_refused(site: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'public.test' passes as public to the policy (a fake resolver) but its redirect to 127.0.0.2 does not."""
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with serve_directory(site) as server:
        port = server.base_url.rsplit(":", 1)[1]
        server.redirects["/hop"] = f"http://127.0.0.2:{port}/w.bin"
        server.redirects["/fine"] = f"http://public.test:{port}/w.bin"
        public = UrlPolicy(allow_private=False)
        with pytest.raises(UnsafeInputError) as caught:
            fetch(f"http://public.test:{port}/hop", out / "w.bin", policy=public)
        assert "127.0.0.2" in str(caught.value) and server.requests["/w.bin"] == 0
        assert list(out.iterdir()) == []
        # the same server through a "public" name and redirect is fine, so the refusal above was the hop
        fetch(f"http://public.test:{port}/fine", out / "w.bin", policy=public, part_bytes=MB)
        assert server.requests["/w.bin"] >= 2


def test_query_token_is_redacted(site: Path, out: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_directory(site, hang_paths={"/slow.bin"}) as server:
        with pytest.raises(WeightDownloadError) as missing:
            fetch(server.base_url + "/gone.bin?token=SECRET123&x=1", out / "gone.bin", policy=PRIVATE_OK)
        with pytest.raises(WeightDownloadError) as slow:
            fetch(server.base_url + "/slow.bin?token=SECRET123", out / "slow.bin", policy=PRIVATE_OK,
                  timeout_s=0.2, retries=1)
        fetch(server.base_url + "/w.bin?token=SECRET123", out / "w.bin", policy=PRIVATE_OK, part_bytes=MB)
    for error in (missing.value, slow.value):
        assert "SECRET123" not in str(error) and "token=***" in str(error)
        assert "SECRET123" not in repr(error.fields)
        # no chained requests exception (whose text quotes the URL) in a traceback
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("comfyui_wrapper")]
    assert ours and not any("SECRET123" in line for line in ours)  # (urllib3's own DEBUG lines do show it)


def test_auth_headers_go_only_to_the_original_host(out: Path) -> None:
    def start(handler: http.server.BaseHTTPRequestHandler) -> None:
        port = handler.server.server_address[1]
        handler.send_response(302)
        handler.send_header("Location", f"http://localhost:{port}/cdn/file.bin")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def cdn(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = b"x" * 1000
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with tiny_server({"/start": start, "/cdn/file.bin": cdn}) as (base, seen):
        fetch(base + "/start", out / "file.bin", policy=PRIVATE_OK, headers={"Authorization": "Bearer hf_abc"})
    assert [(path, auth) for path, auth, _ in seen] == [("/start", "Bearer hf_abc"), ("/cdn/file.bin", None)]
    assert seen[1][2] == "bytes=0-"  # the Range header survives the cross-host redirect


# --- progress helpers -------------------------------------------------------------------------------


def test_format_progress() -> None:
    assert format_progress(Progress("flux.safetensors", 1_200_000_000, 4_000_000_000, 85e6, 33.2)) == (
        "flux.safetensors: 1.2/4.0 GB, 85 MB/s, ETA 33 s"
    )
    assert format_progress(Progress("a.pt", 5_000_000, None, 2e6, None)) == "a.pt: 5.0/? MB, 2 MB/s, ETA ?"
    assert format_progress(Progress("a.pt", 5_000_000, 5_000_000, 2e6, 0.0)).endswith("done")


def test_log_progress_is_throttled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    report = log_progress(3600.0)
    for done in range(0, 100, 10):
        report(Progress("m.bin", done, 100, 1.0, 1.0))
    report(Progress("m.bin", 100, 100, 1.0, 0.0))
    assert [r.getMessage() for r in caplog.records] == [
        "m.bin: 0.0/0.0 MB, 0 MB/s, ETA 1 s", "m.bin: 0.0/0.0 MB, 0 MB/s, done",
    ]


def test_the_cache_writes_progress_through_the_same_throttle() -> None:
    """download.py and cache.py each had a throttle; the cache's own copy left out the final line."""
    lines: list[str] = []
    report = log_progress(3600.0, write=lines.append, final=False)
    for done in range(0, 100, 10):
        report(Progress("m.bin", done, 100, 1.0, 1.0))
    report(Progress("m.bin", 100, 100, 1.0, 0.0))
    assert lines == ["m.bin: 0.0/0.0 MB, 0 MB/s, ETA 1 s"]


# --- a tiny scripted server for what the static server cannot do -------------------------------------


@contextmanager
def tiny_server(
    routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]],
) -> Iterator[tuple[str, list[tuple[str, str | None, str | None]]]]:
    """Routes answer by hand; ``seen`` records (path, Authorization, Range) per request."""
    seen: list[tuple[str, str | None, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization"), self.headers.get("Range")))
            routes[self.path](self)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
