"""Find the weights an API-format workflow needs: pure functions, no I/O.

A workflow names weights in three ways, and all three are found here:

* a loader input whose value is a file name (``"ckpt_name": "sd_xl_base_1.0.safetensors"``),
  possibly a synonym or under a subfolder of the user's own (both rewritten to the
  canonical name), or an unknown file;
* ``embedding:name`` inside prompt text (ComfyUI's tokenizer syntax, also inside
  weights such as ``(embedding:foo:1.2)``), with or without the extension;
* an http(s) URL in a model-loader input: the cache downloads it into that
  folder and the value is rewritten to the downloaded name.

Every unknown weight is collected (never stopping at the first) with the
closest manifest names, so one error message can list all of them. What is on
disk, which folder a loader input reads, and the node definitions are passed
in as callables and dicts, so tests need no ComfyUI.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping

from ..errors import UnknownWeightError, WorkflowError, redact, redacted_repr
from ..filetypes import has_model_extension
from ..object_info import combo_choices, input_spec, is_multiline_text
from ..urls import is_http_url
from ..workflow import NodeInput, is_link, meta_title
from .manifest import Manifest, WeightSpec

EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin")  # the ones ComfyUI's load_embed tries
EMBEDDINGS_FOLDER = "embeddings"

# ComfyUI's tokenizer starts an embedding at the start of a segment or after a space or
# newline; the name runs to the next space. Inside "(...:1.2)" the weight is not part of it.
_EMBEDDING = re.compile(r"(?<![^\s(])embedding:([^\s()]+?)(?::\d*\.?\d+)?(?=[\s(),]|$)")

# Core ComfyUI loader inputs and the folder each reads (from ComfyUI's nodes.py and
# comfy_extras/*.py: the folder_paths.get_filename_list(...) in each INPUT_TYPES).
CORE_LOADER_FOLDERS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "config_name"): "configs",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("VAELoader", "vae_name"): "vae",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
}


def core_folder_for(class_type: str, input_name: str) -> str | None:
    """A ``folder_for`` for core ComfyUI loaders; callers may chain their own table after it."""
    return CORE_LOADER_FOLDERS.get((class_type, input_name))


@dataclass(frozen=True)
class WeightRef:
    """A manifest weight the workflow uses (directly, by synonym, or as an embedding)."""

    where: NodeInput
    value: str  # as written in the workflow (for embeddings: the name after "embedding:")
    spec: WeightSpec
    folder: str  # the folder the node reads (folder_for when known, else the manifest's)

    @property
    def name(self) -> str:
        return self.spec.name


@redacted_repr
@dataclass(frozen=True)
class UrlRef:
    """An http(s) URL in a model-loader input: download into ``folder``, then rewrite."""

    where: NodeInput
    url: str
    folder: str


@dataclass(frozen=True)
class UnknownWeight:
    where: NodeInput
    value: str
    folder: str | None
    suggestions: tuple[str, ...]
    reason: str = "is neither in the weights manifest nor present on disk"


@redacted_repr
@dataclass(frozen=True)
class Rewrite:
    """Replace a value in one node input.

    ``kind == "value"``: the whole value equals ``old`` and becomes ``new``.
    ``kind == "embedding"``: inside text, ``embedding:<old>`` becomes ``embedding:<new>``.
    """

    node_id: str
    input_name: str
    old: str
    new: str
    kind: Literal["value", "embedding"] = "value"


@dataclass(frozen=True)
class WeightRefs:
    weights: tuple[WeightRef, ...] = ()
    urls: tuple[UrlRef, ...] = ()
    unknown: tuple[UnknownWeight, ...] = ()
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def specs(self) -> list[WeightSpec]:
        """Each needed manifest weight once, in workflow order."""
        seen: dict[str, WeightSpec] = {}
        for ref in self.weights:
            seen.setdefault(ref.spec.name, ref.spec)
        return list(seen.values())

    @property
    def extra_folders(self) -> dict[str, set[str]]:
        """Weights a node reads from another folder than the manifest's: name -> folders.

        E.g. a checkpoint-folder file loaded by UNETLoader; the cache can expose it there.
        """
        extra: dict[str, set[str]] = {}
        for ref in self.weights:
            if ref.folder != ref.spec.folder:
                extra.setdefault(ref.spec.name, set()).add(ref.folder)
        return extra

    def error(self) -> UnknownWeightError | None:
        return unknown_weights_error(self.unknown) if self.unknown else None


# --- reading node definitions ------------------------------------------------------


def _folder_from_options(options: Iterable[Any], manifest: Manifest) -> str | None:
    """The folder a combo reads, judged by the manifest weights among its choices."""
    counts: dict[str, int] = {}
    for option in options:
        if isinstance(option, str):
            spec = manifest.resolve(option)
            if spec is not None:
                counts[spec.folder] = counts.get(spec.folder, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


# --- the search ------------------------------------------------------------------


def find_weights(
    workflow: Mapping[str, Any],
    manifest: Manifest,
    object_info: Mapping[str, Any],
    folder_for: Callable[[str, str], str | None],
    on_disk: Callable[[str], bool],
) -> WeightRefs:
    """Every weight the workflow references, what to rewrite, and what is unknown.

    ``folder_for(class_type, input_name)`` names the model folder a loader input
    reads (None when not known); ``on_disk(value)`` says whether ComfyUI already
    has a file by that name (so it is neither fetched nor reported unknown).
    """
    weights: list[WeightRef] = []
    urls: list[UrlRef] = []
    unknown: list[UnknownWeight] = []
    rewrites: list[Rewrite] = []

    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            continue
        class_type = str(node.get("class_type", "?"))
        for input_name, value in (node.get("inputs") or {}).items():
            if not isinstance(value, str) or is_link(value):
                continue
            where = NodeInput(str(node_id), str(node.get("class_type", "")), meta_title(node) or "", input_name)
            spec_in = input_spec(object_info, class_type, input_name)
            folder = folder_for(class_type, input_name)
            if "embedding:" in value:
                _find_embeddings(where, value, manifest, on_disk, weights, unknown, rewrites)
            stripped = value.strip()
            if not stripped or "\n" in stripped or is_multiline_text(spec_in):
                continue
            options = combo_choices(spec_in)
            model_input = folder is not None or (
                options is not None and any(isinstance(o, str) and has_model_extension(o) for o in options))
            if is_http_url(stripped):
                if not model_input:
                    continue  # an image/video URL: the inputs module handles those
                target = folder or _folder_from_options(options or [], manifest)
                if target is None:
                    unknown.append(UnknownWeight(
                        where, redact(stripped), None, (),
                        reason="is a URL, but it is not known which model folder this input reads from"))
                else:
                    urls.append(UrlRef(where, stripped, target))
                continue
            spec = _resolve_value(manifest, stripped, folder)
            if spec is not None:
                weights.append(WeightRef(where, value, spec, folder or spec.folder))
                if spec.name != value:
                    rewrites.append(Rewrite(where.node_id, input_name, value, spec.name))
                continue
            # In a model-loader input anything unknown counts ("x.safetensor" is a typo, not text).
            if (model_input or has_model_extension(stripped)) and not on_disk(stripped):
                unknown.append(UnknownWeight(where, stripped, folder, closest_names(manifest, stripped, folder)))
    return WeightRefs(tuple(weights), tuple(urls), tuple(unknown), tuple(rewrites))


@functools.lru_cache(maxsize=4096)
def closest_names(manifest: Manifest, name: str, folder: str | None, n: int = 3) -> tuple[str, ...]:
    """The ``n`` closest manifest names: close matches first; when none is close, the
    nearest ones in the same folder, so a user always gets somewhere to start.

    Cached: the manifest never changes while the process runs, and the same
    unknown name tends to come back (several nodes, or the user retrying).
    """
    close = manifest.suggest(name, n=n)
    if close or folder is None:
        return tuple(close)
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(stem)
    scored = []
    for spec in manifest:
        if spec.folder != folder:
            continue
        matcher.set_seq1(spec.name.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower())
        scored.append((-matcher.ratio(), spec.name))
    return tuple(candidate for _, candidate in sorted(scored)[:n])


def _resolve_value(manifest: Manifest, value: str, folder: str | None) -> WeightSpec | None:
    """The manifest weight a loader value names.

    Besides names and synonyms, a name under a subfolder of the user's own
    (``SDXL/sd_xl_base_1.0.safetensors``, common in shared workflows) resolves to
    the weight with that file name, when the input's folder agrees.
    """
    spec = manifest.resolve(value)
    if spec is not None:
        return spec
    normalized = value.replace("\\", "/")
    if "/" not in normalized:
        return None
    spec = manifest.resolve(normalized.rsplit("/", 1)[1])
    if spec is not None and (folder is None or folder == spec.folder):
        return spec
    return None


def _find_embeddings(
    where: NodeInput, text: str, manifest: Manifest, on_disk: Callable[[str], bool],
    weights: list[WeightRef], unknown: list[UnknownWeight], rewrites: list[Rewrite],
) -> None:
    for match in _EMBEDDING.finditer(text):
        raw = match.group(1).rstrip(",")  # ComfyUI strips trailing commas too
        if not raw:
            continue
        candidates = [raw] + ([] if raw.lower().endswith(EMBEDDING_EXTENSIONS) else
                              [raw + ext for ext in EMBEDDING_EXTENSIONS])
        spec = next((s for s in (manifest.resolve(c) for c in candidates)
                     if s is not None and s.folder == EMBEDDINGS_FOLDER), None)
        if spec is not None:
            weights.append(WeightRef(where, raw, spec, EMBEDDINGS_FOLDER))
            canonical = next((c for c in candidates if c == spec.name), None)
            if canonical is None:  # named by a synonym: point the text at the canonical file
                rewrites.append(Rewrite(where.node_id, where.input_name, raw, spec.name, kind="embedding"))
            continue
        if any(on_disk(c) or on_disk(f"{EMBEDDINGS_FOLDER}/{c}") for c in candidates):
            continue
        suggestions = [n for n in manifest.suggest(raw, n=10)
                       if (s := manifest.get(n)) is not None and s.folder == EMBEDDINGS_FOLDER][:3]
        unknown.append(UnknownWeight(where, f"embedding:{raw}", EMBEDDINGS_FOLDER, tuple(suggestions),
                                     reason="is an embedding that is neither in the weights manifest nor on disk"))


# --- results ------------------------------------------------------------------------


def unknown_weights_error(unknown: Iterable[UnknownWeight]) -> UnknownWeightError:
    """One error listing every unknown weight, where it is used and what to use instead."""
    items = list(unknown)
    lines = [f"This workflow uses {len(items)} weight{'s' if len(items) != 1 else ''} that this container "
             "cannot provide:"]
    for item in items:
        line = f"- {item.value!r} ({item.where.describe()}) {item.reason}."
        if item.suggestions:
            line += " Closest available: " + ", ".join(repr(s) for s in item.suggestions) + "."
        lines.append(line)
    fix = (
        "For each weight above, either change the input to one of the closest available names "
        "(full list: supported_weights.md), or put an http(s) URL of the file in the loader's input "
        "(it is downloaded into the right model folder; set HF_TOKEN or CIVITAI_API_TOKEN for gated "
        "files), or add the weight to weights_manifest.json via scripts/build_weights_manifest.py."
    )
    first = items[0] if items else None
    return UnknownWeightError(
        "\n".join(lines), fix=fix, weights=[i.value for i in items],
        node_id=first.where.node_id if first else None, filename=first.value if first else None,
    )


def apply_rewrites(workflow: Mapping[str, Any], rewrites: Iterable[Rewrite]) -> dict[str, Any]:
    """A copy of the workflow with the rewrites applied; the input is left untouched."""
    result = copy.deepcopy(dict(workflow))
    for rewrite in rewrites:
        node = result.get(rewrite.node_id)
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict) or not isinstance(inputs.get(rewrite.input_name), str):
            raise WorkflowError(
                f"Cannot rewrite {NodeInput(rewrite.node_id, input_name=rewrite.input_name).describe()}: "
                "the node or a text value there is missing.",
                node_id=rewrite.node_id, input_name=rewrite.input_name,
            )
        current = inputs[rewrite.input_name]
        if rewrite.kind == "embedding":
            pattern = re.compile(r"(?<![^\s(])embedding:" + re.escape(rewrite.old) + r"(?=[\s(),:]|$)")
            inputs[rewrite.input_name] = pattern.sub(lambda _m: "embedding:" + rewrite.new, current)  # noqa: B023
        elif current.strip() == rewrite.old.strip():
            inputs[rewrite.input_name] = rewrite.new
    return result


def rewrites_for_urls(refs: Iterable[UrlRef], names: Mapping[str, str]) -> list[Rewrite]:
    """Rewrites that put each downloaded URL's name (``names[url]``, from the cache) into its input."""
    return [Rewrite(ref.where.node_id, ref.where.input_name, ref.url, names[ref.url]) for ref in refs]
