"""Widgets as ComfyUI's frontend builds them for a node, and how their values behave.

A UI workflow stores widget values as a bare list (``widgets_values``); which
value belongs to which input depends on the exact list of widgets the
frontend creates for the node: a hidden ``control_after_generate`` combo after
a seed, an ``upload`` button after an image combo, a filter text after a combo
with a control, a display-only ``audioUI``... Each widget also has the
frontend's value rules: a multi-line text box turns any value into a string
with ``\\n`` line ends, an upload combo falls back to its first value when
emptied, a number widget rounds when a Primitive node pushes a value into it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from .jsvalues import UNDEFINED, is_number, math_round, normalize_newlines, to_fixed, to_js_string, truthy
from .nodedefs import CORE_WIDGET_TYPES, WIDGET_TYPES

if TYPE_CHECKING:  # pragma: no cover
    from .graph import Node

_MISSING = UNDEFINED


class Widget:
    """A LiteGraph widget: name, value, and the two serialisation flags that matter.

    ``takes_slot``: the widget consumes an entry of ``widgets_values`` (LiteGraph's
    ``widget.serialize !== false``). ``in_prompt``: graphToPrompt writes it as an
    input (``widget.options.serialize !== false``). The two are independent: the
    seed's control combo takes a slot but stays out of the prompt, the audio
    player is the other way round.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        value: Any,
        *,
        takes_slot: bool = True,
        in_prompt: bool = True,
        options: dict[str, Any] | None = None,
        callback: Callable[["Widget", Any], None] | None = None,
    ):
        self.name = name
        self.kind = kind
        self._value = value
        self.takes_slot = takes_slot
        self.in_prompt = in_prompt
        self.options: dict[str, Any] = options if options is not None else {}
        self.callback = callback
        self.dynamic_prompts = False
        self.serializer: str | None = None  # serializeValue override: "text_replacements" (Save nodes' filename_prefix)
        self.is_control = False

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    def fire_callback(self) -> None:
        """``widget.callback?.(widget.value)`` as LiteGraph calls it (this = widget)."""
        if self.callback is not None:
            self.callback(self, self.value)

    def copy_for_node(self) -> "Widget":
        """BaseWidget.createCopyForNode: same options, own value."""
        clone = Widget(
            self.name, self.kind, self.value, takes_slot=self.takes_slot, in_prompt=self.in_prompt,
            options=self.options, callback=self.callback,
        )
        clone.dynamic_prompts = self.dynamic_prompts
        clone.serializer = self.serializer
        clone.is_control = self.is_control
        return clone

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<{type(self).__name__} {self.name}={self.value!r}>"


