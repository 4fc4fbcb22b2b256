"""Node definitions as ComfyUI's frontend (1.32.9) sees them.

The frontend does not use ``/object_info`` verbatim: before registering a node
class its core extensions add inputs (an ``upload`` button after a media
combo, an ``audioUI`` player on audio nodes, a 3D viewer on ``Preview3D``),
and it orders inputs by ``input_order``. Which inputs become widgets, and so
which ``widgets_values`` entry lands on which input name, follows from that
augmented definition. This module computes it once per node class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

# Widget constructors the frontend has, keyed by input type (core + core extensions).
CORE_WIDGET_TYPES = frozenset(
    {"INT", "FLOAT", "BOOLEAN", "STRING", "MARKDOWN", "COMBO", "IMAGEUPLOAD", "COLOR",
     "IMAGECOMPARE", "CHART", "GALLERIA", "TEXTAREA"}
)
CUSTOM_WIDGET_TYPES = frozenset({"WEBCAM", "AUDIO_UI", "AUDIOUPLOAD", "AUDIO_RECORD", "LOAD_3D", "PREVIEW_3D"})
WIDGET_TYPES = CORE_WIDGET_TYPES | CUSTOM_WIDGET_TYPES

# Node types that the frontend registers itself; none of them reaches the prompt.
FRONTEND_ONLY_TYPES = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})
FRONTEND_ONLY_TITLES = {"PrimitiveNode": "Primitive", "Reroute": "Reroute", "Note": "Note", "MarkdownNote": "Markdown Note"}

# loadGraphData renames these legacy types before looking them up.
TYPE_RENAMES = {
    "T2IAdapterLoader": "ControlNetLoader",
    "ConditioningAverage ": "ConditioningAverage",
    "SDV_img2vid_Conditioning": "SVD_img2vid_Conditioning",
    "Load3DAnimation": "Load3D",
    "Preview3DAnimation": "Preview3D",
}

# Titles from the frontend's English locale where it differs from /object_info's
# display_name (frontend 1.32.9; scripts/ui_oracle.py records the table it saw).
LOCALE_TITLES = {
    "EmptyHunyuanLatentVideo": "EmptyHunyuanLatentVideo",
    "Load3D": "Load 3D",
    "Preview3D": "Preview 3D",
    "PreviewAny": "Preview Any",
}

# Comfy.SaveImageExtraOutput: these nodes expand %Node.widget% and %date:...% in filename_prefix.
SAVE_NODE_TYPES = frozenset(
    {"SaveImage", "SaveVideo", "SaveAnimatedWEBP", "SaveWEBM", "SaveAudio", "SaveGLB", "SaveAnimatedPNG",
     "CLIPSave", "VAESave", "ModelSave", "LoraSave", "SaveLatent"}
)
AUDIO_UI_NODES = frozenset({"LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3", "SaveAudioOpus"})
# Nodes whose prompt value only a live browser can produce (camera frames, a rendered 3D scene).
BROWSER_ONLY_NODES = frozenset({"WebcamCapture", "Load3D"})


def v1_type_name(spec: Any) -> Any:
    """The type of a V1 input spec; lists (old-style combos) become "COMBO"."""
    head = spec[0] if isinstance(spec, (list, tuple)) and spec else None
    return "COMBO" if isinstance(head, list) else head


def v1_to_v2(spec: Any, name: str, is_optional: bool) -> dict[str, Any]:
    """transformInputSpecV1ToV2: options spread over name/isOptional; combos get "options"."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return {"type": "UNKNOWN", "name": name, "isOptional": is_optional}
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    head = spec[0]
    base = {"name": name, "isOptional": is_optional, **options}
    if isinstance(head, list) or head == "COMBO":
        combo_options = head if isinstance(head, list) else options.get("options")
        return {"type": "COMBO", **base, "options": combo_options if combo_options is not None else []}
    if isinstance(head, str):
        return {"type": head, **base}
    return {"type": "UNKNOWN", **base}


@dataclass
class NodeDef:
    """One node class after the frontend's extensions changed it."""

    name: str
    title: str
    input_v1: dict[str, dict[str, Any]]  # {"required": {...}, "optional": {...}} after augmentation
    inputs_v2: dict[str, dict[str, Any]]  # name -> V2 spec, in Object.values order
    ordered_inputs: list[dict[str, Any]]  # creation order (input_order first)
    outputs: list[tuple[str, Any]]  # (name, type)
    output_node: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)

    def v1_config(self, input_name: str) -> Any:
        """widgetInputs' getConfig: the V1 spec of a required or optional input."""
        spec = self.input_v1.get("required", {}).get(input_name)
        if spec is None:
            spec = self.input_v1.get("optional", {}).get(input_name)
        return spec


