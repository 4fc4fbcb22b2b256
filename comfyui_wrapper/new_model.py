"""``new-model``: turn one workflow into its own typed Cog model.

    python -m comfyui_wrapper new-model WORKFLOW.json --out DIR \\
        [--input NAME=NODE_ID.INPUT[:description]]... [--object-info FILE] [--bake-weights]

Each ``--input`` exposes one literal node input under a Python name. Its Cog
type, range and choices come from ComfyUI's own node definitions
(/object_info), so the model's schema says what ComfyUI would accept. DIR
becomes a complete Cog project: predict.py (inputs written as literals only,
so Cog's static schema reader accepts it), the workflow in API format, the
OpenAPI schema (written by the project's own scripts/write_openapi_schema.py),
custom_nodes.json trimmed to the packs the workflow uses, the weights it needs
(weights.json), cog.yaml, a README, and a copy of this package, its scripts
and requirements, so the model stands alone and follows the checkout's build.

Why everything is written into a temporary folder beside DIR and renamed at
the end: a bad ``--input`` or a failing step must leave DIR untouched.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import keyword
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from . import workflow as wf
from .errors import MissingInputError, ModelInputError, redact

# One definition of an upload-style input (the frontend's upload button), shared with input checking.
from .inputs.references import is_upload_input
from .model_runtime import PATH_KIND, WEIGHTS_FILE, WORKFLOW_FILE, ExposedKind
from .nodes.catalogue import NodeCatalogue
from .nodes.packs import PackSpec, nodes_by_pack
from .object_info import combo_choices, input_spec, node_inputs, spec_options
from .outputs import OUTPUT_FORMATS
from .plan import Plan
from .weights.refs import apply_rewrites

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent
STANDARD_INPUTS = ("output_format", "output_quality", "randomise_seeds")
# What a generated model needs from the checkout, copied as it is at generation time.
COPIED = ("comfyui_wrapper", "scripts", "requirements", "cog.yaml", "weights_manifest.json", ".dockerignore", ".gitignore",
          "custom_nodes_measured.json")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
_INPUT_FLAG = re.compile(r"^(?P<name>[^=]*)=(?P<node>[^.]+)\.(?P<input>[^:]+)(?::(?P<description>.*))?$", re.S)
_MAX_DESCRIPTION = 300


@dataclass(frozen=True)
class InputFlag:
    """One ``--input NAME=NODE_ID.INPUT[:description]`` as given."""

    name: str
    node_id: str
    input_name: str
    description: str | None = None

    @property
    def flag(self) -> str:
        return f"--input {self.name}={self.node_id}.{self.input_name}"


PyType = Literal["int", "float", "str", "bool", "Path"]  # the annotation an exposed input gets in predict.py


@dataclass(frozen=True)
class ModelInput:
    """An exposed input, typed: what predict.py declares for it."""

    name: str
    node_id: str
    input_name: str
    py_type: PyType
    description: str
    default: Any = None  # None for Path inputs (required)
    ge: float | int | None = None
    le: float | int | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def kind(self) -> ExposedKind:
        return PATH_KIND if self.py_type == "Path" else "value"


@dataclass
class Generated:
    out: Path
    inputs: list[ModelInput]
    suggested: bool  # the inputs were suggested (no --input given)
    packs: list[str]
    weights: list[dict[str, Any]]
    urls: list[dict[str, str]]
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


# --- parsing and typing ----------------------------------------------------------------


def parse_input_flag(text: str) -> InputFlag:
    match = _INPUT_FLAG.match(text.strip())
    if not match:
        raise ModelInputError(f"--input {text!r} is not of the form NAME=NODE_ID.INPUT[:description].", flag=text)
    description = (match.group("description") or "").strip() or None
    return InputFlag(match.group("name").strip(), match.group("node").strip(), match.group("input").strip(),
                     description)


def _node_inputs_listing(workflow: wf.Workflow, node_id: str, object_info: Mapping[str, Any]) -> str:
    node = workflow[node_id]
    names = list(dict.fromkeys([*node.get("inputs", {}), *node_inputs(object_info, node["class_type"])]))
    parts = []
    for name in names:
        value = node.get("inputs", {}).get(name)
        parts.append(f"{name} (linked)" if wf.is_link(value) else name)
    return ", ".join(parts) or "none"


def _finite(number: Any) -> bool:
    return isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number) \
        and abs(number) < 1e300


def _one_line(text: str) -> str:
    """A description as one short plain line (Cog's static reader wants one plain string literal)."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_DESCRIPTION else line[: _MAX_DESCRIPTION - 1].rstrip() + "…"


def type_input(flag: InputFlag, workflow: wf.Workflow, object_info: Mapping[str, Any]) -> ModelInput:
    """The typed input for one flag; a ModelInputError with the fix when it cannot be exposed."""
    if flag.node_id not in workflow:
        ids = ", ".join(f"{nid} ({workflow[nid].get('class_type')})" for nid in sorted(workflow, key=wf.node_order_key))
        raise ModelInputError(f"--input {flag.name}: the workflow has no {wf.NodeInput(flag.node_id).describe()}. "
                              f"Its nodes: {ids}.",
                              fix="Use one of the node ids listed (the keys of the API-format workflow).",
                              node_id=flag.node_id)
    node = workflow[flag.node_id]
    class_type = node["class_type"]
    inputs = node.get("inputs", {})
    spec = input_spec(object_info, class_type, flag.input_name)
    if flag.input_name not in inputs and spec is None:
        raise ModelInputError(
            f"--input {flag.name}: {wf.NodeInput.of(workflow, flag.node_id, flag.input_name).describe()} does not "
            f"exist. Its inputs: {_node_inputs_listing(workflow, flag.node_id, object_info)}.",
            fix="Use one of the input names listed; only literal (not linked) ones can be exposed.",
            node_id=flag.node_id, input_name=flag.input_name)
    options = spec_options(spec)
    value = inputs.get(flag.input_name, options.get("default"))
    if wf.is_link(value):
        raise ModelInputError(
            f"--input {flag.name}: {wf.NodeInput.of(workflow, flag.node_id, flag.input_name).describe()} is linked "
            f"to output {value[1]} of {wf.NodeInput.of(workflow, str(value[0])).describe()}; only literal inputs "
            "can be exposed.",
            fix=f"Expose the literal input of node {value[0]} that feeds it instead (or a widget of another node).",
            node_id=flag.node_id, input_name=flag.input_name)
    title = wf.node_title(workflow, flag.node_id)
    description = flag.description or _built_description(flag.input_name, title, flag.node_id, options)
    kind = spec[0] if spec else None
    if is_upload_input(options):
        return ModelInput(flag.name, flag.node_id, flag.input_name, "Path", _one_line(description))
    if isinstance(kind, list) or kind == "COMBO":
        choices = combo_choices(spec) or []
        if value is not None and value not in choices:
            choices.append(value)
        if not choices:
            return _plain(flag, description, value, "str")
        py_type: PyType = "str" if all(isinstance(c, str) for c in choices) else _python_type(value, flag)
        return ModelInput(flag.name, flag.node_id, flag.input_name, py_type, _one_line(description), value,
                          choices=tuple(choices))
    if kind in ("INT", "FLOAT"):
        py_type = "int" if kind == "INT" else "float"
        if value is None:
            raise _no_value(flag, workflow)
        default = int(value) if py_type == "int" else float(value)
        cast = int if py_type == "int" else float
        low = cast(options["min"]) if _finite(options.get("min")) else None
        high = cast(options["max"]) if _finite(options.get("max")) else None
        # The range always admits the default: a request that leaves the input out must validate.
        return ModelInput(flag.name, flag.node_id, flag.input_name, py_type, _one_line(description), default,
                          ge=None if low is None else min(low, default), le=None if high is None else max(high, default))
    if kind == "BOOLEAN":
        return _plain(flag, description, bool(value) if value is not None else False, "bool")
    if kind == "STRING":
        return _plain(flag, description, "" if value is None else str(value), "str")
    if value is None:
        raise _no_value(flag, workflow)
    return _plain(flag, description, value, _python_type(value, flag))


def _plain(flag: InputFlag, description: str, value: Any, py_type: PyType) -> ModelInput:
    return ModelInput(flag.name, flag.node_id, flag.input_name, py_type, _one_line(description), value)


def _python_type(value: Any, flag: InputFlag) -> PyType:
    # bool before int: True is an int too.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise ModelInputError(
        f"--input {flag.name}: the value of {wf.NodeInput(flag.node_id, input_name=flag.input_name).describe()} "
        f"is a {type(value).__name__}, "
        "which has no Cog type.", fix="Expose a number, text, boolean, choice or file input.",
        node_id=flag.node_id, input_name=flag.input_name)


