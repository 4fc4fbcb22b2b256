"""Legacy group nodes (``extra.groupNodes``), as the frontend's groupNode.ts expands them.

Before subgraphs, ComfyUI could fold several nodes into one "group node"
whose definition lives in the workflow (``extra.groupNodes[name]``: the inner
nodes, their internal links, and which outputs are used outside). The
frontend registers a node type ``workflow>name`` whose inputs and widgets are
derived from the inner nodes; at queue time the group node is replaced by its
inner nodes, with ids ``<group id>:<index>``, the group's widget values pushed
into them and its links re-targeted. This module ports that derivation and
expansion; like the frontend, it does not support group nodes inside
subgraphs.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import GraphError
from .graph import ComfyNode, Graph, Link, Node, PrimitiveNode, Registry, RerouteNode, node_key
from .jsvalues import truthy
from .nodedefs import FRONTEND_ONLY_TYPES, WIDGET_TYPES, NodeDef, build_node_def, v1_type_name

PREFIX = "workflow"
SEPARATOR = ">"


def _js_key(key: Any) -> str:
    return node_key(key)


class GroupNodeConfig:
    """GroupNodeConfig: the node definition of one group, and the maps between it and its inner nodes."""

    def __init__(self, name: str, node_data: dict[str, Any], registry: Registry):
        self.name = name
        self.node_data = node_data
        self.registry = registry
        self.input_count = 0
        self.old_to_new_output: dict[int, dict[int, int]] = {}
        self.new_to_old_output: dict[int, dict[str, Any]] = {}
        self.old_to_new_input: dict[int, dict[int, int]] = {}
        self.old_to_new_widget: dict[int, dict[str, Any]] = {}
        self.new_to_old_widget: dict[str, dict[str, Any]] = {}
        self.primitive_defs: dict[int, Any] = {}
        self.widget_to_primitive: dict[Any, dict[str, Any]] = {}
        self.primitive_to_widget: dict[Any, list[dict[str, Any]]] = {}
        self.node_inputs: dict[int, dict[str, Any]] = {}
        self.links_from: dict[str, dict[str, list[Any]]] = {}
        self.links_to: dict[str, dict[str, Any]] = {}
        self.external_from: dict[str, dict[str, Any]] = {}
        self._get_links()
        self.type_name = f"{PREFIX}{SEPARATOR}{name}"
        self.node_def_v1: dict[str, Any] = {}
        self.node_def: NodeDef | None = None  # built by register_type

    @property
    def nodes(self) -> list[dict[str, Any]]:
        nodes = self.node_data.get("nodes")
        return nodes if isinstance(nodes, list) else []

    def _get_links(self) -> None:
        for link in self.node_data.get("links") or []:
            if not isinstance(link, list) or len(link) < 4:
                continue
            source, source_slot, target, target_slot = link[0], link[1], link[2], link[3]
            if source is None:
                continue
            self.links_from.setdefault(_js_key(source), {}).setdefault(_js_key(source_slot), []).append(link)
            self.links_to.setdefault(_js_key(target), {})[_js_key(target_slot)] = link
        for ext in self.node_data.get("external") or []:
            if isinstance(ext, list) and len(ext) >= 3:
                self.external_from.setdefault(_js_key(ext[0]), {})[_js_key(ext[1])] = ext[2]

    # --- the definition -----------------------------------------------------------------

    def register_type(self) -> None:
        self.node_def_v1 = {
            "output": [], "output_name": [], "output_is_list": [],
            "name": self.type_name, "display_name": self.name,
            "category": f"group nodes{SEPARATOR}{PREFIX}",
            "input": {"required": {}},
            "python_module": f"custom_nodes.{self.name}",
        }
        seen_inputs: dict[str, int] = {}
        seen_outputs: dict[str, int] = {}
        converted: list[Any] = []
        for index, node in enumerate(self.nodes):
            if isinstance(node, dict):
                node["index"] = index
                self._process_node(node, seen_inputs, seen_outputs, converted)
        for process in converted:
            process()
        self.node_def = build_node_def(self.type_name, self.node_def_v1)

    def _global_def(self, type_name: Any) -> dict[str, Any] | None:
        if not isinstance(type_name, str):
            return None
        node_def = self.registry.defs.get(type_name)
        if node_def is not None:
            raw = node_def.raw
            return {"input": node_def.input_v1, "output": list(raw.get("output") or []),
                    "output_name": list(raw.get("output_name") or []), "output_is_list": list(raw.get("output_is_list") or [])}
        return None  # globalDefs holds backend classes only

    def _node_def(self, node: dict[str, Any]) -> dict[str, Any] | None:
        found = self._global_def(node.get("type"))
        if found is not None:
            return found
        index = node["index"]
        links_from = self.links_from.get(_js_key(index))
        if node.get("type") == "PrimitiveNode":
            if not links_from:
                return None
            first = links_from["0"][0]
            type_ = first[5] if len(first) > 5 else None
            if type_ == "COMBO":
                source = ((node.get("outputs") or [{}])[0].get("widget") or {}).get("name")
                target = self.nodes[first[2]]
                target_def = self._global_def(target.get("type")) or {}
                inputs = target_def.get("input") or {}
                spec = (inputs.get("required") or {}).get(source) or (inputs.get("optional") or {}).get(source)
                type_ = spec[0] if spec else type_
            primitive = {"input": {"required": {"value": [type_, {}]}}, "output": [type_], "output_name": [], "output_is_list": []}
            self.primitive_defs[index] = primitive
            return primitive
        if node.get("type") == "Reroute":
            links_to = self.links_to.get(_js_key(index))
            if links_to and links_from and not truthy((self.external_from.get(_js_key(index)) or {}).get("0")):
                return None
            reroute_type = "*"
            if links_from:
                for link in links_from.get("0", []):
                    target = self.nodes[link[2]]
                    target_input = (target.get("inputs") or [])[link[3]]
                    if reroute_type == "*":
                        reroute_type = target_input.get("type")
            elif links_to:
                link = links_to.get("0")
                if link:
                    reroute_type = ((self.nodes[link[0]].get("outputs") or [])[link[1]]).get("type")
            return {"input": {"required": {reroute_type: [reroute_type, {"forceInput": True}]}},
                    "output": [reroute_type], "output_name": [], "output_is_list": []}
        return None

    def _process_node(self, node: dict[str, Any], seen_inputs: dict[str, int], seen_outputs: dict[str, int], converted: list[Any]) -> None:
        node_def = self._node_def(node)
        if node_def is None:
            return
        inputs_v1 = node_def.get("input") or {}
        inputs = {**(inputs_v1.get("required") or {}), **(inputs_v1.get("optional") or {})}
        self._process_node_inputs(node, seen_inputs, inputs, converted)
        if node_def.get("output"):
            self._process_node_outputs(node, seen_outputs, node_def)

    def _input_config(self, node: dict[str, Any], input_name: str, seen: dict[str, int], config: Any, extra: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
        """(input name on the group node, its V1 config, the group's saved config for it).

        The name comes from the saved config or slot label when present: any JSON value.
        """
        index = node["index"]
        custom = (((self.node_data.get("config") or {}).get(_js_key(index)) or {}).get("input") or {}).get(input_name)
        label = None
        for slot in node.get("inputs") or []:
            if isinstance(slot, dict) and slot.get("name") == input_name:
                label = slot.get("label")
                break
        name: Any = (custom or {}).get("name") if (custom or {}).get("name") is not None else (label if label is not None else input_name)
        key = name
        prefix = ""
        if (node.get("type") == "PrimitiveNode" and truthy(node.get("title"))) or name in seen:
            title = node.get("title") if node.get("title") is not None else node.get("type")
            prefix = f"{title} "
            key = name = f"{prefix}{input_name}"
            if name in seen:
                name = f"{prefix}{seen[name]} {input_name}"
        seen[key] = seen.get(key, 1) + 1
        if input_name in ("seed", "noise_seed"):
            extra = dict(extra or {})
            extra["control_after_generate"] = f"{prefix}control_after_generate"
        if isinstance(config, list) and config and config[0] == "IMAGEUPLOAD":
            extra = dict(extra or {})
            options = config[1] if len(config) > 1 and isinstance(config[1], dict) else {}
            mapped = (self.old_to_new_widget.get(index) or {}).get(options.get("widget", "image"))
            extra["widget"] = mapped if mapped is not None else "image"
        if extra:
            options = config[1] if isinstance(config, list) and len(config) > 1 and isinstance(config[1], dict) else {}
            config = [config[0], {**options, **extra}]
        return name, config, custom

    def _process_node_inputs(self, node: dict[str, Any], seen: dict[str, int], inputs: dict[str, Any], converted_todo: list[Any]) -> None:
        if not inputs:
            return
        index = node["index"]
        converted: dict[int, str] = {}
        slots: list[str] = []
        widget_map: dict[str, Any] = {}
        self.old_to_new_widget[index] = widget_map
        for input_name, spec in inputs.items():
            if v1_type_name(spec) in WIDGET_TYPES:
                converted_index = next(
                    (i for i, slot in enumerate(node.get("inputs") or [])
                     if isinstance(slot, dict) and slot.get("name") == input_name and (slot.get("widget") or {}).get("name") == input_name),
                    -1,
                )
                if converted_index > -1:
                    converted[converted_index] = input_name
                    widget_map[input_name] = None
                else:
                    name, config, _ = self._input_config(node, input_name, seen, spec)
                    self.node_def_v1["input"]["required"][name] = config
                    widget_map[input_name] = name
                    self.new_to_old_widget[name] = {"node": node, "input_name": input_name}
            else:
                slots.append(input_name)
        links_to = self.links_to.get(_js_key(index)) or {}
        input_map: dict[int, int] = {}
        self.old_to_new_input[index] = input_map
        self.node_inputs[index] = {}
        for i, input_name in enumerate(slots):
            if links_to.get(_js_key(i)):
                self._check_primitive(links_to[_js_key(i)], input_name, inputs)
                continue
            name, config, custom = self._input_config(node, input_name, seen, inputs[input_name])
            self.node_inputs[index][input_name] = name
            if (custom or {}).get("visible") is False:
                continue
            self.node_def_v1["input"]["required"][name] = config
            input_map[i] = self.input_count
            self.input_count += 1

        def process_converted() -> None:
            ordered = [converted[k] for k in sorted(converted, key=str)]
            for i, input_name in enumerate(ordered):
                slot_key = _js_key(len(slots) + i)
                if links_to.get(slot_key):
                    self._check_primitive(links_to[slot_key], input_name, inputs)
                    continue
                name, config, _ = self._input_config(node, input_name, seen, inputs[input_name], {"defaultInput": True})
                self.node_def_v1["input"]["required"][name] = config
                self.new_to_old_widget[name] = {"node": node, "input_name": input_name}
                self.old_to_new_widget.setdefault(index, {})[input_name] = name
                input_map[len(slots) + i] = self.input_count
                self.input_count += 1

        converted_todo.append(process_converted)

    def _check_primitive(self, link: list[Any], input_name: str, inputs: dict[str, Any]) -> None:
        source = self.nodes[link[0]]
        if source.get("type") != "PrimitiveNode":
            return
        source_id, target_id = link[0], link[2]
        widget_name = (self.old_to_new_widget.get(source_id) or {}).get("value")
        if widget_name is None:
            raise GraphError(f"group node '{self.name}': a Primitive inside it has no widget")
        to_primitive = self.widget_to_primitive.setdefault(target_id, {})
        to_primitive[input_name] = source_id
        self.primitive_to_widget.setdefault(source_id, []).append({"node_id": target_id, "input_name": input_name})

    def _process_node_outputs(self, node: dict[str, Any], seen: dict[str, int], node_def: dict[str, Any]) -> None:
        index = node["index"]
        old_to_new: dict[int, int] = {}
        self.old_to_new_output[index] = old_to_new
        outputs = node_def.get("output") or []
        for output_id in range(len(outputs)):
            links_from = self.links_from.get(_js_key(index)) or {}
            has_link = bool(links_from.get(_js_key(output_id))) and not truthy((self.external_from.get(_js_key(index)) or {}).get(_js_key(output_id)))
            custom = (((self.node_data.get("config") or {}).get(_js_key(index)) or {}).get("output") or {}).get(_js_key(output_id)) or {}
            visible = custom.get("visible") if custom.get("visible") is not None else not has_link
            if not visible:
                continue
            old_to_new[output_id] = len(self.node_def_v1["output"])
            self.new_to_old_output[len(self.node_def_v1["output"])] = {"node": node, "slot": output_id}
            self.node_def_v1["output"].append(outputs[output_id])
            is_list = node_def.get("output_is_list") or []
            self.node_def_v1["output_is_list"].append(is_list[output_id] if output_id < len(is_list) else None)
            label = custom.get("name")
            if not label:
                names = node_def.get("output_name") or []
                label = names[output_id] if output_id < len(names) and names[output_id] is not None else outputs[output_id]
                for out in node.get("outputs") or []:
                    if isinstance(out, dict) and out.get("name") == label:
                        if out.get("label"):
                            label = out["label"]
                        break
            name = label
            if name in seen:
                prefix = f"{node.get('title') if node.get('title') is not None else node.get('type')} "
                name = f"{prefix}{label}"
                if name in seen:
                    name = f"{prefix}{index} {label}"
            seen[name] = 1
            self.node_def_v1["output_name"].append(name)

    def create_node(self, graph: Graph) -> "GroupNode":
        assert self.node_def is not None
        return GroupNode(graph, self.type_name, self.node_def, self)


class GroupNode(ComfyNode):
    """A group node instance; its inner nodes are built on first use, as GroupNodeHandler does."""

    def __init__(self, graph: Graph, type_name: str, node_def: NodeDef, config: GroupNodeConfig):
        self.group = config
        self.inner_nodes: list[Node] | None = None
        super().__init__(graph, type_name, node_def)

    def from_custom_pack(self) -> bool:
        return False  # a group's definition says custom_nodes.<name>, but no pack code runs for it

    def inner(self) -> list[Node]:
        if self.inner_nodes is None:
            built: list[Node] = []
            for index, data in enumerate(self.group.nodes):
                node = self.graph.registry.create_node(self.graph, data.get("type"), None)
                node.configure(copy.deepcopy(data))
                node.id = f"{node_key(self.id)}:{index}"
                node.group_index = index
                built.append(node)
            self.inner_nodes = built
        return self.inner_nodes

    def update_inner_widgets(self) -> None:
        inner = self.inner()
        for new_name, old in self.group.new_to_old_widget.items():
            widget = self.find_widget(new_name)
            if widget is None:
                continue
            value = widget.value
            index = old["node"]["index"]
            node = inner[index]
            if isinstance(node, PrimitiveNode):
                for linked in self.group.primitive_to_widget.get(index, []):
                    target = inner[linked["node_id"]]
                    found = target.find_widget(linked["input_name"])
                    if found is not None:
                        found.value = value
                continue
            if isinstance(node, RerouteNode):
                for link in (self.group.links_from.get(_js_key(index)) or {}).get("0", []):
                    target = inner[link[2]]
                    slot = target.inputs[link[3]]
                    if slot.widget is not None:
                        found = target.find_widget(slot.widget.name)
                        if found is not None:
                            found.value = value
            found = node.find_widget(old["input_name"])
            if found is not None:
                found.value = value

    def inner_input_node(self, child: Node, slot: int) -> Node | None:
        index = _child_index(child)
        external = (self.group.old_to_new_input.get(index) or {}).get(slot)
        if external is not None:
            return self._outer_input_node(external)
        link = (self.group.links_to.get(_js_key(index)) or {}).get(_js_key(slot))
        if not link:
            return None
        origin = self.inner()[link[0]]
        return None if isinstance(origin, PrimitiveNode) else origin

    def _outer_input_node(self, slot: int) -> Node | None:
        if slot >= len(self.inputs) or self.inputs[slot].link is None:
            return None
        link = self.graph.links.get(self.inputs[slot].link)
        return self.graph.get_node(link.origin_id) if link is not None else None

    def inner_input_link(self, child: Node, slot: int) -> dict[str, Any] | None:
        index = _child_index(child)
        external = (self.group.old_to_new_input.get(index) or {}).get(slot)
        if external is not None:
            link = self.graph.root.links.get(self.inputs[external].link)
            if link is None:
                return {"origin_id": None, "origin_slot": None}
            return {"origin_id": link.origin_id, "origin_slot": link.origin_slot}
        link = (self.group.links_to.get(_js_key(index)) or {}).get(_js_key(slot))
        if not link:
            return None
        return {"origin_id": self.inner()[link[0]].id, "origin_slot": link[1]}

    def update_link(self, link: Link) -> tuple[Any, Any] | None:
        output = self.group.new_to_old_output.get(link.origin_slot)
        if output is None:
            raise GraphError(f"group node output {link.origin_slot} has no inner node", self)
        inner = self.inner()
        node: Node | None = inner[output["node"]["index"]]
        last: dict[str, Any] | None = None
        while isinstance(node, RerouteNode):
            last = self.inner_input_link(node, 0)
            node = self.inner_input_node(node, 0)
        if node is None:
            return None
        return node.id, (last["origin_slot"] if last is not None else output["slot"])


def _child_index(child: Node) -> int:
    """Where ``child`` sits among its group's inner nodes (every child asked about comes from inner())."""
    assert child.group_index is not None, "not an inner node of a group node"
    return child.group_index


def register_group_nodes(registry: Registry, data: dict[str, Any], groups: dict[str, Any]) -> None:
    """beforeConfigureGraph of Comfy.GroupNode: legacy separators, then one type per group."""
    for node in data.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"].startswith("workflow/"):
            node["type"] = f"{PREFIX}{SEPARATOR}" + node["type"][len("workflow/"):]
    subgraph_ids = {s.get("id") for s in ((data.get("definitions") or {}).get("subgraphs") or []) if isinstance(s, dict)}
    for name, group in groups.items():
        if not isinstance(group, dict):
            continue
        types = [n.get("type") for n in group.get("nodes") or [] if isinstance(n, dict)]
        if any(not (t in registry.defs or t in FRONTEND_ONLY_TYPES or t in registry.group_nodes or t in subgraph_ids) for t in types):
            continue  # the frontend reports it missing and leaves the group type unregistered
        config = GroupNodeConfig(name, group, registry)
        config.register_type()
        registry.group_nodes[config.type_name] = config
