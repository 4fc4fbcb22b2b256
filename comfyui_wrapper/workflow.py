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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UIFormatError, WorkflowError, printable
from .object_info import (
    class_info,
    combo_choices,
    has_hidden_inputs,
    input_spec,
    is_output_node,
    node_inputs,
    spec_options,
)

Workflow = dict[str, dict[str, Any]]

EXAMPLE_WORKFLOW = Path(__file__).with_name("examples") / "text_to_image.json"
SEED_INPUTS = ("seed", "noise_seed", "rand_seed")
_MAX_SEED = 2**64 - 1


def is_link(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2
        and isinstance(value[0], (str, int)) and isinstance(value[1], int) and not isinstance(value[1], bool)
    )


def meta_title(node: Any) -> str | None:
    """The title the user gave a node (``_meta.title``), or None; any shape of node is accepted."""
    meta = node.get("_meta") if isinstance(node, Mapping) else None
    title = meta.get("title") if isinstance(meta, Mapping) else None
    return title if isinstance(title, str) and title else None


def node_title(workflow: Workflow, node_id: str) -> str:
    """What to call a node in a message: its title, else its class."""
    node = workflow.get(node_id) or {}
    return meta_title(node) or str(node.get("class_type", "?"))


@dataclass(frozen=True)
class NodeInput:
    """Where in a workflow something is: a node, optionally one of its inputs and a place inside its value.

    The one way a message names a place in the workflow, so that one error
    never mixes formats: ``describe()`` gives ``node 7 "Reference photo"
    (LoadImage), input 'image'``, and ``at`` adds the keys and indexes inside
    a nested value (``at ['image'][0]``). Node ids, titles, input names and
    keys are the user's text: each goes through errors.printable.
    """

    node_id: str
    class_type: str = ""  # "" when unknown (a node that is not an object, an id from an event)
    title: str = ""  # the user's _meta.title; not shown when empty or the class name itself
    input_name: str = ""  # "" when the node as a whole is meant
    at: tuple[str | int, ...] = ()  # keys and indexes inside the input's value

    @classmethod
    def of(cls, workflow: Mapping[str, Any], node_id: str, input_name: str = "") -> NodeInput:
        """The node (and input) ``node_id`` names, with class and title read from ``workflow``.

        An id of a node expanded at run time (``"5:12"``, inside group node 5)
        that the workflow does not hold names its outer node.
        """
        node_id = str(node_id)
        if node_id not in workflow and node_id.split(":")[0] in workflow:
            node_id = node_id.split(":")[0]
        node = workflow.get(node_id)
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        return cls(node_id, class_type if isinstance(class_type, str) else "", meta_title(node) or "", input_name)

    def describe(self) -> str:
        text = f"node {printable(self.node_id, 80)}"
        if self.title and self.title != self.class_type:
            text += f' "{printable(self.title, 100)}"'
        if self.class_type:
            text += f" ({printable(self.class_type, 100)})"
        if self.input_name:
            text += f", input '{printable(self.input_name, 100)}'"
        if self.at:
            text += " at " + "".join(f"[{printable(repr(key), 60)}]" for key in self.at)
        return text


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
    """UI-format JSON (what Save writes: a ``nodes`` list plus ``links``), not an API prompt (node ids)."""
    if not isinstance(data, Mapping):
        return False
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return False
    if "links" in data:
        return True
    # version 1 exports may omit "links" when empty; an API prompt never has a list under "nodes".
    return "version" in data or "last_node_id" in data or "state" in data


def ui_format_error() -> UIFormatError:
    return UIFormatError(
        "workflow_json is in ComfyUI's UI format (it has 'nodes' and 'links'), but the API format is needed.",
        fix=(
            "In ComfyUI, open Settings, enable 'Dev mode', then use Workflow > Export (API) "
            "(older versions: the 'Save (API Format)' button) and send that file instead."
        ),
    )


