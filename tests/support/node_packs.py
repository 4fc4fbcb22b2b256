"""Tiny custom node packs as real git repositories, for installer and runtime tests.

Each pack is a git repository in a temp folder, reachable over file:// the
way production reaches GitHub, with real commits (so "pinned commit while a
newer one exists" is a real situation) and valid ComfyUI node modules.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
}

# A valid pack: two image nodes (an image source, so a workflow can run without any model file).
GOOD_NODES = '''
import torch


class CWSolidImage:
    """A one-colour image: lets a test workflow run with no model file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "size": ("INT", {"default": 8, "min": 1, "max": 256}),
            "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "cw_test"

    def make(self, size, value):
        return (torch.full((1, size, size, 3), float(value)),)


class CWInvertImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "cw_test"

    def invert(self, image):
        return (1.0 - image,)


NODE_CLASS_MAPPINGS = {"CWSolidImage": CWSolidImage, "CWInvertImage": CWInvertImage}
NODE_DISPLAY_NAME_MAPPINGS = {"CWSolidImage": "Solid image (test)"}
'''

BROKEN_IMPORT = '''
import cw_no_such_dependency_for_tests  # raises ModuleNotFoundError at import


class CWBrokenNode:
    pass


NODE_CLASS_MAPPINGS = {"CWBrokenNode": CWBrokenNode}
'''

BROKEN_SYNTAX = "NODE_CLASS_MAPPINGS = {\n    'CWSyntaxNode': (\n"

NO_MAPPINGS = "VALUE = 1  # a module without NODE_CLASS_MAPPINGS\n"


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *args], cwd=cwd, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, env={**os.environ, **_GIT_ENV}, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@dataclass
class PackRepo:
    """An upstream repository: ``commits`` oldest first."""

    name: str
    path: Path
    commits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for relative, text in files.items():
            target = self.path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        sha = git(self.path, "rev-parse", "HEAD")
        self.commits.append(sha)
        return sha

    def add_submodule(self, sub: "PackRepo", where: str, message: str = "add submodule") -> str:
        git(self.path, "submodule", "-q", "add", sub.url, where)
        git(self.path / where, "checkout", "-q", sub.commits[0])
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        sha = git(self.path, "rev-parse", "HEAD")
        self.commits.append(sha)
        return sha


def make_repo(root: Path, name: str, files: dict[str, str]) -> PackRepo:
    path = root / name
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    repo = PackRepo(name, path)
    repo.commit(files, "first")
    return repo


def write_manifest(path: Path, packs: list[dict[str, Any]]) -> Path:
    entries = [{"install_requirements": True, "unsupported_nodes": {}, **p} for p in packs]
    path.write_text(json.dumps({"packs": entries}, indent=2))
    return path


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    path = REPO_ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"cw_script_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_venv(path: Path) -> Path:
    """A throwaway environment without pip (the installer drives it with ``pip --python``)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)
    return path / "bin" / "python"
