"""The pre-flight plan: everything a workflow needs, computed before anything runs.

One function, ``make_plan``, looks at a workflow (API format) with what the
container knows — node definitions, shipped packs, the weights manifest and
cache, the files in input/ — and lists: nodes and output nodes, unknown node
types with their packs, every weight with its status, every input file and
folder, every URL to fetch, the seeds that will be randomised, and the disk
the downloads need against the cache budget. Nothing is downloaded or
queued. The runner uses it for all its checks, so every problem is reported
at once; the CLI's ``plan`` command prints it (``--json`` for programs).

JSON schema (``Plan.as_dict()``, version 1) is documented in the README.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from . import workflow as wf
from .errors import CacheBudgetError, PreflightError, UnknownNodeError, WorkflowError, WrapperError, redact
from .inputs.paths import PathRoots, check_workflow_paths
from .inputs.references import InputKind, InputRef, check_input_references, missing_inputs_error
from .nodes.catalogue import NodeCatalogue
from .nodes.packs import ImportFailure, NodeProblem, PackSpec, check_nodes
from .sizes import human_bytes
from .urls import is_http_url
from .weights.declared import EmbeddedModel
from .weights.manifest import Manifest
from .weights.refs import Rewrite, UrlRef, WeightRefs, find_weights

PLAN_SCHEMA_VERSION = 1


WeightStatus = Literal["cached", "download", "url", "unknown"]  # a weight the workflow names, in the plan
UrlPurpose = Literal["input", "weight"]  # what a URL in the workflow is fetched as


@dataclass(frozen=True)
class WeightItem:
    node_id: str
    class_type: str
    input_name: str
    name: str
    folder: str | None
    status: WeightStatus
    size: int | None = None  # bytes to download (exact or estimated), when known
    url: str | None = None
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputItem:
    node_id: str
    class_type: str
    input_name: str
    path: str
    kind: InputKind
    present: bool


@dataclass(frozen=True)
class UrlItem:
    node_id: str
    input_name: str
    url: str  # secrets redacted
    purpose: UrlPurpose


@dataclass
class Plan:
    node_count: int
    output_nodes: list[str]
    converted_from_ui: bool = False
    node_problems: list[NodeProblem] = field(default_factory=list)
    weights: list[WeightItem] = field(default_factory=list)
    inputs: list[InputItem] = field(default_factory=list)
    urls: list[UrlItem] = field(default_factory=list)
    seeds: list[tuple[str, str]] = field(default_factory=list)
    download_bytes: int = 0
    download_unknown_sizes: int = 0
    budget_bytes: int = 0  # 0 = no budget
    free_bytes: int | None = None
    errors: list[WrapperError] = field(default_factory=list)
    weight_refs: WeightRefs | None = None
    input_refs: list[InputRef] = field(default_factory=list)

    @property
    def can_run(self) -> bool:
        return not self.errors

    def raise_for_problems(self) -> None:
        """One error for everything wrong: the specific class when only one kind of problem."""
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise self.errors[0]
        raise PreflightError(
            "The workflow cannot run; every problem found:\n\n"
            + "\n\n".join(f"{e.message}\nHow to fix: {e.fix}" for e in self.errors),
            fix="Fix each problem above; they are all listed, so one round is enough.",
            errors=self.errors,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "can_run": self.can_run,
            "node_count": self.node_count,
            "output_nodes": self.output_nodes,
            "converted_from_ui": self.converted_from_ui,
            "unknown_nodes": [_problem_dict(p) for p in self.node_problems],
            "weights": [asdict(w) | {"suggestions": list(w.suggestions)} for w in self.weights],
            "inputs": [asdict(i) for i in self.inputs],
            "urls": [asdict(u) for u in self.urls],
            "seeds": [{"node_id": n, "input_name": i} for n, i in self.seeds],
            "disk": {"download_bytes": self.download_bytes, "unknown_sizes": self.download_unknown_sizes,
                     "budget_bytes": self.budget_bytes, "free_bytes": self.free_bytes},
            "errors": [{"type": type(e).__name__, "message": e.message, "fix": e.fix} for e in self.errors],
        }

    def report(self) -> str:
        """Readable text for the CLI."""
        lines = [f"Workflow: {self.node_count} nodes, output nodes: {', '.join(self.output_nodes) or 'none'}"
                 + (" (converted from UI format)" if self.converted_from_ui else "")]
        if self.node_problems:
            lines.append("Unknown or unusable nodes:")
            lines += [f"  - {wf.NodeInput(p.node_id, p.class_type, p.title or '').describe()}: {p.kind}"
                      for p in self.node_problems]
        if self.weights:
            lines.append("Weights:")
            for w in self.weights:
                size = f", {human_bytes(w.size)}" if w.size else ""
                hint = f" (did you mean {', '.join(w.suggestions)}?)" if w.suggestions else ""
                where = wf.NodeInput(w.node_id, w.class_type, input_name=w.input_name).describe()
                lines.append(f"  - {w.status:8s} {w.folder or '?'}/{w.name}{size} [{where}]{hint}")
        if self.inputs:
            lines.append("Input files:")
            lines += [f"  - {'present' if i.present else 'MISSING':8s} {i.kind} {i.path} "
                      f"[{wf.NodeInput(i.node_id, i.class_type, input_name=i.input_name).describe()}]"
                      for i in self.inputs]
        if self.urls:
            lines.append("URLs to fetch:")
            lines += [f"  - {u.purpose:6s} {u.url} [{wf.NodeInput(u.node_id, input_name=u.input_name).describe()}]"
                      for u in self.urls]
        if self.seeds:
            lines.append("Seeds randomised: " + ", ".join(f"{n}.{i}" for n, i in self.seeds))
        budget = human_bytes(self.budget_bytes) if self.budget_bytes else "no limit"
        unknown = f" + {self.download_unknown_sizes} of unknown size" if self.download_unknown_sizes else ""
        lines.append(f"Downloads: {human_bytes(self.download_bytes)}{unknown}; cache budget {budget}; "
                     f"free disk {human_bytes(self.free_bytes, '?')}")
        lines.append("Ready to run." if self.can_run else f"Cannot run: {len(self.errors)} problem(s):")
        lines += [f"\n{e}" for e in self.errors]
        return "\n".join(lines)


@dataclass(frozen=True)
class PlanContext:
    """What the plan consults; the runner builds it once at setup."""

    object_info: dict[str, Any]
    manifest: Manifest
    folder_for: Callable[[str, str], str | None]
    on_disk: Callable[[str], bool]
    cached_names: Callable[[Sequence[Any]], set[str]]
    packs: Sequence[PackSpec] = ()
    catalogue: NodeCatalogue | None = None
    failed_imports: Sequence[ImportFailure] = ()
    input_dir: Path | None = None
    output_dir: Path | None = None  # default: input_dir's sibling "output"
    temp_dir: Path | None = None  # default: input_dir's sibling "temp"
    weights_dir: Path | None = None
    budget_bytes: int = 0
    embedded_models: Sequence[EmbeddedModel] = ()  # from a UI workflow's properties.models


def make_plan(workflow: wf.Workflow, ctx: PlanContext, *, randomise_seeds: bool = True,
              converted_from_ui: bool = False) -> Plan:
    plan = Plan(node_count=len(workflow), output_nodes=wf.output_nodes(workflow, ctx.object_info),
                converted_from_ui=converted_from_ui, budget_bytes=ctx.budget_bytes)
    try:  # a workflow that reaches outside its folders gets no further plan (nor any disk lookup)
        check_workflow_paths(workflow, _roots(ctx), ctx.object_info)
    except WrapperError as error:
        plan.errors.append(error)
        return plan
    _plan_nodes(plan, workflow, ctx)
    known = {nid: node for nid, node in workflow.items() if node.get("class_type") in ctx.object_info}
    if not plan.output_nodes and not plan.node_problems:
        plan.errors.append(WorkflowError(
            "The workflow has no output node, so it would produce nothing.",
            fix="Add a node that saves its result, such as SaveImage or VHS_VideoCombine.",
        ))
    _plan_weights(plan, known, ctx)
    _plan_inputs(plan, known, ctx)
    if randomise_seeds:
        plan.seeds = wf.literal_seeds(workflow)
    if ctx.weights_dir is not None:
        probe = ctx.weights_dir if ctx.weights_dir.exists() else ctx.weights_dir.parent
        while not probe.exists():
            probe = probe.parent
        plan.free_bytes = shutil.disk_usage(probe).free
    if plan.budget_bytes and plan.download_bytes > plan.budget_bytes:
        # Name the weights (largest first), so the user knows which ones to drop or swap.
        needed = sorted({(w.folder, w.name): w for w in plan.weights if w.status == "download" and w.size}.values(),
                        key=lambda w: -(w.size or 0))
        listed = ", ".join(f"{w.folder}/{w.name} {human_bytes(w.size)} [{wf.NodeInput(w.node_id).describe()}]"
                           for w in needed[:5])
        listed += f" and {len(needed) - 5} more" if len(needed) > 5 else ""
        plan.errors.append(CacheBudgetError(
            f"The weights this workflow still needs ({human_bytes(plan.download_bytes)}: {listed}) exceed the cache "
            f"budget ({human_bytes(plan.budget_bytes)}).",
            needed_bytes=plan.download_bytes, budget_bytes=plan.budget_bytes,
        ))
    return plan


def _roots(ctx: PlanContext) -> PathRoots:
    input_dir = ctx.input_dir or Path("input")
    return PathRoots(input=input_dir, output=ctx.output_dir or input_dir.parent / "output",
                     temp=ctx.temp_dir or input_dir.parent / "temp")


def _plan_nodes(plan: Plan, workflow: wf.Workflow, ctx: PlanContext) -> None:
    try:
        check_nodes(workflow, ctx.object_info, ctx.packs, ctx.catalogue, failed_imports=ctx.failed_imports)
    except UnknownNodeError as error:
        plan.node_problems = list(error.problems or [])
        plan.errors.append(error)


def _plan_weights(plan: Plan, workflow: wf.Workflow, ctx: PlanContext) -> None:
    refs = _use_embedded_urls(find_weights(workflow, ctx.manifest, ctx.object_info, ctx.folder_for, ctx.on_disk),
                              ctx.embedded_models)
    plan.weight_refs = refs
    cached = ctx.cached_names(refs.specs)
    counted: set[str] = set()
    for ref in refs.weights:
        spec = ref.spec
        status: WeightStatus = "cached" if spec.name in cached else "download"
        size = None if status == "cached" else (spec.size or spec.estimated_size)
        plan.weights.append(WeightItem(ref.where.node_id, ref.where.class_type, ref.where.input_name, spec.name,
                                       ref.folder, status, size, redact(spec.url)))
        if status == "download" and spec.name not in counted:
            counted.add(spec.name)
            if size:
                plan.download_bytes += size
            else:
                plan.download_unknown_sizes += 1
    for url_ref in refs.urls:
        plan.weights.append(WeightItem(url_ref.where.node_id, url_ref.where.class_type, url_ref.where.input_name,
                                       url_ref.url.rsplit("/", 1)[-1].split("?")[0], url_ref.folder, "url",
                                       url=redact(url_ref.url)))
        plan.urls.append(UrlItem(url_ref.where.node_id, url_ref.where.input_name, redact(url_ref.url), "weight"))
        plan.download_unknown_sizes += 1
    for unknown in refs.unknown:
        plan.weights.append(WeightItem(unknown.where.node_id, unknown.where.class_type, unknown.where.input_name,
                                       unknown.value, unknown.folder, "unknown", suggestions=unknown.suggestions))
    error = refs.error()
    if error is not None:
        plan.errors.append(error)


def _use_embedded_urls(refs: WeightRefs, embedded: Sequence[EmbeddedModel]) -> WeightRefs:
    """Unknown names that the UI workflow declares with a URL become weights given by URL."""
    by_name = {m.name: m for m in embedded if m.url}
    if not by_name or not refs.unknown:
        return refs
    urls, rewrites, unknown = list(refs.urls), list(refs.rewrites), []
    for item in refs.unknown:
        model = by_name.get(item.value)
        folder = item.folder or _plain_folder(model.directory if model else None)
        if model is None or not model.url or not folder:
            unknown.append(item)
            continue
        urls.append(UrlRef(item.where, model.url, folder))
        rewrites.append(Rewrite(item.where.node_id, item.where.input_name, item.value, model.url))
    return replace(refs, urls=tuple(urls), unknown=tuple(unknown), rewrites=tuple(rewrites))


def _plain_folder(directory: str | None) -> str | None:
    """A UI workflow's declared model directory, if it is one plain folder name.

    The value comes from the user's JSON; the cache refuses anything else
    ("loras/x", "../x", ".cache") with a bare ValueError at download time.
    """
    name = (directory or "").strip()
    if not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        return None
    return name


def _plan_inputs(plan: Plan, workflow: wf.Workflow, ctx: PlanContext) -> None:
    weight_inputs = {(u.where.node_id, u.where.input_name) for u in (plan.weight_refs.urls if plan.weight_refs else ())}
    for node_id in sorted(workflow, key=wf.node_order_key):
        for name, value in workflow[node_id].get("inputs", {}).items():
            if is_http_url(value) and (node_id, name) not in weight_inputs:
                plan.urls.append(UrlItem(node_id, name, redact(value), "input"))
    if ctx.input_dir is None:
        return
    try:
        refs = check_input_references(workflow, ctx.object_info, ctx.input_dir)
    except WrapperError as error:
        plan.errors.append(error)
        return
    plan.input_refs = refs
    plan.inputs = [InputItem(r.node_id, r.class_type, r.input_name, r.relative_path,
                             r.kind, r.exists) for r in refs]
    missing = missing_inputs_error(refs, ctx.input_dir)
    if missing is not None:
        plan.errors.append(missing)


def _problem_dict(problem: NodeProblem) -> dict[str, Any]:
    data = asdict(problem) if hasattr(problem, "__dataclass_fields__") else dict(vars(problem))
    return {key: (list(value) if isinstance(value, tuple) else value) for key, value in data.items()
            if isinstance(value, (str, int, float, bool, list, tuple, type(None)))}