def check_shape(data: dict[str, Any]) -> Workflow:
    """Check that every node has a class_type and inputs, and every link points at a node."""
    if is_ui_format(data):
        raise ui_format_error()
    if not data:
        raise WorkflowError("workflow_json has no nodes.", fix="Export a workflow that has nodes, in API format.")
    problems: list[str] = []
    for node_id, node in data.items():
        if not isinstance(node, dict):
            problems.append(f"- {NodeInput(str(node_id)).describe()} is a {type(node).__name__}, not an object")
            continue
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"- {NodeInput.of(data, str(node_id)).describe()} has no class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            problems.append(f"- {NodeInput.of(data, str(node_id)).describe()} has inputs that are not an object")
            continue
        for name, value in inputs.items():
            if is_link(value) and str(value[0]) not in data:
                problems.append(
                    f"- {NodeInput.of(data, str(node_id), str(name)).describe()} links to "
                    f"{NodeInput(str(value[0])).describe()}, which is not in the workflow"
                )
    if problems:
        raise WorkflowError(
            "workflow_json is not a valid API-format workflow:\n" + "\n".join(problems),
            fix="Re-export the workflow with Workflow > Export (API); hand edits often break links.",
        )
    return data  # type: ignore[return-value]


def output_nodes(workflow: Workflow, object_info: dict[str, Any]) -> list[str]:
    """Node ids whose class is an output node, in output order."""
    ids = [nid for nid, node in workflow.items() if is_output_node(object_info, str(node.get("class_type")))]
    return sorted(ids, key=node_order_key)


def node_order_key(node_id: str) -> tuple[tuple[int, ...], str]:
    """Order node ids as tuples of integer parts: 9 < 12 < 12:3 < 13 (never as text)."""
    parts: list[int] = []
    for piece in str(node_id).replace(".", ":").split(":"):
        parts.append(int(piece) if piece.isdigit() else -1)
    return tuple(parts), str(node_id)


RUN_TOKEN_INPUT = "cw_run"


def pure_nodes(
    workflow: Workflow,
    object_info: dict[str, Any],
    folder_for: Callable[[str, str], str | None],
    names_prediction_data: Callable[[str], bool],
) -> set[str]:
    """Nodes whose cached result may be reused by a later prediction; see ``mark_run``.

    A node is pure only if it is a model loader (at least one input reads a
    model folder, per the model folder map), not an output node, declares no
    hidden inputs (PROMPT, EXTRA_PNGINFO... carry the prediction itself), and
    every literal input it has is declared and is one of:
      - a model-folder file name: relative, no ``..``, no backslash, and not a
        name this prediction gave by URL (``names_prediction_data`` says so);
      - a number, a boolean or null;
      - a combo choice listed by /object_info that has no path separator and
        does not name anything in input/ or temp/ (``names_prediction_data``).
    Linked inputs are not judged here: ``mark_run`` makes a node impure through
    its ancestors anyway.
    """
    pure: set[str] = set()
    for node_id, node in workflow.items():
        class_type = str(node.get("class_type", ""))
        if (class_info(object_info, class_type) is None or is_output_node(object_info, class_type)
                or has_hidden_inputs(object_info, class_type)):
            continue
        specs = node_inputs(object_info, class_type)
        literals = {name: value for name, value in (node.get("inputs") or {}).items() if not is_link(value)}
        if not any(folder_for(class_type, name) for name in specs):
            continue
        if all(name in specs and _pure_literal(class_type, name, value, specs[name], folder_for, names_prediction_data)
               for name, value in literals.items()):
            pure.add(node_id)
    return pure


def _pure_literal(class_type: str, name: str, value: Any, spec: Any,
                  folder_for: Callable[[str, str], str | None], names_prediction_data: Callable[[str], bool]) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if not isinstance(value, str):
        return False  # lists and objects: a node may read anything from them
    if folder_for(class_type, name):
        parts = value.split("/")
        return bool(value) and not value.startswith("/") and "\\" not in value and ".." not in parts \
            and not names_prediction_data(value)
    choices = combo_choices(spec)
    return choices is not None and value in choices and "/" not in value and "\\" not in value \
        and not names_prediction_data(value)