def _no_value(flag: InputFlag, workflow: wf.Workflow) -> ModelInputError:
    return ModelInputError(
        f"--input {flag.name}: {wf.NodeInput.of(workflow, flag.node_id, flag.input_name).describe()} has no value "
        "and its definition gives no default.", fix="Set the input in ComfyUI and export the workflow again.",
        node_id=flag.node_id, input_name=flag.input_name)


def _built_description(input_name: str, title: str, node_id: str, options: Mapping[str, Any]) -> str:
    text = f"{input_name.replace('_', ' ').capitalize()} of \u201c{title}\u201d (node {node_id})."
    tooltip = options.get("tooltip")
    return f"{text} {tooltip}" if isinstance(tooltip, str) and tooltip.strip() else text


def check_names(flags: Sequence[InputFlag]) -> None:
    """Names must be Python identifiers, unique, not a standard input; one target per name."""
    seen: dict[str, InputFlag] = {}
    targets: dict[tuple[str, str], str] = {}
    for flag in flags:
        if not flag.name.isidentifier() or keyword.iskeyword(flag.name) or flag.name.startswith("_") \
                or flag.name == "self":
            raise ModelInputError(
                f"--input name {flag.name!r} is not usable as a Python parameter name.",
                fix="Use letters, digits and underscores, starting with a letter (for example negative_prompt).",
                name=flag.name)
        if flag.name in STANDARD_INPUTS:
            raise ModelInputError(
                f"--input name {flag.name!r} clashes with a standard input of every generated model "
                f"({', '.join(STANDARD_INPUTS)}).", fix=f"Pick another name, such as {flag.name}_value.",
                name=flag.name)
        if flag.name in seen:
            raise ModelInputError(f"--input name {flag.name!r} is given twice ({seen[flag.name].flag} and {flag.flag}).",
                                  fix="Give each exposed input its own name.", name=flag.name)
        target = (flag.node_id, flag.input_name)
        if target in targets:
            raise ModelInputError(
                f"--input {flag.name} and --input {targets[target]} both set {flag.node_id}.{flag.input_name}.",
                fix="Expose each node input once.", name=flag.name)
        seen[flag.name] = flag
        targets[target] = flag.name


