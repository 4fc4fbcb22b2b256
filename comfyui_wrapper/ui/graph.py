"""The graph ComfyUI's frontend holds after ``app.loadGraphData(workflow)``.

A port of the parts of LiteGraph and of the frontend's core extensions that
decide what ``graphToPrompt`` later sees: how each node is built from its
definition and then configured from the saved JSON (inputs merged by name,
``widgets_values`` mapped onto the widgets that take a slot), how subgraph
definitions and their instances are wired (promoted widgets, proxy widgets),
how link target slots are re-derived, and what Primitive nodes do once the
graph is configured. It keeps the frontend's order of operations, because
several outcomes depend on it (a subgraph defined after the subgraph that
uses it has no promoted widgets yet, for instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import GraphError  # in the family; prompt.py and groupnodes.py raise it from here too
from .jsvalues import UNDEFINED, is_number, number_to_string, truthy
from .nodedefs import FRONTEND_ONLY_TITLES, SAVE_NODE_TYPES, NodeDef, NodeDefs, v1_type_name
from .search_replace import apply_text_replacements
from .widgets import (
    TextareaWidget,
    Widget,
    has_widget_constructor,
    is_core_widget_type,
    make_widget,
    value_control_widgets,
)

if TYPE_CHECKING:  # pragma: no cover
    from .groupnodes import GroupNodeConfig

SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20

MODE_NEVER = 2
MODE_BYPASS = 4


def node_key(node_id: Any) -> str:
    """LiteGraph looks nodes up in a plain object: the key is String(id)."""
    if type(node_id) is str:
        return node_id
    if type(node_id) is int:
        return str(node_id)
    if is_number(node_id) or isinstance(node_id, bool):
        return number_to_string(node_id)
    return str(node_id)


# --- slots and links ------------------------------------------------------------------


@dataclass(eq=False)
class WidgetRef:
    """An input's ``widget`` locator: {name} plus the frontend's GET_CONFIG / CONFIG symbols."""

    name: Any
    get_config: Callable[[], Any] | None = None
    config: Any = None  # CONFIG: merged spec of a Primitive's output
    parent: "WidgetRef | None" = None  # prototype chain (subgraph inputs)

    def resolved_get_config(self) -> Callable[[], Any] | None:
        ref: WidgetRef | None = self
        while ref is not None:
            if ref.get_config is not None:
                return ref.get_config
            ref = ref.parent
        return None


@dataclass(eq=False)
class InputSlot:
    name: Any
    type: Any
    link: Any = None
    widget: WidgetRef | None = None
    label: Any = None
    promoted: Widget | None = None  # SubgraphNode: input._widget

    @classmethod
    def from_json(cls, data: Any) -> "InputSlot":
        if not isinstance(data, dict):
            return cls(name=None, type=None)
        widget = data.get("widget")
        return cls(
            name=data.get("name"),
            type=data.get("type"),
            link=data.get("link"),
            widget=WidgetRef(widget.get("name")) if isinstance(widget, dict) else None,
            label=data.get("label"),
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "link": self.link}
        if self.widget is not None:
            out["widget"] = {"name": self.widget.name}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass(eq=False)
class OutputSlot:
    name: Any
    type: Any
    links: list[Any] | None = None
    widget: WidgetRef | None = None

    @classmethod
    def from_json(cls, data: Any) -> "OutputSlot":
        if not isinstance(data, dict):
            return cls(name=None, type=None)
        links = data.get("links")
        widget = data.get("widget")
        return cls(
            name=data.get("name"),
            type=data.get("type"),
            links=list(links) if isinstance(links, list) else None,
            widget=WidgetRef(widget.get("name")) if isinstance(widget, dict) else None,
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "links": self.links}
        if self.widget is not None:
            out["widget"] = {"name": self.widget.name}
        return out


@dataclass(eq=False)
class Link:
    id: Any
    type: Any
    origin_id: Any
    origin_slot: Any
    target_id: Any
    target_slot: Any

    @property
    def origin_is_io_node(self) -> bool:
        return self.origin_id == SUBGRAPH_INPUT_ID and is_number(self.origin_id)

    @property
    def target_is_io_node(self) -> bool:
        return self.target_id == SUBGRAPH_OUTPUT_ID and is_number(self.target_id)

    @classmethod
    def from_json(cls, data: Any) -> "Link | None":
        if isinstance(data, list):
            padded = list(data) + [None] * (6 - len(data))
            return cls(id=padded[0], type=padded[5], origin_id=padded[1], origin_slot=padded[2],
                       target_id=padded[3], target_slot=padded[4])
        if isinstance(data, dict):
            return cls(id=data.get("id"), type=data.get("type"), origin_id=data.get("origin_id"),
                       origin_slot=data.get("origin_slot"), target_id=data.get("target_id"),
                       target_slot=data.get("target_slot"))
        return None


@dataclass(eq=False)
class SubgraphIO:
    """A subgraph's own input or output (a slot on its IO node)."""

    name: Any
    type: Any
    link_ids: list[Any] = field(default_factory=list)
    label: Any = None

    @classmethod
    def from_json(cls, data: Any) -> "SubgraphIO":
        if not isinstance(data, dict):
            return cls(name=None, type=None)
        ids = data.get("linkIds")
        return cls(name=data.get("name"), type=data.get("type"),
                   link_ids=list(ids) if isinstance(ids, list) else [], label=data.get("label"))


