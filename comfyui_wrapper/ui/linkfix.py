"""What loadGraphData does to the JSON before building the graph.

With its default settings the frontend first checks the workflow against its
schema; only a workflow that passes is handed to ``fixBadLinks`` (adapted by
the frontend from rgthree's link fixer), which adds or removes link ids in
node outputs so that both ends of each link agree, and drops links that
neither end knows. Outputs' link lists decide, for instance, whether a
Primitive node sees its connections, so the converter repeats both steps.
"""

from __future__ import annotations

import re
from typing import Any

from .jsvalues import is_number, js_parse_int

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REPO_ID = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([\da-z-]+(?:\.[\da-z-]+)*))?(?:\+([\da-z-]+(?:\.[\da-z-]+)*))?$")
_GIT_HASH = re.compile(r"^[0-9a-f]{4,40}$", re.IGNORECASE)
_GH_USER = re.compile(r"^(?!-)(?!.*--)[a-zA-Z0-9-]+(?<!-)$")


class _Invalid(Exception):
    pass


def _num(v: Any) -> bool:
    return is_number(v)


def _int(v: Any) -> bool:
    return _num(v) and float(v).is_integer()


def _node_id(v: Any) -> bool:
    return _int(v) or isinstance(v, str)


def _slot_index(v: Any) -> Any:
    if _int(v):
        return v
    if isinstance(v, str):
        parsed = js_parse_int(v)
        return _fail() if parsed is None else parsed
    _fail()


def _fail() -> Any:
    raise _Invalid()


def _check(cond: bool) -> None:
    if not cond:
        raise _Invalid()


