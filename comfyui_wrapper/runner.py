"""The one place that composes the rest: a prediction from JSON text to files.

reset dirs -> parse -> check nodes -> inputs -> weights -> seeds -> queue ->
wait -> collect -> convert. Every phase is timed. Whatever fails, the
per-prediction folders are emptied, so nothing of one prediction is visible
to the next, and ComfyUI is left ready (or restarted by the next run).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import workflow as wf
from .client import ComfyUIClient, ConnectionLost, RunOutcome
from .errors import (
    ComfyUICrashedError,
    ExecutionError,
    InputFileError,
    NoOutputsError,
    PredictionInterruptedError,
    PredictionTimeoutError,
    UnknownNodeError,
    WorkflowError,
)
from .outputs import check_format, collect, deliver
from .progress import PhaseTimer, ProgressReporter
from .server import ComfyUIServer, nvidia_driver_version
from .settings import Settings

log = logging.getLogger("comfyui_wrapper")


@dataclass(frozen=True)
class RunRequest:
    """A prediction's inputs as plain Python values (predict.py and the CLI build one)."""

    workflow_json: str = ""
    input_file: Path | None = None
    return_temp_files: bool = False
    output_format: str = "webp"
    output_quality: int = 95
    randomise_seeds: bool = True
    force_reset_cache: bool = False


@dataclass
class RunResult:
    files: list[Path]
    prompt_id: str
    seeds: list[wf.SeedChange] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    workflow: wf.Workflow = field(default_factory=dict)


