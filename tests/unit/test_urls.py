"""The URL policy: one parse, checked and pinned addresses, tokens to their hosts, bounded downloads.

Name resolution is patched in-process (tests/support/fake_dns.py); the only
traffic goes to loopback servers started here.
"""

from __future__ import annotations

import ctypes
import gzip
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from comfyui_wrapper import urls
from comfyui_wrapper.errors import (
    CacheBudgetError,
    DownloadError,
    PredictionTimeoutError,
    UnsafeInputError,
)
from comfyui_wrapper.inputs.archives import InputLimits
from comfyui_wrapper.inputs.source import resolve_input_source
from comfyui_wrapper.inputs.workflow_urls import fetch_workflow_urls
from comfyui_wrapper.urls import Scope, UrlPolicy, address_is_private, check_url, fetch_text, parse_target, token_header
from comfyui_wrapper.weights import download
from tests.support.fake_dns import fake_dns
from tests.support.hostile_server import Route, hostile_server
from tests.support.hostile_urls import FAKE_DNS, FINE_URLS, HOSTILE_URLS

PUBLIC = UrlPolicy(allow_private=False, timeout_s=5.0)
LIMITS = InputLimits(max_input_bytes=10_000_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 600


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attack,url,error", HOSTILE_URLS, ids=[row[0] for row in HOSTILE_URLS])
def test_hostile_url_is_refused(monkeypatch, attack, url, error):
    fake_dns(monkeypatch, FAKE_DNS)
    with pytest.raises(error):
        check_url(url, PUBLIC)


@pytest.mark.parametrize("url", FINE_URLS)
def test_ordinary_urls_pass(monkeypatch, url):
    fake_dns(monkeypatch, FAKE_DNS)
    check_url(url, PUBLIC)


@pytest.mark.parametrize("address,private", [
    ("192.0.0.192", True), ("192.0.0.8", True), ("fec0::1", True), ("2002:7f00:1::", True),
    ("2002:0a00:0001::", True), ("2002:c0a8:0101::1", True), ("::ffff:10.0.0.1", True), ("::127.0.0.1", True),
    ("64:ff9b::7f00:1", True), ("64:ff9b::a9fe:a9fe", True), ("2001:0:4136:e378:8000:63bf:f5ff:fffe", True),
    ("0.1.2.3", True), ("224.0.0.1", True), ("ff02::1", True), ("240.0.0.1", True), ("255.255.255.255", True),
    ("100.64.0.1", True), ("169.254.169.254", True), ("fd00:ec2::254", True), ("fe80::1", True),
    ("100.100.100.200", True), ("fe80::1%eth0", True),
    ("8.8.8.8", False), ("2606:4700:4700::1111", False), ("2002:0808:0808::1", False), ("64:ff9b::808:808", False),
])
def test_address_rules(address, private):
    assert address_is_private(address) is private


def test_the_target_is_what_the_client_connects_to():
    target = parse_target("HTTPS://HuggingFace.CO./org/x.safetensors?token=abc")
    assert (target.scheme, target.host, target.port) == ("https", "huggingface.co", 443)
    assert "abc" not in target.shown and "huggingface.co" in target.shown.lower()
    assert parse_target("http://bücher.test/x").host == "xn--bcher-kva.test"


# --- every fetcher refuses what the parsers read two ways ---------------------------------------------------


def _fetchers(tmp_path: Path):
    weights = tmp_path / "w"
    return {
        "workflow media URL": lambda url: fetch_workflow_urls(
            {"1": {"class_type": "LoadImage", "inputs": {"image": url}}}, tmp_path / "in", PUBLIC, LIMITS),
        "workflow_json URL": lambda url: fetch_text(url, PUBLIC),
        "CLI input_file URL": lambda url: resolve_input_source(url, tmp_path / "incoming", PUBLIC, LIMITS),
        "weight probe": lambda url: download.probe(url, policy=PUBLIC),
        "weight fetch": lambda url: download.fetch(url, weights / "x.bin", policy=PUBLIC, retries=0),
    }


FETCHERS = ["workflow media URL", "workflow_json URL", "CLI input_file URL", "weight probe", "weight fetch"]


@pytest.mark.parametrize("fetcher", FETCHERS)
@pytest.mark.parametrize("how", ["given", "redirect"])
def test_every_fetcher_refuses_a_url_the_parsers_read_two_ways(tmp_path, monkeypatch, fetcher, how):
    """urlsplit says public.test (allowed); requests would connect to 127.0.0.1 with a path of our choosing."""
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with hostile_server() as server:
        server.routes["/secret.png"] = Route(body=PNG, headers={"Content-Type": "image/png"})
        evil = f"http://127.0.0.1:{server.port}\\@public.test/../secret.png"
        url = evil
        if how == "redirect":
            server.routes["/hop.png"] = Route(302, headers={"Location": evil})
            url = f"http://public.test:{server.port}/hop.png"
        with pytest.raises(UnsafeInputError):
            _fetchers(tmp_path)[fetcher](url)
        assert server.requests_to("/secret.png") == [] and server.requests_to("/../secret.png") == []


@pytest.mark.parametrize("fetcher", FETCHERS)
@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_x", "http://2130706433/x.png",
                                      "http://127.0.0.2:{port}/x.png", "http://[::1]:{port}/x.png"])