# --- suggestions ------------------------------------------------------------------------


def suggest_inputs(workflow: wf.Workflow, object_info: Mapping[str, Any]) -> list[InputFlag]:
    """A first set to expose: prompts, seeds, uploaded files, latent size, steps."""
    found: list[tuple[str, str, str]] = []  # (base name, node id, input)
    order = sorted(workflow, key=wf.node_order_key)

    def literal(node_id: str, name: str) -> bool:
        inputs = workflow[node_id].get("inputs", {})
        return name in inputs and not wf.is_link(inputs[name])

    for node_id in order:  # prompts: the text a sampler's positive/negative conditioning comes from
        for role, base in (("positive", "prompt"), ("negative", "negative_prompt")):
            link = workflow[node_id].get("inputs", {}).get(role)
            if wf.is_link(link) and str(link[0]) in workflow:
                source = str(link[0])
                for name in ("text", "text_g", "prompt"):
                    spec = input_spec(object_info, workflow[source]["class_type"], name)
                    if literal(source, name) and (spec is None or spec[0] == "STRING"):
                        found.append((base, source, name))
                        break
    for node_id, name in wf.literal_seeds(workflow):
        found.append(("seed", node_id, name))
    for node_id in order:
        class_type = workflow[node_id]["class_type"]
        for name in workflow[node_id].get("inputs", {}):
            options = spec_options(input_spec(object_info, class_type, name))
            if is_upload_input(options) and literal(node_id, name):
                found.append(("video" if options.get("video_upload") else
                              "audio" if options.get("audio_upload") else "image", node_id, name))
        if "Latent" in class_type:
            found += [(n, node_id, n) for n in ("width", "height") if literal(node_id, n)]
        if literal(node_id, "steps") and isinstance(workflow[node_id]["inputs"]["steps"], int):
            found.append(("steps", node_id, "steps"))
    flags: list[InputFlag] = []
    used_targets: set[tuple[str, str]] = set()
    counts: dict[str, int] = {}
    for base, node_id, name in found:
        if (node_id, name) in used_targets:
            continue
        used_targets.add((node_id, name))
        counts[base] = counts.get(base, 0) + 1
        description = {"prompt": "What to generate.", "negative_prompt": "What to avoid in the result.",
                       "seed": "Random seed: the same seed and inputs give the same result."}.get(base)
        flags.append(InputFlag(base if counts[base] == 1 else f"{base}_{counts[base]}", node_id, name,
                               description if counts[base] == 1 else None))
    return flags


