"""weights_manifest.json: built from the sources, valid, and searchable."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest

from comfyui_wrapper.errors import ManifestError
from comfyui_wrapper.weights.manifest import Manifest, WeightSpec

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "weights_manifest.json"
SOURCE = Path("/work/shared/sources/any-comfyui-workflow-weights.json")
sys.path.insert(0, str(REPO / "scripts"))

# Model folders that the shipped custom node packs read (ComfyUI core knows the rest).
# The weights source names each as a category's comfyui_folder; the pack is the one that
# registers or reads that folder under ComfyUI/models/.
CUSTOM_NODE_FOLDERS = {
    "animatediff_models",       # Kosinkadink/ComfyUI-AnimateDiff-Evolved
    "animatediff_motion_lora",  # Kosinkadink/ComfyUI-AnimateDiff-Evolved
    "bert-base-uncased",        # fofr/comfyui_segment_anything (GroundingDINO's text encoder)
    "grounding-dino",           # fofr/comfyui_segment_anything
    "sams",                     # fofr/comfyui_segment_anything, ltdrdata/ComfyUI-Impact-Pack
    "BiRefNet",                 # lldacing/ComfyUI_BiRefNet_ll, shadel/ComfyUI-BiRefNet-ZHO
    "clipseg",                  # CLIPSeg nodes (Hugging Face cache layout: models--CIDAS--...)
    "depthanything",            # kijai/ComfyUI-DepthAnythingV2
    "dynamicrafter",            # ToonCrafter / DynamiCrafter nodes
    "facedetection",            # Gourieff/ComfyUI-ReActor (face restoration's detectors)
    "facerestore_models",       # Gourieff/ComfyUI-ReActor
    "reswapper",                # Gourieff/ComfyUI-ReActor
    "nsfw_detector",            # Gourieff/ComfyUI-ReActor
    "FBCNN",                    # Miosp/ComfyUI-FBCNN
    "FlashVSR",                 # 1038lab/ComfyUI-FlashVSR
    "inpaint",                  # Acly/comfyui-inpaint-nodes, fofr/ComfyUI-BrushNet
    "insightface",              # IPAdapter_plus, InstantID, PuLID, ReActor
    "instantid",                # cubiq/ComfyUI_InstantID
    "ipadapter",                # cubiq/ComfyUI_IPAdapter_plus
    "layer_model",              # huchenlei/ComfyUI-layerdiffuse
    "liveportrait",             # fofr/ComfyUI-AdvancedLivePortrait
    "LLM",                      # kijai/ComfyUI-Florence2
    "mmdets",                   # ltdrdata/ComfyUI-Impact-Pack
    "ultralytics",              # ltdrdata/ComfyUI-Impact-Pack (its subpack's detectors)
    "pulid",                    # cubiq/PuLID_ComfyUI, fofr/ComfyUI_PuLID_Flux_ll
    "rembg",                    # background-removal nodes (rembg's ONNX models)
    "sam2",                     # kijai/ComfyUI-segment-anything-2
    "tensorrt",                 # TensorRT engine loaders
    "ultrapixel",               # UltraPixel nodes
}


def comfyui_core_folders() -> set[str]:
    """folder_paths.folder_names_and_paths keys, read from the installed ComfyUI's source."""
    source = (REPO / "ComfyUI" / "folder_paths.py").read_text()
    return set(re.findall(r'folder_names_and_paths\["([^"]+)"\]\s*=', source))


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.load(MANIFEST)


def _entry(**overrides: object) -> dict:
    entry = {"name": "a.safetensors", "folder": "checkpoints", "url": "https://example.com/a.safetensors",
             "archive": "file", "size": None, "sha256": None, "synonyms": [], "mirrors": []}
    entry.update(overrides)
    return entry


def _load(tmp_path: Path, weights: list, version: object = 1) -> Manifest:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": version, "weights": weights}))
    return Manifest.load(path)


# --- the committed manifest -------------------------------------------------------


def test_committed_manifest_is_what_the_script_builds() -> None:
    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} is not on this machine")
    import build_weights_manifest

    assert build_weights_manifest.main(["--check", "--source", str(SOURCE)]) == 0, (
        "weights_manifest.json is stale: run python scripts/build_weights_manifest.py")


def test_supported_weights_md_is_current() -> None:
    import build_supported_weights

    assert build_supported_weights.main(["--check"]) == 0, (
        "supported_weights.md is stale: run python scripts/build_supported_weights.py")


