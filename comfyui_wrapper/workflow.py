"""Pure functions over API-format workflows: parse, check shape, find outputs, seeds.

An API-format workflow is ``{node_id: {"class_type": str, "inputs": {...},
"_meta": {"title": str}}}``. An input value that is a two-item list
``[node_id, output_index]`` is a link to another node's output; anything
else is a literal. Nothing here does I/O except ``load_workflow_text`` for
URLs and data: URIs.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UIFormatError, WorkflowError

Workflow = dict[str, dict[str, Any]]

EXAMPLE_WORKFLOW = Path(__file__).with_name("examples") / "text_to_image.json"
SEED_INPUTS = ("seed", "noise_seed", "rand_seed")
_MAX_SEED = 2**64 - 1


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2
        and isinstance(value[0], (str, int)) and isinstance(value[1], int) and not isinstance(value[1], bool)
    )


def node_title(workflow: Workflow, node_id: str) -> str:
    node = workflow.get(node_id) or {}
    return (node.get("_meta") or {}).get("title") or str(node.get("class_type", "?"))


def describe_node(workflow: Workflow, node_id: str) -> str:
    node = workflow.get(node_id) or {}
    return f"node {node_id} ({node.get('class_type', '?')}, \"{node_title(workflow, node_id)}\")"


def load_workflow_text(text: str, fetch_url: Callable[[str], str] | None = None) -> str:
    """workflow_json may be JSON, an http(s) URL to JSON, or a data: URI; empty = the example."""
    stripped = (text or "").strip()
    if not stripped:
        return EXAMPLE_WORKFLOW.read_text()
    lowered = stripped[:8].lower()
    if lowered.startswith("data:"):
        header, _, payload = stripped.partition(",")
        if ";base64" in header.lower():
            try:
                return base64.b64decode(payload, validate=False).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise WorkflowError("workflow_json is a data: URI whose base64 body could not be decoded.") from None
        return urllib.parse.unquote(payload)
    if lowered.startswith(("http://", "https://")):
        if fetch_url is None:
            raise WorkflowError("workflow_json is a URL, but URL fetching is not available here.")
        return fetch_url(stripped)
    return text


MAX_JSON_DEPTH = 64  # UI-format workflows (subgraphs, group nodes) reach about 12


def json_depth(data: Any) -> int:
    """How deeply dicts and lists nest in ``data``, measured without recursion (no RecursionError)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_workflow(text: str) -> dict[str, Any]:
    """Parse JSON text into a dict, with messages a user can act on."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"workflow_json is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            fix="Send the file's contents exactly as ComfyUI exported them (Workflow > Export (API)).",
        ) from None
    except RecursionError:
        too_deep = True  # nested past what the parser can hold: refused as any deep document
    else:
        too_deep = json_depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise WorkflowError(
            f"workflow_json is nested more than {MAX_JSON_DEPTH} levels deep; no workflow needs that.",
            fix="Send the workflow exactly as ComfyUI exported it (Workflow > Export (API)).",
        )
    if not isinstance(data, dict):
        raise WorkflowError(
            f"workflow_json must be a JSON object of nodes, not a {type(data).__name__}.",
        )
    # Some tools wrap the API workflow as {"prompt": {...}} (the body of POST /prompt).
    if set(data) >= {"prompt"} and isinstance(data.get("prompt"), dict) and not is_ui_format(data):
        inner = data["prompt"]
        if inner and all(isinstance(v, dict) and "class_type" in v for v in inner.values()):
            data = inner
    return data


def is_ui_format(data: Any) -> bool:
    """UI-format JSON (what Save writes) has a node list and links instead of node ids."""
    from .ui_format import is_ui_format as detect

    return detect(data)


def ui_format_error() -> UIFormatError:
    return UIFormatError(
        "workflow_json is in ComfyUI's UI format (it has 'nodes' and 'links'), but the API format is needed.",
        fix=(
            "In ComfyUI, open Settings, enable 'Dev mode', then use Workflow > Export (API) "
            "(older versions: the 'Save (API Format)' button) and send that file instead."
        ),
    )


def convert_if_ui(data: dict[str, Any], object_info: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """UI-format JSON becomes API format (exactly as ComfyUI's frontend would); API format passes as is."""
    if not is_ui_format(data):
        return data, False
    from .ui_format import convert

    return convert(data, object_info), True


def check_shape(data: dict[str, Any]) -> Workflow:
    """Check that every node has a class_type and inputs, and every link points at a node."""
    if is_ui_format(data):
        raise ui_format_error()
    if not data:
        raise WorkflowError("workflow_json has no nodes.", fix="Export a workflow that has nodes, in API format.")
    problems: list[str] = []
    for node_id, node in data.items():
        if not isinstance(node, dict):
            problems.append(f"- node {node_id!r} is a {type(node).__name__}, not an object")
            continue
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"- node {node_id!r} has no class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            problems.append(f"- node {node_id!r} has inputs that are not an object")
            continue
        for name, value in inputs.items():
            if is_link(value) and str(value[0]) not in data:
                problems.append(
                    f"- node {node_id!r} input '{name}' links to node {value[0]!r}, which is not in the workflow"
                )
    if problems:
        raise WorkflowError(
            "workflow_json is not a valid API-format workflow:\n" + "\n".join(problems),
            fix="Re-export the workflow with Workflow > Export (API); hand edits often break links.",
        )
    return data  # type: ignore[return-value]


def output_nodes(workflow: Workflow, object_info: dict[str, Any]) -> list[str]:
    """Node ids whose class is an output node, in output order."""
    ids = [nid for nid, node in workflow.items()
           if (object_info.get(node.get("class_type")) or {}).get("output_node")]
    return sorted(ids, key=node_order_key)


def node_order_key(node_id: str) -> tuple[tuple[int, ...], str]:
    """Order node ids as tuples of integer parts: 9 < 12 < 12:3 < 13 (never as text)."""
    parts: list[int] = []
    for piece in str(node_id).replace(".", ":").split(":"):
        parts.append(int(piece) if piece.isdigit() else -1)
    return tuple(parts), str(node_id)


def mark_outputs_fresh(workflow: Workflow, outputs: list[str], token: str) -> Workflow:
    """Give each output node one extra literal input unique to this run.

    ComfyUI caches node results by their inputs, so an identical second run
    would execute nothing and write no files into our fresh output folder.
    An extra input changes only the output nodes' cache keys: they run again
    (and write files) while everything upstream, loaded models included, is
    still served from ComfyUI's cache. ComfyUI ignores undeclared inputs.
    """
    fresh = copy.copy(workflow)
    for node_id in outputs:
        node = dict(fresh[node_id])
        node["inputs"] = {**node.get("inputs", {}), "cw_run": token}
        fresh[node_id] = node
    return fresh


@dataclass(frozen=True)
class SeedChange:
    node_id: str
    input_name: str
    old: int
    new: int


def randomise_seeds(
    workflow: Workflow, object_info: dict[str, Any], rng: random.Random | None = None
) -> tuple[Workflow, list[SeedChange]]:
    """New values for literal seed inputs, each within that input's own min/max.

    Linked seeds (``[node, index]``) are left alone: the node they come from
    decides. Returns a new workflow; the given one is not changed.
    """
    rng = rng or random.SystemRandom()
    result = copy.deepcopy(workflow)
    changes: list[SeedChange] = []
    for node_id, name in literal_seeds(result):
        inputs = result[node_id]["inputs"]
        low, high = seed_range(object_info, result[node_id].get("class_type", ""), name)
        new = rng.randint(low, high)
        changes.append(SeedChange(node_id, name, inputs[name], new))
        inputs[name] = new
    return result, changes


def literal_seeds(workflow: Workflow) -> list[tuple[str, str]]:
    """(node id, input name) of every seed input holding a number (not a link), in node order."""
    found = []
    for node_id in sorted(workflow, key=node_order_key):
        inputs = workflow[node_id].get("inputs", {})
        for name in SEED_INPUTS:
            value = inputs.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                found.append((node_id, name))
    return found


def seed_range(object_info: dict[str, Any], class_type: str, input_name: str) -> tuple[int, int]:
    definition = (object_info.get(class_type) or {}).get("input") or {}
    for section in ("required", "optional"):
        spec = (definition.get(section) or {}).get(input_name)
        if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict):
            options = spec[1]
            low = int(options.get("min", 0))
            high = int(options.get("max", _MAX_SEED))
            return max(low, 0), max(min(high, _MAX_SEED), max(low, 0))
    return 0, 2**32 - 1  # unknown node: a range every seed input accepts
