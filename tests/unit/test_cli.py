"""The command line: one path from what the user gives to a workflow, for run, convert and plan.

No ComfyUI here: ``convert`` and ``plan`` with ``--object-info`` need none.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from comfyui_wrapper.cli import main
from tests.support.static_server import serve_directory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ui_oracle"
CASE = "bypassed"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Every folder the runner may write to under tmp_path; private URLs allowed (the server is loopback)."""
    for name in ("CW_RUNTIME_DIR", "CW_WEIGHTS_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("CW_ALLOW_PRIVATE_URLS", "1")
    info = tmp_path / "object_info.json"
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as packed:
        info.write_bytes(packed.read())
    return info


def _api_shape(workflow: dict) -> dict:
    return {node_id: node["class_type"] for node_id, node in workflow.items()}


def test_convert_takes_a_url_as_run_does(tmp_path, env, capsys):
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(FIXTURES / "cases" / f"{CASE}.json", served / "workflow.json")
    want = json.loads((FIXTURES / "expected" / f"case__{CASE}.json").read_text())["output"]
    with serve_directory(served) as server:
        assert main(["convert", f"{server.base_url}/workflow.json", "--object-info", str(env)]) == 0
    assert _api_shape(json.loads(capsys.readouterr().out)) == _api_shape(want)


def _tree(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def test_a_runner_is_built_without_touching_the_disk(tmp_path, env):
    from comfyui_wrapper import Settings, WorkflowRunner

    before = _tree(tmp_path)
    runner = WorkflowRunner(Settings.from_env())
    runner.stop()
    assert _tree(tmp_path) == before, "WorkflowRunner() and stop() must only allocate"


@pytest.mark.parametrize("command", [["convert"], ["plan", "--json"]])
def test_convert_and_plan_with_object_info_write_nothing(tmp_path, env, capsys, command):
    workflow = tmp_path / "workflow.json"
    shutil.copy(FIXTURES / "cases" / f"{CASE}.json", workflow)
    before = _tree(tmp_path)
    status = main([command[0], str(workflow), "--object-info", str(env), *command[1:]])
    out = capsys.readouterr().out
    assert status in (0, 2) and json.loads(out)  # plan: 2 when the plan finds a blocking problem
    assert _tree(tmp_path) == before, f"{command[0]} --object-info wrote to disk"
