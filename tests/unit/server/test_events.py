"""The protocol's rules as pure functions of the messages (server/events.py): no socket, explicit times."""

from __future__ import annotations

import pytest

from comfyui_wrapper.server.events import PROGRESS_EVENTS, PromptEvents

PID = "p-1"


def fed(messages: list[tuple[str, dict]], start: float = 100.0) -> tuple[PromptEvents, list[str], bool]:
    events = PromptEvents(PID, start)
    reported: list[str] = []
    done = False
    for offset, (kind, data) in enumerate(messages, 1):
        assert not done, "a message after the end"
        event, done = events.feed(kind, data, start + offset)
        if event is not None:
            reported.append(event.type)
    return events, reported, done


def ours(**data: object) -> dict:
    return {"prompt_id": PID, **data}


def test_a_whole_run_in_order() -> None:
    events, reported, done = fed([
        ("execution_start", ours()),
        ("execution_cached", ours(nodes=["4"])),
        ("executing", ours(node="3")),
        ("progress", ours(value=1, max=2, node="3")),
        ("executed", ours(node="9", output={"images": [{"filename": "a.png"}]})),
        ("execution_success", ours()),
    ])
    assert done and events.outcome.status == "success"
    assert events.outcome.outputs == {"9": {"images": [{"filename": "a.png"}]}}
    assert events.outcome.queue_wait_s == 1.0 and events.running_node == "3"
    assert reported == ["execution_start", "execution_cached", "executing", "progress", "executed",
                        "execution_success"]


def test_the_final_executing_ends_the_run_and_is_not_reported() -> None:
    events, reported, done = fed([("executing", ours(node="3")), ("executing", ours(node=None))])
    assert done and events.outcome.status == "success" and reported == ["executing"]


@pytest.mark.parametrize("kind, status", [("execution_error", "error"), ("execution_interrupted", "interrupted")])
def test_an_error_ends_the_run_with_its_payload_and_is_not_reported(kind: str, status: str) -> None:
    payload = ours(node_id="3", exception_message="boom")
    events, reported, done = fed([("executing", ours(node="3")), (kind, payload)])
    assert done and events.outcome.status == status and events.outcome.error == payload
    assert reported == ["executing"]


def test_only_our_progress_events_feed_the_watchdog() -> None:
    events = PromptEvents(PID, 0.0)
    assert events.feed("crystools.monitor", {"cpu": 3}, 5.0) == (None, False)
    assert events.feed("executing", {"prompt_id": "other", "node": "1"}, 6.0) == (None, False)
    assert events.feed("status", {"status": {"exec_info": {"queue_remaining": 0}}}, 7.0) == (None, False)
    assert events.last_progress == 0.0 and events.running_node is None
    event, done = events.feed("pack.preview", ours(), 8.0)  # ours, but not progress: reported, not counted
    assert event is not None and not done and events.last_progress == 0.0
    for offset, kind in enumerate(sorted(PROGRESS_EVENTS - {"executing"}), 10):
        events.feed(kind, ours(node="2"), float(offset))
        assert events.last_progress == float(offset)


def test_list_outputs_of_one_node_are_appended_and_others_replaced() -> None:
    events, _, _ = fed([
        ("executed", ours(node="9", output={"images": [1], "text": ["a"], "meta": {"k": 1}})),
        ("executed", ours(node="9", output={"images": [2], "text": "b", "meta": {"k": 2}})),
        ("executed", ours(node="8", output=None)),
        ("executed", ours(node="7", output=["not", "a", "dict"])),
    ])
    assert events.outcome.outputs == {"9": {"images": [1, 2], "text": "b", "meta": {"k": 2}}}


@pytest.mark.parametrize("entry, finished, status", [
    (None, False, "running"),
    ({}, False, "running"),
    ({"status": {"completed": False, "status_str": "running"}}, False, "running"),
    ({"status": {"completed": True, "status_str": "success"}, "outputs": {9: {"images": [1]}}}, True, "success"),
    ({"status": {"completed": False, "status_str": "error",
                 "messages": [["execution_error", {"exception_message": "boom"}]]}}, True, "error"),
    ({"status": {"completed": True, "status_str": "error",
                 "messages": [["execution_interrupted", {"node_id": "3"}]]}}, True, "interrupted"),
])
def test_history_tells_how_a_finished_prompt_ended(entry: dict | None, finished: bool, status: str) -> None:
    events = PromptEvents(PID, 0.0)
    assert events.finish_from_history(entry) is finished
    assert events.outcome.status == status
    if status == "success":
        assert events.outcome.outputs == {"9": {"images": [1]}}
    if status in ("error", "interrupted"):
        assert events.outcome.error
