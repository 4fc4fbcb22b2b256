"""graphToPrompt: from the loaded graph to the API prompt, as the frontend does it.

A port of ``src/utils/executionUtil.ts`` and ``ExecutableNodeDTO``: Primitive
nodes first push their values into the widgets they feed, subgraph nodes are
flattened into ``outer:inner`` ids, then every node that is neither virtual,
muted (mode 2) nor bypassed (mode 4) writes its widget values and, for each
connected input, the ``[origin_id, slot]`` that the link resolves to after
following reroutes, bypassed nodes (first input of a matching type) and
subgraph boundaries. Inputs whose origin was left out are dropped at the end.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable

from ..errors import GraphError
from .graph import (
    MODE_BYPASS,
    MODE_NEVER,
    Graph,
    Node,
    PrimitiveNode,
    SubgraphNode,
    for_each_node,
    node_key,
)
from .groupnodes import GroupNode
from .jsvalues import is_number, js_object_order, js_parse_int, to_js_string, truthy
from .search_replace import apply_text_replacements
from .widgets import Widget


class ResolvedInput:
    __slots__ = ("node", "origin_id", "origin_slot", "widget_value", "has_widget")

    def __init__(self, node: "DTO", origin_id: str, origin_slot: Any, widget_value: Any = None, has_widget: bool = False):
        self.node = node
        self.origin_id = origin_id
        self.origin_slot = origin_slot
        self.widget_value = widget_value
        self.has_widget = has_widget


def is_valid_connection(type_a: Any, type_b: Any) -> bool:
    """LiteGraph.isValidConnection (output type, input type)."""
    if type_a == "" or type_a == "*":
        type_a = 0
    if type_b == "" or type_b == "*":
        type_b = 0
    if not truthy(type_a) or not truthy(type_b) or _loose_eq(type_a, type_b) or (type_a == -1 and type_b == -1):
        return True
    a = to_js_string(type_a).lower()
    b = to_js_string(type_b).lower()
    if "," not in a and "," not in b:
        return a == b
    for x in a.split(","):
        for y in b.split(","):
            if is_valid_connection(x, y):
                return True
    return False


def _loose_eq(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        if isinstance(a, list) and isinstance(b, list):
            return a is b
        return to_js_string(a) == to_js_string(b)
    if is_number(a) and isinstance(b, str) or is_number(b) and isinstance(a, str):
        try:
            return float(a) == float(b)
        except ValueError:
            return False
    return bool(a == b)  # JSON values: always a bool


class DTO:
    """ExecutableNodeDTO: a node at one place in the flattened graph."""

    def __init__(self, node: Node, path: tuple[Any, ...], dtos: dict[str, "DTO"], subgraph_node: SubgraphNode | None = None):
        self.node = node
        self.path = path
        self.dtos = dtos
        self.subgraph_node = subgraph_node
        self.graph = node.graph
        self.id = ":".join(node_key(x) for x in (*path, node.id))
        self.inputs = [(slot.link, slot.name, slot.type) for slot in node.inputs]

    @property
    def mode(self) -> Any:
        return self.node.mode

    @property
    def is_virtual(self) -> bool:
        return self.node.is_virtual

    def get_inner_nodes(self) -> list["DTO"]:
        if isinstance(self.node, SubgraphNode):
            return subgraph_inner_nodes(self.node, self.dtos, self.path)
        return [self]

    def _unique(self, kind: str, slot: int) -> str:
        sub = self.subgraph_node.subgraph.id if self.subgraph_node is not None else "undefined"
        return f"{sub}:{node_key(self.node.id)}[{kind}]{slot}"

    def resolve_input(self, slot: int, visited: set[str] | None = None, type_: Any = None) -> ResolvedInput | None:
        visited = visited if visited is not None else set()
        unique = self._unique("I", slot)
        if unique in visited:
            raise GraphError(f"circular reference while resolving input {slot}", self.node)
        visited.add(unique)
        if slot >= len(self.inputs):
            raise GraphError(f"no input {slot}", self.node)
        link_id, input_name, input_type = self.inputs[slot]
        if link_id is None:
            return None
        link = self.graph.links.get(link_id)
        if link is None:
            raise GraphError(f"input {input_name!r} is connected through link {link_id}, which does not exist", self.node)
        sub = self.subgraph_node
        if sub is not None and link.origin_is_io_node:
            if not (isinstance(link.origin_slot, int) and 0 <= link.origin_slot < len(sub.inputs)):
                raise GraphError(f"no subgraph input for slot {link.origin_slot} ({input_name})", self.node)
            outer_input = sub.inputs[link.origin_slot]
            if outer_input.link is None:
                widget = sub.get_widget_from_slot(outer_input)
                if widget is None:
                    return None
                return ResolvedInput(self, self.id, -1, widget.value, has_widget=True)
            outer_link = sub.graph.links.get(outer_input.link)
            if outer_link is None:
                raise GraphError(f"subgraph input {outer_input.name!r} uses link {outer_input.link}, which does not exist", sub)
            sub_dto = self.dtos.get(":".join(node_key(x) for x in self.path))
            if sub_dto is None:
                raise GraphError("subgraph node missing from the flattened graph", sub)
            return sub_dto.resolve_input(outer_link.target_slot, visited)
        origin = self.graph.get_node(link.origin_id)
        if origin is None:
            raise GraphError(f"input {input_name!r} comes from node {node_key(link.origin_id)}, which does not exist", self.node)
        origin_dto = self.dtos.get(":".join(node_key(x) for x in (*self.path, origin.id)))
        if origin_dto is None:
            raise GraphError(f"node {node_key(origin.id)} missing from the flattened graph", origin)
        return origin_dto.resolve_output(link.origin_slot, input_type if type_ is None else type_, visited)

    def resolve_output(self, slot: Any, type_: Any, visited: set[str]) -> ResolvedInput | None:
        unique = self._unique("O", slot)
        if unique in visited:
            raise GraphError(f"circular reference while resolving output {slot}", self.node)
        visited.add(unique)
        if self.mode == MODE_BYPASS:
            index = self._bypass_slot_index(slot, type_)
            if index == -1:
                return None
            return self.resolve_input(index, visited)
        node = self.node
        if isinstance(node, SubgraphNode):
            return self._resolve_subgraph_output(slot, type_, visited)
        if node.is_virtual:
            virtual_link = node.get_input_link(slot) if isinstance(slot, int) else None
            if virtual_link is not None:
                input_node = self.graph.get_node(virtual_link.target_id)
                if input_node is None:
                    raise GraphError(f"virtual node failed to resolve slot {slot}", node)
                input_dto = self.dtos.get(":".join(node_key(x) for x in (*self.path, input_node.id)))
                if input_dto is None:
                    raise GraphError(f"node {node_key(input_node.id)} missing from the flattened graph", input_node)
                return input_dto.resolve_input(virtual_link.target_slot, visited, type_)
            return None
        return ResolvedInput(self, self.id, slot)

    def _bypass_slot_index(self, slot: Any, type_: Any) -> int:
        inputs = self.inputs
        if not (isinstance(slot, int) and 0 <= slot < len(self.node.outputs)):
            raise GraphError(f"bypassed node has no output {slot}", self.node)
        opposite = inputs[slot] if slot < len(inputs) else None
        output_type = self.node.outputs[slot].type
        if type_ == "*" or type_ == "":
            return slot if len(inputs) > slot else 0
        if opposite is not None and is_valid_connection(opposite[2], output_type) and is_valid_connection(opposite[2], type_):
            return slot
        for index, (_, _, input_type) in enumerate(inputs):
            if input_type == type_:
                return index
        for index, (_, _, input_type) in enumerate(inputs):
            if is_valid_connection(input_type, output_type) and is_valid_connection(input_type, type_):
                return index
        return -1

    def _resolve_subgraph_output(self, slot: Any, type_: Any, visited: set[str]) -> ResolvedInput | None:
        node = self.node
        assert isinstance(node, SubgraphNode)
        if not (isinstance(slot, int) and 0 <= slot < len(node.outputs)):
            raise GraphError(f"subgraph node has no output {slot}", node)
        inner_link = node.get_input_link_inner(slot)
        if inner_link is None:
            return None
        inner = node.subgraph.get_node(inner_link.origin_id) if inner_link.origin_id != -1 else None
        if inner is None:
            raise GraphError(f"no node inside the subgraph feeds its output {slot}", node)
        inner_dto = self.dtos.get(":".join(node_key(x) for x in (*self.path, node.id, inner.id)))
        if inner_dto is None:
            raise GraphError(f"inner node {node_key(inner.id)} missing from the flattened graph", inner)
        return inner_dto.resolve_output(inner_link.origin_slot, type_, visited)


class GroupChildDTO(DTO):
    """ExecutableGroupNodeChildDTO: an inner node of a legacy group node."""

    def __init__(self, node: Node, group: GroupNode, dtos: dict[str, DTO]):
        super().__init__(node, (group.id,), dtos, None)
        self.id = f"{node_key(group.id)}:{node.group_index}"
        self.group = group

    def resolve_input(self, slot: int, visited: set[str] | None = None, type_: Any = None) -> ResolvedInput | None:
        if len(self.id.split(":")) > 2:
            raise GraphError("group nodes inside subgraphs are not supported; convert the group node to a subgraph", self.node)
        owner = self.group
        input_node = owner.inner_input_node(self.node, slot)
        if input_node is None:
            return None
        link = owner.inner_input_link(self.node, slot)
        if link is None:
            raise GraphError("failed to get input link", self.node)
        input_id = node_key(input_node.id)
        dto = self.dtos.get(input_id) or self.dtos.get(input_id.split(":")[-1])
        if dto is None:
            raise GraphError(f"failed to get input node {input_id} for group node child {self.id}", self.node)
        return ResolvedInput(dto, input_id, link["origin_slot"])


class GroupDTO(DTO):
    """ExecutableGroupNodeDTO: the group node itself (virtual), expanded into its inner nodes."""

    def __init__(self, node: GroupNode, path: tuple[Any, ...], dtos: dict[str, DTO]):
        super().__init__(node, path, dtos)
        self.group_node = node

    @property
    def is_virtual(self) -> bool:
        return True

    def get_inner_nodes(self) -> list[DTO]:
        node = self.group_node
        node.update_inner_widgets()
        return [GroupChildDTO(inner, node, self.dtos) for inner in node.inner()]

    def resolve_output(self, slot: Any, type_: Any, visited: set[str]) -> ResolvedInput | None:
        if self.mode == MODE_BYPASS:
            order = [slot, *range(len(self.inputs))]
            for index in order:
                if isinstance(index, int) and 0 <= index < len(self.inputs) and self.inputs[index][2] == type_:
                    return self.resolve_input(index, visited)
            return None
        node = self.group_node
        outputs = node.outputs
        link_ids = outputs[slot].links if isinstance(slot, int) and 0 <= slot < len(outputs) else None
        link = self.graph.links.get(link_ids[0]) if link_ids else None
        if link is None:
            raise GraphError(f"failed to get link for group node output {slot}", node)
        updated = node.update_link(link)
        if updated is None:
            raise GraphError(f"failed to update link for group node output {slot}", node)
        origin_id, origin_slot = updated
        last = node_key(origin_id).split(":")[-1]
        child = next((c for c in self.get_inner_nodes() if c.id == node_key(origin_id)), None)
        if child is None:
            raise GraphError(f"failed to get node for group node output {slot}", node)
        return ResolvedInput(child, f"{self.id}:{last}", origin_slot)


def subgraph_inner_nodes(
    node: SubgraphNode, dtos: dict[str, DTO], path: tuple[Any, ...] = (), nodes: list[DTO] | None = None,
    visited: set[int] | None = None,
) -> list[DTO]:
    """SubgraphNode.getInnerNodes: a DTO for the instance, then for each inner node (recursively)."""
    nodes = nodes if nodes is not None else []
    visited = set(visited) if visited is not None else set()
    if id(node) in visited:
        raise GraphError("a subgraph contains itself", node)
    visited.add(id(node))
    instance_path = (*path, node.id)
    parent = _resolve_subgraph_path(node.graph.root, path)
    own = DTO(node, path, dtos, parent)
    dtos[own.id] = own
    for inner in node.subgraph.nodes:
        if isinstance(inner, SubgraphNode):
            subgraph_inner_nodes(inner, dtos, instance_path, nodes, visited)
        else:
            dto = DTO(inner, instance_path, dtos, node)
            dtos[dto.id] = dto
            nodes.append(dto)
    return nodes


def _resolve_subgraph_path(root: Graph, path: tuple[Any, ...]) -> SubgraphNode | None:
    current: Graph = root
    found: SubgraphNode | None = None
    for node_id in path:
        node = current.get_node(node_id)
        if not isinstance(node, SubgraphNode):
            raise GraphError(f"subgraph path {':'.join(node_key(x) for x in path)} is broken")
        found = node
        current = node.subgraph
    return found


def compute_execution_order(graph: Graph) -> list[Node]:
    """LGraph.computeExecutionOrder(false): Kahn's algorithm over links, leftovers last."""
    ordered: list[Node] = []
    starting: list[Node] = []
    pending: dict[str, Node] = {}
    remaining: dict[str, float] = {}  # input link counts; a target never counted goes to NaN (undefined - 1)
    for node in graph.nodes:
        key = node_key(node.id)
        pending[key] = node
        count = sum(1 for slot in node.inputs if slot is not None and slot.link is not None)
        if count == 0:
            starting.append(node)
        else:
            remaining[key] = count
    visited_links: set[Any] = set()
    while starting:
        node = starting.pop(0)
        ordered.append(node)
        pending.pop(node_key(node.id), None)
        for output in node.outputs:
            if not output.links:
                continue
            for link_id in output.links:
                link = graph.links.get(link_id)
                if link is None or link.id in visited_links:
                    continue
                target = graph.get_node(link.target_id)
                visited_links.add(link.id)
                if target is None:
                    continue
                key = node_key(target.id)
                remaining[key] = remaining.get(key, float("nan")) - 1
                if remaining[key] == 0:
                    starting.append(target)
    ordered.extend(pending[k] for k in _js_key_order(list(pending)))
    return ordered


