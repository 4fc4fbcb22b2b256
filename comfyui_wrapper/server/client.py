"""ComfyUI's HTTP + websocket protocol behind one typed client.

ComfyUI's error dicts become typed exceptions in server/ and nowhere else. The
websocket (``/ws?clientId=...``) stays open between predictions so a run costs
one POST and the events it causes; if it drops, we reconnect with the same
client id and, meanwhile, fall back to polling ``/history``.

What the events mean (the protocol's rules, pure functions of the messages) is
events.py's; this module only receives them.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

import requests
import websocket

from ..errors import ConnectionLost, PredictionTimeoutError
from ..logs import get_logger
from ..workflow import NodeInput
from .events import PromptEvents, RunEvent, RunOutcome, validation_error

log = get_logger(__name__)


def loopback_session() -> requests.Session:
    """A session for ComfyUI on 127.0.0.1: the environment's proxies and .netrc never apply.

    With trust_env (requests' default) an operator's HTTP_PROXY without a NO_PROXY for
    127.0.0.1 would send every call to ComfyUI through the proxy; and reading the
    proxy variables on each request cost about 2 ms of a prediction's overhead.
    """
    session = requests.Session()
    session.trust_env = False
    return session

class ComfyUIClient:
    def __init__(self, base_url: str, *, client_id: str | None = None, http_timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.http_timeout_s = http_timeout_s
        self.http = loopback_session()
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
        self.http = loopback_session()

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
        events = PromptEvents(prompt_id, time.monotonic())
        while True:
            now = time.monotonic()
            running_node = events.running_node
            if now - events.started > timeout_s:
                raise PredictionTimeoutError(
                    f"The workflow did not finish within {timeout_s:g} s"
                    + (f" ({NodeInput(running_node).describe()} was running)." if running_node else "."),
                    node_id=running_node, seconds=now - events.started,
                )
            if now - events.last_progress > stall_timeout_s:
                what = f"{NodeInput(running_node).describe()} made" if running_node else "ComfyUI reported"
                raise PredictionTimeoutError(
                    f"{what} no progress for {now - events.last_progress:.0f} s.", node_id=running_node,
                    seconds=now - events.started,
                )
            if not is_alive():
                raise ConnectionLost("ComfyUI exited while the workflow was running.", node_id=running_node)
            message = self._receive(min(poll_interval_s, max(0.01, timeout_s - (now - events.started))))
            if message is None:
                # Socket quiet or dropped: a cheap history check catches a finished prompt.
                if self._ws is None or not self._ws.connected:
                    if self._finish_from_history(events):
                        return events.outcome
                    # The prompt may finish while we reconnect; ComfyUI then sends nothing more,
                    # so look at the history once the new socket is up.
                    if self._try_reconnect() and self._finish_from_history(events):
                        return events.outcome
                continue
            event, done = events.feed(*message, time.monotonic())
            if event is not None and on_event is not None:
                on_event(event)
            if done:
                return events.outcome

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

    def _finish_from_history(self, events: PromptEvents) -> bool:
        """Ask /history whether the prompt has finished (the socket dropped; see events.py)."""
        try:
            entry = self.history(events.outcome.prompt_id)
        except ConnectionLost:
            return False
        return events.finish_from_history(entry)