def test_every_fetcher_refuses_a_redirect_to_a_bad_location(tmp_path, monkeypatch, fetcher, location):
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with hostile_server() as server:
        server.routes["/hop.png"] = Route(302, headers={"Location": location.format(port=server.port)})
        with pytest.raises(UnsafeInputError):
            _fetchers(tmp_path)[fetcher](f"http://public.test:{server.port}/hop.png")


def test_the_connection_goes_to_the_address_that_was_checked(tmp_path, monkeypatch):
    """DNS rebinding: the first answer is checked; a second lookup would answer a private address."""
    answers = iter([["127.0.0.1"]] + [["127.0.0.2"]] * 20)
    asked = fake_dns(monkeypatch, {"rebind.test": lambda: next(answers)}, public={"127.0.0.1"})
    with hostile_server() as server:
        server.routes["/w.json"] = Route(body=b'{"ok": 1}')
        assert fetch_text(f"http://rebind.test:{server.port}/w.json", PUBLIC) == '{"ok": 1}'
    assert asked.count("rebind.test") == 1


def test_a_session_never_connects_to_a_host_it_did_not_check():
    with hostile_server() as server, urls.new_session() as session:
        server.routes["/x"] = Route(body=b"x")
        with pytest.raises(Exception):  # noqa: B017 (any refusal will do; the point is no connection)
            session.get(f"{server.base_url}/x", timeout=5)
        assert server.seen == []


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,expected", [
    ("https://huggingface.co/org/repo/resolve/main/x.safetensors", "hf"),
    ("https://HUGGINGFACE.CO./x", "hf"),
    ("https://hf.co/x", "hf"),
    ("https://civitai.com/api/download/models/1", "civ"),
    ("http://huggingface.co/x", None),  # never over plain http
    ("https://huggingface.co:8443/x", None),
    ("https://huggingface.co.evil.test/x", None),
    ("https://evil.test/huggingface.co/x", None),
    ("https://cdn.civitai.com/x", None),  # a subdomain a user could pick
    ("https://attacker.huggingface.co/x", None),
])
def test_tokens_only_over_https_to_their_exact_hosts(url, expected):
    header = token_header(parse_target(url), hf_token="hf_SECRET", civitai_token="civ_SECRET")
    assert header == ({} if expected is None else {"Authorization": f"Bearer {expected}_SECRET"})


def test_the_hf_token_never_reaches_a_backslash_host(tmp_path, monkeypatch):
    from comfyui_wrapper.weights.cache import WeightCache
    from comfyui_wrapper.weights.manifest import Manifest
    from tests.unit.weights.test_cache import make_settings

    cache = WeightCache(make_settings(tmp_path, hf_token="hf_SECRET"), Manifest([]), log=lambda line: None)
    assert cache._headers("https://attacker\\@huggingface.co/../x.safetensors") == {}
    with pytest.raises(UnsafeInputError):
        cache.ensure_all([], urls=[("https://attacker\\@huggingface.co/../x.safetensors", "loras")])


