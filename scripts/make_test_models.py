#!/usr/bin/env python3
"""Make random-weight models that ComfyUI loads as if they were real ones.

Tests need weights that go through every code path a real model does (the
weights manifest, the download, the cache, ComfyUI's loaders, sampling) without
fetching gigabytes from the internet. This script builds them from ComfyUI's own
model classes, so their keys and shapes are exactly what ComfyUI expects:

    OUT/
      checkpoints/cw-test-sd15.safetensors        SD1.5 checkpoint (451 MB, fp16): a shallow
                                                  UNet still detected as SD1.5, the full-size
                                                  SD VAE and CLIP-L text encoder
      loras/cw-test-sd15-lora.safetensors         kohya-named LoRA for that checkpoint
      upscale_models/cw-test-compact-2x.safetensors  a tiny RealESRGAN "Compact" 2x upscaler
      test_models.json                            [{name, folder, size, sha256}]

Everything is a pure function of ``--seed``: each file is filled from its own
seeded ``torch.Generator`` walking the tensors in sorted key order, and
safetensors writes keys in a fixed order, so the same seed gives byte-identical
files on any machine with the same torch.

Each file carries a content marker in its safetensors metadata (the recipe:
model name, seed, generator version). A second run reads only the
headers, finds the markers match and skips the build; files are written to a
temporary name and renamed, so an interrupted run never leaves a half file
under the real name.

Run with the project venv: ``.venv/bin/python scripts/make_test_models.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:  # torch is imported where a model is built: a run that builds nothing stays fast
    import torch

    StateDict = dict[str, torch.Tensor]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / ".cache" / "test-models"
DEFAULT_COMFYUI = REPO_ROOT / "ComfyUI"
INDEX_NAME = "test_models.json"
# Bump when the recipe changes: the marker changes with it and old files are rebuilt.
GENERATOR_VERSION = 1
MARKER_KEY = "cw_test_model_recipe"


# --- ComfyUI import ------------------------------------------------------------


def import_comfy(comfyui_dir: Path = DEFAULT_COMFYUI) -> None:
    """Make ComfyUI's ``comfy`` package importable in this process.

    ComfyUI is not an installed package: its directory goes on ``sys.path``.
    It is appended, not prepended, because that directory also holds top-level
    modules with generic names (``utils``, ``server``, ``app``) that must not
    shadow anything else. ComfyUI picks its device when ``comfy.model_management``
    is first imported, so CPU mode is set before that on machines without CUDA.
    """
    import torch

    path = str(Path(comfyui_dir).resolve())
    if not (Path(path) / "comfy" / "model_detection.py").is_file():
        raise SystemExit(f"No ComfyUI at {path}: pass --comfyui-dir (it must hold comfy/model_detection.py).")
    if path not in sys.path:
        sys.path.append(path)
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True


# --- filling tensors -------------------------------------------------------------


@dataclass(frozen=True)
class TensorRecipe:
    """How one parameter is drawn: ``fill`` + ``std`` * N(0, 1)."""

    shape: tuple[int, ...]
    std: float
    fill: float = 0.0


def recipes_from_module(module: torch.nn.Module, out_gain: dict[str, float] | None = None) -> dict[str, TensorRecipe]:
    """Describe every parameter of a (meta-device) module by its layer type.

    ComfyUI's layers skip PyTorch's initialisation (weights are left empty and
    filled by a checkpoint), so we choose values ourselves: fan-in scaled
    normals for linear and conv weights (activations keep unit scale through
    the random network, so sampling yields finite numbers), near-identity norms,
    small embeddings. ``out_gain`` scales chosen layers by name prefix.
    """
    import torch

    out_gain = out_gain or {}
    recipes: dict[str, TensorRecipe] = {}
    for module_name, sub in module.named_modules():
        for param_name, param in sub.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            shape = tuple(param.shape)
            gain = next((g for prefix, g in out_gain.items() if name.startswith(prefix)), 1.0)
            if isinstance(sub, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                recipe = TensorRecipe(shape, 0.02, 1.0 if param_name == "weight" else 0.0)
            elif isinstance(sub, torch.nn.Embedding):
                recipe = TensorRecipe(shape, 0.02)
            elif isinstance(sub, torch.nn.PReLU):
                recipe = TensorRecipe(shape, 0.02, 0.25)
            elif isinstance(sub, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)) and param_name == "weight":
                fan_in = max(1, param[0].numel())
                recipe = TensorRecipe(shape, gain / fan_in**0.5)
            else:  # biases and anything unusual
                recipe = TensorRecipe(shape, 0.02 * gain)
            recipes[name] = recipe
    state_keys = set(module.state_dict().keys())
    if state_keys != set(recipes):
        # A buffer in the state dict would be saved with garbage: refuse rather than guess.
        raise RuntimeError(f"state dict and parameters differ: {sorted(state_keys ^ set(recipes))[:5]}")
    return recipes


def draw(recipes: dict[str, TensorRecipe], seed: int, dtype: torch.dtype) -> StateDict:
    """Fill every tensor from one generator, in sorted key order (the order is the determinism)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out: StateDict = {}
    for name in sorted(recipes):
        recipe = recipes[name]
        tensor = torch.randn(recipe.shape, generator=generator, dtype=torch.float32)
        tensor.mul_(recipe.std).add_(recipe.fill)
        out[name] = tensor.to(dtype).contiguous()
    return out


