"""Run ComfyUI's main.py in this process, and exit when our parent process dies.

The server module starts ComfyUI through this file rather than main.py
directly. If the process that owns ComfyUI disappears (the Cog worker killed,
a test runner interrupted), nothing else would stop ComfyUI: it would keep its
port and gigabytes of memory. A daemon thread notices the parent is gone
(our parent pid changes) within a second and ends the process.

It also keys ComfyUI's node objects on each run (``_key_node_objects_per_run``):
see workflow.mark_run's docstring for why.

Usage: python /path/to/comfyui_wrapper/server/launch.py /path/to/ComfyUI/main.py [main.py args...]
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import runpy
import sys
import threading
import time
from types import ModuleType
from typing import Any, Sequence

# workflow.RUN_TOKEN_INPUT (this file runs in ComfyUI's interpreter and imports nothing of ours; a test
# keeps the two equal).
RUN_TOKEN_INPUT = "cw_run"
CACHING_MODULE = "comfy_execution.caching"
UNPATCHED = ("ComfyUI's CacheKeySetID.add_keys is not the one this wrapper knows: node objects are kept per "
             "node id across predictions, so a node that keeps data on itself can pass it to the next one.")


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(0)


def _key_node_objects_per_run(caching: Any) -> None:
    """Make CacheKeySetID's key (node id, class) -> (node id, class, the node's run token).

    ComfyUI keeps one Python object per key from one prompt to the next; with the
    token in the key, a node that read prediction data (it carries this run's
    token, see workflow.mark_run) gets a new object every prediction, and a pure
    loader (no token) keeps its object. Only keys added by this call are changed,
    so a key never changes once ComfyUI has used it.
    """
    key_set = getattr(caching, "CacheKeySetID", None)
    original = getattr(key_set, "add_keys", None)
    if key_set is None or original is None or not inspect.iscoroutinefunction(original):
        print(f"Warning: {UNPATCHED}", file=sys.stderr, flush=True)
        return

    async def add_keys(self: Any, node_ids: Sequence[str]) -> None:
        new = [node_id for node_id in node_ids if node_id not in self.keys]
        await original(self, node_ids)
        for node_id in new:
            if node_id not in self.keys or not self.dynprompt.has_node(node_id):
                continue
            inputs = self.dynprompt.get_node(node_id).get("inputs")
            token = inputs.get(RUN_TOKEN_INPUT) if isinstance(inputs, dict) else None
            if isinstance(token, str):
                self.keys[node_id] = (*self.keys[node_id], token)
                self.subcache_keys[node_id] = (*self.subcache_keys[node_id], token)

    key_set.add_keys = add_keys


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies _key_node_objects_per_run when ComfyUI imports its caching module.

    Importing it ourselves before main.py would import torch and nodes before
    ComfyUI has read its arguments (device selection happens there).
    """

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name != CACHING_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        load = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            _key_node_objects_per_run(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def main() -> None:
    main_py = sys.argv[1]
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    comfy_dir = os.path.dirname(os.path.abspath(main_py))
    sys.argv = [main_py, *sys.argv[2:]]
    # sys.path[0] is this file's folder, whose server.py/client.py would shadow ComfyUI's own modules.
    sys.path[0] = comfy_dir
    os.chdir(comfy_dir)
    sys.meta_path.insert(0, _PatchOnImport())
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
