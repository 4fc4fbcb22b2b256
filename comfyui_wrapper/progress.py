"""Readable progress lines for a prediction's logs, and per-phase timings.

Users watch these lines in Replicate's log pane or on a terminal: which node
is running (n of m, class, title), sampler steps, and at the end where the
time went.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from .client import RunEvent
from .errors import PrintableArgs
from .workflow import Workflow, node_title

log = logging.getLogger("comfyui_wrapper")


def configure_logging(verbose: bool = False) -> None:
    """Readable lines on stderr: Cog shows the worker's stderr in each prediction's logs,
    and the CLI keeps stdout for the output paths."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(PrintableArgs())  # user-chosen values in log arguments: one line each, no escapes
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
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
                log.info("%d of %d nodes reused from ComfyUI's cache", len(cached), self.total)
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
