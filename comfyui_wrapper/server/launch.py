"""Run ComfyUI's main.py in this process, and exit when our parent process dies.

The server module starts ComfyUI through this file rather than main.py
directly. If the process that owns ComfyUI disappears (the Cog worker killed,
a test runner interrupted), nothing else would stop ComfyUI: it would keep its
port and gigabytes of memory. A daemon thread notices the parent is gone
(our parent pid changes) within a second and ends the process.

Usage: python /path/to/comfyui_wrapper/server/launch.py /path/to/ComfyUI/main.py [main.py args...]
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(0)


def main() -> None:
    main_py = sys.argv[1]
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    comfy_dir = os.path.dirname(os.path.abspath(main_py))
    sys.argv = [main_py, *sys.argv[2:]]
    # sys.path[0] is this file's folder, whose server.py/client.py would shadow ComfyUI's own modules.
    sys.path[0] = comfy_dir
    os.chdir(comfy_dir)
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