class _Box:
    """Shared storage: DOM widgets copied onto a subgraph node keep using the same element."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class TextareaWidget(Widget):
    """A DOM <textarea>: values become strings, line ends become \\n."""

    def __init__(self, name: str, kind: str, default: Any, *, box: _Box | None = None, **kw: Any):
        super().__init__(name, kind, None, **kw)
        self._box = box if box is not None else _Box(normalize_newlines(to_js_string(default)))

    @property
    def value(self) -> Any:
        return self._box.value

    @value.setter
    def value(self, value: Any) -> None:
        self._box.value = normalize_newlines(to_js_string(value))

    def copy_for_node(self) -> "Widget":
        clone = TextareaWidget(
            self.name, self.kind, None, box=self._box, takes_slot=self.takes_slot, in_prompt=self.in_prompt,
            options=self.options, callback=self.callback,
        )
        clone.dynamic_prompts = self.dynamic_prompts
        clone.serializer = self.serializer
        return clone


class EmptyDomWidget(Widget):
    """A DOM or Vue component widget with no value accessor: always "", ignores writes."""

    @property
    def value(self) -> Any:
        return ""

    @value.setter
    def value(self, value: Any) -> None:
        pass

    def copy_for_node(self) -> "Widget":
        clone = EmptyDomWidget(self.name, self.kind, "", takes_slot=self.takes_slot, in_prompt=self.in_prompt, options=self.options)
        clone.serializer = self.serializer
        return clone


class RefWidget(Widget):
    """A Vue component widget backed by a ref (multi-select): plain value, shared by copies."""

    def __init__(self, name: str, kind: str, default: Any, *, box: _Box | None = None, **kw: Any):
        super().__init__(name, kind, None, **kw)
        self._box = box if box is not None else _Box(default)

    @property
    def value(self) -> Any:
        return self._box.value

    @value.setter
    def value(self, value: Any) -> None:
        self._box.value = value

    def copy_for_node(self) -> "Widget":
        return RefWidget(self.name, self.kind, None, box=self._box, takes_slot=self.takes_slot, in_prompt=self.in_prompt, options=self.options)


class UploadComboWidget(Widget):
    """The file combo an upload button is attached to (useValueTransform)."""

    def __init__(self, base: Widget, image_folder: Any, allow_batch: Any):
        super().__init__(base.name, base.kind, None, takes_slot=base.takes_slot, in_prompt=base.in_prompt,
                         options=base.options, callback=None)
        self.dynamic_prompts = base.dynamic_prompts
        self.serializer = base.serializer
        self.is_control = base.is_control
        self._folder = image_folder
        self._allow_batch = allow_batch
        self._initial = "null" if base.value is None else to_js_string(base.value)
        self._internal: Any = self._initial
        self._changed = False
        self._cached = self._transform(self._initial)

    def _format(self, item: Any) -> str:
        return annotated_path(item, self._folder)

    def _transform(self, internal: Any) -> Any:
        if not truthy(internal):
            return self._initial
        if isinstance(internal, list):
            if truthy(self._allow_batch):
                return [self._format(v) for v in internal]
            return self._format(internal[0] if internal else None)
        return self._format(internal)

    @property
    def value(self) -> Any:
        if not self._changed:
            return self._cached
        self._cached = self._transform(self._internal)
        return self._cached

    @value.setter
    def value(self, value: Any) -> None:
        self._changed = True
        self._internal = value

    def copy_for_node(self) -> "Widget":
        clone = Widget(self.name, self.kind, self.value, takes_slot=self.takes_slot, in_prompt=self.in_prompt, options=self.options)
        clone.dynamic_prompts = self.dynamic_prompts
        clone.serializer = self.serializer
        return clone


def annotated_path(item: Any, root_folder: Any = "input") -> str:
    """createAnnotatedPath: "name" or "name [output]" for files outside input/."""
    if root_folder is None:
        root_folder = "input"

    def annotation(path: str) -> str:
        import re

        has = re.search(r"\[(input|output|temp)\]", path, re.IGNORECASE) is not None
        return f" [{to_js_string(root_folder)}]" if not has and root_folder != "input" else ""

    if isinstance(item, str):
        return item + annotation(item)
    if isinstance(item, dict):
        filename = item.get("filename")
        filename = "" if filename is None else to_js_string(filename)
        subfolder = item.get("subfolder")
        path = f"{to_js_string(subfolder)}/{filename}" if truthy(subfolder) else filename
        kind = item.get("type")
        return path + (annotation(to_js_string(kind)) if truthy(kind) else "")
    return ""  # numbers and other non-objects have no filename


# --- value callbacks (run when a Primitive node pushes a value) -------------------------


def int_callback(widget: Widget, v: Any) -> None:
    """useIntWidget's onValueChange: round to the step (offset by min)."""
    step = widget.options.get("step2") or 1
    try:
        v = float(v) if not is_number(v) else v
    except (TypeError, ValueError):
        widget.value = math.nan
        return
    if step == 1:
        widget.value = _num(math_round(v))
    else:
        minimum = widget.options.get("min")
        minimum = 0 if minimum is None else minimum
        offset = math.fmod(minimum, step)
        widget.value = _num(math_round((v - offset) / step) * step + offset)


def float_callback(widget: Widget, v: Any) -> None:
    """useFloatWidget's onFloatValueChange: round to options.round, clamp to min/max."""
    rnd: Any = widget.options.get("round")  # a JS number once truthy
    if not truthy(rnd):
        widget.value = v
        return
    try:
        v = float(v) if not is_number(v) else v
    except (TypeError, ValueError):
        widget.value = math.nan
        return
    precision = widget.options.get("precision")
    if precision is None:
        precision = max(0, -math.floor(math.log10(rnd)))
    rounded = math_round(v / rnd) * rnd
    value = float(to_fixed(rounded, int(precision)))
    lo = widget.options.get("min")
    hi = widget.options.get("max")
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    widget.value = _num(min(max(value, lo), hi))