class WorkflowRunner:
    """Owns one ComfyUI process and runs predictions on it, one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = ComfyUIServer(settings)
        self.client: ComfyUIClient | None = None

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        self._reset_dirs()
        self.server.start()
        self.client = ComfyUIClient(self.server.base_url)
        self._log_platform()

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.stop()

    def _ensure_ready(self) -> ComfyUIClient:
        if self.client is None or not self.server.is_alive():
            if self.client is not None:
                log.warning("ComfyUI is not running (exit code %s); restarting it.", self.server.exit_code())
                self.client.close()
                self.server.restart()
            else:
                self.server.start()
            self.client = ComfyUIClient(self.server.base_url)
        return self.client

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
        for line in self.server.log_text:
            if "IMPORT FAILED" in line:
                hint = " (torchaudio is missing on this platform: only the audio nodes are lost)" if "audio" in line else ""
                log.warning("ComfyUI could not load %s%s", line.split("IMPORT FAILED", 1)[1].strip(" :"), hint)

    # --- a prediction -------------------------------------------------------------

    def run(self, request: RunRequest) -> RunResult:
        timer = PhaseTimer()
        try:
            return self._run(request, timer)
        except BaseException:
            self._reset_dirs()
            raise
        finally:
            log.info(timer.summary())

    def _run(self, request: RunRequest, timer: PhaseTimer) -> RunResult:
        with timer.phase("prepare"):
            check_format(request.output_format, request.output_quality)
            client = self._ensure_ready()
            self._reset_dirs()
            data = wf.parse_workflow(wf.load_workflow_text(request.workflow_json))
            workflow = wf.check_shape(data)
            object_info = client.object_info()
            self._check_nodes(workflow, object_info)
            outputs = wf.output_nodes(workflow, object_info)
            if not outputs:
                raise WorkflowError(
                    "The workflow has no output node, so it would produce nothing.",
                    fix="Add a node that saves its result, such as SaveImage or VHS_VideoCombine.",
                )
        with timer.phase("inputs"):
            if request.input_file is not None:
                raise InputFileError(
                    "input_file is not supported yet by this version of the container.",
                    fix="Leave input_file empty, or give media as http(s) URLs inside the workflow.",
                )
        seeds: list[wf.SeedChange] = []
        if request.randomise_seeds:
            workflow, seeds = wf.randomise_seeds(workflow, object_info)
            for change in seeds:
                log.info("Seed of node %s (%s): %d", change.node_id, change.input_name, change.new)
        if request.force_reset_cache:
            log.info("Resetting ComfyUI's execution cache (force_reset_cache).")
            client.free(free_memory=True)
        run_id = uuid.uuid4().hex
        with timer.phase("queue"):
            prompt_id = client.queue_prompt(wf.mark_outputs_fresh(workflow, outputs, run_id), prompt_id=run_id)
        with timer.phase("execution"):
            outcome = self._wait(client, prompt_id, workflow)
        timer.seconds["queue_wait"] = outcome.queue_wait_s
        timer.seconds["execution"] -= outcome.queue_wait_s
        with timer.phase("outputs"):
            produced = collect(
                outcome.outputs, self.settings.output_dir, self.settings.temp_dir,
                include_temp=request.return_temp_files,
            )
            if not produced:
                raise self._no_outputs(workflow, outputs, outcome, request.return_temp_files)
            files = deliver(produced, self.settings.results_dir, request.output_format, request.output_quality)
        for path in files:
            log.info("Output: %s", path)
        return RunResult(files=files, prompt_id=prompt_id, seeds=seeds, timings=dict(timer.seconds), workflow=workflow)

    def _check_nodes(self, workflow: wf.Workflow, object_info: dict[str, Any]) -> None:
        unknown = [nid for nid, node in workflow.items() if node["class_type"] not in object_info]
        if unknown:
            lines = [f"- {wf.describe_node(workflow, nid)}" for nid in sorted(unknown, key=wf.node_order_key)]
            raise UnknownNodeError(
                "The workflow uses node types this ComfyUI does not have:\n" + "\n".join(lines),
                node_ids=unknown,
            )

    def _wait(self, client: ComfyUIClient, prompt_id: str, workflow: wf.Workflow) -> RunOutcome:
        reporter = ProgressReporter(workflow)
        try:
            outcome = client.wait(
                prompt_id,
                timeout_s=self.settings.prediction_timeout_s,
                stall_timeout_s=self.settings.stall_timeout_s,
                on_event=reporter,
                is_alive=self.server.is_alive,
            )
        except PredictionTimeoutError:
            self._abort(client)
            raise
        except ConnectionLost:
            raise self._crashed(reporter.current, workflow) from None
        except BaseException:
            # Cancelled by the caller (Cog raises its cancel exception here): stop the prompt.
            self._abort(client)
            raise
        if outcome.status == "error":
            raise execution_error(outcome.error or {}, workflow)
        if outcome.status == "interrupted":
            raise PredictionInterruptedError("The run was interrupted before it finished.")
        return outcome

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
        self.server.is_alive()
        where = f" while {wf.describe_node(workflow, node_id.split(':')[0])} was running" if node_id else ""
        return ComfyUICrashedError(
            f"ComfyUI stopped (exit code {self.server.exit_code()}){where}. Last log lines:\n"
            f"{self.server.log_tail(25)}",
            node_id=node_id,
        )

    def _no_outputs(self, workflow: wf.Workflow, outputs: list[str], outcome: RunOutcome, with_temp: bool) -> NoOutputsError:
        names = ", ".join(wf.describe_node(workflow, nid) for nid in outputs)
        only_previews = all(
            workflow[nid]["class_type"].startswith("Preview") for nid in outputs
        )
        fix = None
        if only_previews and not with_temp:
            fix = "The workflow only previews its results: set return_temp_files=true, or use SaveImage instead of PreviewImage."
        return NoOutputsError(f"The workflow ran but saved no files. Output nodes that ran: {names}.", fix=fix)

    def _reset_dirs(self) -> None:
        s = self.settings
        for folder in (s.input_dir, s.output_dir, s.temp_dir, s.results_dir):
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
    """execution_error payload -> a message with node, class, title, exception and traceback tail."""
    node_id = str(error.get("node_id", "?"))
    where = wf.describe_node(workflow, node_id.split(":")[0]) if node_id.split(":")[0] in workflow else f"node {node_id}"
    exc_type = error.get("exception_type", "Exception")
    exc_message = str(error.get("exception_message", "")).strip()
    trace = [line.rstrip() for chunk in error.get("traceback", []) for line in str(chunk).splitlines() if line.strip()]
    tail = "\n".join(f"    {line}" for line in trace[-6:])
    message = f"{where} failed: {exc_type}: {exc_message}"
    if tail:
        message += f"\n  Traceback (last lines):\n{tail}"
    return ExecutionError(message, node_id=node_id, exception_type=exc_type)