def _js_key_order(keys: list[str]) -> list[str]:
    return list(js_object_order([(k, None) for k in keys]))


# --- widget value transforms -------------------------------------------------------------


_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//[^\n\r\u2028\u2029]*")


def process_dynamic_prompt(text: str, rng: random.Random) -> str:
    """formatUtil.processDynamicPrompt: strip comments, pick one of each {a|b|c}."""
    source = _COMMENTS.sub("", text)
    pos = 0

    def escape() -> str:
        nonlocal pos
        nxt = source[pos] if pos < len(source) else "undefined"
        pos += 1
        return "\\" + nxt

    def choice_block() -> str:
        nonlocal pos
        options: list[str] = []
        choice = ""
        depth = 0
        while pos < len(source):
            char = source[pos]
            pos += 1
            if char == "\\":
                choice += escape()
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if not depth:
                    break
                depth -= 1
            elif char == "|" and not depth:
                options.append(choice)
                choice = ""
                continue
            choice += char
        options.append(choice)
        chosen = options[int(rng.random() * len(options))]
        return process_dynamic_prompt(chosen, rng)

    result = ""
    while pos < len(source):
        char = source[pos]
        pos += 1
        if char == "\\":
            result += escape()
        elif char == "{":
            result += choice_block()
        else:
            result += char
    return re.sub(r"\\([{}|])", r"\1", result)


