"""Convert ComfyUI UI-format workflows (``nodes`` + ``links``) into API prompts.

Users often send the workflow file ComfyUI saves by default (the "UI format":
node positions, ``widgets_values`` lists, links as arrays) instead of the API
format ComfyUI's ``/prompt`` expects. :func:`convert` produces exactly what the
frontend's "Save (API format)" would write for the same file, frontend
1.32.9 being the reference: widget values mapped onto input names using the
node definitions from ``/object_info``, links resolved through reroutes,
bypassed nodes and subgraphs (ids ``outer:inner``), Primitive nodes' values
pushed into their targets, notes and muted nodes left out, ``_meta.title``
kept. Tests compare it with outputs recorded from the real frontend
(``scripts/ui_oracle.py``).

The work happens in three steps, each in its own module:

- ``linkfix``: schema check and link repair, as loadGraphData does first;
- ``graph`` (with ``nodedefs``, ``widgets``, ``groupnodes``):
  build and configure the graph the frontend would hold;
- ``prompt``: graphToPrompt over that graph.

Differences from the browser, on purpose: a node class this ComfyUI does not
know, a node only a live browser can serialise (webcam, 3D scene capture) and
a link the frontend cannot resolve raise :class:`UIFormatError` instead of
producing a prompt ComfyUI would reject; ``{a|b}`` dynamic prompts draw from
``rng`` (``random.Random``) rather than the browser's ``Math.random``; an object
``widgets_values`` on a node class from a custom node pack is applied by widget
name (what such packs' own frontend code does; the core frontend ignores it).
Not reproduced: custom node packs' frontend code (dynamic inputs, virtual
helper nodes such as rgthree's or KJNodes' Set/Get), and the Reroute
extension's deferred type check that may disconnect a mistyped link after load.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Mapping

from ..errors import GraphError, UIFormatError
from ..workflow import is_ui_format  # noqa: F401  (the converter's callers ask it first)
from .graph import (
    Graph,
    Node,
    PlaceholderNode,
    Registry,
    fix_link_input_slots,
    for_each_node,
    node_key,
)
from .jsvalues import json_clean, parse_json_int
from .linkfix import fix_bad_links, validate
from .nodedefs import BROWSER_ONLY_NODES, TYPE_RENAMES, NodeDefs, node_defs_for
from .prompt import DTO, graph_to_prompt, serialize_sync

__all__ = ["UIFormatError", "convert", "is_ui_format"]

API_EXPORT_FIX = (
    "Export the workflow in API format instead: open it in a ComfyUI that has this node, then use "
    "Workflow > Export (API) (older menus: enable Dev mode in Settings, then 'Save (API Format)') and "
    "send that file."
)


def convert(ui: Mapping[str, Any], object_info: Mapping[str, Any] | NodeDefs, *, rng: random.Random | None = None) -> dict[str, Any]:
    """The API prompt ComfyUI's frontend would produce for the UI workflow ``ui``.

    ``object_info`` is ComfyUI's ``/object_info`` (the raw dict). Raises
    :class:`UIFormatError` naming the node when the workflow cannot be
    converted.
    """
    if not is_ui_format(ui):
        raise UIFormatError(
            "This workflow is not in ComfyUI's UI format (it has no 'nodes' list).",
            fix="Send the workflow JSON exactly as ComfyUI saved or exported it.",
        )
    try:
        return _convert(ui, node_defs_for(object_info), rng if rng is not None else random.Random())
    except UIFormatError:
        raise
    except RecursionError:
        raise UIFormatError(
            "Cannot convert this UI-format workflow: its links or subgraphs nest too deeply (or contain "
            "themselves) to be resolved.",
            fix="Remove long reroute chains or self-referencing subgraphs in ComfyUI, or " + _FIX_TAIL,
        ) from None
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        raise UIFormatError(
            f"Cannot convert this UI-format workflow: part of it is malformed ({type(exc).__name__}: {exc}).",
            fix="Open and save it again in ComfyUI, or " + _FIX_TAIL,
        ) from None


_FIX_TAIL = "export it in API format instead (Workflow > Export (API)) and send that file."


def _check_structure(ui: Mapping[str, Any]) -> None:
    """Reject JSON whose shape no ComfyUI export has, naming where it goes wrong."""
    graphs: list[tuple[str, Any]] = [("the workflow", ui)]
    definitions = ui.get("definitions")
    if isinstance(definitions, dict) and isinstance(definitions.get("subgraphs"), list):
        for sub in definitions["subgraphs"]:
            if not isinstance(sub, dict) or not isinstance(sub.get("id"), str):
                raise _malformed("a subgraph definition has no id")
            graphs.append((f"subgraph '{sub.get('name', sub['id'])}'", sub))
    groups = (ui.get("extra") or {}).get("groupNodes") if isinstance(ui.get("extra"), dict) else None
    if isinstance(groups, dict):
        for name, group in groups.items():
            if not isinstance(group, dict) or not isinstance(group.get("nodes", []), list) or not isinstance(group.get("links", []), list):
                raise _malformed(f"group node '{name}' is not a valid group definition")
            for node in group.get("nodes", []):
                if not isinstance(node, dict):
                    raise _malformed(f"group node '{name}' has an entry that is not a node")
    for where, graph in graphs:
        nodes = graph.get("nodes", [])
        if not isinstance(nodes, list):
            raise _malformed(f"{where} has 'nodes' that is not a list")
        for index, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise _malformed(f"entry {index} of {where}'s nodes is not an object")
            node_id = node.get("id")
            if isinstance(node_id, bool) or not isinstance(node_id, (int, float, str)):
                raise _malformed(f"entry {index} of {where}'s nodes has no usable id ({node_id!r})")
            if not isinstance(node.get("type"), str):
                raise _malformed(f"node {node_key(node_id)} in {where} has no type")
            for key, link_key in (("inputs", "link"), ("outputs", "links")):
                slots = node.get(key)
                if slots is None:
                    continue
                if not isinstance(slots, list):
                    raise _malformed(f"node {node_key(node_id)} ({node['type']}) has {key} that is not a list")
                for slot in slots:
                    if slot is None:
                        continue
                    if not isinstance(slot, dict) or not isinstance(slot.get("name", ""), str):
                        raise _malformed(f"node {node_key(node_id)} ({node['type']}) has a malformed entry in {key}")
                    ids = slot.get(link_key)
                    ids = ids if key == "outputs" and isinstance(ids, list) else [ids]
                    if any(isinstance(i, (list, dict)) for i in ids):
                        raise _malformed(f"node {node_key(node_id)} ({node['type']}) has a malformed link id in {key}")
        links = graph.get("links", [])
        if links is not None and not isinstance(links, list):
            raise _malformed(f"{where} has 'links' that is not a list")
        for link in links or []:
            fields = link if isinstance(link, list) else list(link.values()) if isinstance(link, dict) else None
            if fields is None or any(isinstance(v, (list, dict)) for v in (fields[:5] if isinstance(link, list) else [link.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")])):
                raise _malformed(f"{where} has a malformed link: {json.dumps(link)[:80]}")
        for key in ("inputs", "outputs"):
            for io in graph.get(key, []) if where != "the workflow" and isinstance(graph.get(key), list) else []:
                link_ids = io.get("linkIds") if isinstance(io, dict) else None
                if not isinstance(io, dict) or not isinstance(link_ids or [], list) or any(isinstance(i, (list, dict)) for i in (link_ids or [])):
                    raise _malformed(f"{where} has a malformed {key[:-1]}")


def _malformed(what: str) -> UIFormatError:
    return UIFormatError(f"Cannot convert this UI-format workflow: {what}.", fix="Open and save it again in ComfyUI, or " + _FIX_TAIL)


def _convert(ui: Mapping[str, Any], defs: NodeDefs, rng: random.Random) -> dict[str, Any]:
    _check_structure(ui)
    graph = load_graph(ui, defs)
    unknown: list[DTO] = []

    def check(dto: DTO) -> None:
        node = dto.node
        if isinstance(node, PlaceholderNode):
            unknown.append(dto)
        elif node.comfy_class in BROWSER_ONLY_NODES:
            raise UIFormatError(
                f"Cannot convert {_where(node, dto.id)}: the frontend fills its value from a live browser "
                "(camera frame or rendered 3D scene), which a server cannot reproduce.",
                fix=API_EXPORT_FIX, node_id=dto.id, class_type=node.comfy_class,
            )

    try:
        output = graph_to_prompt(graph, rng, check_node=check)
    except GraphError as exc:
        if unknown:
            raise _unknown_error(unknown) from None
        raise _graph_error(exc) from None
    if unknown:
        raise _unknown_error(unknown)
    cleaned: dict[str, Any] = json_clean(output)
    return cleaned


def load_graph(ui: Mapping[str, Any], defs: NodeDefs) -> Graph:
    """app.loadGraphData(ui) up to the point graphToPrompt starts."""
    checked = _json_copy(ui)
    data: dict[str, Any] | None = None
    if validate(checked):
        data = fix_bad_links(checked)
    if data is None:  # the frontend goes on with its untouched copy
        data = _json_copy(ui)
    _rename_types(data)
    registry = Registry(defs)
    groups = (data.get("extra") or {}).get("groupNodes") if isinstance(data.get("extra"), dict) else None
    if isinstance(groups, dict) and groups:
        from .groupnodes import register_group_nodes

        register_group_nodes(registry, data, groups)
    graph = Graph(registry)
    try:
        graph.configure(data)
        # LGraph.onConfigure as the frontend wraps it
        fix_link_input_slots(graph)
        for node in list(for_each_node(graph)):
            if node.takes_widget_inputs_hooks:
                node.on_graph_configured()
        for node in list(for_each_node(graph)):
            node.on_after_graph_configured()
        _legacy_value_fixes(graph)
        serialize_sync(graph)  # afterLoadNewGraph serialises the graph once
    except GraphError as exc:
        raise _graph_error(exc) from None
    return graph


def _json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON data as the browser holds it (several times faster than copy.deepcopy).

    An integer beyond the double range becomes ±Infinity, as in JSON.parse.
    """
    try:
        copied: dict[str, Any] = json.loads(json.dumps(value), parse_int=parse_json_int)  # a Mapping comes back as a dict
        return copied
    except (TypeError, ValueError):
        return copy.deepcopy(dict(value))