def test_manifest_covers_the_source(manifest: Manifest) -> None:
    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} is not on this machine")
    source = json.loads(SOURCE.read_text())
    listed = {n for c in source["categories"].values() for n in c["names"]}
    assert set(manifest.names) == listed
    assert len(manifest) == 882  # 884 listings, two of them repeated within ULTRALYTICS
    for category in source["categories"].values():
        for name in category["names"]:
            spec = manifest.get(name)
            assert spec is not None and spec.folder == category["comfyui_folder"]
            assert spec.url == source["url_pattern"].format(cdn_dir=category["cdn_dir"], name=name)
            assert spec.archive == "tar" and spec.size is None and spec.sha256 is None
    for synonym, canonical in source["synonyms"].items():
        assert manifest.resolve(synonym).name == canonical


def test_names_unique_and_synonyms_shadow_nothing(manifest: Manifest) -> None:
    raw = json.loads(MANIFEST.read_text())["weights"]
    names = [w["name"] for w in raw]
    assert len(names) == len(set(names))
    synonyms = [s for w in raw for s in w["synonyms"]]
    assert len(synonyms) == len(set(synonyms))
    assert not set(synonyms) & set(names)


def test_every_folder_is_one_comfyui_knows(manifest: Manifest) -> None:
    core = comfyui_core_folders()
    assert {"checkpoints", "loras", "vae", "text_encoders", "diffusion_models"} <= core  # the regex works
    unknown = sorted({spec.folder for spec in manifest} - core - CUSTOM_NODE_FOLDERS)
    assert not unknown, f"folders neither in ComfyUI nor in the custom-node allow-list: {unknown}"


def test_mirrors_come_from_the_catalogue_and_skip_ambiguous_names(manifest: Manifest) -> None:
    import manager_catalogue

    catalogue_urls = {m["url"] for m in manager_catalogue.model_list()}
    for spec in manifest:
        for mirror in spec.mirrors:
            assert mirror in catalogue_urls
            assert "/blob/" not in mirror  # a GitHub HTML page, not the file
    # "model.safetensors" is many different files in the catalogue: no mirror on the name alone.
    assert manifest.get("sd15/model.safetensors").mirrors == ()
    assert manifest.get("SD1.5/model.safetensors").mirrors == ()
    # Two catalogue files share this name; only the checkpoint-folder one is the same file.
    assert manifest.get("flux1-dev-fp8.safetensors").mirrors == (
        "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev-fp8.safetensors",)
    assert manifest.get("flux1-dev-fp8.safetensors").approx_size == 17_200_000_000


# --- look-ups -----------------------------------------------------------------------


def test_resolve_canonical_synonym_and_windows_separator(manifest: Manifest) -> None:
    assert manifest.resolve("sd_xl_base_1.0.safetensors").folder == "checkpoints"
    assert manifest.resolve("ae.sft").name == "ae.safetensors"
    assert manifest.resolve("araminta_k\\soft-ones.safetensors").name == "araminta_k/soft-ones.safetensors"
    assert manifest.resolve("no-such-model.safetensors") is None
    assert "ae.sft" in manifest and "nope.pt" not in manifest
    assert manifest.get("ae.sft") is None  # get() is canonical names only


@pytest.mark.parametrize("query, expected", [
    ("sd_xl_base_1.0.safetensor", "sd_xl_base_1.0.safetensors"),      # typo in the extension
    ("SD_XL_BASE_1.0.SAFETENSORS", "sd_xl_base_1.0.safetensors"),     # case
    ("v1-5-pruned-emaonly.safetensors", "v1-5-pruned-emaonly.ckpt"),  # other format
    ("face_yolov8m.pt", "bbox/face_yolov8m.pt"),                      # missing subfolder
    ("SDXL\\sd_xl_base_1.0.safetensors", "sd_xl_base_1.0.safetensors"),  # extra Windows subfolder
    ("4x-UltraSharp.pt", "4x-UltraSharp.pth"),
    ("dreamshaper_7.safetensors", "dreamshaper_8.safetensors"),       # version difference
    ("flux1-dev.sft", "flux1-dev.safetensors"),
    ("easynegative", "easynegative.safetensors"),
])
def test_suggest_finds_the_intended_weight_first(manifest: Manifest, query: str, expected: str) -> None:
    suggestions = manifest.suggest(query)
    assert suggestions[0] == expected
    assert len(suggestions) <= 3 and len(set(suggestions)) == len(suggestions)


def test_suggest_stays_quiet_for_unrelated_names(manifest: Manifest) -> None:
    assert manifest.suggest("xyzzy.safetensors") == []
    assert manifest.suggest("") == []
    assert len(manifest.suggest("realvisxl", n=5)) == 5