def _sub_seed(seed: int, part: str) -> int:
    """Independent, stable seeds per part, so adding a part never shifts another's numbers."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{part}".encode()).digest()[:7], "big")


# --- SD1.5 checkpoint ----------------------------------------------------------------

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."


def sd15_unet_config() -> dict:
    """The smallest UNet that ComfyUI's detection still calls SD1.5.

    ``comfy.supported_models.SD15`` matches on model_channels=320,
    context_dim=768 (from the first cross-attention), conv (not linear)
    transformer projections, no ADM input and 4 input channels. Depth is free,
    so: one level (no down/upsampling), one res block with one transformer,
    and no middle block. 18.7 M parameters instead of 860 M.
    """
    return {
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": 320,
        "num_res_blocks": [1],
        "channel_mult": [1],
        "transformer_depth": [1],
        "transformer_depth_output": [1, 1],
        "transformer_depth_middle": -2,
        "context_dim": 768,
        "num_heads": 8,
        "num_head_channels": -1,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": False,
        "legacy": False,
    }


def sd_vae_config() -> dict:
    """The standard SD1.x/2.x KL VAE, as ComfyUI builds it for such checkpoints."""
    return {
        "double_z": True,
        "z_channels": 4,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    }


def sd15_recipes(comfyui_dir: Path) -> dict[str, TensorRecipe]:
    """Parameter shapes of the whole checkpoint, with SD1.5 key names, built on the meta device."""
    import torch

    import_comfy(comfyui_dir)
    import comfy.clip_model
    import comfy.ops
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    ops = comfy.ops.disable_weight_init
    clip_config = json.loads((Path(comfyui_dir) / "comfy" / "sd1_clip_config.json").read_text())
    with torch.device("meta"):
        unet = UNetModel(**sd15_unet_config(), operations=ops, device="meta")
        vae = AutoencoderKL(ddconfig=sd_vae_config(), embed_dim=4)
        clip = comfy.clip_model.CLIPTextModel(clip_config, dtype=torch.float32, device="meta", operations=ops)

    recipes: dict[str, TensorRecipe] = {}
    recipes.update({UNET_PREFIX + k: v for k, v in recipes_from_module(unet).items()})
    recipes.update({VAE_PREFIX + k: v for k, v in recipes_from_module(vae).items()})
    # SD1.5 files hold only the text model; ComfyUI's class also has a projection they lack.
    recipes.update(
        {CLIP_PREFIX + k: v for k, v in recipes_from_module(clip).items() if k.startswith("text_model.")}
    )
    return recipes


def build_sd15_checkpoint(seed: int, comfyui_dir: Path = DEFAULT_COMFYUI) -> StateDict:
    """An SD1.5-shaped checkpoint in fp16, as the common ``*-fp16.safetensors`` files are."""
    import torch

    return draw(sd15_recipes(comfyui_dir), _sub_seed(seed, "sd15"), torch.float16)


# --- LoRA -----------------------------------------------------------------------------

LORA_RANK = 4


def lora_targets(comfyui_dir: Path = DEFAULT_COMFYUI) -> dict[str, tuple[int, ...]]:
    """kohya LoRA names -> shape of the weight each one patches.

    UNet names use the diffusers block names kohya writes
    (``lora_unet_down_blocks_0_attentions_0_...``), text-encoder names the
    ``lora_te_text_model_encoder_layers_N_...`` form. They cover every
    attention projection of the three transformers, the 1x1-conv proj_in/out,
    and q/v/fc1 of the first and last CLIP layers: enough to exercise linear
    and conv patches in both models.
    """
    recipes = sd15_recipes(comfyui_dir)
    unet = {
        "down_blocks_0_attentions_0": "input_blocks.1.1",
        "up_blocks_0_attentions_0": "output_blocks.0.1",
        "up_blocks_0_attentions_1": "output_blocks.1.1",
    }
    targets: dict[str, tuple[int, ...]] = {}
    for kohya, comfy_block in unet.items():
        for part in ("proj_in", "proj_out"):
            targets[f"lora_unet_{kohya}_{part}"] = recipes[f"{UNET_PREFIX}{comfy_block}.{part}.weight"].shape
        for attn in ("attn1", "attn2"):
            for proj, comfy_proj in (("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out_0", "to_out.0")):
                key = f"{UNET_PREFIX}{comfy_block}.transformer_blocks.0.{attn}.{comfy_proj}.weight"
                targets[f"lora_unet_{kohya}_transformer_blocks_0_{attn}_{proj}"] = recipes[key].shape
    for layer in (0, 11):
        for kohya, comfy_name in (("self_attn_q_proj", "self_attn.q_proj"), ("self_attn_v_proj", "self_attn.v_proj"), ("mlp_fc1", "mlp.fc1")):
            key = f"{CLIP_PREFIX}text_model.encoder.layers.{layer}.{comfy_name}.weight"
            targets[f"lora_te_text_model_encoder_layers_{layer}_{kohya}"] = recipes[key].shape
    return targets


def build_lora(seed: int, comfyui_dir: Path = DEFAULT_COMFYUI) -> StateDict:
    """A rank-4 kohya LoRA (lora_down / lora_up / alpha per module), fp16 like most published ones."""
    import torch

    recipes: dict[str, TensorRecipe] = {}
    for name, shape in lora_targets(comfyui_dir).items():
        out_features, in_features, kernel = shape[0], shape[1], tuple(shape[2:])
        recipes[f"{name}.lora_down.weight"] = TensorRecipe((LORA_RANK, in_features, *kernel), 1.0 / in_features**0.5)
        # Large enough that applying the LoRA visibly changes the weights.
        recipes[f"{name}.lora_up.weight"] = TensorRecipe((out_features, LORA_RANK, *[1] * len(kernel)), 0.05)
    tensors = draw(recipes, _sub_seed(seed, "lora"), torch.float16)
    for name in lora_targets(comfyui_dir):
        tensors[f"{name}.alpha"] = torch.tensor(float(LORA_RANK), dtype=torch.float16)
    return tensors


# --- upscaler ---------------------------------------------------------------------------

UPSCALE_SCALE = 2


def build_upscaler(seed: int, comfyui_dir: Path = DEFAULT_COMFYUI) -> StateDict:
    """A RealESRGAN "Compact" (SRVGGNetCompact) 2x net, built with spandrel's own class.

    32 features and 4 body convs (the published ones use 64 and 16): 167 KB.
    Compact adds its output to a nearest-upscaled copy of the input, and the
    last conv is scaled down, so the result looks like the input, twice as big,
    with a little noise.
    """
    import torch
    from spandrel.architectures.Compact import Compact

    with torch.device("meta"):
        net = Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=4, upscale=UPSCALE_SCALE, act_type="prelu")
    recipes = recipes_from_module(net)
    last = max(int(k.split(".")[1]) for k in recipes if k.startswith("body."))
    recipes = recipes_from_module(net, out_gain={f"body.{last}.": 0.1})
    return draw(recipes, _sub_seed(seed, "upscaler"), torch.float32)


# --- the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what --only takes
    filename: str
    folder: str  # ComfyUI model folder
    build: Callable[[int, Path], StateDict]
    description: str

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("sd15", "cw-test-sd15.safetensors", "checkpoints", build_sd15_checkpoint,
              "SD1.5-shaped checkpoint: shallow UNet, real SD VAE and CLIP-L shapes, random weights"),
    ModelSpec("lora", "cw-test-sd15-lora.safetensors", "loras", build_lora,
              "rank-4 kohya LoRA for cw-test-sd15 (UNet attention + text encoder)"),
    ModelSpec("upscaler", "cw-test-compact-2x.safetensors", "upscale_models", build_upscaler,
              "RealESRGAN Compact 2x upscaler, 32 features, 4 convs"),
)


def spec_named(name: str) -> ModelSpec:
    for spec in MODELS:
        if name in (spec.key, spec.filename, Path(spec.filename).stem):
            return spec
    known = ", ".join(spec.key for spec in MODELS)
    raise SystemExit(f"Unknown model {name!r}; choose one of: {known}.")


def recipe_marker(spec: ModelSpec, seed: int) -> str:
    """What the file was made from; equal markers mean equal bytes."""
    return f"cw-test-model {spec.key} seed={seed} generator=v{GENERATOR_VERSION}"


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRecord:
    """One line of test_models.json."""

    name: str
    folder: str
    size: int
    sha256: str
    built: bool = False  # not written to the index: whether this run built the file

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "folder": self.folder, "size": self.size, "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_marker(path: Path) -> str | None:
    """The recipe marker in a safetensors header, or None for a missing, foreign or cut-short file.

    Reads the header only (8-byte length, then JSON), with the standard library.
    """
    try:
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= 100_000_000:
                return None
            header = json.loads(handle.read(length))
            handle.seek(0, os.SEEK_END)
            data_size = handle.tell() - 8 - length
    except (OSError, ValueError):
        return None
    try:
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        value = (header.get("__metadata__") or {}).get(MARKER_KEY)
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    if max(ends, default=0) != data_size:  # truncated or padded: rebuild
        return None
    return value if isinstance(value, str) else None


def write_atomically(tensors: StateDict, dest: Path, metadata: dict[str, str]) -> None:
    """Write to a temp name beside ``dest``, fsync, then rename: ``dest`` is whole or absent."""
    from safetensors.torch import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.incomplete")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_model(spec: ModelSpec, out_dir: Path, seed: int, comfyui_dir: Path = DEFAULT_COMFYUI,
                 known_sha: dict[str, tuple[int, str]] | None = None) -> ModelRecord:
    """Build ``spec`` under ``out_dir`` unless a file with the same recipe marker is there.

    ``known_sha`` (relpath -> (size, sha256), from the previous index, only for
    files not modified since) spares re-hashing a skipped file; a different
    size also forces a fresh hash.
    """
    dest = out_dir / spec.folder / spec.filename
    marker = recipe_marker(spec, seed)
    built = False
    if read_marker(dest) != marker:
        tensors = spec.build(seed, comfyui_dir)
        # One metadata entry only: safetensors writes its metadata map in a
        # per-process random order, so several entries would break byte-identity.
        write_atomically(tensors, dest, {MARKER_KEY: marker})
        built = True
    size = dest.stat().st_size
    cached = (known_sha or {}).get(spec.relpath)
    sha = cached[1] if (cached and not built and cached[0] == size) else sha256_of(dest)
    return ModelRecord(spec.filename, spec.folder, size, sha, built)


def read_index(out_dir: Path) -> dict[str, tuple[int, str]]:
    """relpath -> (size, sha256) from the last index, for files not touched since it was written."""
    index = out_dir / INDEX_NAME
    try:
        written = index.stat().st_mtime_ns
        entries = json.loads(index.read_text())
        known = {f"{e['folder']}/{e['name']}": (int(e["size"]), str(e["sha256"])) for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    fresh = {}
    for relpath, value in known.items():
        try:
            if (out_dir / relpath).stat().st_mtime_ns <= written:
                fresh[relpath] = value
        except OSError:
            pass
    return fresh


def write_index(out_dir: Path, records: Iterable[ModelRecord]) -> Path:
    path = out_dir / INDEX_NAME
    tmp = path.with_name(f".{INDEX_NAME}.{os.getpid()}.incomplete")
    tmp.write_text(json.dumps([r.as_json() for r in records], indent=2) + "\n")
    os.replace(tmp, path)
    return path


def make_models(out_dir: Path, seed: int = 0, only: Iterable[str] = (), comfyui_dir: Path = DEFAULT_COMFYUI,
                log: Callable[[str], None] = print) -> list[ModelRecord]:
    """Ensure the chosen models (all by default) exist; index every model of this seed present."""
    out_dir = Path(out_dir)
    chosen = [spec_named(name) for name in only] or list(MODELS)
    known = read_index(out_dir)
    records: list[ModelRecord] = []
    for spec in MODELS:
        if spec in chosen:
            started = time.perf_counter()
            record = ensure_model(spec, out_dir, seed, comfyui_dir, known)
            verb = "built" if record.built else "kept "
            log(f"{verb} {spec.relpath:48} {record.size:>12,} B  sha256 {record.sha256}  "
                f"({time.perf_counter() - started:.1f} s)")
            records.append(record)
        elif read_marker(out_dir / spec.folder / spec.filename) == recipe_marker(spec, seed):
            # Not asked for, but present and current: keep it listed.
            records.append(ensure_model(spec, out_dir, seed, comfyui_dir, known))
    index = write_index(out_dir, records)
    log(f"index {index}")
    return records


def main(argv: list[str] | None = None) -> int:
    epilog = "models:\n" + "\n".join(f"  {s.key:9} {s.relpath}: {s.description}" for s in MODELS)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="build only this model (repeatable): " + ", ".join(s.key for s in MODELS))
    parser.add_argument("--comfyui-dir", type=Path, default=DEFAULT_COMFYUI, help="ComfyUI checkout to take model classes from")
    args = parser.parse_args(argv)
    make_models(args.out, args.seed, args.only, args.comfyui_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