# --- the project folder -------------------------------------------------------------------


def used_packs(workflow: wf.Workflow, object_info: Mapping[str, Any], packs: Sequence[PackSpec],
               catalogue: NodeCatalogue | None) -> list[str]:
    """Names of our packs that provide the workflow's node classes (by ComfyUI's own module, else the catalogue)."""
    by_pack = nodes_by_pack(object_info, packs)
    ours = {p.name for p in packs}
    used: set[str] = set()
    for node in workflow.values():
        class_type = node["class_type"]
        hits = {name for name, classes in by_pack.items() if class_type in classes and name in ours}
        if not hits and class_type not in object_info and catalogue is not None and catalogue.loaded:
            hits = {p.name for p in catalogue.providers(class_type) if p.name in ours}
        used |= hits
    return sorted(used)


def _literal(value: Any) -> str:
    """A Python literal for a default/choice (repr is a literal for these types)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0.0"
    return repr(value)


def render_predict(inputs: Sequence[ModelInput], *, randomise_default: bool, source: str) -> str:
    params: list[str] = []
    for item in inputs:
        args = [f"description={_literal(item.description)}"]
        if item.py_type != "Path":
            args.append(f"default={_literal(item.default)}")
        if item.choices is not None:
            args.append("choices=[" + ", ".join(_literal(c) for c in item.choices) + "]")
        if item.ge is not None:
            args.append(f"ge={_literal(item.ge)}")
        if item.le is not None:
            args.append(f"le={_literal(item.le)}")
        params.append(f"        {item.name}: {item.py_type} = Input({', '.join(args)}),")
    seed_note = ("Give every seed in the workflow a new random value (the values used are in the logs)."
                 if randomise_default else
                 "Replace the seeds (the exposed one included) with random values; off, the seed input is used as given.")
    params += [
        "        output_format: str = Input(description=\"Format of the returned images. Videos, audio and other files "
        "are returned as they are.\", default=\"webp\", choices=[" + ", ".join(repr(f) for f in OUTPUT_FORMATS) + "]),",
        "        output_quality: int = Input(description=\"Quality of returned webp and jpg images, 0 to 100 "
        "(ignored for png).\", default=95, ge=0, le=100),",
        f"        randomise_seeds: bool = Input(description={_literal(seed_note)}, default={randomise_default!r}),",
    ]
    exposed = "\n".join(f"    {item.name!r}: ({item.node_id!r}, {item.input_name!r}, {item.kind!r})," for item in inputs)
    values = ", ".join(f"{item.name!r}: {item.name}" for item in inputs)
    return _PREDICT_TEMPLATE.format(source=_plain_name(source), exposed=exposed, params="\n".join(params),
                                    values=values)


_PREDICT_TEMPLATE = '''"""A Cog model for one ComfyUI workflow, made by `python -m comfyui_wrapper new-model` from {source}.

