"""The ComfyUI child's state machine, against a stand-in main.py (a real child process, no ComfyUI).

The stand-in answers /system_stats the way ComfyUI does once it is up; each test
drives the real launcher and the real process group, in about a second.
"""

from __future__ import annotations

import os
import signal

import pytest

from comfyui_wrapper.errors import ComfyUIStartError
from comfyui_wrapper.server.process import ComfyUIServer, ServerState, ServerStateError
from tests.conftest import base_settings

STAND_IN = '''
import argparse, http.server, sys
parser = argparse.ArgumentParser()
parser.add_argument("--listen")
parser.add_argument("--port", type=int)
args, _ = parser.parse_known_args()
if "--fail" in sys.argv:
    print("Traceback: no module named torch", flush=True)
    sys.exit(3)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

print("To see the GUI go to: http://%s:%d" % (args.listen, args.port), flush=True)
http.server.HTTPServer((args.listen, args.port), Handler).serve_forever()
'''


@pytest.fixture
def server(tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(STAND_IN)
    made = ComfyUIServer(base_settings(tmp_path, comfyui_dir=comfy, boot_timeout_s=20.0))
    yield made
    made.stop()


def test_a_life_goes_stopped_starting_ready_stopped(server):
    assert server.state is ServerState.STOPPED and not server.is_alive()
    server.start()
    assert server.state is ServerState.READY and server.is_alive()
    server.start()  # already READY: nothing happens
    assert server.state is ServerState.READY
    server.stop()
    assert server.state is ServerState.STOPPED and not server.is_alive()


def test_a_child_that_exits_reads_as_dead_and_is_alive_changes_nothing(server):
    server.start()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=5)
    assert not server.is_alive()
    assert server._state is ServerState.READY, "is_alive() is a pure query"
    assert server.state is ServerState.DEAD
    server.start()  # DEAD -> STOPPED -> STARTING -> READY
    assert server.state is ServerState.READY


def test_a_boot_that_fails_is_dead_with_the_log_tail(server, tmp_path):
    server.settings = base_settings(tmp_path, comfyui_dir=server.settings.comfyui_dir, extra_args=("--fail",))
    with pytest.raises(ComfyUIStartError, match="exited with code 3") as caught:
        server.start()
    assert "no module named torch" in str(caught.value)
    assert server.state is ServerState.DEAD


def test_an_invalid_move_is_refused(server):
    with pytest.raises(ServerStateError, match="stopped -> ready"):
        server._move(ServerState.READY)
    assert server.state is ServerState.STOPPED


def test_a_missing_comfyui_is_a_start_error_that_says_how_to_install(tmp_path):
    server = ComfyUIServer(base_settings(tmp_path, comfyui_dir=tmp_path / "nowhere"))
    with pytest.raises(ComfyUIStartError, match="install_comfyui.py"):
        server.start()
    assert server.state is ServerState.STOPPED