def serialize_widget(widget: Widget, graph: Graph, rng: random.Random) -> Any:
    """``widget.serializeValue ? await widget.serializeValue(node, i) : widget.value``."""
    if widget.serializer == "text_replacements":
        return apply_text_replacements(for_each_node(graph.root), widget.value)
    if widget.dynamic_prompts:
        value = widget.value
        if not isinstance(value, str):
            return value
        return process_dynamic_prompt(value, rng)
    return widget.value


# --- the prompt ---------------------------------------------------------------------------


def serialize_sync(root: Graph) -> None:
    """graph.serialize(): subgraph nodes push promoted values into their definitions."""
    for node in root.nodes:
        if isinstance(node, SubgraphNode):
            node.serialize_sync()
    used = _used_subgraph_ids(root)
    for subgraph in root.subgraphs.values():
        if subgraph.id in used:
            for node in subgraph.nodes:
                if isinstance(node, SubgraphNode):
                    node.serialize_sync()


def _used_subgraph_ids(root: Graph) -> set[Any]:
    used: set[Any] = set()
    stack: list[Graph] = [root]
    while stack:
        graph = stack.pop()
        for node in graph.nodes:
            if isinstance(node, SubgraphNode) and node.subgraph.id not in used:
                used.add(node.subgraph.id)
                stack.append(node.subgraph)
    return used