def _suggest_scoring_every_name(manifest: Manifest, name: str, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """suggest()'s ranking without its shortcut: ratio() computed for every name past the length check."""
    import difflib

    from comfyui_wrapper.weights.manifest import _split_for_matching

    query_full, query_stem, query_ext = _split_for_matching(name.strip())
    best: dict[str, float] = {}
    for full, stem, ext, canonical in manifest._candidates:
        ratios = [difflib.SequenceMatcher(None, a, b, autojunk=False) for a, b in ((full, query_full), (stem, query_stem))]
        if all(r.real_quick_ratio() < cutoff - 0.1 for r in ratios):
            continue
        score = max(r.ratio() for r in ratios)
        shorter, longer = sorted((query_stem, stem), key=len)
        if len(shorter) >= 5 and longer.startswith(shorter):
            score = max(score, 0.75 + 0.25 * len(shorter) / len(longer))
        if ext and ext == query_ext:
            score += 0.02
        if score >= cutoff and score > best.get(canonical, 0.0):
            best[canonical] = score
    return [canonical for canonical, _ in sorted(best.items(), key=lambda item: (-item[1], item[0]))[:n]]


@pytest.mark.parametrize("query", ["flux1-dev.safetensors", "wan2.1_t2v_1.3B_fp16.safetensors", "some/unknown_v3.ckpt",
                                   "control_v11p_sd15_openpose.pth", "RealESRGAN_x4plus.pth", "clip_l.safetensors"])
def test_suggest_skips_only_names_that_cannot_reach_the_cutoff(manifest: Manifest, query: str) -> None:
    """suggest() skips ratio() (the dear part: 0.3 s per name over the whole manifest) where difflib's
    quick_ratio, an upper bound, is already below the cutoff: its answers must not change."""
    assert manifest.suggest(query, n=10) == _suggest_scoring_every_name(manifest, query, n=10)


def test_spec_helpers() -> None:
    spec = WeightSpec("bbox/x.pt", "ultralytics", "https://a/x.pt.tar", "tar", mirrors=("https://b/x.pt",),
                      approx_size=10)
    assert spec.key == "ultralytics/bbox/x.pt"
    assert spec.sources() == [("https://a/x.pt.tar", "tar"), ("https://b/x.pt", "file")]
    assert spec.estimated_size == 10
    assert WeightSpec("x", "vae", "https://a", size=5, approx_size=10).estimated_size == 5


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("field, value, words", [
    ("name", "../escape.safetensors", "'name'"),
    ("name", "/abs.safetensors", "'name'"),
    ("name", "", "'name'"),
    ("folder", "a/b", "'folder'"),
    ("url", "ftp://example.com/x", "'url'"),
    ("archive", "zip", "'archive'"),
    ("size", -1, "'size'"),
    ("size", "12", "'size'"),
    ("sha256", "ABC", "'sha256'"),
    ("synonyms", "b.safetensors", "'synonyms'"),
    ("mirrors", ["not a url"], "'mirrors'"),
    ("approx_size", 1.5, "'approx_size'"),
])
def test_a_bad_field_names_entry_and_field(tmp_path: Path, field: str, value: object, words: str) -> None:
    good = _entry(name="ok.safetensors")
    with pytest.raises(ManifestError) as info:
        _load(tmp_path, [good, _entry(**{field: value})])
    message = str(info.value)
    assert "entry 1" in message and words in message and "How to fix" in message
    assert info.value.field == field


def test_unknown_and_missing_fields(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"entry 0 \('a.safetensors'\): unknown field\(s\) sha265"):
        _load(tmp_path, [_entry(sha265="0" * 64)])
    broken = _entry()
    del broken["url"]
    with pytest.raises(ManifestError, match="missing required field.*url"):
        _load(tmp_path, [broken])
    with pytest.raises(ManifestError, match="entry 0: must be an object"):
        _load(tmp_path, ["a.safetensors"])


def test_duplicates_and_shadowing_synonyms(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="appears twice"):
        _load(tmp_path, [_entry(), _entry()])
    with pytest.raises(ManifestError, match="synonym 'a.safetensors' is also the name"):
        _load(tmp_path, [_entry(), _entry(name="b.safetensors", synonyms=["a.safetensors"])])
    with pytest.raises(ManifestError, match="also a synonym of"):
        _load(tmp_path, [_entry(synonyms=["c.pt"]), _entry(name="b.safetensors", synonyms=["c.pt"])])


def test_schema_version_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="schema_version is 2"):
        _load(tmp_path, [], version=2)
    with pytest.raises(ManifestError, match="does not exist"):
        Manifest.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(bad)


def test_round_trip(tmp_path: Path, manifest: Manifest) -> None:
    data = copy.deepcopy(manifest.to_json())
    again = Manifest.from_json(data)
    assert list(again) == list(manifest)
    sha = "ab" * 32
    loaded = _load(tmp_path, [_entry(size=3, sha256=sha, archive="tar")])
    assert loaded.get("a.safetensors") == WeightSpec("a.safetensors", "checkpoints",
                                                     "https://example.com/a.safetensors", "tar", 3, sha)