def ancestors(workflow: Workflow, node_id: str) -> set[str]:
    """Every node ``node_id`` reads from, directly or through other nodes."""
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        for value in (workflow.get(stack.pop(), {}).get("inputs") or {}).values():
            if is_link(value) and str(value[0]) not in seen and str(value[0]) in workflow:
                seen.add(str(value[0]))
                stack.append(str(value[0]))
    return seen


def mark_run(workflow: Workflow, token: str, pure: set[str]) -> Workflow:
    """Give this run's token to every node whose result may depend on prediction data.

    Why this is complete. ComfyUI (comfy_execution/caching.py,
    CacheKeySetInputSignature) keys a node's cached output on its immediate
    signature -- class_type, its IS_CHANGED/fingerprint_inputs result, its node
    id if NOT_IDEMPOTENT or it takes UNIQUE_ID, and every input in the prompt,
    declared or not, links as (ancestor position, output index) -- followed by
    the immediate signatures of ALL its ancestors, recursively through every
    link. So a literal put into one node's inputs changes the key of that node
    and of every node downstream of it. Prediction data can reach a node's
    result only through (a) a literal input (then the data is in the key
    itself), (b) a linked input (then the producing node's key is in this
    key), or (c) what the node reads at run time outside its inputs: files in
    input/ or temp/, a URL, a directory listing, hidden inputs (PROMPT,
    EXTRA_PNGINFO). Case (c) is the leak. Every node that is not ``pure``
    (see pure_nodes: model loaders reading only model-folder names, numbers,
    booleans and input-free combo choices), and every node downstream of one,
    gets a token unique to this run. Hence every node that is impure, or has
    an impure ancestor, has a key no earlier prediction produced (the token is
    random, 128 bits, not the prompt id, and never returned: outputs carry no
    ComfyUI metadata), so only pure loaders whose whole ancestry is pure are
    reused: loaded checkpoints, LoRAs, VAEs, upscalers stay cached across
    predictions. (For the output cache the token on the topmost impure nodes
    would do; it is on every tainted node for the object cache, below.)

    The node objects. ComfyUI also keeps each node's Python object between
    prompts, keyed on (node id, class) (CacheKeySetID), so a class that keeps
    data on ``self`` (core LoraLoader keeps its last LoRA; a pack node may keep
    its last image) would hand it to the next prediction with the same
    workflow. server/launch.py adds the node's token to that key, so every
    tainted node gets a new object each prediction; pure loaders keep theirs.

    What the allowlist assumes: (1) model folders hold only weights put there
    by the image, the operator or the weight cache -- never a prediction's
    input (inputs go to input/; archives extract there), and a file of a given
    name in a model folder does not change while ComfyUI runs; weights fetched
    by URL for this prediction are treated as prediction data (their names are
    a short hash of the URL without its query secrets, so two URLs can share
    one); (2) a loader reads nothing but its inputs and model folders.
    Not covered (ComfyUI internals outside the prompt): the children a node
    expands into at run time are cached per parent and keyed only on their
    own inputs and links; module globals a class writes outlive every prompt.
    Neither is used that way by core nodes.
    """
    impure = set(workflow) - pure
    marked = copy.copy(workflow)
    for node_id in workflow:
        if node_id not in impure and not ancestors(workflow, node_id) & impure:
            continue
        node = dict(marked[node_id])
        node["inputs"] = {**(node.get("inputs") or {}), RUN_TOKEN_INPUT: token}
        marked[node_id] = node
    return marked


def strip_run_tokens(workflow: Workflow) -> Workflow:
    """The workflow without our run tokens (for anything handed back to the user)."""
    clean = copy.deepcopy(workflow)
    for node in clean.values():
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
            node["inputs"].pop(RUN_TOKEN_INPUT, None)
    return clean


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
    spec = input_spec(object_info, class_type, input_name)
    if spec is not None and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec_options(spec)
        low = int(options.get("min", 0))
        high = int(options.get("max", _MAX_SEED))
        return max(low, 0), max(min(high, _MAX_SEED), max(low, 0))
    return 0, 2**32 - 1  # unknown node: a range every seed input accepts
