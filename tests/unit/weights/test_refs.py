"""Finding the weights a workflow needs (pure functions over API-format JSON)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comfyui_wrapper.errors import UnknownWeightError, WorkflowError
from comfyui_wrapper.weights.manifest import Manifest
from comfyui_wrapper.weights.refs import (
    Rewrite,
    apply_rewrites,
    core_folder_for,
    find_weights,
    rewrites_for_urls,
    unknown_weights_error,
)

REPO = Path(__file__).resolve().parents[3]
OBJECT_INFO = json.loads((REPO / "tests" / "fixtures" / "object_info_subset.json").read_text())


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return Manifest.load(REPO / "weights_manifest.json")


def node(class_type: str, title: str | None = None, **inputs: object) -> dict:
    return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title or class_type}}


def nothing_on_disk(_name: str) -> bool:
    return False


def find(workflow: dict, manifest: Manifest, on_disk=nothing_on_disk):
    return find_weights(workflow, manifest, OBJECT_INFO, core_folder_for, on_disk)


def sdxl_workflow() -> dict:
    return {
        "4": node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="sd_xl_base_1.0.safetensors"),
        "5": node("EmptyLatentImage", width=1024, height=1024, batch_size=1),
        "6": node("CLIPTextEncode", "Positive", text="a photo of a cat, embedding:easynegative", clip=["4", 1]),
        "7": node("CLIPTextEncode", "Negative", text="(embedding:FastNegativeV2:1.2), blurry", clip=["4", 1]),
        "10": node("LoraLoader", "Style", lora_name="araminta_k\\soft-ones.safetensors", model=["4", 0],
                   clip=["4", 1], strength_model=1.0, strength_clip=1.0),
        "11": node("VAELoader", vae_name="ae.sft"),
        "3": node("KSampler", seed=1, steps=20, cfg=7.0, sampler_name="euler", scheduler="normal",
                  denoise=1.0, model=["10", 0], positive=["6", 0], negative=["7", 0], latent_image=["5", 0]),
        "9": node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
    }


def test_finds_loader_values_synonyms_and_embeddings(manifest: Manifest) -> None:
    refs = find(sdxl_workflow(), manifest)
    assert refs.unknown == () and refs.urls == ()
    assert [spec.name for spec in refs.specs] == [
        "sd_xl_base_1.0.safetensors", "easynegative.safetensors", "FastNegativeV2.pt",
        "araminta_k/soft-ones.safetensors", "ae.safetensors"]
    by_name = {ref.name: ref for ref in refs.weights}
    ckpt = by_name["sd_xl_base_1.0.safetensors"]
    assert (ckpt.where.node_id, ckpt.where.class_type, ckpt.where.title, ckpt.where.input_name, ckpt.folder) == (
        "4", "CheckpointLoaderSimple", "Load Checkpoint", "ckpt_name", "checkpoints")
    assert by_name["FastNegativeV2.pt"].where.input_name == "text"
    assert by_name["FastNegativeV2.pt"].value == "FastNegativeV2"
    assert by_name["FastNegativeV2.pt"].folder == "embeddings"
    # A synonym and a Windows path are rewritten to the canonical names.
    assert set(refs.rewrites) == {
        Rewrite("10", "lora_name", "araminta_k\\soft-ones.safetensors", "araminta_k/soft-ones.safetensors"),
        Rewrite("11", "vae_name", "ae.sft", "ae.safetensors"),
    }
    assert refs.error() is None


def test_unknown_weights_are_all_collected_with_suggestions(manifest: Manifest) -> None:
    workflow = sdxl_workflow()
    workflow["4"]["inputs"]["ckpt_name"] = "sd_xl_base_1.0.safetensor"
    workflow["10"]["inputs"]["lora_name"] = "my_private_lora.safetensors"
    workflow["6"]["inputs"]["text"] = "a cat, embedding:easynegativ"
    refs = find(workflow, manifest)
    values = [u.value for u in refs.unknown]
    assert values == ["sd_xl_base_1.0.safetensor", "embedding:easynegativ", "my_private_lora.safetensors"]
    first = refs.unknown[0]
    assert first.suggestions[0] == "sd_xl_base_1.0.safetensors" and len(first.suggestions) == 3
    assert first.folder == "checkpoints"
    assert refs.unknown[1].suggestions[0] == "easynegative.safetensors"
    assert all(manifest.get(s).folder == "embeddings" for s in refs.unknown[1].suggestions)

    error = refs.error()
    assert isinstance(error, UnknownWeightError) and isinstance(error, LookupError)
    text = str(error)
    assert "3 weights" in text
    assert "node 4 \"Load Checkpoint\" (CheckpointLoaderSimple), input 'ckpt_name'" in text
    assert "'sd_xl_base_1.0.safetensors'" in text and "'easynegative.safetensors'" in text
    assert "node 10 \"Style\" (LoraLoader)" in text
    assert "How to fix:" in text and "URL" in text and "weights_manifest.json" in text
    assert error.weights == values


def test_files_already_on_disk_are_not_unknown(manifest: Manifest) -> None:
    workflow = {"1": node("LoraLoader", lora_name="mine.safetensors"),
                "2": node("CLIPTextEncode", text="embedding:local_emb", clip=["1", 1])}
    on_disk = {"mine.safetensors", "local_emb.pt"}.__contains__
    refs = find(workflow, manifest, on_disk)
    assert refs.unknown == () and refs.weights == ()


def test_values_without_model_extension_or_in_prompts_are_ignored(manifest: Manifest) -> None:
    workflow = {
        "1": node("CLIPTextEncode", text="render in the style of model.safetensors", clip=["2", 1]),
        "2": node("SaveImage", filename_prefix="out"),
        "3": node("KSampler", sampler_name="euler", scheduler="normal", seed=3, model=["9", 0]),
        "4": node("LoadImage", image="photo.png"),
        "5": node("CLIPTextEncode", text="sd_xl_base_1.0.safetensors", clip=["2", 1]),  # a prompt, not a loader
        "6": node("SomeCustomNode", note="text\nwith lines.safetensors"),
    }
    refs = find(workflow, manifest)
    assert refs.weights == () and refs.unknown == () and refs.urls == ()


def test_custom_node_values_use_the_manifest_folder(manifest: Manifest) -> None:
    workflow = {"1": node("UltralyticsDetectorProvider", model_name="bbox/face_yolov8m.pt"),
                "2": node("IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")}
    refs = find(workflow, manifest)
    assert [(r.name, r.folder) for r in refs.weights] == [
        ("bbox/face_yolov8m.pt", "ultralytics"), ("ip-adapter_sd15.safetensors", "ipadapter")]


def test_a_users_own_subfolder_resolves_to_the_file(manifest: Manifest) -> None:
    workflow = {"1": node("CheckpointLoaderSimple", ckpt_name="SDXL\\sd_xl_base_1.0.safetensors"),
                "2": node("LoraLoader", lora_name="sdxl/sd_xl_base_1.0.safetensors")}  # wrong folder: unknown
    refs = find(workflow, manifest)
    assert [r.name for r in refs.weights] == ["sd_xl_base_1.0.safetensors"]
    assert refs.rewrites == (Rewrite("1", "ckpt_name", "SDXL\\sd_xl_base_1.0.safetensors",
                                     "sd_xl_base_1.0.safetensors"),)
    assert [u.value for u in refs.unknown] == ["sdxl/sd_xl_base_1.0.safetensors"]


def test_folder_differences_are_reported(manifest: Manifest) -> None:
    # flux1-dev-fp8 is a checkpoints entry; UNETLoader reads diffusion_models.
    refs = find({"1": node("UNETLoader", unet_name="flux1-dev-fp8.safetensors", weight_dtype="default")}, manifest)
    assert refs.weights[0].folder == "diffusion_models" and refs.weights[0].spec.folder == "checkpoints"
    assert refs.extra_folders == {"flux1-dev-fp8.safetensors": {"diffusion_models"}}


def test_urls_in_model_inputs_are_downloaded_and_rewritten(manifest: Manifest) -> None:
    url = "https://civitai.com/api/download/models/12345?token=SECRET"
    workflow = {
        "1": node("LoraLoader", lora_name=url),
        "2": node("LoadImage", image="https://example.com/cat.png"),  # the inputs module's job
        "3": node("UpscaleModelLoader", model_name="https://example.com/x/4x_custom.pth"),
        "4": node("MysteryLoader", model="https://example.com/weights.safetensors"),
    }
    object_info = dict(OBJECT_INFO, MysteryLoader={"input": {"required": {"model": [["a.safetensors"]]}}})
    refs = find_weights(workflow, manifest, object_info, core_folder_for, nothing_on_disk)
    assert [(r.where.node_id, r.url, r.folder) for r in refs.urls] == [
        ("1", url, "loras"), ("3", "https://example.com/x/4x_custom.pth", "upscale_models")]
    assert len(refs.unknown) == 1
    assert refs.unknown[0].where.node_id == "4" and "which model folder" in refs.unknown[0].reason
    # The rewrite goes through apply_rewrites once the cache has named the files.
    rewrites = rewrites_for_urls(refs.urls, {url: "ab12cd34/12345.safetensors",
                                             "https://example.com/x/4x_custom.pth": "ef56/4x_custom.pth"})
    new = apply_rewrites(workflow, rewrites)
    assert new["1"]["inputs"]["lora_name"] == "ab12cd34/12345.safetensors"
    assert new["3"]["inputs"]["model_name"] == "ef56/4x_custom.pth"
    assert workflow["1"]["inputs"]["lora_name"] == url  # the input is untouched
    # A token in a URL never reaches a message.
    assert "SECRET" not in str(unknown_weights_error(
        find({"1": node("MysteryLoader", model=url)}, manifest).unknown or refs.unknown))


def test_url_folder_can_come_from_combo_choices(manifest: Manifest) -> None:
    object_info = {"VendorLoader": {"input": {"required": {
        "ckpt": ["COMBO", {"options": ["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.ckpt"]}]}}}}
    refs = find_weights({"1": node("VendorLoader", ckpt="https://example.com/m.safetensors")}, manifest,
                        object_info, lambda c, i: None, nothing_on_disk)
    assert [(r.url, r.folder) for r in refs.urls] == [("https://example.com/m.safetensors", "checkpoints")]


def test_apply_rewrites_does_not_mutate_and_handles_embeddings(manifest: Manifest) -> None:
    workflow = sdxl_workflow()
    before = copy.deepcopy(workflow)
    refs = find(workflow, manifest)
    new = apply_rewrites(workflow, refs.rewrites)
    assert workflow == before
    assert new["11"]["inputs"]["vae_name"] == "ae.safetensors"
    assert new["10"]["inputs"]["lora_name"] == "araminta_k/soft-ones.safetensors"
    text = "(embedding:old_name:1.2), embedding:old_name, embedding:old_name_two"
    new = apply_rewrites({"1": node("CLIPTextEncode", text=text)},
                         [Rewrite("1", "text", "old_name", "new_name.pt", kind="embedding")])
    assert new["1"]["inputs"]["text"] == "(embedding:new_name.pt:1.2), embedding:new_name.pt, embedding:old_name_two"
    with pytest.raises(WorkflowError, match="node 99"):
        apply_rewrites(workflow, [Rewrite("99", "ckpt_name", "a", "b")])


def test_embedding_synonym_rewritten_in_text(tmp_path: Path) -> None:
    data = {"schema_version": 1, "weights": [
        {"name": "good_neg.pt", "folder": "embeddings", "url": "https://example.com/good_neg.pt",
         "archive": "file", "synonyms": ["old_neg.pt"]}]}
    manifest = Manifest.from_json(data)
    workflow = {"1": node("CLIPTextEncode", text="bad, embedding:old_neg, (embedding:old_neg.pt:0.8)")}
    refs = find(workflow, manifest)
    assert [r.name for r in refs.weights] == ["good_neg.pt", "good_neg.pt"]
    new = apply_rewrites(workflow, refs.rewrites)
    assert new["1"]["inputs"]["text"] == "bad, embedding:good_neg.pt, (embedding:good_neg.pt:0.8)"


def test_embedding_syntax_matches_comfyui_tokenizer(manifest: Manifest) -> None:
    texts = {
        "embedding:easynegative": ["easynegative.safetensors"],
        "a,embedding:easynegative": [],  # ComfyUI needs a space or line start before it
        "x\nembedding:easynegative.safetensors, y": ["easynegative.safetensors"],
        "(embedding:epiCNegative:1.3)": ["epiCNegative.pt"],
        "((embedding:epiCNegative))": ["epiCNegative.pt"],
    }
    for text, expected in texts.items():
        refs = find({"1": node("CLIPTextEncode", text=text)}, manifest)
        assert [r.name for r in refs.weights] == expected, text