def graph_to_prompt(root: Graph, rng: random.Random, check_node: Callable[[DTO], None] | None = None) -> dict[str, Any]:
    order = compute_execution_order(root)
    for node in order:
        if isinstance(node, SubgraphNode):
            inner: list[DTO] | None = subgraph_inner_nodes(node, {})
        elif isinstance(node, GroupNode):
            inner = GroupDTO(node, (), {}).get_inner_nodes()
        else:
            inner = None
        if inner is None:
            if node.is_virtual and isinstance(node, PrimitiveNode):
                node.apply_to_graph()
            continue
        for dto in inner:
            if dto.node.is_virtual and isinstance(dto.node, PrimitiveNode):
                dto.node.apply_to_graph()
    serialize_sync(root)

    dtos: dict[str, DTO] = {}
    for node in compute_execution_order(root):
        dto = GroupDTO(node, (), dtos) if isinstance(node, GroupNode) else DTO(node, (), dtos)
        for inner_dto in dto.get_inner_nodes():
            dtos[inner_dto.id] = inner_dto
        dtos[dto.id] = dto

    entries: list[tuple[str, dict[str, Any]]] = []
    for dto in list(dtos.values()):
        if dto.is_virtual or dto.mode == MODE_NEVER or dto.mode == MODE_BYPASS:
            continue
        if check_node is not None:
            check_node(dto)
        inputs: list[tuple[str, Any]] = []
        for widget in dto.node.widgets:
            if not truthy(widget.name) or not widget.in_prompt:
                continue
            value = serialize_widget(widget, dto.graph, rng)
            inputs.append((to_js_string(widget.name), {"__value__": value} if isinstance(value, list) else value))
        for index, (_, name, _) in enumerate(dto.inputs):
            resolved = dto.resolve_input(index)
            if resolved is None:
                continue
            if resolved.has_widget:
                value = resolved.widget_value
                inputs.append((to_js_string(name), {"__value__": value} if isinstance(value, list) else value))
                continue
            inputs.append((to_js_string(name), [resolved.origin_id, _parse_int(resolved.origin_slot)]))
        ordered_inputs = js_object_order(_dedupe_last(inputs))
        class_type = dto.node.comfy_class
        entries.append((dto.id, {"inputs": ordered_inputs, "class_type": class_type, "_meta": {"title": dto.node.title}}))
    output = js_object_order(_dedupe_last(entries))
    for entry in output.values():
        inputs = entry["inputs"]
        for name in list(inputs):
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and value[0] not in output:
                del inputs[name]
    return output


def _dedupe_last(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Assigning an existing key keeps its first position but takes the last value."""
    positions: dict[str, int] = {}
    result: list[tuple[str, Any]] = []
    for key, value in items:
        if key in positions:
            result[positions[key]] = (key, value)
        else:
            positions[key] = len(result)
            result.append((key, value))
    return result


def _parse_int(value: Any) -> Any:
    """parseInt(origin_slot): of String(origin_slot), so 1e21 gives 1 and NaN or Infinity give null."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**21:
        return value
    return js_parse_int(to_js_string(value))