@pytest.mark.parametrize("location", ["http://other.test:{port}/w.bin", "http://public.test:{other}/w.bin"])
def test_caller_headers_are_not_forwarded_to_another_origin(tmp_path, monkeypatch, location):
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with hostile_server() as server, hostile_server() as other:
        other.routes["/w.bin"] = server.routes["/w.bin"] = Route(body=b"w" * 100)
        server.routes["/hop"] = Route(302, headers={"Location": location.format(port=server.port, other=other.port)})
        download.fetch(f"http://public.test:{server.port}/hop", tmp_path / "w.bin", policy=PUBLIC,
                       headers={"Authorization": "Bearer SECRET", "X-Api-Key": "SECRET"})
        sent = server.requests_to("/w.bin") + other.requests_to("/w.bin")
        assert sent and all("authorization" not in h and "x-api-key" not in h for h in sent)
        assert server.requests_to("/hop")[0]["authorization"] == "Bearer SECRET"


# --- what errors and logs show -----------------------------------------------------------------------


@pytest.mark.parametrize("fetcher", FETCHERS)
def test_errors_never_echo_a_response_body(tmp_path, monkeypatch, fetcher):
    fake_dns(monkeypatch, {"internal.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    secret = b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG"
    with hostile_server() as server:
        server.routes["/x.png"] = Route(403, secret, headers={"Content-Type": "text/plain"})
        server.routes["/ok.png"] = Route(200, secret, headers={"Content-Type": "text/plain"})
        for path in ("/x.png", "/ok.png"):
            try:
                result = _fetchers(tmp_path)[fetcher](f"http://internal.test:{server.port}{path}?token=tok_SECRET")
            except Exception as exc:  # noqa: BLE001
                text = str(exc)
                assert "wJalrXUtnFEMI" not in text and "tok_SECRET" not in text, text
                assert "internal.test" in text
            else:
                assert fetcher in ("workflow_json URL", "weight fetch", "weight probe") and path == "/ok.png", result


def test_errors_name_the_host_actually_contacted(tmp_path, monkeypatch):
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"], "cdn.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with hostile_server() as server:
        server.routes["/hop.png"] = Route(302, headers={"Location": f"http://cdn.test:{server.port}/gone.png?sig=SIG"})
        with pytest.raises(DownloadError) as caught:
            fetch_workflow_urls({"1": {"class_type": "LoadImage", "inputs": {"image": f"http://public.test:{server.port}/hop.png"}}},
                                tmp_path, PUBLIC, LIMITS)
    assert "host cdn.test" in str(caught.value) and "SIG" not in str(caught.value)


# --- bounded downloads -----------------------------------------------------------------------------


def test_encoded_bodies_are_refused_everywhere(tmp_path, monkeypatch):
    """300 KiB of gzip on the wire would be 300 MiB decoded: identity is asked for, anything else refused."""
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    bomb = gzip.compress(b"\0" * (30 * 1024 * 1024))
    with hostile_server() as server:
        server.routes["/bomb.png"] = Route(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "image/png"})
        for name in FETCHERS:
            with pytest.raises(DownloadError, match="(?i)content-encoding"):
                _fetchers(tmp_path)[name](f"http://public.test:{server.port}/bomb.png")
        assert all(h.get("accept-encoding") == "identity" for _, h in server.seen)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_weight_of_unknown_size_is_stopped_at_the_budget(tmp_path):
    from comfyui_wrapper.weights.cache import WeightCache
    from comfyui_wrapper.weights.manifest import Manifest
    from tests.unit.weights.test_cache import make_settings

    with hostile_server() as server:
        # no Content-Length, 20 MB: the size is known only when the body ends
        server.routes["/big.safetensors"] = Route(body=b"\1" * 65536, trickle_bps=1e12, forever=True, chunk=65536)
        cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=2_000_000), Manifest([]), log=lambda line: None)
        began = time.monotonic()
        with pytest.raises(CacheBudgetError):
            cache.ensure_all([], urls=[(f"{server.base_url}/big.safetensors", "loras")])
        assert time.monotonic() - began < 10
    kept = [p for p in (tmp_path / "weights").rglob("*") if p.is_file() and ".cache" not in p.parts]
    assert kept == [] and cache.usage().bytes == 0
    assert not any((tmp_path / "weights" / ".cache" / "staging").iterdir())