def _is_media_upload_combo(spec: Any) -> bool:
    if not isinstance(spec, (list, tuple)) or len(spec) < 2 or not isinstance(spec[1], dict):
        return False
    options = spec[1]
    is_upload = (
        options.get("image_upload") is True
        or options.get("video_upload") is True
        or options.get("animated_image_upload") is True
    )
    return is_upload and (isinstance(spec[0], list) or spec[0] == "COMBO")


def _augment(name: str, input_v1: dict[str, Any]) -> None:
    """The beforeRegisterNodeDef hooks of the frontend's core extensions, in their order."""
    required = input_v1.get("required")
    # Comfy.UploadImage
    if isinstance(required, dict):
        for input_name, spec in required.items():
            if _is_media_upload_combo(spec):
                required["upload"] = ["IMAGEUPLOAD", {**spec[1], "imageInputName": input_name}]
                break
    # Comfy.AudioWidget, then Comfy.UploadAudio
    if name in AUDIO_UI_NODES:
        input_v1.setdefault("required", {})
        input_v1["required"]["audioUI"] = ["AUDIO_UI", {}]
    required = input_v1.get("required")
    if isinstance(required, dict):
        audio = required.get("audio")
        if isinstance(audio, (list, tuple)) and len(audio) > 1 and isinstance(audio[1], dict) and audio[1].get("audio_upload") is True:
            required["upload"] = ["AUDIOUPLOAD", {}]
    # Comfy.Preview3D and Comfy.SaveGLB
    if name in ("Preview3D", "SaveGLB"):
        input_v1.setdefault("required", {})
        input_v1["required"]["image"] = ["PREVIEW_3D"]


def ordered_input_specs(inputs_v2: dict[str, dict[str, Any]], input_order: Any) -> list[dict[str, Any]]:
    """getOrderedInputSpecs: required then optional per input_order, then the rest."""
    if not isinstance(input_order, dict) or not input_order:
        return list(inputs_v2.values())
    ordered: list[dict[str, Any]] = []
    for name in input_order.get("required") or []:
        spec = inputs_v2.get(name)
        if spec is not None and not spec.get("isOptional"):
            ordered.append(spec)
    for name in input_order.get("optional") or []:
        spec = inputs_v2.get(name)
        if spec is not None and spec.get("isOptional"):
            ordered.append(spec)
    seen = {id(s) for s in ordered}
    ordered.extend(s for s in inputs_v2.values() if id(s) not in seen)
    return ordered


def build_node_def(name: str, raw: Mapping[str, Any]) -> NodeDef:
    input_v1: dict[str, Any] = copy.deepcopy(dict(raw.get("input") or {}))
    _augment(name, input_v1)
    inputs_v2: dict[str, dict[str, Any]] = {}
    for section, optional in (("required", False), ("optional", True)):
        for input_name, spec in (input_v1.get(section) or {}).items():
            inputs_v2[input_name] = v1_to_v2(spec, input_name, optional)
    outputs: list[tuple[str, Any]] = []
    output_names = raw.get("output_name") or []
    for index, output_type in enumerate(raw.get("output") or []):
        out_name = output_names[index] if index < len(output_names) and output_names[index] else f"output_{index}"
        outputs.append((out_name, "COMBO" if isinstance(output_type, list) else output_type))
    title = LOCALE_TITLES.get(name) or raw.get("display_name") or name
    return NodeDef(
        name=name,
        title=title,
        input_v1=input_v1,
        inputs_v2=inputs_v2,
        ordered_inputs=ordered_input_specs(inputs_v2, raw.get("input_order")),
        outputs=outputs,
        output_node=bool(raw.get("output_node")),
        raw=raw,
    )


class NodeDefs:
    """Lazily built :class:`NodeDef` objects for one /object_info dump."""

    def __init__(self, object_info: Mapping[str, Any]):
        self.object_info = object_info
        self._defs: dict[str, NodeDef] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and isinstance(self.object_info.get(name), Mapping)

    def get(self, name: str) -> NodeDef | None:
        found = self._defs.get(name)
        if found is None and name in self:
            found = self._defs[name] = build_node_def(name, self.object_info[name])
        return found


_CACHE: dict[int, tuple[Mapping[str, Any], NodeDefs]] = {}


def node_defs_for(object_info: Mapping[str, Any] | NodeDefs) -> NodeDefs:
    """One NodeDefs per object_info dict (kept while the dict lives), so repeated converts are cheap."""
    if isinstance(object_info, NodeDefs):
        return object_info
    key = id(object_info)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is object_info:
        return hit[1]
    defs = NodeDefs(object_info)
    if len(_CACHE) > 8:
        _CACHE.clear()
    _CACHE[key] = (object_info, defs)
    return defs