# --- nodes ------------------------------------------------------------------------------


class Node:
    """LGraphNode: the state graphToPrompt reads."""

    default_title = "Unnamed"
    is_virtual = False
    comfy_class: str | None = None
    takes_widget_inputs_hooks = False  # Comfy.WidgetInputs callbacks (nodes registered from a definition)
    group_index: int | None = None  # an inner node of a legacy group node: its index there (GroupNode.inner)

    def __init__(self, graph: "Graph", type_name: Any):
        self.graph = graph
        self.id: Any = -1
        self.type = type_name
        self.title: Any = self.default_title
        self.mode: Any = 0
        self.inputs: list[InputSlot] = []
        self.outputs: list[OutputSlot] = []
        # LiteGraph's ``widgets?`` may be undefined; every read treats undefined like [] (``if widgets``,
        # ``widgets ?? []``), so the port starts every node with an empty list.
        self.widgets: list[Widget] = []
        self.properties: dict[str, Any] = {}
        self.widgets_values: Any = None  # this.widgets_values, as stored by configure

    # LGraphNode.configure
    def configure(self, info: dict[str, Any]) -> None:
        for key, value in info.items():
            if key == "properties":
                if isinstance(value, dict):
                    for prop, prop_value in value.items():
                        self.set_property(prop, prop_value)
                continue
            if value is None:
                continue
            if isinstance(value, (dict, list)):
                # LiteGraph.cloneObject: slots are rebuilt from the saved data, by index
                if key == "inputs" and isinstance(value, list):
                    self.inputs = self._clone_slots(value, self.inputs, InputSlot.from_json)
                elif key == "outputs" and isinstance(value, list):
                    self.outputs = self._clone_slots(value, self.outputs, OutputSlot.from_json)
                elif key == "widgets_values":
                    self.widgets_values = list(value) if isinstance(value, list) else dict(value)
                continue
            if key == "title":
                self.title = value
            elif key == "mode":
                self.mode = value
            elif key == "type":
                self.type = value
        if not truthy(info.get("title")):
            self.title = self.class_title()
        self.internal_configure_after_slots()
        if self.widgets:
            values = info.get("widgets_values")
            if truthy(values) and isinstance(values, list):
                with_value = [w for w in self.widgets if w.takes_slot]
                for index, value in enumerate(values):
                    if index < len(with_value):
                        with_value[index].value = value
        self.on_configure(info)

    @staticmethod
    def _clone_slots(data: list[Any], target: list[Any], make: Callable[[Any], Any]) -> list[Any]:
        result = list(target)
        for index, item in enumerate(data):
            slot = make(item)
            if index < len(result):
                result[index] = slot
            else:
                result.append(slot)
        return result

    def set_property(self, name: str, value: Any) -> None:
        self.properties[name] = value

    def class_title(self) -> Any:
        return self.default_title

    def internal_configure_after_slots(self) -> None:
        pass

    def on_configure(self, info: dict[str, Any]) -> None:
        pass

    def on_graph_configured(self) -> None:
        pass

    def on_after_graph_configured(self) -> None:
        pass

    def is_subgraph_node(self) -> bool:
        return False

    def get_widget_from_slot(self, slot: InputSlot) -> Widget | None:
        if slot.widget is None:
            return None
        for widget in self.widgets:
            if widget.name == slot.widget.name:
                return widget
        return None

    def find_widget(self, name: Any) -> Widget | None:
        for widget in self.widgets:
            if widget.name == name:
                return widget
        return None

    def get_input_link(self, slot: int) -> Link | None:
        if 0 <= slot < len(self.inputs):
            link_id = self.inputs[slot].link
            if link_id is not None:
                return self.graph.links.get(link_id)
        return None

    # LGraphNode.disconnectInput / removeInput, as far as they change links
    def disconnect_input(self, slot: int) -> None:
        if slot >= len(self.inputs):
            return
        link_id = self.inputs[slot].link
        if link_id is None:
            return
        self.inputs[slot].link = None
        link = self.graph.links.get(link_id)
        if link is None:
            return
        if link.origin_id == SUBGRAPH_INPUT_ID and isinstance(self.graph, Subgraph):
            for io in self.graph.inputs:
                if link_id in io.link_ids:
                    io.link_ids.remove(link_id)
            self.graph.links.pop(link_id, None)
            return
        origin = self.graph.get_node(link.origin_id)
        if origin is None:
            return
        if not (isinstance(link.origin_slot, int) and 0 <= link.origin_slot < len(origin.outputs)):
            return
        output = origin.outputs[link.origin_slot]
        if not output.links:
            return
        for index, existing in enumerate(output.links):
            if existing == link_id:
                del output.links[index]
                break
        self.graph.links.pop(link_id, None)

    def remove_input(self, slot: int) -> None:
        self.disconnect_input(slot)
        del self.inputs[slot]
        for later in self.inputs[slot:]:
            if truthy(later.link):
                link = self.graph.links.get(later.link)
                if link is not None and is_number(link.target_slot):
                    link.target_slot -= 1



