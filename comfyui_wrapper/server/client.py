"""ComfyUI's HTTP + websocket protocol behind one typed client.

ComfyUI's error dicts become typed exceptions here and nowhere else. The
websocket (``/ws?clientId=...``) stays open between predictions so a run costs
one POST and the events it causes; if it drops, we reconnect with the same
client id and, meanwhile, fall back to polling ``/history``.

Event order to remember: ``execution_success`` can arrive before the final
``executing`` with ``node: null``; either one ends a successful run.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import requests
import websocket

from ..errors import (
    ConnectionLost,
    PredictionTimeoutError,
    PromptValidationError,
    hide_server_paths,
    printable,
)
from ..logs import get_logger
from ..workflow import NodeInput

log = get_logger(__name__)

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
    queue_wait_s: float = 0.0  # from the start of wait() to ComfyUI's execution_start


class ComfyUIClient:
    def __init__(self, base_url: str, *, client_id: str | None = None, http_timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.http_timeout_s = http_timeout_s
        self.http = requests.Session()
        self._ws: websocket.WebSocket | None = None
        self._object_info: dict[str, Any] | None = None

    # --- plain HTTP ----------------------------------------------------------

    def _get(self, path: str, timeout: float | None = None) -> dict[str, Any]:
        """GET a JSON object; anything else (no answer, not JSON, not an object) is a lost connection."""
        try:
            response = self.http.get(f"{self.base_url}{path}", timeout=timeout or self.http_timeout_s)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ConnectionLost(f"ComfyUI did not answer GET {path}: {type(exc).__name__}.") from None
        if not isinstance(data, dict):
            raise ConnectionLost(f"ComfyUI answered GET {path} with a JSON {type(data).__name__}, not an object.")
        return data

    def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> requests.Response:
        try:
            return self.http.post(f"{self.base_url}{path}", json=body, timeout=timeout or self.http_timeout_s)
        except requests.RequestException as exc:
            raise ConnectionLost(f"ComfyUI did not answer POST {path}: {type(exc).__name__}.") from None

    def system_stats(self) -> dict[str, Any]:
        return self._get("/system_stats")

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """All node definitions; cached because it is large and only changes on restart."""
        if self._object_info is None or refresh:
            self._object_info = self._get("/object_info", timeout=120)
        return self._object_info

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        entry = self._get(f"/history/{prompt_id}").get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def queue(self) -> dict[str, Any]:
        return self._get("/queue")

    def interrupt(self) -> None:
        self._post("/interrupt", {}, timeout=10)

    def clear_queue(self) -> None:
        self._post("/queue", {"clear": True}, timeout=10)

    def clear_history(self) -> None:
        """Forget every finished prompt: ComfyUI keeps up to 10,000, each with its prompt and outputs."""
        self._post("/history", {"clear": True}, timeout=10)

    def free(self, *, unload_models: bool = False, free_memory: bool = False) -> None:
        """``free_memory`` makes ComfyUI drop its execution cache before the next prompt."""
        self._post("/free", {"unload_models": unload_models, "free_memory": free_memory}, timeout=10)

    # --- queueing --------------------------------------------------------------

    def queue_prompt(self, prompt: dict[str, Any], *, prompt_id: str | None = None) -> str:
        """POST /prompt; a 400 becomes one PromptValidationError naming every failing node."""
        self._ensure_ws()
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id or uuid.uuid4().hex}
        response = self._post("/prompt", body)
        if response.status_code == 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {"error": {"message": response.text[:500]}}
            raise validation_error(payload, prompt)
        response.raise_for_status()
        return str(response.json()["prompt_id"])

    # --- websocket ----------------------------------------------------------------

    def _ensure_ws(self) -> websocket.WebSocket:
        if self._ws is not None and self._ws.connected:
            return self._ws
        url = self.base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        # ComfyUI sends valid UTF-8 JSON; websocket-client's pure-Python check costs ~0.3 ms a message.
        self._ws = websocket.create_connection(
            f"{url}/ws?clientId={self.client_id}", timeout=10, skip_utf8_validation=True
        )
        return self._ws

    def reset_connections(self) -> None:
        """Drop the websocket and HTTP connections and start afresh.

        Needed after an exception was raised asynchronously in the middle of a
        read (Cog's cancellation does that): the socket may hold half a frame,
        and the next read would wait forever for bytes that never come.
        """
        self.close()
        self.http = requests.Session()

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:  # closing a broken socket may raise anything; nothing to do
                pass
            self._ws = None
        self.http.close()

    def wait(
        self,
        prompt_id: str,
        *,
        timeout_s: float,
        stall_timeout_s: float,
        on_event: Callable[[RunEvent], None] | None = None,
        is_alive: Callable[[], bool] = lambda: True,
        poll_interval_s: float = 0.5,
    ) -> RunOutcome:
        """Follow our prompt's events until it succeeds, fails or is interrupted.

        Raises PredictionTimeoutError on the overall deadline or when none of
        our prompt's PROGRESS_EVENTS arrives for ``stall_timeout_s``; events
        without our prompt id are ignored entirely. Raises ConnectionLost
        when ComfyUI stops answering and ``is_alive`` says it is gone.
        """
        outcome = RunOutcome(prompt_id=prompt_id, status="running")
        started = time.monotonic()
        last_event = started
        running_node: str | None = None
        while True:
            now = time.monotonic()
            if now - started > timeout_s:
                raise PredictionTimeoutError(
                    f"The workflow did not finish within {timeout_s:g} s"
                    + (f" ({NodeInput(running_node).describe()} was running)." if running_node else "."),
                    node_id=running_node, seconds=now - started,
                )
            if now - last_event > stall_timeout_s:
                what = f"{NodeInput(running_node).describe()} made" if running_node else "ComfyUI reported"
                raise PredictionTimeoutError(
                    f"{what} no progress for {now - last_event:.0f} s.", node_id=running_node, seconds=now - started,
                )
            if not is_alive():
                raise ConnectionLost("ComfyUI exited while the workflow was running.", node_id=running_node)
            message = self._receive(min(poll_interval_s, max(0.01, timeout_s - (now - started))))
            if message is None:
                # Socket quiet or dropped: a cheap history check catches a finished prompt.
                if self._ws is None or not self._ws.connected:
                    if self._finish_from_history(outcome):
                        return outcome
                    # The prompt may finish while we reconnect; ComfyUI then sends nothing more,
                    # so look at the history once the new socket is up.
                    if self._try_reconnect() and self._finish_from_history(outcome):
                        return outcome
                continue
            event_type, data = message
            if data.get("prompt_id") != prompt_id:
                continue  # status, other prompts' events, and whatever packs broadcast
            if event_type in PROGRESS_EVENTS:
                last_event = time.monotonic()
            event = RunEvent(event_type, data)
            if event_type == "executing":
                node = data.get("node")
                if node is None and data.get("prompt_id") == prompt_id:
                    if outcome.status == "running":
                        outcome.status = "success"
                    return outcome
                running_node = node
            elif event_type == "execution_start":
                outcome.queue_wait_s = time.monotonic() - started
            elif event_type == "executed":
                node = str(data.get("node"))
                if data.get("output"):
                    merged = outcome.outputs.setdefault(node, {})
                    for key, value in data["output"].items():
                        if isinstance(value, list) and isinstance(merged.get(key), list):
                            merged[key] = merged[key] + value
                        else:
                            merged[key] = value
            elif event_type == "execution_success":
                outcome.status = "success"
                if on_event is not None:
                    on_event(event)
                return outcome
            elif event_type == "execution_error":
                outcome.status, outcome.error = "error", data
                return outcome
            elif event_type == "execution_interrupted":
                outcome.status, outcome.error = "interrupted", data
                return outcome
            if on_event is not None:
                on_event(event)

    def _receive(self, timeout_s: float) -> tuple[str, dict[str, Any]] | None:
        try:
            ws = self._ensure_ws()
        except (OSError, websocket.WebSocketException):
            self._ws = None
            time.sleep(timeout_s)
            return None
        ws.settimeout(timeout_s)
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException):
            self._ws = None
            return None
        if not isinstance(raw, str):
            return None  # binary frames are previews
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        return message.get("type", ""), message.get("data") or {}

    def _try_reconnect(self) -> bool:
        try:
            self._ensure_ws()
            log.info("Reconnected to ComfyUI's websocket.")
            return True
        except (OSError, websocket.WebSocketException):
            self._ws = None
            return False

    def _finish_from_history(self, outcome: RunOutcome) -> bool:
        """Fill ``outcome`` from /history if the prompt has finished; used when the socket dropped."""
        try:
            entry = self.history(outcome.prompt_id)
        except ConnectionLost:
            return False
        if not entry:
            return False
        status = entry.get("status") or {}
        if not status.get("completed") and status.get("status_str") != "error":
            return False
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
