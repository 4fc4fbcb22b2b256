"""launch.py keys ComfyUI's node objects on the run token, checked on ComfyUI's own caching module.

ComfyUI keeps one object per CacheKeySetID key between prompts; the launcher's import hook
adds each node's run token to that key (see workflow.mark_run). This runs the real launcher
on a small main.py that imports the installed ComfyUI's comfy_execution.caching, as main.py does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_wrapper.server import launch
from comfyui_wrapper.settings import Settings
from comfyui_wrapper.workflow import RUN_TOKEN_INPUT

pytestmark = pytest.mark.e2e  # imports ComfyUI's code (torch, nodes)

COMFYUI_DIR = Settings.from_env({}).comfyui_dir

MAIN = '''
import asyncio, json, sys
sys.path.insert(0, {comfy!r})
import comfy.options
comfy.options.enable_args_parsing()  # as main.py does, so that --cpu is read
from comfy_execution.caching import CacheKeySetID
from comfy_execution.graph import DynamicPrompt

prompt = {{
    "1": {{"class_type": "CheckpointLoaderSimple", "inputs": {{"ckpt_name": "a.safetensors"}}}},
    "2": {{"class_type": "LoadImage", "inputs": {{"image": "input.png", "cw_run": "tok-A"}}}},
    "3": {{"class_type": "SaveImage", "inputs": {{"images": ["2", 0], "cw_run": "tok-A"}}}},
}}
keys = CacheKeySetID(DynamicPrompt(prompt), list(prompt), None)
asyncio.run(keys.add_keys(list(prompt)))
asyncio.run(keys.add_keys(["2", "3"]))  # asked again (ComfyUI does, for expanded nodes): unchanged
print(json.dumps({{"keys": keys.keys, "subcache_keys": keys.subcache_keys}}))
'''


def test_the_launcher_adds_the_run_token_to_comfyuis_node_object_keys(tmp_path: Path) -> None:
    assert launch.RUN_TOKEN_INPUT == RUN_TOKEN_INPUT
    (tmp_path / "main.py").write_text(MAIN.format(comfy=str(COMFYUI_DIR)))
    done = subprocess.run([sys.executable, launch.__file__, str(tmp_path / "main.py"), "--cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert launch.UNPATCHED not in done.stderr
    keys = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"1": ["1", "CheckpointLoaderSimple"], "2": ["2", "LoadImage", "tok-A"],
                "3": ["3", "SaveImage", "tok-A"]}
    assert keys == {"keys": expected, "subcache_keys": expected}


def test_an_unknown_caching_module_is_reported_not_fatal(tmp_path: Path) -> None:
    package = tmp_path / "comfy_execution"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "caching.py").write_text("class CacheKeySetID:\n    def add_keys(self, node_ids):\n        pass\n")
    (tmp_path / "main.py").write_text("import comfy_execution.caching\nprint('booted')\n")
    done = subprocess.run([sys.executable, launch.__file__, str(tmp_path / "main.py")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "booted" in done.stdout
    assert launch.UNPATCHED in done.stderr
