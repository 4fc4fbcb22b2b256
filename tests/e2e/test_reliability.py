"""No hangs, no lasting damage: failing nodes, deadlines, stalls, a killed ComfyUI, a dropped socket.

Uses misbehaving test nodes (tests/support/comfy_nodes) loaded through an
extra_model_paths YAML, and a runner with short deadlines.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from comfyui_wrapper.errors import ComfyUICrashedError, ExecutionError, NoOutputsError, PredictionTimeoutError
from comfyui_wrapper.runner import WorkflowRunner
from tests.conftest import base_settings, run_workflow

pytestmark = pytest.mark.e2e  # boots ComfyUI or the Cog server

NODES_DIR = Path(__file__).resolve().parents[1] / "support" / "comfy_nodes"


def nodes_yaml(tmp: Path) -> Path:
    path = tmp / "test_nodes.yaml"
    path.write_text(f"cw_tests:\n  custom_nodes: {NODES_DIR}\n")
    return path


def chain(*middle: tuple[str, dict]) -> dict:
    """EmptyImage -> each middle node in turn -> SaveImage."""
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
    previous = "1"
    for index, (class_type, inputs) in enumerate(middle, start=2):
        workflow[str(index)] = {"class_type": class_type, "inputs": {"image": [previous, 0], **inputs},
                                "_meta": {"title": f"my {class_type}"}}
        previous = str(index)
    workflow["99"] = {"class_type": "SaveImage", "inputs": {"images": [previous, 0], "filename_prefix": "ok"}}
    return workflow


def assert_clean(runner: WorkflowRunner) -> None:
    s = runner.settings
    for folder in (s.input_dir, s.output_dir, s.temp_dir, s.results_dir):
        assert list(folder.iterdir()) == [], f"{folder} holds leftovers"


def assert_recovers(runner: WorkflowRunner) -> None:
    result = run_workflow(runner, chain(), output_format="png")
    assert len(result.files) == 1


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reliability")
    settings = base_settings(tmp, extra_model_paths=(nodes_yaml(tmp),), prediction_timeout_s=6.0, stall_timeout_s=2.5)
    runner = WorkflowRunner(settings)
    runner.start()
    yield runner
    runner.stop()


def test_a_node_that_raises_gives_node_class_title_and_exception_not_the_traceback(runner):
    with pytest.raises(ExecutionError) as caught:
        run_workflow(runner, chain(("CWTestRaise", {"message": "kaboom"})))
    message = str(caught.value)
    assert 'node 2 "my CWTestRaise" (CWTestRaise) failed: ValueError: CWTestRaise says kaboom' in message
    assert "Traceback" not in message and "cw_test_nodes" not in message  # issue 12 item 14: no server internals
    assert_clean(runner)
    assert_recovers(runner)


def test_a_node_past_the_deadline_is_interrupted(runner):
    began = time.monotonic()
    with pytest.raises(PredictionTimeoutError) as caught:
        run_workflow(runner, chain(("CWTestSleep", {"seconds": 60.0, "report_progress": True})))
    assert time.monotonic() - began < 20
    assert "within 6 s" in str(caught.value) and "node 2" in str(caught.value)
    assert_clean(runner)
    began = time.monotonic()
    assert_recovers(runner)
    assert time.monotonic() - began < 5, "the interrupted node must not delay the next prediction"


def test_a_node_without_progress_trips_the_stall_watchdog(runner):
    with pytest.raises(PredictionTimeoutError, match="made no progress"):
        run_workflow(runner, chain(("CWTestSleep", {"seconds": 30.0, "report_progress": False})))
    assert_recovers(runner)


def test_events_a_pack_broadcasts_do_not_feed_the_stall_watchdog(runner):
    # The node makes no progress for 30 s while a thread broadcasts a monitor event and another
    # prompt's "progress" five times a second: the 2.5 s stall timeout must still fire.
    began = time.monotonic()
    with pytest.raises(PredictionTimeoutError) as caught:
        run_workflow(runner, chain(("CWTestHangWhileBroadcasting", {"seconds": 30.0})))
    assert time.monotonic() - began < 5.5, "the stall watchdog fired only at the overall deadline"
    assert "node 2 made no progress" in str(caught.value)
    assert_clean(runner)
    assert_recovers(runner)


def test_a_prompt_left_running_in_comfyui_is_stopped_before_the_next_prediction(runner, caplog):
    # Whatever an earlier prediction left behind (here queued behind our back), the next one
    # neither waits for it nor shares ComfyUI with it.
    client = runner._ensure_ready()
    slow = chain(("CWTestSleep", {"seconds": 60.0, "report_progress": False}))
    client.queue_prompt(slow)
    client.queue_prompt(slow)
    deadline = time.monotonic() + 10
    while not client.queue()["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="comfyui_wrapper"):
        result = run_workflow(runner, chain(), output_format="png")
    assert len(result.files) == 1 and time.monotonic() - began < 15
    assert "still had 1 running and 1 queued prompt(s)" in caplog.text
    queue = client.queue()
    assert not queue["queue_running"] and not queue["queue_pending"]


def test_comfyui_killed_mid_run_is_reported_and_the_next_run_restarts_it(runner):
    pid = runner.server.process.pid
    killer = threading.Timer(2.0, lambda: os.kill(pid, signal.SIGKILL))
    killer.start()
    began = time.monotonic()
    with pytest.raises(ComfyUICrashedError) as caught:
        run_workflow(runner, chain(("CWTestSleep", {"seconds": 4.0, "report_progress": True})))
    noticed = time.monotonic() - began - 2.0
    assert noticed < 2.5, f"took {noticed:.1f}s to notice"
    assert 'node 2 "my CWTestSleep" (CWTestSleep)' in str(caught.value)
    assert "exit code -9" in str(caught.value)
    assert_clean(runner)
    assert_recovers(runner)
    assert runner.server.process.pid != pid


def test_a_dropped_websocket_still_completes(runner):
    def drop():
        time.sleep(0.8)
        runner.client._ws.close()

    dropper = threading.Thread(target=drop)
    dropper.start()
    result = run_workflow(runner, chain(("CWTestSleep", {"seconds": 2.0, "report_progress": True})), output_format="png")
    dropper.join()
    assert len(result.files) == 1


def test_an_output_node_that_writes_nothing_is_an_error(runner):
    workflow = chain()
    workflow["99"] = {"class_type": "CWTestSaveNothing", "inputs": {"image": ["1", 0]}}
    with pytest.raises(NoOutputsError, match="node 99 \\(CWTestSaveNothing"):
        run_workflow(runner, workflow)
    assert_recovers(runner)


def test_a_setup_that_cannot_boot_says_why(tmp_path):
    broken = tmp_path / "ComfyUI"
    broken.mkdir()
    (broken / "main.py").write_text("raise SystemExit('this ComfyUI is broken on purpose')\n")
    runner = WorkflowRunner(dataclasses.replace(base_settings(tmp_path), comfyui_dir=broken))
    from comfyui_wrapper.errors import ComfyUIStartError

    with pytest.raises(ComfyUIStartError, match="broken on purpose"):
        runner.start()