def _returning(value: Any) -> Callable[[], Any]:
    """A GET_CONFIG that answers ``value`` (a fresh closure per input, not the loop's variable)."""
    return lambda: value


def merge_saved_slots(node: Node, info: dict[str, Any], inputs_v2: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The configure override of nodes registered from a definition (backend class or subgraph).

    Saved inputs are matched to the node's own inputs by name (name, type and
    widget follow the definition); saved inputs the definition lacks are
    appended. Outputs are matched by index. ``widgets_values`` goes through
    migrateWidgetsValues.
    """
    data = dict(info)
    saved_inputs = data.get("inputs")
    json_inputs: list[Any] = saved_inputs if isinstance(saved_inputs, list) else []
    by_name: dict[Any, dict[str, Any]] = {}
    for item in json_inputs:
        if isinstance(item, dict):
            by_name[item.get("name")] = item
    defined = {slot.name for slot in node.inputs}
    merged: list[Any] = []
    for slot in node.inputs:
        saved = by_name.get(slot.name)
        if saved is None:
            merged.append(slot.as_json())
            continue
        entry = dict(saved)
        entry["name"] = slot.name
        entry["type"] = slot.type
        # The definition decides whether the input has a widget (SlotBase declares the field).
        if slot.widget is not None:
            entry["widget"] = {"name": slot.widget.name}
        else:
            entry.pop("widget", None)
        merged.append(entry)
    for item in json_inputs:
        if isinstance(item, dict) and item.get("name") not in defined:
            merged.append(item)
    data["inputs"] = merged
    saved_outputs = data.get("outputs")
    json_outputs: list[Any] = saved_outputs if isinstance(saved_outputs, list) else []
    outputs: list[Any] = []
    for index in range(max(len(node.outputs), len(json_outputs))):
        own = node.outputs[index] if index < len(node.outputs) else None
        saved_out = json_outputs[index] if index < len(json_outputs) else None
        if own is None:
            outputs.append(saved_out)
        elif saved_out is not None:
            entry = dict(saved_out) if isinstance(saved_out, dict) else {}
            entry["name"] = own.name
            entry["type"] = own.type
            outputs.append(entry)
        else:
            outputs.append(own.as_json())
    data["outputs"] = outputs
    data["widgets_values"] = migrate_widgets_values(node, inputs_v2, data.get("widgets_values"))
    return data


def migrate_widgets_values(node: Node, inputs_v2: dict[str, dict[str, Any]], values: Any) -> Any:
    """migrateWidgetsValues: drop values saved for forceInput inputs of older exports."""
    if values is None:
        values = []
    names = {w.name for w in node.widgets}
    originals = [s for s in inputs_v2.values() if s.get("name") in names or truthy(s.get("forceInput"))]
    expected = 0
    for spec in originals:
        doubled = truthy(spec.get("control_after_generate")) or spec.get("name") in ("seed", "noise_seed")
        expected += 2 if doubled else 1
    if not isinstance(values, list) or expected != len(values):
        return values
    kept = []
    for index, value in enumerate(values):
        original = originals[index] if index < len(originals) else None
        if original is not None and truthy(original.get("forceInput")):
            continue
        kept.append(value)
    return kept


class ComfyNode(Node):
    """A node registered from a backend definition (registerNodeDef)."""

    takes_widget_inputs_hooks = True

    def __init__(self, graph: "Graph", type_name: str, node_def: NodeDef):
        super().__init__(graph, type_name)
        self.node_def = node_def
        self.comfy_class = node_def.name
        self._add_inputs()
        self.outputs = [OutputSlot(name, out_type) for name, out_type in node_def.outputs]
        self._node_created()

    def class_title(self) -> Any:
        return self.node_def.title

    def _add_inputs(self) -> None:
        ordered = self.node_def.ordered_inputs
        for spec in ordered:  # sockets without a widget first
            widget_type = spec.get("widgetType")
            widget_type = spec.get("type") if widget_type is None else widget_type
            if has_widget_constructor(widget_type) and not truthy(spec.get("forceInput")):
                continue
            self.inputs.append(InputSlot(spec.get("name"), spec.get("type")))
        for spec in ordered:  # then widgets, each with its socket
            widget_spec = dict(spec)
            if spec.get("widgetType") is not None:
                widget_spec["type"] = spec["widgetType"]
            if not has_widget_constructor(widget_spec.get("type")) or truthy(spec.get("forceInput")):
                continue
            name = spec.get("name")
            make_widget(self, name, widget_spec, widget_spec["type"])
            v1 = [widget_spec["type"], widget_spec]
            self.inputs.append(InputSlot(name, spec.get("type"), widget=WidgetRef(name, get_config=_returning(v1))))

    def _node_created(self) -> None:
        """nodeCreated / onNodeCreated hooks of the core extensions."""
        name = self.node_def.name
        if name in SAVE_NODE_TYPES:
            for widget in self.widgets:
                if widget.name == "filename_prefix":
                    widget.serializer = "text_replacements"
                    break
        elif "Node name for S&R" not in self.properties:
            self.properties["Node name for S&R"] = self.type
        if name == "PreviewAny":
            preview = TextareaWidget("preview", "MARKDOWN", "", takes_slot=False)
            self.widgets.append(preview)

    def configure(self, info: dict[str, Any]) -> None:
        super().configure(merge_saved_slots(self, info, self.node_def.inputs_v2))
        values = info.get("widgets_values")
        if isinstance(values, dict) and self.from_custom_pack():
            # Packs that save widgets_values as an object (VideoHelperSuite...) restore them
            # by widget name in their own frontend code; the core frontend ignores the object.
            for widget in self.widgets:
                if widget.name in values and not widget.is_control:
                    widget.value = values[widget.name]

    def from_custom_pack(self) -> bool:
        module = self.node_def.raw.get("python_module")
        return isinstance(module, str) and module.startswith("custom_nodes.")

    # Comfy.WidgetInputs onGraphConfigured
    def on_graph_configured(self) -> None:
        if not self.inputs:
            return
        index = 0
        while index < len(self.inputs):
            slot = self.inputs[index]
            if slot.widget is not None:
                name = slot.widget.name
                if slot.widget.resolved_get_config() is None:
                    slot.widget.get_config = partial(self.node_def.v1_config, name)
                if self.find_widget(name) is None:
                    self.remove_input(index)
                    # for...of over a spliced array skips the element that moved into this index
            index += 1


class PlaceholderNode(Node):
    """What the frontend builds for an unknown node type (kept so links to it resolve)."""

    def class_title(self) -> Any:
        return self.type


class NoteNode(Node):
    is_virtual = True

    def class_title(self) -> Any:
        return FRONTEND_ONLY_TITLES.get(self.type, self.type)


class RerouteNode(Node):
    is_virtual = True
    default_title = "Reroute"

    def __init__(self, graph: "Graph", type_name: str):
        super().__init__(graph, type_name)
        self.properties = {"showOutputText": False, "horizontal": False}
        self.inputs = [InputSlot("", "*")]
        self.outputs = [OutputSlot("", "*")]

    def class_title(self) -> Any:
        return "Reroute"


class PrimitiveNode(Node):
    """widgetInputs.ts: a virtual node that pushes its value into the widgets it feeds."""

    is_virtual = True
    default_title = "Primitive"
    REPLACE_PROPERTY = "Run widget replace on values"

    def __init__(self, graph: "Graph", type_name: str):
        super().__init__(graph, type_name)
        self.outputs = [OutputSlot("connect to widget input", "*")]
        self.properties = {self.REPLACE_PROPERTY: False}
        self._control_values: list[Any] | None = None
        self._last_type: Any = None

    def class_title(self) -> Any:
        return "Primitive"

    def on_after_graph_configured(self) -> None:
        if self.outputs and self.outputs[0].links and not self.widgets:
            self._on_first_connection()
            if self.widgets and truthy(self.widgets_values) and isinstance(self.widgets_values, list):
                for index, value in enumerate(self.widgets_values):
                    if index < len(self.widgets):
                        self.widgets[index].value = value
            self._merge_widget_config()

    def _root_links(self) -> dict[Any, Link]:
        """applyToGraph and the config merge read app.graph.links: always the root graph's."""
        return self.graph.root.links

    def _on_first_connection(self, recreating: bool = False) -> None:
        output = self.outputs[0]
        if not output.links:
            self._on_last_disconnect()
            return
        link = self.graph.links.get(output.links[0])
        if link is None:
            return
        their = self.graph.get_node(link.target_id)
        if their is None or not their.inputs:
            return
        if not (isinstance(link.target_slot, int) and 0 <= link.target_slot < len(their.inputs)):
            return
        target_input = their.inputs[link.target_slot]
        if target_input.widget is None:
            if not is_core_widget_type(target_input.type):
                return
            fake_type = target_input.type
            ref = WidgetRef(target_input.name, get_config=lambda: [fake_type, {}])
        else:
            ref = target_input.widget
        get_config = ref.resolved_get_config()
        config = get_config() if get_config is not None else None
        if not truthy(config):
            return
        config_type = v1_type_name(config)
        output.type = config_type
        output.name = config_type
        output.widget = ref
        self._create_widget(ref.config if ref.config is not None else config, their, ref.name, recreating)

    def _create_widget(self, input_data: Any, their: Node, widget_name: Any, recreating: bool) -> None:
        type_name = v1_type_name(input_data)
        options = input_data[1] if isinstance(input_data, list) and len(input_data) > 1 and isinstance(input_data[1], dict) else {}
        from .nodedefs import v1_to_v2

        spec = v1_to_v2(input_data, "value", False) if isinstance(input_data, list) else {"name": "value"}
        if is_core_widget_type(type_name):
            widget = make_widget(self, "value", spec, type_name)
        else:
            widget = Widget("value", str(type_name).lower(), None)
            self.widgets.append(widget)
        if widget is None:
            return
        if their.widgets:
            theirs = their.find_widget(widget_name)
            if theirs is not None:
                widget.value = theirs.value
        if not truthy(options.get("control_after_generate")) and widget.kind in ("number", "combo"):
            control_value = self.widgets_values[1] if isinstance(self.widgets_values, list) and len(self.widgets_values) > 1 else None
            if not truthy(control_value):
                control_value = "fixed"
            value_control_widgets(self, widget, control_value, config_options=options)
            filt = self.widgets_values[2] if isinstance(self.widgets_values, list) and len(self.widgets_values) > 2 else None
            if truthy(filt) and len(self.widgets) == 3:
                self.widgets[2].value = filt
        if (
            self._control_values is not None
            and self._last_type == (self.widgets[0].kind if self.widgets else None)
            and len(self._control_values) == len(self.widgets) - 1
        ):
            for index, value in enumerate(self._control_values):
                self.widgets[index + 1].value = value
        original = widget.callback

        def chained(w: Widget, v: Any, original: Callable[[Widget, Any], None] | None = original) -> None:
            if original is not None:
                original(w, v)
            self.apply_to_graph()

        widget.callback = chained

    def _remove_widgets(self) -> None:
        if self.widgets:
            self._control_values = [w.value for w in self.widgets[1:]]
            self._last_type = self.widgets[0].kind
            self.widgets.clear()

    def _on_last_disconnect(self) -> None:
        self.outputs[0].type = "*"
        self.outputs[0].name = "connect to widget input"
        self.outputs[0].widget = None
        self._remove_widgets()

    def recreate_widget(self) -> Widget | None:
        values = [w.value for w in self.widgets]
        self._remove_widgets()
        self._on_first_connection(recreating=True)
        if values and self.widgets:
            for index, widget in enumerate(self.widgets):
                widget.value = values[index] if index < len(values) else UNDEFINED
        return self.widgets[0] if self.widgets else None

    def _merge_widget_config(self) -> None:
        output = self.outputs[0]
        links = output.links or []
        has_config = output.widget is not None and output.widget.config is not None
        if output.widget is not None and has_config:
            output.widget.config = None
        if len(links) < 2 and has_config:
            if links:
                self.recreate_widget()
            return
        get_config = output.widget.resolved_get_config() if output.widget is not None else None
        config1: Any = get_config() if get_config is not None else None  # a V1 spec once truthy
        if not truthy(config1):
            return
        if v1_type_name(config1) not in ("INT", "FLOAT") or isinstance(config1[0], list):
            return
        root_links = self._root_links()
        for link_id in links:
            link = root_links.get(link_id)
            if link is None:
                continue
            their = self.graph.root.get_node(link.target_id)
            if their is None:
                continue
            if not (isinstance(link.target_slot, int) and 0 <= link.target_slot < len(their.inputs)):
                raise GraphError("Primitive target slot out of range", self)
            self._is_valid_connection(their.inputs[link.target_slot], has_config)

    def _is_valid_connection(self, target_input: InputSlot, force_update: bool) -> bool:
        get_config = target_input.widget.resolved_get_config() if target_input.widget is not None else None
        config2 = get_config() if get_config is not None else None
        if not truthy(config2):
            return False
        return merge_if_valid(self.outputs[0], config2, force_update, self.recreate_widget)

    def apply_to_graph(self, extra_links: list[Link] | None = None) -> None:
        output = self.outputs[0]
        if not output.links:
            return
        root_links = self._root_links()
        links = [root_links.get(link_id) for link_id in output.links] + list(extra_links or [])
        value = self.widgets[0].value if self.widgets else UNDEFINED
        if truthy(value) and truthy(self.properties.get(self.REPLACE_PROPERTY)):
            value = apply_text_replacements(for_each_node(self.graph.root), value)
        for link in links:
            if link is None:
                raise GraphError(
                    "a Primitive node inside a subgraph points at a link that only exists in its subgraph "
                    "(the frontend looks it up in the main graph and fails)", self)
            node = self.graph.get_node(link.target_id)
            if node is None or not isinstance(link.target_slot, int) or not (0 <= link.target_slot < len(node.inputs)):
                continue
            target_input = node.inputs[link.target_slot]
            if target_input.widget is None or not truthy(target_input.widget.name):
                continue
            widget = node.find_widget(target_input.widget.name)
            if widget is None:
                continue
            widget.value = value
            widget.fire_callback()