def _num(x: float) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() and abs(x) <= 2**53 else x


# --- construction ---------------------------------------------------------------------


def value_control_widgets(
    node: "Node", target: Widget, default: Any, *, add_filter_list: bool = True,
    control_name: str | None = None, config_options: dict[str, Any] | None = None,
) -> list[Widget]:
    """addValueControlWidgets: the hidden control combo (and a filter text for combos)."""
    opts = config_options or {}

    def name_for(default_name: str, explicit: str | None) -> str:
        if explicit:
            return explicit
        configured = opts.get(default_name)
        if isinstance(configured, str):
            return configured
        if truthy(opts.get("control_prefix")):
            return f"{to_js_string(opts['control_prefix'])} {default_name}"
        return default_name

    values = ["fixed", "increment", "decrement", "randomize"]
    is_combo = target.kind == "combo"
    if is_combo:
        values = values + ["increment-wrap"]
    control = Widget(name_for("control_after_generate", control_name), "combo", default or "randomize",
                     in_prompt=False, options={"values": values})
    control.is_control = True
    node.widgets.append(control)
    made = [control]
    if is_combo and add_filter_list:
        filt = Widget(name_for("control_filter_list", None), "text", "", in_prompt=False, options={})
        filt.is_control = True
        node.widgets.append(filt)
        made.append(filt)
    return made


def make_widget(node: "Node", input_name: Any, spec: dict[str, Any], type_name: str) -> Widget | None:
    """Run the frontend's widget constructor for ``type_name`` on ``node``; returns the main widget.

    Extra widgets (controls, upload buttons) are appended to ``node.widgets``
    in the order the frontend appends them. Names are whatever the definition holds (a group
    node's input may be named by a saved label), usually strings.
    """
    name = spec.get("name", input_name)
    w: Widget
    if type_name == "INT":
        return _number_widget(node, name, spec, is_int=True)
    if type_name == "FLOAT":
        return _number_widget(node, name, spec, is_int=False)
    if type_name == "BOOLEAN":
        default = spec.get("default")
        w = Widget(name, "toggle", False if default is None else default)
        node.widgets.append(w)
        return w
    if type_name == "STRING":
        default = spec.get("default")
        default = "" if default is None else default
        if truthy(spec.get("multiline")):
            w = TextareaWidget(name, "customtext", default)
        else:
            w = Widget(name, "text", default)
        if isinstance(spec.get("dynamicPrompts"), bool):
            w.dynamic_prompts = spec["dynamicPrompts"]
        node.widgets.append(w)
        return w
    if type_name == "MARKDOWN":
        w = TextareaWidget(name, "MARKDOWN", "")
        node.widgets.append(w)
        return w
    if type_name == "COMBO":
        return _combo_widget(node, name, spec)
    if type_name == "IMAGEUPLOAD":
        return _upload_widget(node, name, spec)
    if type_name == "COLOR":
        options = _spec_options(spec)
        w = Widget(name, "color", options.get("default") or "#000000")
        node.widgets.append(w)
        return w
    if type_name == "TEXTAREA":
        options = _spec_options(spec)
        w = Widget(name, "textarea", options.get("default") or "")
        node.widgets.append(w)
        return w
    if type_name == "IMAGECOMPARE":
        w = Widget(name, "imagecompare", ["", ""])
        node.widgets.append(w)
        return w
    if type_name == "CHART":
        options = _spec_options(spec)
        w = Widget(name, "chart", options.get("data") or {})
        node.widgets.append(w)
        return w
    if type_name == "GALLERIA":
        options = _spec_options(spec)
        w = Widget(name, "galleria", options.get("images") or [])
        node.widgets.append(w)
        return w
    if type_name == "AUDIO_UI":
        w = EmptyDomWidget(name, "audioUI", "", takes_slot=False)
        node.widgets.append(w)
        return w
    if type_name == "AUDIOUPLOAD":
        w = Widget(input_name, "button", "", in_prompt=False)
        node.widgets.append(w)
        return w
    if type_name == "AUDIO_RECORD":
        player = EmptyDomWidget(input_name, "audioUI", "")
        node.widgets.append(player)
        button = Widget(input_name, "button", "", in_prompt=False)
        node.widgets.append(button)
        return button
    if type_name == "WEBCAM":
        w = EmptyDomWidget(input_name, "WEBCAM", "")
        node.widgets.append(w)
        return w
    if type_name == "LOAD_3D":
        for label, value in (("upload 3d model", "upload3dmodel"), ("upload extra resources", "uploadExtraResources"), ("clear", "clear")):
            node.widgets.append(Widget(label, "button", value))
        w = EmptyDomWidget("image", "load3D", "")
        node.widgets.append(w)
        return w
    if type_name == "PREVIEW_3D":
        w = EmptyDomWidget("image", "load3D", "")
        node.widgets.append(w)
        return w
    return None


