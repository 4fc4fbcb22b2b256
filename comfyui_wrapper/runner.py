"""The one place that composes the rest: a prediction from JSON text to files.

reset folders -> parse (UI format converted) -> place input_file -> pre-flight
plan (unknown nodes, weights, input files, budget: every problem at once) ->
fetch workflow URLs -> ensure weights -> seeds -> queue -> wait -> collect ->
convert. Every phase is timed. Whatever fails, the per-prediction folders are
emptied, so nothing of one prediction is visible to the next, and ComfyUI is
left ready (or restarted by the next run).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import workflow as wf
from .errors import (
    ComfyUICrashedError,
    ConnectionLost,
    ExecutionError,
    ModelFolderMapError,
    NoOutputsError,
    PredictionInterruptedError,
    PredictionTimeoutError,
    hide_server_paths,
    printable,
)
from .inputs.archives import InputLimits
from .inputs.place import PlacedInputs, place_input_file, upload_name
from .inputs.references import absolutize_input_paths, require_inputs
from .inputs.source import check_input_origin, forget_cog_download, govern_cog_downloads, resolve_input_source
from .inputs.workflow_urls import fetch_workflow_urls
from .logs import get_logger
from .nodes.catalogue import NodeCatalogue
from .nodes.packs import (
    ImportFailure,
    PackSpec,
    load_packs,
    pack_commits,
    report_failed_imports,
    set_aside_packs,
    setup_report,
)
from .outputs import check_format, collect, deliver
from .plan import Plan, PlanContext, make_plan
from .provenance import shareable_workflow, write_provenance
from .server.client import ComfyUIClient
from .server.events import RunOutcome
from .server.process import ComfyUIServer, ServerState, nvidia_driver_version
from .server.progress import PhaseTimer, ProgressReporter
from .settings import Settings
from .ui.convert import convert as convert_ui
from .urls import Scope, UrlPolicy, fetch_text
from .weights.cache import URL_HASH_CHARS, WeightCache
from .weights.declared import EmbeddedModel, embedded_models
from .weights.folders import ModelFolderMap, default_map_path
from .weights.manifest import Manifest, WeightSpec
from .weights.refs import apply_rewrites, core_folder_for, rewrites_for_urls
from .weights.warm import WarmUp

log = get_logger(__name__)

# How the weight cache names the folder of a weight given by URL.
_URL_HASH_DIR = re.compile(f"[0-9a-f]{{{URL_HASH_CHARS}}}")

# Exceptions ComfyUI reports when a weight file on disk is damaged.
_CORRUPT_WEIGHT_SIGNS = ("SafetensorError", "HeaderTooLarge", "invalid load key", "PytorchStreamReader",
                         "unpickling", "incomplete metadata", "MetadataIncompleteBuffer", "file not fully covered")


@dataclass(frozen=True)
class RunRequest:
    """A prediction's inputs as plain Python values (predict.py and the CLI build one)."""

    workflow_json: str = ""
    input_file: Path | str | None = None  # a file Cog downloaded, an http(s) URL or data: URI...
    input_file_is_local: bool = False  # ...or, when True, a local path of the caller's own (CLI, Python)
    return_temp_files: bool = False
    output_format: str = "webp"
    output_quality: int = 95
    randomise_seeds: bool = True
    force_reset_cache: bool = False
    return_provenance: bool = False


@dataclass
class RunResult:
    files: list[Path]
    prompt_id: str
    seeds: list[wf.SeedChange] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    workflow: wf.Workflow = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)  # bytes downloaded, cache hits...


@dataclass
class LoadedWorkflow:
    """A workflow as the runner reads it: API format, whether it was converted, the models a UI file declared."""

    workflow: wf.Workflow
    converted: bool
    embedded: list[EmbeddedModel]


