"""Shared fixtures: one real ComfyUI for the whole session, booted through our runner."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from comfyui_wrapper.runner import RunRequest, WorkflowRunner
from comfyui_wrapper.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def base_settings(tmp: Path, **changes: Any) -> Settings:
    """Settings for tests: everything under ``tmp``, local URLs allowed."""
    settings = Settings.from_env({})
    return dataclasses.replace(
        settings, runtime_dir=tmp / "runtime", weights_dir=tmp / "weights", allow_private_urls=True, **changes
    )


@pytest.fixture(scope="session")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowRunner]:
    logging.getLogger("comfyui_wrapper").setLevel(logging.INFO)
    runner = WorkflowRunner(base_settings(tmp_path_factory.mktemp("comfy")))
    runner.start()
    yield runner
    runner.stop()


def run_workflow(runner: WorkflowRunner, workflow: dict | str, **options: Any):
    text = workflow if isinstance(workflow, str) else json.dumps(workflow)
    return runner.run(RunRequest(workflow_json=text, **options))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the booted ComfyUI (the ``runner`` fixture) or lives in tests/e2e/ must be
    marked e2e, so `pytest -m "not e2e"` never boots ComfyUI."""
    unmarked = [item.nodeid for item in items
                if item.get_closest_marker("e2e") is None
                and ("runner" in getattr(item, "fixturenames", ()) or "/e2e/" in f"/{item.nodeid}")]
    if unmarked:
        raise pytest.UsageError("tests that boot ComfyUI without @pytest.mark.e2e:\n" + "\n".join(unmarked))
