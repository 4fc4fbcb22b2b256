"""Run predict.py under the real Cog runtime (coglet), as `cog predict` would in Docker.

The server is `python -m cog.server.http` with COG_PREDICT_TYPE_STUB taken from
cog.yaml and the environment's bin first on PATH (coglet starts its worker as
`python`). Requests that land within a few ms of the previous response may get
409 "At capacity": post() retries those.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def predict_ref(root: Path = REPO_ROOT) -> str:
    return yaml.safe_load((root / "cog.yaml").read_text())["predict"]


@dataclass
class CogServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def post(self, inputs: dict[str, Any], timeout: float = 300) -> requests.Response:
        deadline = time.monotonic() + timeout
        while True:
            response = requests.post(f"{self.base_url}/predictions", json={"input": inputs}, timeout=timeout)
            if response.status_code != 409 or time.monotonic() > deadline:
                return response
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.base_url}/health-check", timeout=5).json()

    def settled_status(self, timeout: float = 5.0) -> str:
        """The health status once the just-finished prediction has released its slot.

        Right after a response, coglet may still say BUSY for a few milliseconds.
        """
        deadline = time.monotonic() + timeout
        status = self.health()["status"]
        while status == "BUSY" and time.monotonic() < deadline:
            time.sleep(0.05)
            status = self.health()["status"]
        return status

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; always reaped."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cog_server(tmp: Path, env: dict[str, str] | None = None, setup_timeout: float = 240,
               root: Path = REPO_ROOT) -> Iterator[CogServer]:
    """Serve the Cog project in ``root`` (this checkout, or a model made by new-model)."""
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)
    full_env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "COG_PREDICT_TYPE_STUB": predict_ref(root),
        "PORT": str(port),
        "CW_RUNTIME_DIR": str(tmp / "runtime"),
        "CW_WEIGHTS_DIR": str(tmp / "weights"),
        **(env or {}),
    }
    log_path = tmp / "cog_server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
            cwd=root, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = CogServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + setup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Cog server exited early:\n{server.log()[-3000:]}")
            try:
                status = server.health().get("status")
                if status in ("READY", "SETUP_FAILED", "UNHEALTHY"):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Cog server not ready in {setup_timeout}s:\n{server.log()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        stop_process(process, 20)