setup() starts ComfyUI and fetches the workflow's weights (weights.json); predict()
copies workflow_api.json, sets the inputs below and runs it through the same runner
as the any-comfyui-workflow model. Regenerate with new-model rather than editing by hand:
Cog reads these Input(...) declarations statically, so they stay plain literals.
"""

from __future__ import annotations

from cog import BasePredictor, Input, Path

from comfyui_wrapper.model_runtime import WorkflowModel
from comfyui_wrapper.server.progress import configure_logging

# Exposed input -> (node id, input name, "value" or "path") in workflow_api.json.
EXPOSED = {{
{exposed}
}}


class Predictor(BasePredictor):
    def setup(self) -> None:
        configure_logging()
        self.model = WorkflowModel(Path(__file__).resolve().parent, EXPOSED)
        self.model.setup()
        report = self.model.setup_report
        if report is not None:
            print(f"setup: {{report.downloaded}} weight(s) downloaded, {{report.hits}} already cached")

    def predict(
        self,
{params}
    ) -> list[Path]:
        result = self.model.run(
            {{{values}}},
            output_format=output_format, output_quality=output_quality, randomise_seeds=randomise_seeds,
        )
        for phase, seconds in result.timings.items():
            self.record_metric(f"{{phase}}_seconds", round(seconds, 4))
        for name, value in result.stats.items():
            self.record_metric(name, value)
        return [Path(path) for path in result.files]
'''


def render_readme(name: str, inputs: Sequence[ModelInput], weights: Sequence[dict[str, Any]],
                  urls: Sequence[dict[str, str]], packs: Sequence[str], bake: bool, source: str) -> str:
    def example(item: ModelInput) -> str:
        if item.py_type == "Path":
            return 'open("input.png", "rb")'
        return json.dumps(item.default) if item.py_type != "bool" else repr(bool(item.default))

    call = ",\n".join(f"        \"{item.name}\": {example(item)}" for item in inputs)
    table = "\n".join(f"| `{i.name}` | {i.py_type} | {_md(i.description)} | node {i.node_id} `{i.input_name}` |"
                      for i in inputs)
    weight_lines = [f"- `{w['folder']}/{w['name']}`" + (f" ({w['size']} bytes)" if w.get("size") else "")
                    for w in weights] + [f"- `{u['folder']}/` from {redact(u['url'])}" for u in urls]  # the README may be published
    build = ("python bake_weights.py   # fetches the weights into .cache/weights, which the image then carries\n"
             "scripts/cog_build.sh -t my-model" if bake else "scripts/cog_build.sh -t my-model")
    return f"""# {name}

A Cog model for one ComfyUI workflow, made with `python -m comfyui_wrapper new-model` from `{_plain_name(source)}`.
The workflow (API format) is `{WORKFLOW_FILE}`; `predict.py` sets the inputs below in it and runs it
with the same runner as the any-comfyui-workflow model.

## Inputs

| name | type | description | sets |
|---|---|---|---|
{table}
| `output_format` | str | webp, jpg or png | |
| `output_quality` | int | 0 to 100 (webp and jpg) | |
| `randomise_seeds` | bool | replace every seed with a random value | |

## Use it

```python
import replicate

output = replicate.run(
    "<your-user>/{name}",
    input={{
{call}
    }},
)
print(output)
```

## Weights

{chr(10).join(weight_lines) or "None."}

{"" if not weight_lines else "They are fetched at build time (`bake_weights.py`) and travel in the image." if bake else
 "`setup()` fetches them (in parallel, verified) before the first prediction, so predictions download nothing."}

## Custom node packs

{(", ".join(packs) + " (`custom_nodes.json`).") if packs else "None: the workflow uses only ComfyUI's own nodes."}

## Build

```sh
{build}
```

`.cog/openapi_schema.json` is written from `predict.py` by `scripts/write_openapi_schema.py`; run it again
after editing predict.py.
"""


def _plain_name(text: str) -> str:
    """A file name safe inside a docstring and Markdown (no quotes, backslashes or backticks)."""
    return re.sub(r"[^\w .,()+-]", "_", text)[:120]


def _md(text: str) -> str:
    return text.replace("|", "\\|")


_BAKE_SCRIPT = '''#!/usr/bin/env python3
"""Fetch this model's weights into .cache/weights before `cog build`, so the image carries them.