@dataclass
class _Prepared:
    """A workflow ready to queue, and what it took to get there."""

    workflow: wf.Workflow
    plan: Plan
    specs: list[WeightSpec]
    url_weights: dict[str, str] = field(default_factory=dict)  # url -> name in its folder
    seeds: list[wf.SeedChange] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    pure: set[str] = field(default_factory=set)  # nodes whose cached results later predictions may reuse
    tokens: list[str] = field(default_factory=list)  # the run tokens queued (never returned to the user)


class WorkflowRunner:
    """Owns one ComfyUI process and runs predictions on it, one at a time."""

    def __init__(self, settings: Settings) -> None:
        """Allocates only: nothing is read, opened or written until first use (``start``, ``plan``...).

        ``convert`` and ``plan --object-info`` construct a runner and must leave the disk as it was.
        """
        self.settings = settings
        self.weights_yaml = settings.runtime_dir / "weights_model_paths.yaml"  # written by start()
        self.server = ComfyUIServer(settings, extra_model_paths=[self.weights_yaml])
        self.client: ComfyUIClient | None = None
        self.failed_imports: list[ImportFailure] = []
        self._log_mark: int | None = None  # server.log_position() when the current prompt was queued
        self.url_policy = UrlPolicy(allow_private=settings.allow_private_urls, timeout_s=settings.url_timeout_s,
                                    total_timeout_s=settings.url_total_timeout_s)
        self.limits = InputLimits.from_settings(settings)
        self._scope = Scope()  # the current prediction's deadline and cancel (run() makes a new one)

    # --- loaded on first use ---------------------------------------------------------

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.load(self.settings.manifest_path)

    @cached_property
    def cache(self) -> WeightCache:
        """The weights cache; its folders and SQLite index appear when it is first written to."""
        return WeightCache(self.settings, self.manifest, log=log.info)

    @cached_property
    def folder_map(self) -> ModelFolderMap | None:
        try:
            return ModelFolderMap.load(default_map_path(self.settings.comfyui_dir))
        except ModelFolderMapError as error:
            log.warning("%s Falling back to the built-in table of core loaders.", error.message)
            return None

    @cached_property
    def packs(self) -> tuple[PackSpec, ...]:
        return load_packs()

    @cached_property
    def catalogue(self) -> NodeCatalogue:
        return NodeCatalogue(self.settings.comfyui_dir / "node_catalogue.json")

    def _write_weights_yaml(self) -> None:
        """Every folder ComfyUI knows gets its cache folder: ComfyUI reads this file only at boot,
        and a weight given by URL may land in a folder no manifest entry uses."""
        known_folders = self.folder_map.folders if self.folder_map is not None else ()
        self.cache.write_extra_model_paths(self.weights_yaml, folders=known_folders)

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        self._write_weights_yaml()
        self._reset_dirs()
        govern_cog_downloads(lambda: (self.url_policy, self.limits))  # Cog's URL file inputs: our policy
        warming = WarmUp.begin(self.cache, self.settings.warm_weights)  # CW_WARM_WEIGHTS, while ComfyUI boots
        self.server.start()
        self.client = ComfyUIClient(self.server.base_url)
        self._log_platform()
        warming.wait()

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()
        if "cache" in self.__dict__:  # opened (cached_property): close it; never open it to close it
            self.cache.close()

    def _ensure_ready(self) -> ComfyUIClient:
        """A client for a READY server: started if never started, restarted if it died."""
        state = self.server.state
        if state is ServerState.DEAD:
            log.warning("ComfyUI is not running (exit code %s); restarting it.", self.server.exit_code())
        if state is not ServerState.READY or self.client is None:
            if self.client is not None:
                self.client.close()
            self.server.restart() if state is ServerState.DEAD else self.server.start()
            self.client = ComfyUIClient(self.server.base_url)
        return self.client

    def _ensure_idle(self, client: ComfyUIClient) -> ComfyUIClient:
        """Make sure no earlier prompt still runs or waits in ComfyUI's queue.

        An earlier prediction stops its prompt when it ends, however it ends;
        this check (one GET /queue, about a millisecond) covers whatever that
        missed, so one user's leftover work never delays or mixes with the next.
        """
        if self._queue_settles(client, 1.0):
            return client
        queue = client.queue()
        running, pending = len(queue.get("queue_running") or []), len(queue.get("queue_pending") or [])
        log.warning("ComfyUI still had %d running and %d queued prompt(s) from before this prediction; "
                    "stopping them.", running, pending)
        self._abort(client)
        return self._ensure_ready()

    @staticmethod
    def _queue_settles(client: ComfyUIClient, timeout_s: float) -> bool:
        """Whether ComfyUI's queue is (or within ``timeout_s`` becomes) empty.

        ComfyUI announces a prompt's end on the websocket before its worker thread
        files the prompt into /history and takes it off the running list, so
        right after a prediction the queue may still show it for a moment.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            queue = client.queue()
            if not queue.get("queue_running") and not queue.get("queue_pending"):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)

    def _log_platform(self) -> None:
        assert self.client is not None
        stats = self.client.system_stats()
        system = stats.get("system", {})
        devices = ", ".join(d.get("name", "?") for d in stats.get("devices", []))
        torch_version = system.get("pytorch_version", "?")
        cuda = torch_version.split("+cu", 1)[1] if "+cu" in torch_version else None
        log.info(
            "ComfyUI %s, torch %s, CUDA %s, NVIDIA driver %s, devices: %s",
            system.get("comfyui_version", "?"), torch_version,
            f"{cuda[:-1]}.{cuda[-1]}" if cuda else "n/a", nvidia_driver_version() or "none", devices,
        )
        self.failed_imports = report_failed_imports(self.server.boot_log)
        for line in setup_report(self.failed_imports, self.client.object_info(), self.packs,
                                 comfyui_dir=self.settings.comfyui_dir):
            log.warning(line)
        # Packs the installer set aside never load; a workflow using their nodes is refused with the reason.
        self.failed_imports += [
            ImportFailure(name, str(self.settings.comfyui_dir / "custom_nodes.set_aside" / name),
                          f"it was set aside when the packs were installed ({reason})")
            for name, reason in set_aside_packs(self.settings.comfyui_dir).items()
        ]

    # --- a prediction -------------------------------------------------------------

    def plan(self, workflow: wf.Workflow, *, object_info: dict[str, Any] | None = None,
             input_file: Path | str | None = None, randomise_seeds: bool = True,
             converted_from_ui: bool = False, embedded: Sequence[EmbeddedModel] = ()) -> Plan:
        """The pre-flight plan for ``workflow``; nothing is downloaded or queued.

        Without ``object_info`` it asks the running ComfyUI; with it (a raw
        /object_info dump) no ComfyUI is needed. ``input_file`` is placed in
        input/ first, as a prediction would, and removed afterwards.
        """
        if object_info is None:
            object_info = self._ensure_ready().object_info()
        # The plan sees input/ as a prediction would (empty, then input_file); folders that do not
        # exist are not made for it, so `plan --object-info` without an input_file writes nothing.
        create = input_file is not None
        self._reset_dirs(create=create)
        try:
            if input_file is not None:
                self._place_input(input_file, local_allowed=True)
            return make_plan(workflow, self.plan_context(object_info, embedded), randomise_seeds=randomise_seeds,
                             converted_from_ui=converted_from_ui)
        finally:
            self._reset_dirs(create=create)

    def _place_input(self, input_file: Path | str, *, local_allowed: bool) -> PlacedInputs:
        """input_file (a Cog download, URL or data: URI; a path only when local_allowed) into input/."""
        check_input_origin(input_file, local_allowed=local_allowed)
        source = resolve_input_source(str(input_file), self.settings.runtime_dir / "incoming",
                                      self.url_policy, self.limits, scope=self._scope)
        return place_input_file(source, self.settings.input_dir, self.limits, original_name=upload_name(source))

    def load_workflow(self, text: str, object_info: dict[str, Any]) -> LoadedWorkflow:
        """What the user sent (JSON, an http(s) URL or data: URI, '' for the example) -> API format.

        The one path from text to a workflow for ``run``, ``convert`` and ``plan``: URLs are fetched
        under this runner's URL policy (within the current prediction's scope), a UI-format file is
        converted with ``object_info`` and the models it declares are kept for the plan.
        """
        data = wf.parse_workflow(self._scope.call(wf.load_workflow_text, text,
                                                  lambda url: fetch_text(url, self.url_policy, scope=self._scope)))
        if not wf.is_ui_format(data):
            return LoadedWorkflow(wf.check_shape(data), converted=False, embedded=[])
        embedded = embedded_models(data)
        return LoadedWorkflow(wf.check_shape(convert_ui(data, object_info)), converted=True, embedded=embedded)

    def plan_context(self, object_info: dict[str, Any], embedded: Sequence[EmbeddedModel] = ()) -> PlanContext:
        folder_for = self.folder_map.folder_for if self.folder_map is not None else core_folder_for
        return PlanContext(
            object_info=object_info, manifest=self.manifest, folder_for=folder_for, on_disk=self._on_disk,
            cached_names=self.cache.cached_names, packs=self.packs, catalogue=self.catalogue,
            failed_imports=self.failed_imports, input_dir=self.settings.input_dir,
            output_dir=self.settings.output_dir, temp_dir=self.settings.temp_dir,
            weights_dir=self.settings.weights_dir, budget_bytes=self.settings.weights_budget_bytes,
            embedded_models=tuple(embedded),
        )

    def _on_disk(self, name: str) -> bool:
        """Whether a model file of that name is in ComfyUI's own model folders or the cache."""
        for root in (self.settings.comfyui_dir / "models", self.settings.weights_dir):
            if root.is_dir() and any((folder / name).exists() for folder in root.iterdir() if folder.is_dir()):
                return True
        return False

    def run(self, request: RunRequest) -> RunResult:
        timer = PhaseTimer()
        self._scope = Scope()
        try:
            return self._run(request, timer)
        except BaseException:
            self._reset_dirs()
            raise
        finally:
            self._forget_history()
            log.info(timer.summary())

    def _forget_history(self) -> None:
        """Drop the run from ComfyUI's history: the next prediction's nodes (any pack's code) can
        read PromptServer's history, which holds each prompt, its inputs and outputs."""
        if self.client is not None and self.server.state is ServerState.READY:
            try:
                # The prompt is filed into the history only after its end was announced: wait for that,
                # or the entry lands after the clear and stays for the next prediction to read.
                self._queue_settles(self.client, 2.0)
                self.client.clear_history()
            except ConnectionLost:
                pass

    def _run(self, request: RunRequest, timer: PhaseTimer) -> RunResult:
        with timer.phase("prepare"):
            check_format(request.output_format, request.output_quality)
            client = self._ensure_idle(self._ensure_ready())
            # One deadline for the whole prediction (from here: a ComfyUI restart is the container's own
            # recovery), downloads included; network work runs through scope.call, so a Cog cancel (an
            # async exception) lands within a fraction of a second.
            self._scope = Scope.within(self.settings.prediction_timeout_s)
            self._reset_dirs()
            object_info = client.object_info()
            loaded = self.load_workflow(request.workflow_json, object_info)
            if loaded.converted:
                log.info("Converted the UI-format workflow to API format (%d nodes).", len(loaded.workflow))
        prepared = self._prepare(loaded.workflow, request, timer, object_info, loaded.converted, loaded.embedded)
        if request.force_reset_cache:
            log.info("Resetting ComfyUI's execution cache (force_reset_cache).")
            client.free(free_memory=True)
        outcome, prompt_id = self._execute(prepared, timer)
        with timer.phase("outputs"):
            produced = collect(outcome.outputs, self.settings.output_dir, self.settings.temp_dir,
                               include_temp=request.return_temp_files)
            if not produced:
                raise self._no_outputs(prepared.workflow, prepared.plan.output_nodes, request.return_temp_files)
            shared = shareable_workflow(prepared.workflow, [self.settings.input_dir, self.settings.runtime_dir,
                                                            self.settings.comfyui_dir])
            files = deliver(produced, self.settings.results_dir, request.output_format, request.output_quality,
                            workflow=shared if self.settings.output_metadata == "workflow" else None,
                            secrets=prepared.tokens)
            if request.return_provenance:
                files.append(write_provenance(
                    self.settings.results_dir / "provenance.json", workflow=shared, seeds=prepared.seeds,
                    specs=prepared.specs, url_weights=prepared.url_weights, sha_for=self.cache.record_sha256,
                    comfyui_dir=self.settings.comfyui_dir, custom_nodes=pack_commits(self.settings.comfyui_dir),
                    options={"output_format": request.output_format, "output_quality": request.output_quality,
                             "randomise_seeds": request.randomise_seeds, "return_temp_files": request.return_temp_files},
                ))
        for path in files:
            log.info("Output: %s", path)
        return RunResult(files=files, prompt_id=prompt_id, seeds=prepared.seeds, timings=dict(timer.seconds),
                         workflow=prepared.workflow, stats=prepared.stats)

    def _prepare(self, workflow: wf.Workflow, request: RunRequest, timer: PhaseTimer,
                 object_info: dict[str, Any], converted: bool, embedded: list[EmbeddedModel]) -> _Prepared:
        s = self.settings
        with timer.phase("inputs"):
            if request.input_file is not None:
                try:
                    placed = self._scope.call(self._place_input, request.input_file,
                                              local_allowed=request.input_file_is_local)
                finally:
                    forget_cog_download(request.input_file)
                log.info(placed.describe())
        with timer.phase("plan"):
            plan = make_plan(workflow, self.plan_context(object_info, embedded),
                             randomise_seeds=request.randomise_seeds, converted_from_ui=converted)
            plan.raise_for_problems()
        with timer.phase("inputs"):
            workflow, fetched = self._scope.call(fetch_workflow_urls, workflow, s.input_dir, self.url_policy,
                                                 self.limits, scope=self._scope)
            for item in fetched:
                log.info("Fetched %r into input/%s (%d bytes).", item, item.local_name, item.size)
            # The plan already checked every input file; only fetched URLs add new references.
            refs = require_inputs(workflow, object_info, s.input_dir) if fetched else plan.input_refs
            workflow = absolutize_input_paths(workflow, refs)
        weight_refs = plan.weight_refs
        assert weight_refs is not None
        with timer.phase("weights"):
            report = self._scope.call(self.cache.ensure_all, weight_refs.specs,
                                      urls=[(u.url, u.folder) for u in weight_refs.urls], scope=self._scope)
            workflow = apply_rewrites(workflow, [*weight_refs.rewrites,
                                                 *rewrites_for_urls(weight_refs.urls, report.url_names)])
        stats: dict[str, float] = {"weights_downloaded": report.downloaded, "weights_bytes_downloaded": report.bytes,
                 "weights_cache_hits": report.hits, "input_urls_fetched": len(fetched)}
        seeds: list[wf.SeedChange] = []
        if request.randomise_seeds:
            workflow, seeds = wf.randomise_seeds(workflow, object_info)
            for change in seeds:
                log.info("Seed of node %s (%s): %d", change.node_id, change.input_name, change.new)
        context = self.plan_context(object_info, embedded)
        pure = wf.pure_nodes(workflow, object_info, context.folder_for,
                             self._names_prediction_data(report.url_names.values()))
        return _Prepared(workflow, plan, weight_refs.specs, dict(report.url_names), seeds, stats, pure)

    def _names_prediction_data(self, url_names: Iterable[str]) -> Callable[[str], bool]:
        """Whether a literal names something a prediction brought: an entry of input/, temp/ or
        output/ (at any depth: the first path part is enough), or a weight fetched by URL (named
        ``<hex digits of the URL's hash>/<file>`` by the weight cache, this prediction's or an
        earlier one's)."""
        s = self.settings
        roots = (s.input_dir, s.temp_dir, s.output_dir)
        fetched = set(url_names)

        def check(value: str) -> bool:
            first = value.replace("\\", "/").split("/")[0]
            if value in fetched or (value.count("/") and _URL_HASH_DIR.fullmatch(first)):
                return True
            try:
                return any((root / first).exists() or (root / value).exists() for root in roots)
            except (OSError, ValueError):
                return True  # a name the file system refuses is not a model name we vouch for
        return check

    def _execute(self, prepared: _Prepared, timer: PhaseTimer) -> tuple[RunOutcome, str]:
        """Queue and wait; a weight that turns out corrupt on load is fetched again, once."""
        client = self._ensure_ready()
        for attempt in (1, 2):
            run_id = uuid.uuid4().hex
            # The cache token is not the prompt id: ids appear in logs and results, the token never may.
            token = uuid.uuid4().hex
            prepared.tokens.append(token)
            self._log_mark = self.server.log_position()  # a crash report shows only this run's log
            with timer.phase("queue"):
                prompt_id = client.queue_prompt(wf.mark_run(prepared.workflow, token, prepared.pure), prompt_id=run_id)
            with timer.phase("execution"):
                try:
                    outcome = self._wait(client, prompt_id, prepared.workflow)
                except ExecutionError as error:
                    if attempt == 2 or not self._refetch_corrupt(error, prepared):
                        raise
                    log.warning("A cached weight was damaged; it was fetched again. Running the workflow again.")
                    continue
            timer.seconds["queue_wait"] = timer.seconds.get("queue_wait", 0.0) + outcome.queue_wait_s
            timer.seconds["execution"] -= outcome.queue_wait_s
            return outcome, prompt_id
        raise AssertionError("unreachable")

    def _refetch_corrupt(self, error: ExecutionError, prepared: _Prepared) -> bool:
        """After a load error, re-hash the run's weights; remove and re-fetch any that fail."""
        text = f"{error.exception_type or ''} {error.message}"
        if not any(sign.lower() in text.lower() for sign in _CORRUPT_WEIGHT_SIGNS):
            return False
        corrupt = [spec for spec in prepared.specs if not self.cache.verify(spec.name, spec.folder)]
        if not corrupt:
            return False
        for spec in corrupt:
            log.warning("Cached weight %s/%s failed its checksum; fetching it again.", spec.folder, spec.name)
            self.cache.invalidate(spec.name, spec.folder)
        self._scope.call(self.cache.ensure_all, corrupt, scope=self._scope)
        return True

    def _wait(self, client: ComfyUIClient, prompt_id: str, workflow: wf.Workflow) -> RunOutcome:
        reporter = ProgressReporter(workflow)
        left = self._time_left()
        try:
            outcome = client.wait(
                prompt_id,
                timeout_s=left,
                stall_timeout_s=self.settings.stall_timeout_s,
                on_event=reporter,
                is_alive=self.server.is_alive,
            )
        except PredictionTimeoutError as error:
            self._abort(client)
            limit = self.settings.prediction_timeout_s
            if left != limit and f"within {left:g} s" in error.message:  # say the deadline the user set
                raise type(error)(error.message.replace(f"within {left:g} s", f"within {limit:g} s"),
                                  fix=error.fix, **error.fields) from None
            raise
        except ConnectionLost:
            raise self._crashed(reporter.current, workflow) from None
        except BaseException:
            # Cancelled by the caller (Cog raises its cancel exception here): stop the prompt.
            client.reset_connections()
            self._abort(client)
            raise
        if outcome.status == "error":
            raise execution_error(outcome.error or {}, workflow)
        if outcome.status == "interrupted":
            raise PredictionInterruptedError("The run was interrupted before it finished.")
        return outcome

    def _time_left(self) -> float:
        """What the prediction's one deadline leaves for execution (downloads took the rest)."""
        remaining = self._scope.remaining()
        if remaining is None:
            return self.settings.prediction_timeout_s
        if remaining <= 0:
            raise self._scope.error() if self._scope.expired() else PredictionTimeoutError("The deadline passed.")
        return remaining

    def _abort(self, client: ComfyUIClient, settle_s: float = 10.0) -> None:
        """Stop the running prompt and empty the queue, so the next prediction starts clean.

        A node that never checks ComfyUI's interrupt flag keeps running after
        /interrupt; if the queue is still busy after ``settle_s``, ComfyUI is
        restarted rather than leaving the next user waiting behind it.
        """
        try:
            client.interrupt()
            client.clear_queue()
            deadline = time.monotonic() + settle_s
            while client.queue().get("queue_running"):
                if time.monotonic() > deadline or not self.server.is_alive():
                    raise TimeoutError("the interrupted prompt did not stop")
                time.sleep(0.1)
            client.free(free_memory=True)
        except Exception as exc:  # noqa: BLE001 - any failure here means: start afresh
            log.warning("ComfyUI did not settle after the run was stopped (%s); restarting it.", exc)
            client.close()
            self.server.restart()
            self.client = ComfyUIClient(self.server.base_url)

    def _crashed(self, node_id: str | None, workflow: wf.Workflow) -> ComfyUICrashedError:
        where = f" while {wf.NodeInput.of(workflow, node_id).describe()} was running" if node_id else ""
        return ComfyUICrashedError(
            f"ComfyUI stopped (exit code {self.server.exit_code()}){where}. Last log lines:\n"
            f"{self.server.log_tail(25, since=self._log_mark)}",
            node_id=node_id,
        )

    def _no_outputs(self, workflow: wf.Workflow, outputs: list[str], with_temp: bool) -> NoOutputsError:
        names = ", ".join(wf.NodeInput.of(workflow, nid).describe() for nid in outputs)
        only_previews = all(workflow[nid]["class_type"].startswith("Preview") for nid in outputs)
        fix = None
        if only_previews and not with_temp:
            fix = "The workflow only previews its results: set return_temp_files=true, or use SaveImage instead of PreviewImage."
        return NoOutputsError(f"The workflow ran but saved no files. Output nodes that ran: {names}.", fix=fix)

    def _reset_dirs(self, *, create: bool = True) -> None:
        s = self.settings
        for folder in (s.input_dir, s.output_dir, s.temp_dir, s.results_dir, s.runtime_dir / "incoming"):
            if create or folder.is_dir():
                empty_dir(folder)


def empty_dir(folder: Path) -> None:
    """Remove everything inside ``folder`` but keep the folder itself.

    Keeping the folders matters for speed: removing and recreating a directory
    costs milliseconds on some filesystems, while unlinking files is cheap.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


def execution_error(error: dict[str, Any], workflow: wf.Workflow) -> ExecutionError:
    """execution_error payload -> a message with node, class, title and the exception, nothing more.

    ComfyUI's payload also carries the traceback; it stays out of the error
    (a public endpoint's users get the message, not the server's code and file
    layout), and server paths in the exception message are shortened.
    """
    node_id = str(error.get("node_id", "?"))
    where = wf.NodeInput.of(workflow, node_id).describe()
    exc_type = printable(error.get("exception_type", "Exception"), 120)
    exc_message = printable(hide_server_paths(str(error.get("exception_message", "")).strip()), 1000)
    message = f"{where} failed: {exc_type}: {exc_message}"
    return ExecutionError(message, node_id=printable(node_id, 80), exception_type=exc_type)
