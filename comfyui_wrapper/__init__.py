"""Run any ComfyUI workflow as an API: the engine behind predict.py and the CLI.

Public API: ``Settings`` (configuration from the environment), ``WorkflowRunner``
(owns a ComfyUI process and runs predictions), ``RunRequest``/``RunResult``, and
the error family in ``comfyui_wrapper.errors``.
"""

from .errors import WrapperError
from .runner import RunRequest, RunResult, WorkflowRunner
from .settings import Settings

__all__ = ["RunRequest", "RunResult", "Settings", "WorkflowRunner", "WrapperError"]
