"""A URL's secrets (query tokens, user:password@) never show: not in an error, a log line, a repr,
the plan, provenance.json or the cache index.

Each path is driven as a user would reach it, with the URL given raw; redaction
happens in the error (WrapperError), in every log line (the PrintableArgs filter
on every package logger), in the repr of values that hold a raw URL, and by hand
only where text leaves otherwise (index, plan, provenance). Servers are local.
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import logging
import pkgutil
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
import requests

import comfyui_wrapper
from comfyui_wrapper import errors
from comfyui_wrapper.errors import (
    ChecksumMismatchError,
    DownloadError,
    PrintableArgs,
    UnsafeInputError,
    WeightDownloadError,
    WrapperError,
)
from comfyui_wrapper.logs import get_logger
from comfyui_wrapper.urls import UrlPolicy, fetch_text, parse_target
from tests.support.static_server import serve_directory

TOKEN = "tok3nS3CRET"
PASSWORD = "hunter2PW"
LOCAL = UrlPolicy(allow_private=True)
REPO = Path(__file__).resolve().parents[2]


def tokened(base: str, path: str) -> str:
    return f"{base}/{path}?token={TOKEN}&X-Amz-Signature={TOKEN}&keep=1"


USERINFO_URL = f"https://alice:{PASSWORD}@example.com/m.safetensors?api_key={TOKEN}"


def assert_clean(*texts: object) -> None:
    for text in texts:
        shown = text if isinstance(text, str) else repr(text)
        assert TOKEN not in shown and PASSWORD not in shown, shown


def assert_error_clean(error: BaseException) -> None:
    assert isinstance(error, WrapperError)
    assert_clean(str(error), repr(error), error.message, error.fix, error.url, repr(error.fields), error.args)


@pytest.fixture()
def lines() -> Iterator[io.StringIO]:
    """Every package log line, captured by a handler with no filter of its own (the loggers' filters hold)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    package = logging.getLogger("comfyui_wrapper")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


@pytest.fixture()
def served(tmp_path: Path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "w.safetensors").write_bytes(b"x" * 5000)
    with serve_directory(root) as control:
        yield control


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [USERINFO_URL, "http://h.test/x?token=" + TOKEN])
def test_an_error_raised_with_a_raw_url_shows_none_of_its_secrets(url: str) -> None:
    error = DownloadError(f"Could not fetch {url}.", fix=f"Open {url!r} in a browser.", url=url)
    assert_error_clean(error)
    assert error.url is not None and "h.test" in error.url or "example.com" in str(error)
    assert_error_clean(DownloadError("x", url=parse_target("http://h.test/x?token=" + TOKEN)))


def test_refused_urls_show_none_of_their_secrets() -> None:
    for url in (USERINFO_URL, f"ftp://bob:{PASSWORD}@h.test/x?token={TOKEN}", f"http://h.test\\x?sig={TOKEN}"):
        with pytest.raises(UnsafeInputError) as caught:
            parse_target(url)
        assert_error_clean(caught.value)


def test_a_weight_download_error_shows_no_secret(tmp_path: Path, served, lines) -> None:
    from comfyui_wrapper.weights import download

    with pytest.raises(WeightDownloadError) as caught:
        download.fetch(tokened(served.base_url, "missing.safetensors"), tmp_path / "m.safetensors",
                       policy=LOCAL, retries=0)
    assert_error_clean(caught.value)
    assert "404" in str(caught.value)
    with pytest.raises(ChecksumMismatchError) as mismatch:
        download.fetch(tokened(served.base_url, "w.safetensors"), tmp_path / "w.safetensors", policy=LOCAL,
                       sha256="0" * 64)
    assert_error_clean(mismatch.value)
    probe = download.probe(tokened(served.base_url, "w.safetensors"), policy=LOCAL)
    assert TOKEN in probe.url  # the value keeps what it must send...
    assert_clean(repr(probe), str(probe))  # ...and never shows it
    assert "127.0.0.1" in lines.getvalue()  # the download logged its lines (host named)...
    assert_clean(lines.getvalue())  # ...without the secrets


def test_a_fetched_document_error_shows_no_secret(served, lines) -> None:
    with pytest.raises(DownloadError) as caught:
        fetch_text(tokened(served.base_url, "missing.json"), LOCAL)
    assert_error_clean(caught.value)
    assert "Fetching" in lines.getvalue()
    assert_clean(lines.getvalue())


