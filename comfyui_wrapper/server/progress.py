"""Readable progress lines for a prediction's logs, and per-phase timings.

Users watch these lines in Replicate's log pane or on a terminal: which node
is running (n of m, class, title), sampler steps, and at the end where the
time went.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import PrintableArgs, printable
from ..logs import get_logger
from ..settings import ComfyLogLevel
from ..workflow import Workflow, node_order_key, node_title
from .events import RunEvent

log = get_logger(__name__)
_PACKAGE_LOG = get_logger("comfyui_wrapper")  # every module logs below it; its handler is ours


# ComfyUI's own lines, by what a user watching a prediction needs to see.
_ERROR_LINE = re.compile(r"Traceback \(most recent call last\)|^!!! |\b\w*(Error|Exception)\b:|^ERROR|"
                         r"IMPORT FAILED|Cannot import|out of memory", re.IGNORECASE)
_WARNING_LINE = re.compile(r"\bwarn(ing)?\b|\bWarning:|deprecated", re.IGNORECASE)
_INFO_LINE = re.compile(r"^(Requested to load|loaded (completely|partially)|Loading \d+ new model|"
                        r"model weight dtype|model_type|Using .* attention|Prompt executed in|got prompt|"
                        r"Total VRAM|Device:|Set vram state|pytorch version|ComfyUI version|"
                        r"Import times for custom nodes|\s+[\d.]+ seconds.*:|Unloading|Memory summary|"
                        r"Processing interrupted|Starting server|To see the GUI)", re.IGNORECASE)
COMFYUI_LEVELS: dict[ComfyLogLevel, int] = {"none": 100, "error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO,
                  "all": logging.DEBUG}


class ComfyLogClassifier:
    """How important one of ComfyUI's output lines is (a logging level); remembers whether a
    traceback is open, so every line of one is an error."""

    def __init__(self) -> None:
        self.in_traceback = False

    def level(self, line: str) -> int:
        if self.in_traceback:
            if line[:1].isspace() or not line.strip():
                return logging.ERROR
            self.in_traceback = False
            return logging.ERROR  # the exception line that ends it
        if line.startswith("Traceback (most recent call last)"):
            self.in_traceback = True
            return logging.ERROR
        if _ERROR_LINE.search(line):
            return logging.ERROR
        if _WARNING_LINE.search(line):
            return logging.WARNING
        if _INFO_LINE.search(line):
            return logging.INFO
        return logging.DEBUG


def comfy_display_line(raw: str) -> str:
    """A raw output line as one printable log line: of progress bars redrawn with carriage
    returns only the last drawing is kept."""
    segments = [segment for segment in raw.rstrip("\r\n").split("\r") if segment.strip()]
    return printable(segments[-1].rstrip() if segments else "", limit=4000)


def configure_logging(verbose: bool = False) -> None:
    """Readable lines on stderr: Cog shows the worker's stderr in each prediction's logs,
    and the CLI keeps stdout for the output paths."""
    if not _PACKAGE_LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(PrintableArgs())  # each logger has it (logs.get_logger); here too for any other child
        _PACKAGE_LOG.addHandler(handler)
        _PACKAGE_LOG.propagate = False
    _PACKAGE_LOG.setLevel(logging.DEBUG if verbose else logging.INFO)
    # urllib3's debug lines print request paths, query tokens included: keep them out.
    logging.getLogger("urllib3").setLevel(logging.INFO)


@dataclass
class PhaseTimer:
    """Seconds spent per named phase, in the order phases ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def summary(self) -> str:
        total = sum(self.seconds.values())
        parts = ", ".join(f"{name} {value:.2f}s" for name, value in self.seconds.items())
        return f"Timings: {parts} (total {total:.2f}s)"


class ProgressReporter:
    """Turns ComfyUI's websocket events into log lines."""

    def __init__(self, workflow: Workflow, *, step_every_s: float = 1.0) -> None:
        self.workflow = workflow
        self.total = len(workflow)
        self.done: set[str] = set()
        self.step_every_s = step_every_s
        self._last_step_line = 0.0
        self.current: str | None = None
        self.node_started = 0.0

    def __call__(self, event: RunEvent) -> None:
        data: dict[str, Any] = event.data
        if event.type == "execution_cached":
            cached = [str(n) for n in data.get("nodes", [])]
            self.done.update(cached)
            if cached:
                ordered = sorted(cached, key=node_order_key)
                names = ", ".join(f"{nid} ({self.workflow.get(nid, {}).get('class_type', '?')})" for nid in ordered[:12])
                more = f" and {len(ordered) - 12} more" if len(ordered) > 12 else ""
                log.info("%d of %d nodes reused from ComfyUI's cache: %s%s", len(cached), self.total, names, more)
        elif event.type == "executing" and data.get("node") is not None:
            node_id = str(data["node"])
            self.current = node_id
            self.node_started = time.monotonic()
            self.done.add(node_id)
            node = self.workflow.get(node_id.split(":")[0], {})
            log.info(
                "[%d/%d] Running node %s: %s \"%s\"", len(self.done), self.total, node_id,
                node.get("class_type", "?"), node_title(self.workflow, node_id.split(":")[0]),
            )
        elif event.type == "progress":
            value, maximum = data.get("value"), data.get("max")
            now = time.monotonic()
            if value == maximum or now - self._last_step_line >= self.step_every_s:
                self._last_step_line = now
                log.info("    node %s: step %s/%s", data.get("node", self.current), value, maximum)
