"""The client's event handling against a scripted fake ComfyUI (websocket + /history), no ComfyUI.

What only a booted ComfyUI exercised before: the order of the final events, other
prompts' and packs' broadcasts, a dropped socket recovered through /history, the
stall watchdog.
"""

from __future__ import annotations

import time

import pytest

from comfyui_wrapper.errors import PredictionTimeoutError
from comfyui_wrapper.server.client import ComfyUIClient
from tests.support.fake_comfyui import DROP, Script, fake_comfyui, message

IMAGE = {"images": [{"filename": "out_00001_.png", "subfolder": "", "type": "output"}]}


def run(script: Script, *, stall_timeout_s: float = 5.0, events: list | None = None):
    with fake_comfyui(script):
        client = ComfyUIClient(script.base_url)
        try:
            return client.wait("p1", timeout_s=10, stall_timeout_s=stall_timeout_s, poll_interval_s=0.05,
                               on_event=(events.append if events is not None else None))
        finally:
            client.close()


def test_execution_success_before_the_final_executing_ends_the_run_with_its_outputs():
    events: list = []
    outcome = run(Script(connections=[[
        message("execution_start"), message("executing", node="9"),
        message("executed", node="9", output=IMAGE), message("execution_success"),
        message("executing", node=None),
    ]]), events=events)
    assert outcome.status == "success" and outcome.outputs == {"9": IMAGE}
    assert [e.type for e in events] == ["execution_start", "executing", "executed", "execution_success"]


def test_the_final_executing_alone_ends_a_successful_run():
    outcome = run(Script(connections=[[message("executed", node="9", output=IMAGE), message("executing", node=None)]]))
    assert outcome.status == "success" and outcome.outputs == {"9": IMAGE}


def test_other_prompts_packs_and_previews_are_ignored():
    outcome = run(Script(connections=[[
        message("executing", prompt_id="someone-else", node=None),  # another prompt's end is not ours
        {"type": "crystools.monitor", "data": {"cpu": 3}},  # a pack's broadcast
        b"\x00\x00\x00\x01preview-bytes",  # a binary preview frame
        message("execution_error", prompt_id="someone-else", node_id="3"),
        message("executed", node="9", output=IMAGE), message("execution_success"),
    ]]))
    assert outcome.status == "success" and outcome.outputs == {"9": IMAGE}


def test_outputs_of_one_node_reported_twice_are_merged():
    more = {"images": [{"filename": "out_00002_.png", "subfolder": "", "type": "output"}]}
    outcome = run(Script(connections=[[message("executed", node="9", output=IMAGE),
                                       message("executed", node="9", output=more), message("execution_success")]]))
    assert [i["filename"] for i in outcome.outputs["9"]["images"]] == ["out_00001_.png", "out_00002_.png"]


@pytest.mark.parametrize("event,status", [("execution_error", "error"), ("execution_interrupted", "interrupted")])
def test_an_error_or_interrupt_ends_the_run_with_its_payload(event, status):
    outcome = run(Script(connections=[[message("executing", node="3"), message(event, node_id="3")]]))
    assert outcome.status == status and outcome.error["node_id"] == "3"


def test_a_dropped_socket_recovers_the_finished_run_from_history():
    script = Script(
        connections=[[message("execution_start"), message("executing", node="9"), DROP]],
        history={"p1": {"status": {"completed": True, "status_str": "success", "messages": []},
                        "outputs": {"9": IMAGE}}},
    )
    outcome = run(script)
    assert outcome.status == "success" and outcome.outputs == {"9": IMAGE}


def test_a_dropped_socket_then_a_reconnect_goes_on_with_the_events():
    script = Script(connections=[[message("executing", node="9"), DROP],
                                 [message("executed", node="9", output=IMAGE), message("execution_success")]])
    outcome = run(script)
    assert outcome.status == "success" and outcome.outputs == {"9": IMAGE} and script.connected == 2


def test_an_error_recorded_in_history_is_the_outcome():
    script = Script(connections=[[DROP]], history={"p1": {
        "status": {"completed": False, "status_str": "error",
                   "messages": [["execution_error", {"node_id": "5", "exception_message": "boom"}]]},
        "outputs": {}}})
    outcome = run(script)
    assert outcome.status == "error" and outcome.error["node_id"] == "5"


def test_no_progress_from_our_prompt_trips_the_stall_watchdog():
    script = Script(connections=[[message("executing", node="4")] + [{"type": "crystools.monitor", "data": {}}] * 3])
    started = time.monotonic()
    with pytest.raises(PredictionTimeoutError, match="node 4 made no progress") as caught:
        run(script, stall_timeout_s=0.5)
    assert caught.value.node_id == "4" and time.monotonic() - started < 5


def test_the_environments_proxy_never_carries_calls_to_comfyui(monkeypatch):
    """ComfyUI is on 127.0.0.1: an operator's HTTP_PROXY (no NO_PROXY) must not take our calls elsewhere."""
    dead = "http://127.0.0.1:9"  # nothing listens: a call through the proxy would fail
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    entry = {"status": {"completed": True, "status_str": "success"}, "outputs": {}}
    script = Script(history={"p1": entry})
    with fake_comfyui(script):
        client = ComfyUIClient(script.base_url)
        try:
            assert client.history("p1") == entry
        finally:
            client.close()
