"""The package's shape, kept by tests: a lazy public API and one-way imports.

Why: ``import comfyui_wrapper.ui`` (the converter, the CLI's ``convert``, most
unit tests) should cost milliseconds, not the runtime's 0.6 s; and the layout
README describes (composers -> subpackages -> shared leaves, subpackages never
importing each other, no cycles) only stays true if something checks it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "comfyui_wrapper"
RUNTIME = ("requests", "websocket", "PIL", "sqlite3")


@pytest.mark.parametrize("module", ["comfyui_wrapper", "comfyui_wrapper.ui", "comfyui_wrapper.ui.convert",
                                    "comfyui_wrapper.workflow", "comfyui_wrapper.errors", "comfyui_wrapper.settings",
                                    "comfyui_wrapper.weights.manifest"])
def test_importing_a_light_module_loads_no_runtime(module):
    code = (f"import sys, {module}\n"
            f"print(' '.join(m for m in {RUNTIME!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", f"import {module} loaded {loaded.stdout.strip()}"


def test_the_public_api_is_there_on_first_use():
    code = ("import comfyui_wrapper as cw\n"
            "names = [n for n in cw.__all__ if getattr(cw, n) is None]\n"
            "print(sorted(cw.__all__), names, 'WorkflowRunner' in dir(cw))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['RunRequest', 'RunResult', 'Settings', 'WorkflowRunner', 'WrapperError'] [] True"
    with pytest.raises(AttributeError):
        import comfyui_wrapper
        comfyui_wrapper.NotAName  # noqa: B018
