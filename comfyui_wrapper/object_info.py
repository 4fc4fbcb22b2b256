"""Reading ComfyUI's /object_info: what a node class declares about its inputs.

One reader for every module that asks "what is this input?" (weights, inputs,
path checks, seeds, new-model). /object_info comes from ComfyUI and its packs, so
each accessor accepts any shape and answers "unknown" rather than raising.
An input's spec is ``[TYPE_OR_CHOICES, {options}]``; the options are optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SECTIONS = ("required", "optional")


def class_info(object_info: Any, class_type: str) -> Mapping[str, Any] | None:
    """What /object_info says of one node class, or None when the class is unknown or malformed."""
    info = object_info.get(class_type) if isinstance(object_info, Mapping) else None
    return info if isinstance(info, Mapping) else None


def _declared(object_info: Any, class_type: str) -> Mapping[str, Any] | None:
    info = class_info(object_info, class_type)
    declared = info.get("input") if info is not None else None
    return declared if isinstance(declared, Mapping) else None


def node_inputs(object_info: Any, class_type: str) -> dict[str, Any]:
    """Input name -> spec for the required, then optional, inputs a class declares ({} if unknown)."""
    declared = _declared(object_info, class_type)
    specs: dict[str, Any] = {}
    if declared is not None:
        for section in SECTIONS:
            entries = declared.get(section)
            if isinstance(entries, Mapping):
                for name, spec in entries.items():
                    specs.setdefault(name, spec)
    return specs


def input_spec(object_info: Any, class_type: str, input_name: str) -> list[Any] | None:
    """The spec of one input, when it is one (a non-empty list), else None."""
    spec = node_inputs(object_info, class_type).get(input_name)
    return list(spec) if isinstance(spec, (list, tuple)) and spec else None


def spec_options(spec: Any) -> dict[str, Any]:
    """The options dict of a spec (min, max, multiline, image_upload...), {} when it has none."""
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], Mapping):
        return dict(spec[1])
    return {}


def input_options(object_info: Any, class_type: str) -> dict[str, dict[str, Any]]:
    """Input name -> its options, for every declared input that has options."""
    return {name: spec_options(spec) for name, spec in node_inputs(object_info, class_type).items()
            if spec_options(spec)}


def is_multiline_text(spec: Any) -> bool:
    """A STRING input shown as a text box: prompts and notes, never a file name."""
    return (isinstance(spec, (list, tuple)) and len(spec) > 1 and spec[0] == "STRING"
            and bool(spec_options(spec).get("multiline")))


def has_hidden_inputs(object_info: Any, class_type: str) -> bool:
    """The class takes hidden inputs (PROMPT, EXTRA_PNGINFO, UNIQUE_ID...): ComfyUI fills them per prompt."""
    declared = _declared(object_info, class_type)
    return declared is not None and bool(declared.get("hidden"))


def is_output_node(object_info: Any, class_type: str) -> bool:
    """The class is an output node (ComfyUI runs the graph backwards from these)."""
    info = class_info(object_info, class_type)
    return info is not None and bool(info.get("output_node"))


def combo_choices(spec: Any) -> list[Any] | None:
    """The choices of a combo input in either of ComfyUI's spellings (``[[a, b]]`` or
    ``["COMBO", {"options": [a, b]}]``), or None when the input is not a combo or lists none."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    if isinstance(spec[0], list):
        return list(spec[0])
    if spec[0] == "COMBO":
        options = spec_options(spec).get("options")
        return list(options) if isinstance(options, list) else None
    return None