def test_the_weight_cache_keeps_no_secret_in_errors_index_or_lines(tmp_path: Path, served, lines) -> None:
    import dataclasses

    from comfyui_wrapper.settings import Settings
    from comfyui_wrapper.weights.cache import WeightCache
    from comfyui_wrapper.weights.manifest import Manifest, WeightSpec

    settings = dataclasses.replace(Settings.from_env({}), weights_dir=tmp_path / "weights", allow_private_urls=True,
                                   download_timeout_s=5.0)
    said: list[str] = []
    bad = WeightSpec("w.safetensors", "loras", tokened(served.base_url, "w.safetensors"), "file", sha256="0" * 64)
    gone = WeightSpec("g.safetensors", "vae", tokened(served.base_url, "gone.safetensors.tar"), "tar",
                      mirrors=(tokened(served.base_url, "gone2.safetensors"),))
    for spec in (bad, gone):
        cache = WeightCache(settings, Manifest([spec]), log=said.append)
        with pytest.raises(WeightDownloadError) as caught:
            cache.ensure_all([spec])
        assert_error_clean(caught.value)
        assert_clean(repr(spec), str(spec))
    cache = WeightCache(settings, Manifest([]))
    name = cache.ensure_url(tokened(served.base_url, "w.safetensors"), "loras")
    assert_clean(name, "\n".join(said), lines.getvalue(), repr(cache._items([], [(tokened("https://h.test", "x"), "loras")])))
    assert_clean(json.dumps([dataclasses.asdict(r) for r in cache._records().values()]))


def test_tar_errors_show_no_secret(tmp_path: Path) -> None:
    from comfyui_wrapper.weights import tar

    url = tokened("https://cdn.test", "w.tar")
    with pytest.raises(WeightDownloadError) as damaged:
        tar.extract_stream(io.BytesIO(b"not a tar at all" * 100), tmp_path / "a", weight="w", url=url)
    assert_error_clean(damaged.value)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as handle:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        handle.addfile(info, io.BytesIO(b"x"))
    archive.seek(0)
    with pytest.raises(UnsafeInputError) as unsafe:
        tar.extract_stream(archive, tmp_path / "b", weight="w", url=url)
    assert_error_clean(unsafe.value)


# --- what leaves by other ways: the plan, provenance ---------------------------------------------


def test_the_plan_shows_urls_without_their_secrets(tmp_path: Path) -> None:
    from comfyui_wrapper.plan import PlanContext, make_plan
    from comfyui_wrapper.weights.manifest import Manifest
    from comfyui_wrapper.weights.refs import core_folder_for

    object_info = json.loads(gzip.open(REPO / "tests" / "fixtures" / "ui_oracle" / "object_info.json.gz").read())
    ctx = PlanContext(object_info=object_info, manifest=Manifest([]), folder_for=core_folder_for,
                      on_disk=lambda name: False, cached_names=lambda specs: set())
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tokened("https://h.test", "m.safetensors")}},
        "2": {"class_type": "LoadImage", "inputs": {"image": tokened("https://h.test", "a.png")}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    plan = make_plan(workflow, ctx)
    assert {u.purpose for u in plan.urls} == {"weight", "input"}
    assert "h.test" in plan.report()
    assert_clean(plan.report(), json.dumps(plan.as_dict(), default=str), repr(plan))


def test_provenance_shares_urls_without_their_secrets(tmp_path: Path) -> None:
    from comfyui_wrapper.provenance import build_provenance, shareable_workflow
    from comfyui_wrapper.weights.manifest import WeightSpec

    spec = WeightSpec("w.safetensors", "loras", tokened("https://h.test", "w.safetensors"), "file")
    workflow = shareable_workflow({"1": {"class_type": "X", "inputs": {"url": USERINFO_URL}}}, [tmp_path])
    record = build_provenance(workflow=workflow, seeds=[], specs=[spec], url_weights={USERINFO_URL: "abc/m.safetensors"},
                              sha_for=lambda s: None, comfyui_dir=tmp_path, custom_nodes=[], options={})
    text = json.dumps(record)
    assert "h.test" in text and "example.com" in text
    assert_clean(text)


def test_a_generated_models_readme_names_urls_without_their_secrets() -> None:
    """new-model keeps the raw URL in weights.json (its setup fetches it) but not in the README it writes."""
    from comfyui_wrapper.new_model import render_readme

    text = render_readme("m", [], [], [{"url": USERINFO_URL, "folder": "loras"}], [], False, "a workflow")
    assert "example.com/m.safetensors" in text
    assert_clean(text)


# --- log lines ---------------------------------------------------------------------------------


def test_every_kind_of_log_line_is_redacted(lines) -> None:
    log = get_logger("comfyui_wrapper.test_redaction")
    log.info("argument: %s", USERINFO_URL)
    log.info(f"f-string: {USERINFO_URL}")
    log.info("mapping: %(url)s", {"url": USERINFO_URL})
    log.warning("exception as argument: %s", requests.ConnectionError(f"Max retries exceeded with url: {USERINFO_URL}"))
    log.info("a target: %s %r", parse_target(tokened("http://h.test", "x")), parse_target(tokened("http://h.test", "x")))
    try:
        raise RuntimeError(f"failed to open {USERINFO_URL}")
    except RuntimeError:
        log.exception("traceback:")
    get_logger("comfyui_wrapper.comfyui").info("%s", f"ComfyUI line: downloading {USERINFO_URL}")
    text = lines.getvalue()
    for kind in ("argument", "f-string", "mapping", "exception as argument", "a target", "traceback", "ComfyUI line"):
        assert kind in text
    assert "example.com" in text and "h.test" in text and "Traceback" in text
    assert_clean(text)


def test_a_malformed_log_call_still_gives_one_safe_line() -> None:
    record = logging.LogRecord("comfyui_wrapper.x", logging.INFO, __file__, 1, "%d items from %s",
                               ("many", USERINFO_URL), None)
    assert PrintableArgs().filter(record) is True  # no exception out of the filter, nor out of the handler
    assert "%d items" in record.getMessage() and "example.com" in record.getMessage()
    assert_clean(record.getMessage())


def test_every_package_logger_carries_the_filter() -> None:
    """Whoever handles the records (Cog, pytest, a program using the package), the lines are already safe."""
    for module in pkgutil.walk_packages(comfyui_wrapper.__path__, "comfyui_wrapper."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    loggers = {name: logger for name, logger in logging.Logger.manager.loggerDict.items()
               if (name == "comfyui_wrapper" or name.startswith("comfyui_wrapper."))
               and isinstance(logger, logging.Logger)}
    assert "comfyui_wrapper.comfyui" in loggers and "comfyui_wrapper.weights.download" in loggers
    bare = sorted(name for name, logger in loggers.items()
                  if not any(isinstance(f, PrintableArgs) for f in logger.filters))
    assert not bare, f"loggers without PrintableArgs (take them from logs.get_logger): {bare}"


def test_the_package_takes_its_loggers_from_one_place() -> None:
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / "comfyui_wrapper").rglob("*.py"))
                 if path.name != "logs.py" and "= logging.getLogger(" in path.read_text()]
    assert not offenders, offenders