Run from this folder: python bake_weights.py. setup() then finds every weight cached
and downloads nothing. (.dockerignore lets .cache/weights into the image.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfyui_wrapper.weights.cache import WeightCache  # noqa: E402
from comfyui_wrapper.weights.manifest import Manifest  # noqa: E402
from comfyui_wrapper.model_runtime import WEIGHTS_FILE, fetch_listed_weights  # noqa: E402
from comfyui_wrapper.server.progress import configure_logging  # noqa: E402
from comfyui_wrapper.settings import Settings  # noqa: E402

if __name__ == "__main__":
    configure_logging()
    settings = Settings.from_env()
    manifest = Manifest.load(settings.manifest_path)
    cache = WeightCache(settings, manifest)
    try:
        fetch_listed_weights(cache, manifest, Path(__file__).resolve().parent / WEIGHTS_FILE)
    finally:
        cache.close()
'''


def weights_listing(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    refs = plan.weight_refs
    if refs is None:
        return [], []
    weights = [{"name": s.name, "folder": s.folder, **({"size": s.size} if s.size else {})} for s in refs.specs]
    urls = list({(u.url, u.folder): {"url": u.url, "folder": u.folder} for u in refs.urls}.values())
    return weights, urls


def _raise_blocking(plan: Plan, exposed_files: set[tuple[str, str]]) -> list[str]:
    """Plan errors that would make every prediction fail; missing files that become inputs are fine."""
    warnings: list[str] = []
    blocking = []
    for error in plan.errors:
        if isinstance(error, MissingInputError):
            missing = [i for i in plan.inputs if not i.present and (i.node_id, i.input_name) not in exposed_files]
            if missing:
                warnings.append("input files the workflow loads but no --input provides (they must be in the "
                                "image's input/ folder): " + ", ".join(f"{i.path} [{wf.NodeInput(i.node_id, input_name=i.input_name).describe()}]"
                                                        for i in missing))
            continue
        blocking.append(error)
    if blocking:
        plan.errors = blocking
        plan.raise_for_problems()
    return warnings


def write_schema(project: Path) -> None:
    """.cog/openapi_schema.json, by the copy of scripts/write_openapi_schema.py in ``project``.

    Run in this process (a fresh interpreter would cost most of a second): the
    writer imports ``predict`` from its own folder's parent, so the module name
    and sys.path are saved and restored around it. The generated predict.py
    imports this very package, which the copy in ``project`` duplicates.
    """
    script = project / "scripts" / "write_openapi_schema.py"
    saved_path, saved_predict = list(sys.path), sys.modules.pop("predict", None)
    try:
        spec = importlib.util.spec_from_file_location("_cw_new_model_schema_writer", script)
        assert spec is not None and spec.loader is not None
        writer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(writer)
        text = writer.render()
        with contextlib.redirect_stdout(io.StringIO()):  # its "wrote <staging path>" line would mislead
            writer.write_or_check(project / ".cog" / "openapi_schema.json", text, check=False,
                                  script="write_openapi_schema.py")
    except Exception as exc:  # noqa: BLE001 - any failure: the inputs made a predict.py Cog cannot read
        raise ModelInputError(f"Writing the OpenAPI schema for the new predict.py failed: {exc}",
                              fix="Check the inputs named above; this is a bug if they were accepted.") from exc
    finally:
        sys.path[:] = saved_path
        sys.modules.pop("predict", None)
        if saved_predict is not None:
            sys.modules["predict"] = saved_predict


def build_image_wheel(project: Path) -> None:
    """Rebuild ``project``'s image-build wheel (requirements/wheels/cw_build-*.whl) from its own files.

    The wheel carries custom_nodes.json into cog.yaml's ``run:`` step; the copy from the
    checkout would install every pack, not the trimmed list. The copied
    scripts/build_image_wheel.py packs it, the same way the checkout's is packed.
    """
    script = project / "scripts" / "build_image_wheel.py"
    spec = importlib.util.spec_from_file_location("_cw_new_model_wheel_builder", script)
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    with contextlib.redirect_stdout(io.StringIO()):
        if builder.main(["--root", str(project)]) != 0:
            raise ModelInputError("Packing the new model's image-build wheel failed.",
                                  fix="Run python scripts/build_image_wheel.py in the new folder to see why.")


def generate(
    workflow: wf.Workflow, out: Path, flags: Sequence[InputFlag] | None, *, object_info: Mapping[str, Any],
    plan_for: Callable[[wf.Workflow], Plan], packs: Sequence[PackSpec], catalogue: NodeCatalogue | None,
    bake_weights: bool = False, source: str = "a workflow", checkout: Path = CHECKOUT,
    custom_nodes_path: Path | None = None,
) -> Generated:
    """Write the model project into ``out`` (which must not exist or be empty); nothing is left on error."""
    began = time.monotonic()
    out = Path(out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelInputError(f"--out {out} already exists and is not empty.",
                              fix="Give a new folder (or remove the old one first).", out=str(out))
    suggested = not flags
    chosen = list(flags) if flags else suggest_inputs(workflow, object_info)
    check_names(chosen)
    inputs = [type_input(flag, workflow, object_info) for flag in chosen]
    plan = plan_for(workflow)
    warnings = _raise_blocking(plan, {(i.node_id, i.input_name) for i in inputs if i.kind == PATH_KIND})
    stored = apply_rewrites(workflow, plan.weight_refs.rewrites) if plan.weight_refs else workflow
    weights, urls = weights_listing(plan)
    pack_names = used_packs(workflow, object_info, packs, catalogue)
    has_seed = any(i.input_name in wf.SEED_INPUTS for i in inputs)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name in COPIED:
            source_path = checkout / name
            if source_path.is_dir():
                shutil.copytree(source_path, staging / name, ignore=_IGNORED)
            elif source_path.exists():
                shutil.copy2(source_path, staging / name)
        manifest_src = custom_nodes_path or checkout / "custom_nodes.json"
        nodes_data = json.loads(manifest_src.read_text(encoding="utf-8"))
        nodes_data["packs"] = [p for p in nodes_data.get("packs", []) if p.get("name") in pack_names]
        (staging / "custom_nodes.json").write_text(json.dumps(nodes_data, indent=2) + "\n")
        (staging / WORKFLOW_FILE).write_text(json.dumps(stored, indent=2) + "\n")
        (staging / WEIGHTS_FILE).write_text(json.dumps({"weights": weights, "urls": urls}, indent=2) + "\n")
        (staging / "predict.py").write_text(render_predict(inputs, randomise_default=not has_seed, source=source))
        (staging / "README.md").write_text(render_readme(out.name, inputs, weights, urls, pack_names,
                                                         bake_weights, source))
        if bake_weights:
            (staging / "bake_weights.py").write_text(_BAKE_SCRIPT)
            with (staging / ".dockerignore").open("a") as handle:
                handle.write("# bake_weights.py fills this; the image carries it\n!.cache/\n.cache/*\n!.cache/weights/\n")
        write_schema(staging)
        build_image_wheel(staging)  # the image build's wheel carries the trimmed custom_nodes.json
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Generated(out, inputs, suggested, pack_names, weights, urls, time.monotonic() - began, warnings)


def summary(result: Generated) -> str:
    lines = [f"wrote {result.out} in {result.seconds:.2f} s"]
    if result.suggested:
        lines.append("No --input given; exposed a suggested set. To choose yourself, pass:")
        lines.append("  " + " \\\n  ".join(
            f"--input {i.name}={i.node_id}.{i.input_name}" for i in result.inputs) if result.inputs else "  (nothing to suggest)")
    lines.append("inputs: " + ", ".join(f"{i.name}: {i.py_type}" for i in result.inputs))
    lines.append(f"weights: {len(result.weights) + len(result.urls)}; custom node packs: {', '.join(result.packs) or 'none'}")
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
