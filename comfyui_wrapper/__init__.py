"""Run any ComfyUI workflow as an API: the engine behind predict.py and the CLI.

Public API: ``Settings`` (configuration from the environment), ``WorkflowRunner``
(owns a ComfyUI process and runs predictions), ``RunRequest``/``RunResult``, and
the error family in ``comfyui_wrapper.errors``.

The names are loaded on first use (PEP 562): ``import comfyui_wrapper.ui`` (the
converter alone, as the CLI's ``convert`` and the tests use it) must not pull in
the runtime (requests, websocket, PIL, sqlite3), which the runner needs and a
subpackage does not. tests/unit/test_layout.py keeps it so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_LAZY = {
    "RunRequest": "runner",
    "RunResult": "runner",
    "WorkflowRunner": "runner",
    "Settings": "settings",
    "WrapperError": "errors",
}

__all__ = ["RunRequest", "RunResult", "Settings", "WorkflowRunner", "WrapperError"]  # = sorted(_LAZY)

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from .errors import WrapperError
    from .runner import RunRequest, RunResult, WorkflowRunner
    from .settings import Settings


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