@pytest.mark.parametrize("fetcher", FETCHERS)
def test_a_trickling_server_is_cut_off_at_the_deadline(tmp_path, fetcher):
    local = UrlPolicy(allow_private=True, timeout_s=5.0, total_timeout_s=600)
    scope = Scope.within(0.5)  # far below the 5 s read timeout a trickle keeps resetting
    calls = {
        "workflow media URL": lambda url: fetch_workflow_urls(
            {"1": {"class_type": "LoadImage", "inputs": {"image": url}}}, tmp_path / "in", local, LIMITS, scope=scope),
        "workflow_json URL": lambda url: fetch_text(url, local, scope=scope),
        "CLI input_file URL": lambda url: resolve_input_source(url, tmp_path / "incoming", local, LIMITS, scope=scope),
        "weight probe": lambda url: download.probe(url, policy=local, scope=scope),
        "weight fetch": lambda url: download.fetch(url, tmp_path / "w" / "x.bin", policy=local, scope=scope),
    }
    with hostile_server() as server:
        server.routes["/slow.png"] = Route(body=PNG, trickle_bps=50, forever=True,
                                           headers={"Content-Type": "image/png"})
        server.routes["/slow-headers.png"] = Route(slow_headers=True)
        began = time.monotonic()
        with pytest.raises(PredictionTimeoutError):
            scope.call(calls[fetcher], f"{server.base_url}/{'slow-headers' if fetcher == 'weight probe' else 'slow'}.png")
        assert time.monotonic() - began < 2.5
        deadline = time.monotonic() + 3
        while server.open_trickles and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_trickles == 0
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def _inject(thread: threading.Thread, exc: type[BaseException]) -> None:
    """What coglet does to cancel a sync predictor: an asynchronous exception in its thread."""
    assert ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc)) == 1


class FakeCancel(BaseException):
    pass


def test_an_async_cancel_lands_during_a_download_and_cleans_up(tmp_path):
    local = UrlPolicy(allow_private=True, timeout_s=30.0, total_timeout_s=600)
    scope = Scope()
    outcome: dict = {}
    with hostile_server() as server:
        server.routes["/slow.bin"] = Route(body=b"x", trickle_bps=20, forever=True)

        def predict():
            try:
                scope.call(download.fetch, f"{server.base_url}/slow.bin", tmp_path / "w" / "x.bin", policy=local,
                           scope=scope)
            except BaseException as exc:  # noqa: BLE001
                outcome["error"] = exc
                outcome["at"] = time.monotonic()

        thread = threading.Thread(target=predict)
        thread.start()
        deadline = time.monotonic() + 5
        while not server.open_trickles and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # a few bytes in: the thread is blocked reading the body
        began = time.monotonic()
        _inject(thread, FakeCancel)
        thread.join(5)
        assert isinstance(outcome.get("error"), FakeCancel) and outcome["at"] - began < 2.0
        deadline = time.monotonic() + 3
        while server.open_trickles and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_trickles == 0
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


# --- the cache key ---------------------------------------------------------------------------------