# --- values that hold a raw URL ---------------------------------------------------------------


def test_values_that_hold_a_raw_url_never_show_it(tmp_path: Path) -> None:
    from comfyui_wrapper.inputs.workflow_urls import FetchedUrl
    from comfyui_wrapper.weights.declared import EmbeddedModel
    from comfyui_wrapper.weights.manifest import WeightSpec
    from comfyui_wrapper.weights.refs import Rewrite, UrlRef
    from comfyui_wrapper.workflow import NodeInput

    url = tokened("https://h.test", "m.safetensors")
    target = parse_target(url)
    assert TOKEN in target.raw_url  # what is sent
    where = NodeInput(node_id="1", class_type="LoraLoader", title="Load LoRA", input_name="lora_name")
    values = [target, WeightSpec("m.safetensors", "loras", url, "file", mirrors=(url,)), UrlRef(where, url, "loras"),
              Rewrite("1", "lora_name", url, "abc/m.safetensors"), EmbeddedModel("m.safetensors", url, "loras", "1"),
              FetchedUrl(url=url, local_name="a.png", path=tmp_path / "a.png", size=1, uses=(("1", "image"),))]
    for value in values:
        assert "h.test" in repr(value), repr(value)
        assert_clean(repr(value), str(value), f"{value}", f"{value!r}")


def test_redact_hides_each_secret_form() -> None:
    text = errors.redact(f"{USERINFO_URL} and http://u:{PASSWORD}@h.test/?sig={TOKEN}#frag &session_id={TOKEN}")
    assert_clean(text)
    assert "example.com/m.safetensors" in text and "h.test" in text


@pytest.mark.parametrize("text, shown", [
    ("repr: Spec(url='https://h.test/m?token=abc', size=1)", "repr: Spec(url='https://h.test/m?token=***', size=1)"),
    ('("https://h.test/m?sig=abc");', '("https://h.test/m?sig=***");'),
    ("URL 'https://h.test/m?key=abc' refused", "URL 'https://h.test/m?key=***' refused"),
    ("https://h.test/m?token=abc,def&x=1", "https://h.test/m?token=***&x=1"),  # a comma is part of the value
])
def test_redaction_keeps_the_quotes_around_a_url_and_hides_the_whole_value(text: str, shown: str) -> None:
    assert errors.redact(text) == shown