def _rename_types(data: dict[str, Any]) -> None:
    lists = [data.get("nodes")]
    definitions = data.get("definitions")
    if isinstance(definitions, dict) and isinstance(definitions.get("subgraphs"), list):
        lists.extend(sub.get("nodes") for sub in definitions["subgraphs"] if isinstance(sub, dict))
    for nodes in lists:
        for node in nodes if isinstance(nodes, list) else []:
            if isinstance(node, dict) and node.get("type") in TYPE_RENAMES:
                node["type"] = TYPE_RENAMES[node["type"]]


def _legacy_value_fixes(graph: Graph) -> None:
    """loadGraphData's patches for old workflows (top-level nodes only, as in the frontend)."""
    for node in graph.nodes:
        for widget in node.widgets:
            if node.type in ("KSampler", "KSamplerAdvanced") and widget.name == "sampler_name":
                if isinstance(widget.value, str) and widget.value.startswith("sample_"):
                    widget.value = widget.value[7:]
            if node.type in ("KSampler", "KSamplerAdvanced", "PrimitiveNode") and widget.name == "control_after_generate":
                if widget.value is True:
                    widget.value = "randomize"
                elif widget.value is False:
                    widget.value = "fixed"


def _unknown_error(unknown: list[DTO]) -> UIFormatError:
    names = sorted({str(d.node.type) for d in unknown})
    listed = "; ".join(_where(d.node, d.id) for d in unknown[:10])
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    return UIFormatError(
        f"Cannot convert this UI-format workflow: it uses node class(es) this ComfyUI does not have "
        f"({', '.join(names)}): {listed}{more}.",
        fix=API_EXPORT_FIX + " Or ask for the custom node pack that provides it to be added.",
        node_id=unknown[0].id, class_type=unknown[0].node.type, missing_classes=names,
    )


def _where(node: Node, exec_id: str | None = None) -> str:
    title = node.title if isinstance(node.title, str) and node.title else None
    text = f"node {exec_id or node_key(node.id)} (type {node.type!r}"
    if title and title != node.type:
        text += f", title {title!r}"
    return text + ")"


def _graph_error(exc: GraphError) -> GraphError:
    """The reason raised inside the graph, as the user reads it: which node, and how to fix it."""
    node = exc.node
    where = _where(node) if node is not None else "the workflow"
    return GraphError(
        f"Cannot convert this UI-format workflow: {where}: {exc.message}.",
        fix="Repair the connection in ComfyUI and save again, or " + _FIX_TAIL,
        node_id=node_key(node.id) if node is not None else None,
    )