def merge_if_valid(output: OutputSlot, config2: Any, force_update: bool, recreate: Callable[[], Widget | None] | None) -> bool:
    """widgetInputs' mergeIfValid: intersect number ranges; recreate and clamp the Primitive's widget."""
    from .specmerge import merge_input_spec

    ref = output.widget
    if ref is None:
        config1 = ["*", {}]
    elif ref.config is not None:
        config1 = ref.config
    else:
        get_config = ref.resolved_get_config()
        config1 = get_config() if get_config is not None else ["*", {}]
    custom = merge_input_spec(config1, config2)
    if custom is not None or force_update:
        if custom is not None and ref is not None:
            ref.config = custom
        widget = recreate() if recreate is not None else None
        if widget is not None:
            lo = widget.options.get("min")
            hi = widget.options.get("max")
            if lo is not None and _lt(widget.value, lo):
                widget.value = lo
            if hi is not None and _lt(hi, widget.value):
                widget.value = hi
            widget.fire_callback()
    return True


def _lt(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)  # JSON values: a bool, or TypeError
    except TypeError:
        return False


class SubgraphNode(Node):
    """An instance of a subgraph definition, shown as one node."""

    is_virtual = True

    def __init__(self, graph: "Graph", subgraph: "Subgraph"):
        super().__init__(graph, subgraph.id)
        self.subgraph = subgraph
        self._proxy_widgets: list[Any] | None = None
        self._registered = False  # the registered class's configure override runs after construction
        self.configure({"id": -1, "type": subgraph.id, "inputs": [], "outputs": [], "mode": 0})
        self._registered = True

    def is_subgraph_node(self) -> bool:
        return True

    def class_title(self) -> Any:
        return self.subgraph.name

    def configure(self, info: dict[str, Any]) -> None:
        if self._registered:
            info = merge_saved_slots(self, info, {})
        self.inputs = [InputSlot(io.name, io.type, label=io.label) for io in self.subgraph.inputs]
        self.outputs = [OutputSlot(io.name, io.type) for io in self.subgraph.outputs]
        super().configure(info)

    def set_property(self, name: str, value: Any) -> None:
        if name == "proxyWidgets" and self._proxy_widgets is not None:
            self._set_proxy_widgets(value)
            return
        super().set_property(name, value)

    def internal_configure_after_slots(self) -> None:
        self.widgets = []
        for slot in self.inputs:
            io = self.subgraph.find_input(slot.name)
            if io is None:
                continue
            for link_id in io.link_ids:
                link = self.subgraph.links.get(link_id)
                if link is None:
                    continue
                inner = self.subgraph.get_node(link.target_id) if link.target_id != -1 else None
                if inner is None or not isinstance(link.target_slot, int) or not (0 <= link.target_slot < len(inner.inputs)):
                    continue
                inner_input = inner.inputs[link.target_slot]
                widget = inner.get_widget_from_slot(inner_input)
                if widget is None:
                    continue
                self._set_widget(io, slot, widget, inner_input.widget)
                break

    def _set_widget(self, io: SubgraphIO, slot: InputSlot, widget: Widget, inner_ref: WidgetRef | None) -> None:
        promoted = widget.copy_for_node()
        promoted.name = io.name
        count = sum(1 for s in self.inputs if s.widget is not None)
        self.widgets.insert(min(count, len(self.widgets)), promoted)
        if slot.widget is None:
            slot.widget = WidgetRef(io.name)
        slot.widget.name = io.name
        if inner_ref is not None:
            slot.widget.parent = inner_ref
        slot.promoted = promoted

    def on_configure(self, info: dict[str, Any]) -> None:
        """proxyWidget.ts: properties.proxyWidgets reorders widgets and re-applies '-1' values by name."""
        self._proxy_widgets = self._proxy_widgets if self._proxy_widgets is not None else []
        saved_properties = info.get("properties")
        properties: dict[str, Any] = saved_properties if isinstance(saved_properties, dict) else {}
        saved = properties.get("proxyWidgets")
        if truthy(saved):
            parsed = self._set_proxy_widgets(saved)
            values = info.get("widgets_values")
            if isinstance(values, list):
                for index, value in enumerate(values):
                    if index >= len(parsed) or parsed[index][0] != "-1":
                        continue
                    widget = self.find_widget(parsed[index][1])
                    if value is not None and widget is not None:
                        widget.value = value

    def _set_proxy_widgets(self, value: Any) -> list[tuple[str, str]]:
        if not (isinstance(value, list) and all(isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in value)):
            raise GraphError(f"invalid properties.proxyWidgets on subgraph node {node_key(self.id)}", self)
        parsed = [(v[0], v[1]) for v in value]
        new_widgets: list[Widget] = []
        for inner_id, widget_name in parsed:
            if inner_id == "-1":
                found = self.find_widget(widget_name)
                if found is not None:
                    new_widgets.append(found)
            else:
                new_widgets.append(ProxyWidget(self, inner_id, widget_name))
        names = {name for _, name in parsed}
        self.widgets = [w for w in self.widgets if not isinstance(w, ProxyWidget) and w.name not in names]
        self.widgets.extend(new_widgets)
        self._proxy_widgets = parsed
        return parsed

    def serialize_sync(self) -> None:
        """SubgraphNode.serialize: copy promoted widget values down to the widgets they stand for."""
        for widget in list(self.widgets):
            slot = next((s for s in self.inputs if s.name == widget.name), None)
            if slot is None:
                continue
            io = self.subgraph.find_input(slot.name)
            if io is None:
                continue
            for connected in self.subgraph.connected_widgets(io):
                connected.value = widget.value

    def get_input_link_inner(self, slot: int) -> Link | None:
        if slot >= len(self.subgraph.outputs):
            return None
        for link_id in self.subgraph.outputs[slot].link_ids:
            link = self.subgraph.links.get(link_id)
            if link is not None:
                return link
        return None


