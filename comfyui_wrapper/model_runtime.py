"""The runtime side of a model made by ``new-model``: one stored workflow, a few typed inputs.

A generated predict.py declares its inputs and hands their values here.
``WorkflowModel`` keeps the workflow (API format) and the map from each
exposed name to the node input it sets; a prediction copies the workflow,
sets the values and runs it through the same ``WorkflowRunner`` as the
any-workflow model, so errors, progress, metrics and isolation are the same.

Why the weights are fetched in ``setup()``: the workflow is fixed, so its
weights are known when the model is made (``weights.json``, written by
new-model). Fetching them before the first prediction (in parallel, verified,
into the cache) means no prediction waits on a download; when they were baked
into the image (``bake_weights.py``) the fetch finds them cached and costs
nothing.
"""

from __future__ import annotations

import copy
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from . import workflow as wf
from .errors import UnknownWeightError, WorkflowError
from .inputs.source import check_input_origin, forget_cog_download
from .logs import get_logger
from .runner import RunRequest, RunResult, WorkflowRunner
from .settings import Settings
from .weights.cache import EnsureReport, WeightCache
from .weights.manifest import Manifest, WeightSpec

log = get_logger(__name__)

WORKFLOW_FILE = "workflow_api.json"
WEIGHTS_FILE = "weights.json"
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


# "value": the input is set to the value; "path": the value is a file, placed in input/ and its name set.
ExposedKind = Literal["value", "path"]
PATH_KIND: ExposedKind = "path"


@dataclass(frozen=True)
class Exposed:
    """One exposed input: the node input it sets, and whether the value is an uploaded file."""

    node_id: str
    input_name: str
    kind: ExposedKind = "value"


def load_weights_listing(path: Path, manifest: Manifest) -> tuple[list[WeightSpec], list[tuple[str, str]]]:
    """weights.json -> (manifest specs, (url, folder) pairs); an entry the manifest lacks is an error."""
    if not path.exists():
        return [], []
    data = json.loads(path.read_text(encoding="utf-8"))
    specs: list[WeightSpec] = []
    missing: list[str] = []
    for entry in data.get("weights", []):
        spec = manifest.get(str(entry.get("name", "")))
        if spec is None:
            missing.append(str(entry.get("name")))
        else:
            specs.append(spec)
    if missing:
        raise UnknownWeightError(
            f"{path.name} lists weights the weights manifest does not have: {', '.join(missing)}.",
            fix="Regenerate the model with new-model from a checkout whose weights_manifest.json has them.",
        )
    urls = [(str(u["url"]), str(u["folder"])) for u in data.get("urls", [])]
    return specs, urls


def fetch_listed_weights(cache: WeightCache, manifest: Manifest, listing: Path) -> EnsureReport:
    """Every weight in ``listing`` present and verified in ``cache`` (parallel; cached ones cost nothing)."""
    specs, urls = load_weights_listing(listing, manifest)
    report = cache.ensure_all(specs, urls=urls)
    log.info("Weights ready: %d downloaded (%d bytes in %.1f s), %d already cached.",
             report.downloaded, report.bytes, report.seconds, report.hits)
    return report


class WorkflowModel:
    """A fixed workflow with named inputs, run by a WorkflowRunner."""

    def __init__(self, folder: Path, exposed: Mapping[str, tuple[str, str, ExposedKind]],
                 settings: Settings | None = None) -> None:
        self.folder = Path(folder)
        self.workflow: wf.Workflow = wf.check_shape(
            wf.parse_workflow((self.folder / WORKFLOW_FILE).read_text(encoding="utf-8")))
        self.exposed = {name: Exposed(*spec) for name, spec in exposed.items()}
        self.settings = settings or Settings.from_env()
        self.runner: WorkflowRunner | None = None
        self.setup_report: EnsureReport | None = None

    def setup(self) -> None:
        """Start ComfyUI and fetch the workflow's weights, so predictions download nothing."""
        self.runner = WorkflowRunner(self.settings)
        self.runner.start()
        self.setup_report = fetch_listed_weights(self.runner.cache, self.runner.manifest,
                                                 self.folder / WEIGHTS_FILE)

    def workflow_with(self, values: Mapping[str, Any], file_names: Mapping[str, str] | None = None) -> wf.Workflow:
        """A copy of the workflow with each exposed value set (files by the name they get in input/)."""
        unknown = sorted(set(values) - set(self.exposed))
        if unknown:
            raise WorkflowError(f"Unknown input(s) {', '.join(unknown)}; this model takes {', '.join(self.exposed)}.")
        result = copy.deepcopy(self.workflow)
        for name, value in values.items():
            target = self.exposed[name]
            if target.kind == PATH_KIND:
                value = (file_names or {})[name]
            result[target.node_id].setdefault("inputs", {})[target.input_name] = value
        return result

    def run(self, values: Mapping[str, Any], *, output_format: str = "webp", output_quality: int = 95,
            randomise_seeds: bool = False, local_files: bool = False) -> RunResult:
        """One prediction: files go into input/ as one tar (each named after its input), then the runner runs.

        A file value must be what Cog downloaded for this request (never a path already on the
        server, which ``cog.types.Path`` would make of any other string), unless the caller owns
        its files (``local_files``: Python callers, tests). The tar is ours, so it goes in as local.
        """
        if self.runner is None:
            raise RuntimeError("WorkflowModel.setup() must run before run()")
        files = {name: value for name, value in values.items()
                 if self.exposed.get(name, Exposed("", "")).kind == PATH_KIND and value is not None}
        try:
            for value in files.values():
                check_input_origin(value, local_allowed=local_files)
            with tempfile.TemporaryDirectory(prefix="cw-model-") as tmp:
                archive, names = _pack_files({n: Path(v) for n, v in files.items()}, Path(tmp)) if files else (None, {})
                workflow = self.workflow_with(values, names)
                return self.runner.run(RunRequest(
                    workflow_json=json.dumps(workflow), input_file=archive, output_format=output_format,
                    output_quality=output_quality, randomise_seeds=randomise_seeds, input_file_is_local=True))
        finally:
            for value in files.values():
                forget_cog_download(value)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()


def input_file_name(name: str, source: Path) -> str:
    """The name an uploaded file gets in input/: the input's name plus the upload's extension."""
    suffix = source.suffix.lower()
    return name + (suffix if _SAFE_SUFFIX.match(suffix) else "")


def _pack_files(files: Mapping[str, Path], tmp: Path) -> tuple[Path, dict[str, str]]:
    """One uncompressed tar holding each file under its input's name (the runner unpacks it into input/)."""
    archive = tmp / "inputs.tar"
    names: dict[str, str] = {}
    with tarfile.open(archive, "w") as tar:
        for name, source in files.items():
            names[name] = input_file_name(name, source)
            tar.add(str(source), arcname=names[name], recursive=False)
    return archive, names
