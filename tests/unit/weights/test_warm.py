"""CW_WARM_WEIGHTS: names checked up front, weights fetched on a thread, failures logged not raised."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from comfyui_wrapper.errors import UnknownWeightError
from comfyui_wrapper.settings import Settings
from comfyui_wrapper.weights.cache import WeightCache
from comfyui_wrapper.weights.manifest import Manifest, WeightSpec
from comfyui_wrapper.weights.warm import WarmUp, parse_warm_weights
from tests.support.static_server import serve_directory

BASE = "https://cdn.example/w"


def manifest() -> Manifest:
    return Manifest([
        WeightSpec("sd_xl_base_1.0.safetensors", "checkpoints", f"{BASE}/sd_xl_base_1.0.safetensors.tar", "tar",
                   synonyms=("sdxl.safetensors",)),
        WeightSpec("bbox/face_yolov8m.pt", "ultralytics", f"{BASE}/face_yolov8m.pt.tar", "tar"),
    ])


def test_setting_splits_on_commas() -> None:
    settings = Settings.from_env({"CW_WARM_WEIGHTS": " a.safetensors, ,loras=https://h/x.safetensors "})
    assert settings.warm_weights == ("a.safetensors", "loras=https://h/x.safetensors")
    assert Settings.from_env({}).warm_weights == ()


def test_names_synonyms_urls_and_folder_url_pairs() -> None:
    warm = parse_warm_weights(["sdxl.safetensors", "sd_xl_base_1.0.safetensors", f"{BASE}/face_yolov8m.pt.tar",
                               "loras=https://h/a.safetensors?x=1"], manifest())
    assert [spec.key for spec in warm.specs] == ["checkpoints/sd_xl_base_1.0.safetensors",
                                                 "ultralytics/bbox/face_yolov8m.pt"]
    assert warm.urls == (("https://h/a.safetensors?x=1", "loras"),)
    assert not parse_warm_weights([], manifest())


def test_unknown_entries_fail_with_a_fix() -> None:
    with pytest.raises(UnknownWeightError, match="Did you mean 'sd_xl_base_1.0.safetensors'"):
        parse_warm_weights(["sd_xl_base_1.0.safetensor"], manifest())
    with pytest.raises(UnknownWeightError, match="folder=URL"):
        parse_warm_weights(["https://h/not-in-manifest.safetensors"], manifest())
    with pytest.raises(UnknownWeightError, match="not a model folder"):
        parse_warm_weights(["../x=https://h/a.safetensors"], manifest())


def _cache(tmp_path: Path, specs: list[WeightSpec]) -> WeightCache:
    settings = dataclasses.replace(Settings.from_env({}), weights_dir=tmp_path / "weights", allow_private_urls=True,
                                   download_timeout_s=5.0)
    return WeightCache(settings, Manifest(specs), log=lambda line: None)


def test_warm_up_fetches_in_the_background(tmp_path: Path, caplog) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "a.safetensors").write_bytes(b"a" * 5000)
    (root / "b.safetensors").write_bytes(b"b" * 3000)
    with serve_directory(root) as served:
        spec = WeightSpec("a.safetensors", "checkpoints", f"{served.base_url}/a.safetensors")
        cache = _cache(tmp_path, [spec])
        caplog.set_level(logging.INFO, logger="comfyui_wrapper")
        job = WarmUp.begin(cache, ["a.safetensors", f"loras={served.base_url}/b.safetensors"])
        report = job.wait()
        assert report is not None and report.downloaded == 2
        assert (tmp_path / "weights/checkpoints/a.safetensors").stat().st_size == 5000
        assert cache.cached_names([spec]) == {"a.safetensors"}
        assert "Warm weights ready: 2 downloaded" in caplog.text
        again = WarmUp.begin(cache, ["a.safetensors"]).wait()
        assert again is not None and again.hits == 1 and served.requests["/a.safetensors"] == 1


def test_a_failed_warm_download_is_logged_not_raised(tmp_path: Path, caplog) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    with serve_directory(root) as served:
        spec = WeightSpec("gone.safetensors", "checkpoints", f"{served.base_url}/gone.safetensors")
        caplog.set_level(logging.INFO, logger="comfyui_wrapper")
        assert WarmUp.begin(_cache(tmp_path, [spec]), ["gone.safetensors"]).wait() is None
    assert "Warm weights: not all could be fetched" in caplog.text and "HTTP 404" in caplog.text


def test_nothing_to_warm_starts_nothing(tmp_path: Path) -> None:
    assert WarmUp.begin(_cache(tmp_path, []), []).wait() is None