class ProxyWidget(Widget):
    """A widget shown on a subgraph node that reads and writes a widget of an inner node."""

    def __init__(self, owner: SubgraphNode, inner_id: str, widget_name: str):
        super().__init__(f"{inner_id}: {widget_name}", "proxy", None)
        self._owner = owner
        self._inner_id = inner_id
        self._widget_name = widget_name

    def _target(self) -> Widget | None:
        node = self._owner.subgraph.get_node(self._inner_id)
        return node.find_widget(self._widget_name) if node is not None else None

    @property
    def value(self) -> Any:
        target = self._target()
        return target.value if target is not None else UNDEFINED

    @value.setter
    def value(self, value: Any) -> None:
        target = self._target()
        if target is not None:
            target.value = value


# --- graphs -----------------------------------------------------------------------------


class Graph:
    """LGraph: nodes in order, links by id, and the subgraph definitions (root only)."""

    def __init__(self, registry: "Registry", root: "Graph | None" = None):
        self.registry = registry
        self.root: Graph = root if root is not None else self
        self.nodes: list[Node] = []
        self.by_id: dict[str, Node] = {}
        self.links: dict[Any, Link] = {}
        self.subgraphs: dict[Any, Subgraph] = {}  # by definition id: a string (_check_structure refuses others)
        self.last_node_id: Any = 0
        self.name: Any = ""

    def get_node(self, node_id: Any) -> Node | None:
        if node_id is None:
            return None
        return self.by_id.get(node_key(node_id))

    def add(self, node: Node) -> None:
        if node.id != -1 and node_key(node.id) in self.by_id:
            self.last_node_id = (self.last_node_id if is_number(self.last_node_id) else 0) + 1
            node.id = self.last_node_id
        if is_number(node.id) and (not is_number(self.last_node_id) or self.last_node_id < node.id):
            self.last_node_id = node.id
        node.graph = self
        self.nodes.append(node)
        self.by_id[node_key(node.id)] = node

    def configure(self, data: dict[str, Any]) -> None:
        self.nodes, self.by_id, self.links = [], {}, {}
        if self is self.root:
            self.subgraphs = {}
        saved_state = data.get("state")
        state: dict[str, Any] = saved_state if isinstance(saved_state, dict) else {}
        last = data.get("last_node_id", state.get("lastNodeId", 0))
        self.last_node_id = last if is_number(last) else 0
        for raw in data.get("links") or [] if isinstance(data.get("links"), list) else []:
            link = Link.from_json(raw)
            if link is not None:
                self.links[link.id] = link
        saved_definitions = data.get("definitions")
        definitions: dict[str, Any] = saved_definitions if isinstance(saved_definitions, dict) else {}
        subgraph_data = definitions.get("subgraphs") if isinstance(definitions.get("subgraphs"), list) else []
        if self is self.root and subgraph_data:
            created = []
            for sub in subgraph_data:
                if isinstance(sub, dict):
                    sg = Subgraph(self.registry, self, sub)
                    self.subgraphs[sg.id] = sg
                    created.append((sg, sub))
            for sub in subgraph_data:
                if isinstance(sub, dict):
                    target = self.subgraphs.get(sub.get("id"))
                    if target is not None:
                        target.configure(sub)
        infos: list[tuple[Node, dict[str, Any]]] = []
        for info in data.get("nodes") or []:
            if not isinstance(info, dict):
                continue
            node = self.registry.create_node(self, info.get("type"), info.get("title"))
            node.id = info.get("id")
            self.add(node)
            infos.append((node, info))
        for node, info in infos:
            node.configure(info)


