"""The ComfyUI child process: start it, know its state, stop it, restart it.

States move one way per life: STOPPED -> STARTING -> READY, and from STARTING or
READY to DEAD (it exited on its own) or STOPPED (we stopped it). ``restart()``
is stop + start. The process is started from an argument list (never a
shell), so its handle is never lost and stop() can always reach it:
terminate, wait, then kill.

ComfyUI's output goes line by line to ``runtime/comfyui.log`` (rotated at
CW_COMFYUI_LOG_MAX_BYTES, one old file kept) and to our logger with a
``[ComfyUI]`` prefix: errors, tracebacks and warnings at WARNING, model loads
and run summaries at INFO (so a prediction's log shows them), everything else
at DEBUG, filtered by CW_COMFYUI_LOG_LEVEL. Lines are made printable first
(progress.printable), so nothing ComfyUI or a custom node prints can forge a
log line. The last lines are kept in memory so an error can say why ComfyUI
died.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO, Sequence

import requests

from ..errors import ComfyUIStartError
from ..logs import get_logger
from ..settings import Settings
from .client import loopback_session
from .progress import COMFYUI_LEVELS, ComfyLogClassifier, comfy_display_line

log = get_logger(__name__)
COMFYUI_CHANNEL = "comfyui_wrapper.comfyui"  # ComfyUI's own lines, one fixed logger whatever module relays them
comfy_log = get_logger(COMFYUI_CHANNEL)


class ServerState(enum.Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    DEAD = "dead"


# Every move the server may make; anything else is a bug in the caller, caught by _move.
_TRANSITIONS = {
    ServerState.STOPPED: {ServerState.STARTING, ServerState.STOPPED},
    ServerState.STARTING: {ServerState.READY, ServerState.DEAD, ServerState.STOPPED},
    ServerState.READY: {ServerState.DEAD, ServerState.STOPPED},
    ServerState.DEAD: {ServerState.DEAD, ServerState.STOPPED},  # DEAD -> DEAD: a death seen twice
}


class ServerStateError(RuntimeError):
    """A life-cycle call in a state that does not allow it (a bug here, never the user's)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cuda_present() -> bool:
    """Whether an NVIDIA driver is loaded, without importing torch (that costs seconds)."""
    return Path("/proc/driver/nvidia/version").exists()


def nvidia_driver_version() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return None


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(sig)
        except ProcessLookupError:
            pass


class _RotatingFile:
    """ComfyUI's log file, moved aside to ``<name>.1`` when it passes ``max_bytes``.

    ComfyUI runs for the container's life; without a bound its log would fill the disk.
    """

    def __init__(self, handle: BinaryIO, path: Path, max_bytes: int) -> None:
        self.handle, self.path, self.max_bytes = handle, path, max_bytes
        try:
            self.size = path.stat().st_size
        except OSError:
            self.size = 0

    def write(self, data: bytes) -> None:
        if self.max_bytes > 0 and self.size + len(data) > self.max_bytes and self.size > 0:
            self.handle.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self.handle = self.path.open("ab")
            self.size = 0
        self.handle.write(data)
        self.handle.flush()
        self.size += len(data)

    def close(self) -> None:
        self.handle.close()


class ComfyUIServer:
    """One ComfyUI process on 127.0.0.1, owned by this object."""

    def __init__(
        self,
        settings: Settings,
        *,
        extra_model_paths: Sequence[Path] = (),
        python: str = sys.executable,
    ) -> None:
        self.settings = settings
        self.extra_model_paths = tuple(extra_model_paths)
        self.python = python
        self._state = ServerState.STOPPED
        self.port = settings.port or 0
        self.process: subprocess.Popen[bytes] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=500)
        self.boot_log: list[str] = []  # every line until READY (setup reads it for failed imports)
        self.lines_seen = 0  # lines of this life so far; kept as a count so memory stays flat
        self._reader: threading.Thread | None = None
        self.started_at = 0.0
        self.boot_seconds = 0.0

    # --- state ------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        """The state, as it is now: a started process that has exited reads as DEAD (a pure query)."""
        if self._state in (ServerState.STARTING, ServerState.READY) and not self.is_alive():
            return ServerState.DEAD
        return self._state

    def _move(self, to: ServerState) -> None:
        current = self.state
        if to not in _TRANSITIONS[current]:
            raise ServerStateError(f"ComfyUI server: {current.value} -> {to.value} is not a valid move.")
        self._state = to

    # --- addresses --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def arguments(self) -> list[str]:
        s = self.settings
        args = [
            self.python, str(Path(__file__).with_name("launch.py")), str(s.comfyui_dir / "main.py"),
            "--listen", s.host, "--port", str(self.port),
            "--disable-auto-launch",
            "--input-directory", str(s.input_dir),
            "--output-directory", str(s.output_dir),
            # ComfyUI appends "temp" to this directory itself.
            "--temp-directory", str(s.temp_dir.parent),
            # What ComfyUI embeds in images is the prompt as queued: run tokens and container paths.
            # outputs.deliver writes the user's workflow instead (CW_OUTPUT_METADATA).
            "--disable-metadata",
        ]
        if s.force_cpu or not cuda_present():
            args.append("--cpu")
        for path in (*s.extra_model_paths, *self.extra_model_paths):
            args += ["--extra-model-paths-config", str(path)]
        args += list(s.extra_args)
        return args

    # --- life cycle -----------------------------------------------------------

    def start(self) -> None:
        """Start ComfyUI and wait until its HTTP API answers, or raise with the log tail."""
        if self.state is ServerState.READY:
            return
        if self.state is ServerState.DEAD:
            self.stop()  # reap the old life first: DEAD -> STOPPED -> STARTING
        s = self.settings
        if not (s.comfyui_dir / "main.py").is_file():
            raise ComfyUIStartError(
                f"ComfyUI is not installed in {s.comfyui_dir} (no main.py there).",
                fix="Run `python scripts/install_comfyui.py`, or point CW_COMFYUI_DIR at an installed ComfyUI.",
            )
        for folder in (s.input_dir, s.output_dir, s.temp_dir, s.runtime_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.port = s.port or free_port(s.host)
        self.tail.clear()
        self.boot_log = []
        self.lines_seen = 0
        self._move(ServerState.STARTING)
        self.started_at = time.monotonic()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        log_file = s.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.arguments(), cwd=s.comfyui_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            self._move(ServerState.DEAD)
            raise ComfyUIStartError(f"Could not start ComfyUI: {exc}.") from None
        self._reader = threading.Thread(
            target=self._pump_log, args=(self.process, log_file), name="comfyui-log", daemon=True
        )
        self._reader.start()
        self._wait_ready(s.boot_timeout_s)
        self.boot_seconds = time.monotonic() - self.started_at
        self._move(ServerState.READY)
        log.info("ComfyUI ready on %s after %.1f s", self.base_url, self.boot_seconds)

    def _pump_log(self, process: subprocess.Popen[bytes], log_file: BinaryIO) -> None:
        assert process.stdout is not None
        rotating = _RotatingFile(log_file, self.settings.log_path, self.settings.comfyui_log_max_bytes)
        classifier = ComfyLogClassifier()
        threshold = COMFYUI_LEVELS[self.settings.comfyui_log_level]
        show_all = self.settings.comfyui_log_level == "all"
        try:
            for raw in iter(process.stdout.readline, b""):
                rotating.write(raw)
                line = comfy_display_line(raw.decode("utf-8", "replace"))
                self.tail.append(line)
                self.lines_seen += 1
                if self._state is ServerState.STARTING:
                    self.boot_log.append(line)
                level = classifier.level(line)
                if level >= threshold:
                    # Errors are ComfyUI's, not ours: shown as warnings, the prediction decides if it failed.
                    comfy_log.log(logging.INFO if show_all and level < logging.WARNING else min(level, logging.WARNING),
                                  "[ComfyUI] %s", line)
        finally:
            rotating.close()

    def _wait_ready(self, timeout_s: float) -> None:
        with loopback_session() as session:
            self._poll_ready(session, timeout_s)

    def _poll_ready(self, session: requests.Session, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            if self.process is not None and self.process.poll() is not None:
                self._join_reader()
                self._move(ServerState.DEAD)
                raise ComfyUIStartError(
                    f"ComfyUI exited with code {self.process.returncode} before it was ready. "
                    f"Last log lines:\n{self.log_tail(30)}",
                )
            try:
                if session.get(f"{self.base_url}/system_stats", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ComfyUIStartError(
                    f"ComfyUI did not answer on {self.base_url} within {timeout_s:g} s. "
                    f"Last log lines:\n{self.log_tail(30)}",
                    fix="Raise CW_BOOT_TIMEOUT if the machine is slow, or read the log lines above.",
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def is_alive(self) -> bool:
        """Whether the child process runs (a pure query: it changes nothing)."""
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = 10.0) -> None:
        """terminate -> wait -> kill; always leaves no process behind."""
        process = self.process
        if process is not None and process.poll() is None:
            # ComfyUI leads its own process group (start_new_session): signal the group so
            # helpers it started (ffmpeg...) do not outlive it.
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=timeout_s)
        self._join_reader()
        self._move(ServerState.STOPPED)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20, *, since: int | None = None) -> str:
        """The last ``lines`` log lines; with ``since`` (a log_position()), only lines logged after it.

        A crash report uses ``since`` so it never shows an earlier prediction's
        traceback (another user's inputs may be in it) as if it were the cause.
        """
        if self.exit_code() is not None:
            self._join_reader()
        recent = list(self.tail)
        if since is not None:
            recent = recent[len(recent) - min(len(recent), max(0, self.lines_seen - since)):]
        return "\n".join(recent[-lines:])

    def log_position(self) -> int:
        """A mark in this life's log, for log_tail(since=...)."""
        return self.lines_seen
