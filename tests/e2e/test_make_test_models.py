"""scripts/make_test_models.py: the random test models are deterministic and ComfyUI takes them as real.

The checks use ComfyUI's own code in this process (detection, checkpoint
loading, LoRA key mapping, spandrel); no server is started. The models are
built once per session into a temporary folder (~15 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMFYUI_DIR = REPO_ROOT / "ComfyUI"

# e2e: ComfyUI's own code and torch in this process, and a 450 MB checkpoint built and loaded (~40 s).
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not (COMFYUI_DIR / "comfy").is_dir(), reason="ComfyUI is not installed")]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_test_models", REPO_ROOT / "scripts" / "make_test_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


mtm = _load_script()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("test-models")
    mtm.import_comfy(COMFYUI_DIR)
    mtm.make_models(out, seed=0, log=lambda line: None)
    return out


def _path(models_dir: Path, key: str) -> Path:
    spec = mtm.spec_named(key)
    return models_dir / spec.folder / spec.filename


def _fingerprints(out: Path) -> dict[str, str]:
    return {f"{e['folder']}/{e['name']}": e["sha256"] for e in json.loads((out / "test_models.json").read_text())}


# --- files, index, determinism ---------------------------------------------------------


def test_index_lists_every_model_with_its_true_size_and_hash(models_dir: Path) -> None:
    entries = json.loads((models_dir / "test_models.json").read_text())
    assert [(e["folder"], e["name"]) for e in entries] == [
        ("checkpoints", "cw-test-sd15.safetensors"),
        ("loras", "cw-test-sd15-lora.safetensors"),
        ("upscale_models", "cw-test-compact-2x.safetensors"),
    ]
    for entry in entries:
        path = models_dir / entry["folder"] / entry["name"]
        assert set(entry) == {"name", "folder", "size", "sha256"}
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == mtm.sha256_of(path)
    assert 400e6 < entries[0]["size"] < 470e6  # the SD1.5 checkpoint
    assert not list(models_dir.rglob("*.incomplete"))


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(models_dir: Path, tmp_path: Path) -> None:
    first = _fingerprints(models_dir)
    mtm.make_models(tmp_path / "again", seed=0, only=["lora", "upscaler"], log=lambda line: None)
    mtm.make_models(tmp_path / "other", seed=1, only=["lora", "upscaler"], log=lambda line: None)
    again, other = _fingerprints(tmp_path / "again"), _fingerprints(tmp_path / "other")
    assert set(again) == set(other) == {"loras/cw-test-sd15-lora.safetensors", "upscale_models/cw-test-compact-2x.safetensors"}
    for key in again:
        assert again[key] == first[key]
        assert other[key] != first[key]


def test_checkpoint_tensors_are_a_pure_function_of_the_seed() -> None:
    import torch
    # The test above compares whole files for the small models; for the checkpoint,
    # drawing (part of) its UNet twice must agree to the bit.
    every = mtm.sd15_recipes(COMFYUI_DIR)
    recipes = {k: every[k] for k in sorted(k for k in every if k.startswith(mtm.UNET_PREFIX))[:40]}
    a, b = mtm.draw(recipes, 5, torch.float16), mtm.draw(recipes, 5, torch.float16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[sorted(a)[0]], mtm.draw(recipes, 6, torch.float16)[sorted(a)[0]])


def test_second_run_keeps_files_and_is_fast(models_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in models_dir.rglob("*.safetensors")}
    started = time.perf_counter()
    records = mtm.make_models(models_dir, seed=0, log=lambda line: None)
    assert time.perf_counter() - started < 2.0
    assert not any(r.built for r in records)
    assert {p: p.stat().st_mtime_ns for p in models_dir.rglob("*.safetensors")} == before


def test_damaged_or_foreign_file_is_rebuilt(tmp_path: Path) -> None:
    mtm.make_models(tmp_path, seed=0, only=["upscaler"], log=lambda line: None)
    path = _path(tmp_path, "upscaler")
    good = mtm.sha256_of(path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated: header no longer readable
    (record,) = mtm.make_models(tmp_path, seed=0, only=["upscaler"], log=lambda line: None)
    assert record.built and record.sha256 == good == mtm.sha256_of(path)


def test_only_builds_the_named_model_and_unknown_names_fail(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert mtm.main(["--out", str(tmp_path), "--only", "upscaler"]) == 0
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.safetensors")] == [
        "upscale_models/cw-test-compact-2x.safetensors"
    ]
    printed = capsys.readouterr().out
    assert "cw-test-compact-2x.safetensors" in printed and mtm.sha256_of(_path(tmp_path, "upscaler")) in printed
    with pytest.raises(SystemExit, match="Unknown model 'sdxl'"):
        mtm.main(["--out", str(tmp_path), "--only", "sdxl"])


# --- ComfyUI takes them as real ------------------------------------------------------------


def test_comfyui_detects_the_unet_as_sd15(models_dir: Path) -> None:
    import comfy.model_detection
    import comfy.supported_models
    import comfy.utils

    sd = comfy.utils.load_torch_file(str(_path(models_dir, "sd15")))
    assert comfy.model_detection.unet_prefix_from_state_dict(sd) == "model.diffusion_model."
    config = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    assert type(config) is comfy.supported_models.SD15
    assert {k[: k.index(".") + 1] for k in sd} == {"model.", "first_stage_model.", "cond_stage_model."}


def test_checkpoint_loads_whole_and_samples_finite_numbers(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import comfy.sample
    import comfy.sd
    import torch

    with caplog.at_level(logging.DEBUG):
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(_path(models_dir, "sd15")))
    text = caplog.text
    assert "unet missing" not in text and "unet unexpected" not in text
    assert "Missing VAE keys" not in text and "Leftover VAE keys" not in text
    # The only keys ComfyUI's CLIP lacks are the two that SD1.5 files never carry.
    assert "clip missing: ['clip_l.logit_scale', 'clip_l.transformer.text_projection.weight']" in text
    assert "left over keys" not in text  # logged only when some are left

    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a photo of a cat"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    assert positive[0][0].shape == (1, 77, 768)
    latent = torch.zeros(1, 4, 4, 4)  # a 32x32 image: the VAE is full size, keep its work small
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    samples = comfy.sample.sample(model, noise, 1, 7.0, "euler", "normal", positive, negative, latent, seed=0)
    image = vae.decode(samples)
    assert image.shape == (1, 32, 32, 3)
    assert torch.isfinite(image).all() and image.std() > 0.01


def test_lora_keys_all_map_onto_the_generated_model(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import comfy.lora
    import comfy.sd
    import comfy.utils

    model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(_path(models_dir, "sd15")), output_vae=False)
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    lora = comfy.utils.load_torch_file(str(_path(models_dir, "lora")))
    modules = {k.split(".")[0] for k in lora}
    assert any(m.startswith("lora_unet_") for m in modules) and any(m.startswith("lora_te_") for m in modules)
    assert modules <= set(key_map), sorted(modules - set(key_map))
    with caplog.at_level(logging.WARNING):
        patches = comfy.lora.load_lora(lora, key_map)
    assert "lora key not loaded" not in caplog.text
    assert len(patches) == len(modules) == len(mtm.lora_targets(COMFYUI_DIR))
    patched_model, patched_clip = comfy.sd.load_lora_for_models(model, clip, lora, 1.0, 1.0)
    assert len(patched_model.patches) + len(patched_clip.patcher.patches) == len(modules)


def test_spandrel_loads_the_upscaler_as_a_compact_2x(models_dir: Path) -> None:
    import comfy.utils
    import torch
    from spandrel import ImageModelDescriptor, ModelLoader

    sd = comfy.utils.load_torch_file(str(_path(models_dir, "upscaler")), safe_load=True)
    descriptor = ModelLoader().load_from_state_dict(sd).eval()
    assert isinstance(descriptor, ImageModelDescriptor)
    assert descriptor.architecture.id == "Compact" and descriptor.scale == 2
    image = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = descriptor(image)
    assert out.shape == (1, 3, 32, 48)
    # Nearly the input, upscaled: the net adds a small learned residual.
    nearest = torch.nn.functional.interpolate(image, scale_factor=2, mode="nearest")
    assert (out - nearest).abs().mean() < 0.2