class Subgraph(Graph):
    def __init__(self, registry: "Registry", root: Graph, data: dict[str, Any]):
        super().__init__(registry, root)
        self.id: Any = data.get("id")
        self._configure_io(data)

    def _configure_io(self, data: dict[str, Any]) -> None:
        self.name = data.get("name") if data.get("name") is not None else "Unnamed Subgraph"
        if isinstance(data.get("inputs"), list):
            self.inputs = [SubgraphIO.from_json(x) for x in data["inputs"]]
        elif not hasattr(self, "inputs"):
            self.inputs = []
        if isinstance(data.get("outputs"), list):
            self.outputs = [SubgraphIO.from_json(x) for x in data["outputs"]]
        elif not hasattr(self, "outputs"):
            self.outputs = []

    def configure(self, data: dict[str, Any]) -> None:
        super().configure(data)
        self._configure_io(data)

    def find_input(self, name: Any) -> SubgraphIO | None:
        for io in self.inputs:
            if io.name == name:
                return io
        return None

    def connected_widgets(self, io: SubgraphIO) -> list[Widget]:
        found = []
        for link_id in io.link_ids:
            link = self.links.get(link_id)
            if link is None:
                continue
            node = self.get_node(link.target_id) if link.target_id != -1 else None
            if node is None or not node.widgets or not isinstance(link.target_slot, int) or not (0 <= link.target_slot < len(node.inputs)):
                continue
            ref = node.inputs[link.target_slot].widget
            if ref is None or not truthy(ref.name):
                continue
            widget = node.find_widget(ref.name)
            if widget is not None:
                found.append(widget)
        return found