def _vector(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 2 and all(_num(x) for x in v):
        return v
    if isinstance(v, dict) and _num(v.get("0")) and _num(v.get("1")):
        return [v["0"], v["1"]]
    _fail()


def _data_type(v: Any) -> None:
    _check(isinstance(v, str) or _num(v) or (isinstance(v, list) and all(isinstance(x, str) for x in v)))


def _repo_id(v: Any) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= 100 and bool(_REPO_ID.match(v)) and not re.search(r"^[_\-.]|[_\-.]$", v)


def _properties(p: Any) -> None:
    _check(isinstance(p, dict))
    if "Node name for S&R" in p and p["Node name for S&R"] is not None:
        _check(isinstance(p["Node name for S&R"], str))
    if p.get("cnr_id") is not None:
        _check(_repo_id(p["cnr_id"]))
    if p.get("aux_id") is not None:
        aux = p["aux_id"]
        _check(isinstance(aux, str) and re.match(r"^[^/]+/[^/]+$", aux) is not None)
        user, repo = aux.split("/")
        _check(len(user) <= 39 and bool(_GH_USER.match(user)) and _repo_id(repo))
    if p.get("ver") is not None:
        ver = p["ver"]
        _check(isinstance(ver, str))
        if ver != "unknown":
            stripped = re.sub(r"^v", "", ver)
            _check(bool(_SEMVER.match(stripped)) or bool(_GIT_HASH.match(stripped)))
    if p.get("models") is not None:
        _check(isinstance(p["models"], list))
        for m in p["models"]:
            _model(m)


def _model(m: Any) -> None:
    _check(isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("directory"), str))
    _check(isinstance(m.get("url"), str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", m["url"]) is not None)
    for key in ("hash", "hash_type"):
        if key in m and m[key] is not None:
            _check(isinstance(m[key], str))


def _slots(items: Any, *, outputs: bool, subgraph_io: bool = False) -> None:
    _check(isinstance(items, list))
    for slot in items:
        _check(isinstance(slot, dict) and isinstance(slot.get("name"), str))
        if subgraph_io:
            _check(isinstance(slot.get("type"), str) and isinstance(slot.get("id"), str) and bool(_UUID.match(slot["id"])))
            if slot.get("linkIds") is not None:
                _check(isinstance(slot["linkIds"], list) and all(_num(x) for x in slot["linkIds"]))
        else:
            _data_type(slot.get("type"))
        if outputs:
            links = slot.get("links")
            _check(links is None or (isinstance(links, list) and all(_num(x) for x in links)))
        else:
            link = slot.get("link")
            _check(link is None or _num(link))
        if slot.get("slot_index") is not None:
            slot["slot_index"] = _slot_index(slot["slot_index"])


def _node(n: Any, *, instance: bool = False) -> None:
    _check(isinstance(n, dict) and _node_id(n.get("id")) and isinstance(n.get("type"), str))
    n["pos"] = _vector(n.get("pos"))
    n["size"] = _vector(n.get("size"))
    _check(isinstance(n.get("flags"), dict) and _num(n.get("order")) and _num(n.get("mode")))
    for key in ("collapsed", "pinned", "allow_interaction", "horizontal", "skip_repeated_outputs"):
        if n["flags"].get(key) is not None:
            _check(isinstance(n["flags"][key], bool))
    if n.get("inputs") is not None:
        _slots(n["inputs"], outputs=False)
    if n.get("outputs") is not None:
        _slots(n["outputs"], outputs=True)
    _properties(n.get("properties"))
    wv = n.get("widgets_values")
    _check(wv is None or isinstance(wv, (list, dict)))
    for key in ("color", "bgcolor"):
        if n.get(key) is not None:
            _check(isinstance(n[key], str))


def _link_array(link: Any) -> None:
    _check(isinstance(link, list) and len(link) == 6 and _num(link[0]) and _node_id(link[1]) and _node_id(link[3]))
    link[2] = _slot_index(link[2])
    link[4] = _slot_index(link[4])
    _data_type(link[5])


def _link_object(link: Any) -> None:
    _check(isinstance(link, dict) and _num(link.get("id")) and _node_id(link.get("origin_id")) and _node_id(link.get("target_id")))
    link["origin_slot"] = _slot_index(link.get("origin_slot"))
    link["target_slot"] = _slot_index(link.get("target_slot"))
    _data_type(link.get("type"))
    if link.get("parentId") is not None:
        _check(_num(link["parentId"]))


def _common(data: dict[str, Any]) -> None:
    if data.get("id") is not None:
        _check(isinstance(data["id"], str) and bool(_UUID.match(data["id"])))
    if data.get("revision") is not None:
        _check(_num(data["revision"]))
    if data.get("config") is not None:
        _check(isinstance(data["config"], dict))
    groups = data.get("groups")
    if groups is not None:
        _check(isinstance(groups, list))
        for g in groups:
            _check(isinstance(g, dict) and isinstance(g.get("title"), str))
            b = g.get("bounding")
            _check(isinstance(b, list) and len(b) == 4 and all(_num(x) for x in b))
    extra = data.get("extra")
    if extra is not None:
        _check(isinstance(extra, dict))
        ds = extra.get("ds")
        if ds is not None:
            _check(isinstance(ds, dict) and _num(ds.get("scale")))
            ds["offset"] = _vector(ds.get("offset"))
    models = data.get("models")
    if models is not None:
        _check(isinstance(models, list))
        for m in models:
            _model(m)
    if data.get("floatingLinks") is not None:
        _check(isinstance(data["floatingLinks"], list))
        for link in data["floatingLinks"]:
            _link_object(link)


def _workflow1(data: Any, *, subgraph: bool = False) -> None:
    _check(isinstance(data, dict) and data.get("version") == 1)
    _common(data)
    state = data.get("state")
    _check(isinstance(state, dict) and all(_num(state.get(k)) for k in ("lastGroupId", "lastNodeId", "lastLinkId", "lastRerouteId")))
    _check(isinstance(data.get("nodes"), list))
    for n in data["nodes"]:
        _node(n)
    if data.get("links") is not None:
        _check(isinstance(data["links"], list))
        for link in data["links"]:
            _link_object(link)
    if subgraph:
        _check(isinstance(data.get("id"), str) and bool(_UUID.match(data["id"])) and _num(data.get("revision")))
        _check(isinstance(data.get("name"), str))
        for key in ("inputNode", "outputNode"):
            io = data.get(key)
            _check(isinstance(io, dict) and _node_id(io.get("id")))
            b = io.get("bounding")
            _check(isinstance(b, list) and len(b) == 4 and all(_num(x) for x in b))
        for key in ("inputs", "outputs"):
            if data.get(key) is not None:
                _slots(data[key], outputs=False, subgraph_io=True)
        if data.get("widgets") is not None:
            _check(isinstance(data["widgets"], list) and all(isinstance(w, dict) and isinstance(w.get("id"), str) and isinstance(w.get("name"), str) for w in data["widgets"]))
    _definitions(data)


def _definitions(data: dict[str, Any]) -> None:
    definitions = data.get("definitions")
    if definitions is None:
        return
    _check(isinstance(definitions, dict) and isinstance(definitions.get("subgraphs"), list))
    for sub in definitions["subgraphs"]:
        _workflow1(sub, subgraph=True)


def _workflow04(data: Any) -> None:
    _check(isinstance(data, dict))
    _common(data)
    _check(_node_id(data.get("last_node_id")) and _num(data.get("last_link_id")) and _num(data.get("version")))
    _check(isinstance(data.get("nodes"), list) and isinstance(data.get("links"), list))
    for n in data["nodes"]:
        _node(n)
    for link in data["links"]:
        _link_array(link)
    _definitions(data)


def validate(data: Any) -> bool:
    """validateComfyWorkflow, applied in place (slot indexes become numbers); False if it fails."""
    try:
        if not isinstance(data, dict) or not _num(data.get("version")):
            return False
        if data["version"] == 1:
            _workflow1(data)
        else:
            _workflow04(data)
        return True
    except (_Invalid, TypeError, ValueError, AttributeError):
        return False


class _FixerThrew(Exception):
    pass


def fix_bad_links(graph: dict[str, Any]) -> dict[str, Any] | None:
    """fixBadLinks(graph, fix=true) on the serialised root graph; None where it would throw."""
    nodes: list[Any] = graph.get("nodes") or []
    patched: dict[str, dict[str, Any]] = {}
    deleted: list[Any] = []
    patched_nodes = 0

    by_id: dict[Any, dict[str, Any]] = {}
    for node in nodes:
        if isinstance(node, dict):
            by_id.setdefault(_id_key(node.get("id")), node)

    def find(node_id: Any) -> Any:
        """graph.nodes.find(n => n.id == id): loose equality, first match."""
        return by_id.get(_id_key(node_id))

    def key(node: dict[str, Any]) -> str:
        return str(node.get("id"))

    def patch(node: dict[str, Any], is_input: bool, slot: Any, link_id: Any, op: str) -> bool:
        nonlocal patched_nodes
        entry = patched.setdefault(key(node), {})
        if is_input:
            inputs = entry.setdefault("inputs", {})
            if slot in inputs:
                return False
            inputs[slot] = None if op == "REMOVE" else link_id
        else:
            outputs = entry.setdefault("outputs", {})
            if slot not in outputs:
                current = _output_links(node, slot)
                outputs[slot] = {"links": list(current or []), "changes": {}}
            state = outputs[slot]
            if link_id in state["changes"]:
                return False
            state["changes"][link_id] = op
            if op == "ADD":
                if link_id in state["links"]:
                    return False
                state["links"].append(link_id)
                node_outputs = node.setdefault("outputs", [])
                if not isinstance(node_outputs, list):
                    raise _FixerThrew()
                _push_output_link(node_outputs, slot, link_id)
            else:
                if link_id not in state["links"]:
                    return False
                index = state["links"].index(link_id)
                del state["links"][index]
                current = _output_links(node, slot)
                if current is None:
                    raise _FixerThrew()
                del current[index]
        patched_nodes += 1
        return True

    def has_link(node: dict[str, Any], is_input: bool, slot: Any, link_id: Any) -> bool:
        entry = patched.get(key(node), {})
        if is_input:
            node_has = _input_link(node, slot) == link_id and _input_link(node, slot, present=True)
            if "inputs" in entry:
                patched_has: bool = entry["inputs"].get(slot, _ABSENT) == link_id
                if bool(node_has) != patched_has:
                    raise _FixerThrew()
                return patched_has
            return bool(node_has)
        current = _output_links(node, slot)
        out_has = current is not None and link_id in current
        state = entry.get("outputs", {}).get(slot)
        if state is not None and state["changes"].get(link_id):
            patched_has = link_id in state["links"]
            if out_has != patched_has:
                raise _FixerThrew()
            return patched_has
        return out_has

    def has_any_link(node: dict[str, Any], slot: Any) -> bool:
        entry = patched.get(key(node), {})
        node_has_any = _input_link(node, slot, present=True) and _input_link(node, slot) is not None
        if "inputs" in entry:
            patched_any = entry["inputs"].get(slot, None) is not None
            if bool(node_has_any) != patched_any:
                raise _FixerThrew()
            return patched_any
        return bool(node_has_any)

    links = graph.get("links")
    if not isinstance(links, list):
        return graph
    try:
        extended = [(_extend(raw), raw) for raw in reversed(links) if raw]
        for link, _ in extended:
            origin = find(link["origin_id"])
            target = find(link["target_id"])
            if origin is None or target is None:
                if origin is None and target is not None:
                    if has_link(target, True, link["target_slot"], link["id"]):
                        patch(target, True, link["target_slot"], -1, "REMOVE")
                elif target is None and origin is not None:
                    if has_link(origin, False, link["origin_slot"], link["id"]):
                        patch(origin, False, link["origin_slot"], link["id"], "REMOVE")
                continue
            if has_link(target, True, link["target_slot"], link["id"]) or has_link(origin, False, link["origin_slot"], link["id"]):
                if not has_link(origin, False, link["origin_slot"], link["id"]):
                    patch(origin, False, link["origin_slot"], link["id"], "ADD")
                elif not has_link(target, True, link["target_slot"], link["id"]):
                    if not has_any_link(target, link["target_slot"]):
                        if not patch(target, True, link["target_slot"], link["id"], "ADD"):
                            patch(origin, False, link["origin_slot"], link["id"], "REMOVE")
                    else:
                        patch(origin, False, link["origin_slot"], link["id"], "REMOVE")
        for link, _ in extended:
            origin = find(link["origin_id"])
            target = find(link["target_id"])
            if (origin is None or not has_link(origin, False, link["origin_slot"], link["id"])) and (
                target is None or not has_link(target, True, link["target_slot"], link["id"])
            ):
                deleted.append(link["id"])
    except _FixerThrew:
        return None
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    for link_id in reversed(deleted):
        for index, raw in enumerate(links):
            if raw and ((isinstance(raw, list) and raw and raw[0] == link_id) or (isinstance(raw, dict) and raw.get("id") == link_id)):
                del links[index]
                break
        else:
            if links:
                del links[-1]  # splice(-1, 1): the frontend removes the last link when the id is not found
    graph["links"] = [raw for raw in links if raw]
    return graph


_ABSENT = object()

# JavaScript arrays hold indexes below 2**32 - 1; a larger or negative "index" is a plain property.
_JS_ARRAY_INDEX_LIMIT = 2**32 - 1
# No node has this many outputs. The frontend would grow a sparse array up to the slot; the port
# pads a real list, so one large number in a link would otherwise exhaust memory.
_MAX_OUTPUT_SLOT = 100_000


def _push_output_link(outputs: list[Any], slot: Any, link_id: Any) -> None:
    """``outputs[slot] ||= {}; (outputs[slot].links ||= []).push(link_id)`` on the saved node."""
    if not isinstance(slot, int):
        raise _FixerThrew()  # a float slot (the port indexes lists with ints only): as a throwing fixer
    if not 0 <= slot < _JS_ARRAY_INDEX_LIMIT:
        return  # a property of the array, which the slots' JSON clone in node.configure drops
    if slot >= _MAX_OUTPUT_SLOT:
        raise _FixerThrew()  # refused like a throwing fixer: loading goes on with the untouched workflow
    while len(outputs) <= slot:
        outputs.append({})
    if not isinstance(outputs[slot], dict):
        outputs[slot] = {}
    if outputs[slot].get("links") is None:
        outputs[slot]["links"] = []
    outputs[slot]["links"].append(link_id)


def _extend(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict) and raw.get("origin_slot") is not None:
        return raw
    if isinstance(raw, list):
        padded = list(raw) + [None] * (6 - len(raw))
        return {"id": padded[0], "origin_id": padded[1], "origin_slot": padded[2], "target_id": padded[3], "target_slot": padded[4], "type": padded[5]}
    if isinstance(raw, dict):
        return {"id": raw.get(0), "origin_id": raw.get(1), "origin_slot": raw.get(2), "target_id": raw.get(3), "target_slot": raw.get(4), "type": raw.get(5)}
    raise TypeError("bad link")


def _input_link(node: dict[str, Any], slot: Any, present: bool = False) -> Any:
    inputs = node.get("inputs")
    if not isinstance(inputs, list) or not isinstance(slot, int) or not (0 <= slot < len(inputs)) or not isinstance(inputs[slot], dict):
        return False if present else _ABSENT
    if present:
        return True
    return inputs[slot].get("link")


def _output_links(node: dict[str, Any], slot: Any) -> list[Any] | None:
    outputs = node.get("outputs")
    if not isinstance(outputs, list) or not isinstance(slot, int) or not (0 <= slot < len(outputs)) or not isinstance(outputs[slot], dict):
        return None
    links = outputs[slot].get("links")
    return links if isinstance(links, list) else None


def _id_key(value: Any) -> Any:
    """Equal keys for ids JavaScript's == treats as equal (5, 5.0 and "5")."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ("b", value)
    if is_number(value):
        return ("n", float(value))
    if isinstance(value, str):
        try:
            return ("n", float(value)) if value.strip() else ("s", value)
        except ValueError:
            return ("s", value)
    return ("o", id(value))