def test_a_file_fetched_with_a_user_token_is_not_served_to_another_user(tmp_path):
    from comfyui_wrapper.weights.cache import WeightCache
    from comfyui_wrapper.weights.manifest import Manifest
    from tests.unit.weights.test_cache import make_settings

    with hostile_server() as server:
        server.routes["/gated.safetensors"] = Route(body=b"g" * 1000)
        server.routes["/public.safetensors"] = Route(body=b"p" * 1000)
        cache = WeightCache(make_settings(tmp_path), Manifest([]), log=lambda line: None)
        a = cache.ensure_all([], urls=[(f"{server.base_url}/gated.safetensors?token=USER_A_SECRET", "loras")])
        after_a = len(server.requests_to("/gated.safetensors"))
        b = cache.ensure_all([], urls=[(f"{server.base_url}/gated.safetensors?token=USER_B_SECRET", "loras")])
        assert a.downloaded == b.downloaded == 1 and len(server.requests_to("/gated.safetensors")) > after_a
        assert set(a.url_names.values()).isdisjoint(b.url_names.values())
        again = cache.ensure_all([], urls=[(f"{server.base_url}/gated.safetensors?token=USER_A_SECRET", "loras")])
        assert again.hits == 1
        # a public URL is shared by everyone
        cache.ensure_all([], urls=[(f"{server.base_url}/public.safetensors", "loras")])
        assert cache.ensure_all([], urls=[(f"{server.base_url}/public.safetensors", "loras")]).hits == 1
    index = sqlite3.connect(tmp_path / "weights" / ".cache" / "index.sqlite").execute("SELECT url, key FROM weights")
    dump = repr(index.fetchall()) + repr(sorted(str(p) for p in (tmp_path / "weights").rglob("*")))
    assert "USER_A_SECRET" not in dump and "USER_B_SECRET" not in dump


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="needs the openssl command")
def test_a_pinned_https_connection_keeps_the_name_for_sni_and_the_certificate(tmp_path, monkeypatch):
    import http.server
    import ssl
    import subprocess

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=public.test",
                    "-addext", "subjectAltName=DNS:public.test"],
                   check=True, capture_output=True)

    streaming = threading.Event()  # set once the slow body has begun

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            if self.path == "/slow":
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                        streaming.set()
                except OSError:
                    return
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
        url = f"https://public.test:{httpd.server_address[1]}/x"
        with urls.new_session() as session:
            session.checked(url, PUBLIC)
            assert session.get(url, verify=str(cert), timeout=5).text == "ok"
        assert names == ["public.test"]
        # an abort ends a blocked read on a TLS connection at once (its TLS socket is the one shut down)
        scope = Scope()
        ended: list = []

        def read_slowly():
            with urls.new_session(scope) as session:
                session.checked(url, PUBLIC)
                response = session.get(url.replace("/x", "/slow"), verify=str(cert), timeout=30, stream=True)
                try:
                    for _ in response.iter_content(1):
                        pass
                except Exception:  # noqa: BLE001
                    pass
                ended.append(time.monotonic())

        reader = threading.Thread(target=read_slowly, daemon=True)
        reader.start()
        assert streaming.wait(5)
        time.sleep(0.2)  # the reader has its first byte and is blocked on the next
        began = time.monotonic()
        scope.abort("cancel")
        reader.join(5)
        assert ended and ended[0] - began < 1.0
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("param", ["token", "hf_token", "X-Amz-Security-Token", "api_key", "Signature", "sig",
                                   "access_token", "client_secret", "password"])
def test_every_secret_looking_query_parameter_is_redacted(param):
    from comfyui_wrapper.errors import redact

    shown = redact(f"https://host.test/x.safetensors?download=true&{param}=SECRET123")
    assert "SECRET123" not in shown and "download=true" in shown and "host.test" in shown


@pytest.mark.parametrize("fetcher", FETCHERS)
def test_a_flood_of_headers_is_a_clean_error(tmp_path, monkeypatch, fetcher):
    fake_dns(monkeypatch, {"public.test": ["127.0.0.1"]}, public={"127.0.0.1"})
    with hostile_server() as server:
        server.routes["/x.png"] = Route(body=PNG, headers={f"X-Filler-{i}": "a" * 1000 for i in range(500)})
        with pytest.raises(DownloadError):
            _fetchers(tmp_path)[fetcher](f"http://public.test:{server.port}/x.png")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
