#!/usr/bin/env python3
"""The main job on a machine without a GPU or internet: the built-in example, end to end.

Serves the generated test models from 127.0.0.1 (a stand-in for the weights CDN, as
the tests do), points the wrapper at a manifest for them, and runs the built-in
text-to-image workflow through the CLI, at a size a CPU handles in seconds. The checkpoint is downloaded, verified and
cached on the first run; later runs reuse it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.weights_cdn import local_cdn  # noqa: E402


def main() -> int:
    work = REPO / ".cache" / "demo"
    with local_cdn(work) as (_, manifest):
        os.environ.update({
            "CW_WEIGHTS_MANIFEST": str(manifest),
            "CW_WEIGHTS_DIR": str(work / "weights"),
            "CW_ALLOW_PRIVATE_URLS": "1",
        })
        from comfyui_wrapper.cli import main as cli

        return cli(["run", str(cpu_sized_example(work)), *sys.argv[1:]])


def cpu_sized_example(work: Path) -> Path:
    """The built-in example at 128x128 and 8 steps, so a 2-core CPU finishes in seconds, not minutes."""
    from comfyui_wrapper.workflow import EXAMPLE_WORKFLOW

    workflow = json.loads(EXAMPLE_WORKFLOW.read_text())
    workflow["5"]["inputs"].update(width=128, height=128)
    workflow["3"]["inputs"]["steps"] = 8
    path = work / "example_cpu.json"
    path.write_text(json.dumps(workflow, indent=2))
    return path


if __name__ == "__main__":
    sys.exit(main())