class Registry:
    """LiteGraph.registered_node_types for one load: backend classes, frontend nodes, subgraphs, group nodes."""

    def __init__(self, defs: NodeDefs):
        self.defs = defs
        self.group_nodes: dict[str, GroupNodeConfig] = {}
        self.unknown: list[tuple[Any, Any]] = []  # (graph, info) of nodes created as placeholders

    def create_node(self, graph: Graph, type_name: Any, title: Any) -> Node:
        if isinstance(type_name, str):
            if type_name in ("Note", "MarkdownNote"):
                return NoteNode(graph, type_name)
            if type_name == "Reroute":
                return RerouteNode(graph, type_name)
            if type_name == "PrimitiveNode":
                return PrimitiveNode(graph, type_name)
            subgraph = graph.root.subgraphs.get(type_name)
            if subgraph is not None:
                return SubgraphNode(graph, subgraph)
            group = self.group_nodes.get(type_name)
            if group is not None:
                return group.create_node(graph)
            node_def = self.defs.get(type_name)
            if node_def is not None:
                return ComfyNode(graph, type_name, node_def)
        placeholder = PlaceholderNode(graph, type_name)
        return placeholder


def for_each_node(graph: Graph) -> Iterator[Node]:
    """forEachNode: depth first, a subgraph's nodes before the subgraph node itself."""
    for node in list(graph.nodes):
        if isinstance(node, SubgraphNode):
            yield from for_each_node(node.subgraph)
        yield node


def fix_link_input_slots(graph: Graph) -> None:
    """fixLinkInputSlots: a link's target slot is wherever its id sits in the target's inputs."""
    for node in graph.nodes:
        for index, slot in enumerate(node.inputs):
            if not truthy(slot.link):
                continue
            link = graph.links.get(slot.link)
            if link is None:
                continue
            link.target_slot = index
        if isinstance(node, SubgraphNode):
            fix_link_input_slots(node.subgraph)