def _spec_options(spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("options")
    return options if isinstance(options, dict) else {}


def _number_widget(node: "Node", name: str, spec: dict[str, Any], *, is_int: bool) -> Widget:
    display = spec.get("display")
    kind = "slider" if display == "slider" else "knob" if display == "knob" else "number"
    default = spec.get("default")
    default = 0 if default is None else default
    minimum = spec.get("min")
    maximum = spec.get("max")
    options: dict[str, Any] = {
        "min": 0 if minimum is None else minimum,
        "max": 2048 if maximum is None else maximum,
    }
    if is_int:
        step = spec.get("step")
        step = 1 if step is None else step
        options.update(step=_mul(step, 10), step2=step, precision=0)
        w = Widget(name, kind, default, options=options, callback=int_callback)
        node.widgets.append(w)
        control = spec.get("control_after_generate")
        if control is None:
            control = name in ("seed", "noise_seed")
        if truthy(control):
            name_opt = control if isinstance(control, str) else None
            value_control_widgets(node, w, "randomize", add_filter_list=False, control_name=name_opt, config_options=spec)
        return w
    step = spec.get("step")
    step = 0.5 if step is None else step
    precision = _float_precision(step)
    spec_round = spec.get("round")
    rnd = 10.0 ** -precision if (truthy(precision) and not truthy(spec_round)) else spec_round
    options.update(round=rnd, step=_mul(step, 10.0), step2=step, precision=precision)
    w = Widget(name, kind, default, options=options, callback=float_callback)
    node.widgets.append(w)
    return w


def _float_precision(step: Any) -> int:
    try:
        return max(0, -math.floor(math.log10(step)))
    except (TypeError, ValueError):
        return 0  # Math.log10 of 0/negatives gives -Infinity/NaN: max(0, ...) is then Infinity/NaN


def _mul(a: Any, b: float) -> Any:
    return a * b if is_number(a) else a


def _combo_widget(node: "Node", name: str, spec: dict[str, Any]) -> Widget:
    if truthy(spec.get("multi_select")):
        w: Widget = RefWidget(name, "multiselect", [])
        node.widgets.append(w)
        return w
    options = spec.get("options") or []
    if truthy(spec.get("default")):
        default = spec["default"]
    elif isinstance(options, list) and options:
        default = options[0]
    elif truthy(spec.get("remote")):
        default = "Loading..."
    else:
        default = _MISSING
    w = Widget(name, "combo", default, options={"values": options})
    node.widgets.append(w)
    if truthy(spec.get("control_after_generate")):
        value_control_widgets(node, w, None, config_options=spec)
    return w


def _upload_widget(node: "Node", name: str, spec: dict[str, Any]) -> Widget:
    image_input = spec.get("imageInputName")
    for index, existing in enumerate(node.widgets):
        if existing.name == image_input:
            node.widgets[index] = UploadComboWidget(existing, spec.get("image_folder", "input"), spec.get("allow_batch"))
            break
    w = Widget(name, "button", "image", in_prompt=False)
    node.widgets.append(w)
    return w


def has_widget_constructor(type_name: Any) -> bool:
    return isinstance(type_name, str) and type_name in WIDGET_TYPES


def is_core_widget_type(type_name: Any) -> bool:
    return isinstance(type_name, str) and type_name in CORE_WIDGET_TYPES


MISSING = _MISSING
