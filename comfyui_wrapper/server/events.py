"""ComfyUI's prompt events, folded into what a run produced: the protocol without the socket.

``client.py`` owns the connections (HTTP, the websocket, reconnects); this module owns
the meaning of what arrives on them, so every rule of the protocol is a pure function
of the messages and can be tested with a list of them:

- only events carrying our prompt id count; status broadcasts, other prompts' events and
  whatever packs send (system monitors, previews) are ignored entirely;
- ``execution_success`` can arrive before the final ``executing`` with ``node: null``;
  either one ends a successful run, and ``execution_error`` / ``execution_interrupted`` end it
  too, with their payload;
- an output node may report ``executed`` several times (batches, lists): list values are
  appended in order, other values replaced;
- only PROGRESS_EVENTS show the prompt moving (they feed the stall watchdog);
- when the socket drops, ``/history`` tells how a finished prompt ended.
ComfyUI's 400 body on a refused prompt becomes one typed error here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import PromptValidationError, hide_server_paths, printable
from ..workflow import NodeInput

# The events that show our prompt moving: only these reset the stall watchdog. Packs broadcast
# their own events (system monitors every second, previews...), which say nothing about our run.
PROGRESS_EVENTS = frozenset({"execution_start", "execution_cached", "executing", "progress", "progress_state",
                             "executed"})


@dataclass
class RunEvent:
    """One websocket message that concerns our prompt, as (type, data)."""

    type: str
    data: dict[str, Any]


RunStatus = Literal["running", "success", "error", "interrupted"]


@dataclass
class RunOutcome:
    """What a finished prompt produced, in the order ComfyUI reported it."""

    prompt_id: str
    status: RunStatus  # "running" until ComfyUI says how the prompt ended
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> ui output
    error: dict[str, Any] | None = None  # the execution_error / execution_interrupted payload
    queue_wait_s: float = 0.0  # from the start of the wait to ComfyUI's execution_start


class PromptEvents:
    """One prompt's events, fed in arrival order; ``outcome`` is complete once ``feed`` says done.

    Times are passed in (monotonic seconds), so the watchdog's view is as testable as the rest.
    """

    def __init__(self, prompt_id: str, started: float) -> None:
        self.outcome = RunOutcome(prompt_id=prompt_id, status="running")
        self.started = started
        self.last_progress = started  # when one of our PROGRESS_EVENTS last arrived
        self.running_node: str | None = None  # the node ComfyUI said it is executing

    def feed(self, event_type: str, data: dict[str, Any], now: float) -> tuple[RunEvent | None, bool]:
        """Take one message: (the event to report to the caller, or None; whether the run has ended)."""
        if data.get("prompt_id") != self.outcome.prompt_id:
            return None, False
        if event_type in PROGRESS_EVENTS:
            self.last_progress = now
        event = RunEvent(event_type, data)
        outcome = self.outcome
        if event_type == "executing":
            node = data.get("node")
            if node is None:
                if outcome.status == "running":
                    outcome.status = "success"
                return None, True
            self.running_node = str(node)
        elif event_type == "execution_start":
            outcome.queue_wait_s = now - self.started
        elif event_type == "executed":
            self._merge_output(str(data.get("node")), data.get("output"))
        elif event_type == "execution_success":
            outcome.status = "success"
            return event, True
        elif event_type in ("execution_error", "execution_interrupted"):
            outcome.status = "error" if event_type == "execution_error" else "interrupted"
            outcome.error = data
            return None, True
        return event, False

    def _merge_output(self, node: str, output: Any) -> None:
        if not isinstance(output, dict) or not output:
            return
        merged = self.outcome.outputs.setdefault(node, {})
        for key, value in output.items():
            if isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value

    def finish_from_history(self, entry: dict[str, Any] | None) -> bool:
        """Fill the outcome from the prompt's /history entry if it has finished (the socket dropped)."""
        if not entry:
            return False
        status = entry.get("status") or {}
        if not status.get("completed") and status.get("status_str") != "error":
            return False
        outcome = self.outcome
        outcome.outputs = {str(k): v for k, v in (entry.get("outputs") or {}).items()}
        outcome.status = "success" if status.get("status_str") == "success" else "error"
        for name, data in status.get("messages") or []:
            if name in ("execution_error", "execution_interrupted"):
                outcome.status = "error" if name == "execution_error" else "interrupted"
                outcome.error = data
        return True


def validation_error(payload: dict[str, Any], prompt: dict[str, Any]) -> PromptValidationError:
    """Turn ComfyUI's 400 body into one message that names every failing node and input."""
    error = payload.get("error") or {}
    node_errors = payload.get("node_errors") or {}
    lines: list[str] = []
    for node_id, info in node_errors.items():
        node = NodeInput.of(prompt, str(node_id))
        if isinstance(info.get("class_type"), str) and info["class_type"]:
            node = replace(node, class_type=info["class_type"])  # ComfyUI's word for the class it checked
        for item in info.get("errors", []):
            extra = item.get("extra_info") or {}
            where = replace(node, input_name=str(extra.get("input_name") or ""))
            reason = item.get("details") or item.get("message") or item.get("type", "invalid")
            if item.get("message") and item.get("details") and item["message"] not in item["details"]:
                reason = f"{item['message']}: {item['details']}"
            received = extra.get("received_value")
            suffix = f" (received {printable(repr(received), 200)})" if "received_value" in extra else ""
            # ComfyUI's text: node ids and titles are the user's, details may name server paths (issue 12)
            lines.append(f"- {where.describe()}: {printable(hide_server_paths(str(reason)), 500)}{suffix}")
    headline = error.get("message") or "ComfyUI refused the workflow"
    if not lines and error.get("details"):
        headline = f"{headline} {error['details']}"
    headline = printable(hide_server_paths(str(headline)), 500)
    message = f"ComfyUI refused the workflow: {headline}." if not headline.endswith(".") else f"ComfyUI refused the workflow: {headline}"
    if lines:
        message += "\n" + "\n".join(lines)
    return PromptValidationError(message, error_type=error.get("type"), node_errors=node_errors)
