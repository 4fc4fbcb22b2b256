"""The package's shape, kept by tests: a lazy public API and one-way imports.

Why: ``import comfyui_wrapper.ui`` (the converter, the CLI's ``convert``, most
unit tests) should cost milliseconds, not the runtime's 0.6 s; and the layout
README describes (composers -> subpackages -> shared leaves, subpackages never
importing each other, no cycles) only stays true if something checks it.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "comfyui_wrapper"
# The composers may import anything in the package; nothing but a composer imports them.
COMPOSERS = {"__init__", "__main__", "cli", "runner", "plan", "new_model", "model_runtime"}
RUNTIME = ("requests", "websocket", "PIL", "sqlite3")


def _modules() -> dict[str, Path]:
    """Dotted name (relative to the package) -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules ``name`` imports at run time (module level or inside functions; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package and name != "__init__" else name.split(".")[:-1]
    if name == "__init__":
        package = []
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("comfyui_wrapper."):
                    found.add(alias.name.removeprefix("comfyui_wrapper."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and (node.module == "comfyui_wrapper" or node.module.startswith("comfyui_wrapper.")):
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                sub = ".".join([*target, alias.name])
                found.add(sub if sub in modules else ".".join(target) or "__init__")
    found.discard(name)
    return found


@functools.cache  # two tests read it; parsing the package takes a second
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> str:
    if name in COMPOSERS:
        return "composer"
    return name.split(".")[0] if "." in name or (PACKAGE / name).is_dir() else "leaf"


def test_subpackages_import_only_themselves_and_the_shared_leaves():
    wrong = []
    for name, deps in _graph().items():
        layer = _layer(name)
        if layer == "composer":
            continue
        for dep in sorted(deps):
            allowed = _layer(dep) == "leaf" or (layer != "leaf" and _layer(dep) == layer)
            if not allowed:
                wrong.append(f"{name} imports {dep}")
    assert not wrong, "imports against the layout (README, Layout):\n" + "\n".join(wrong)


def test_there_are_no_import_cycles():
    graph = _graph()
    cycles = []
    for start in graph:
        # depth-first search for a path back to start
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    cycles.append(" -> ".join([*path, start]))
                elif dep not in seen and dep != "__init__":
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


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


def test_pytest_collects_every_test_folder():
    """pytest never enters a folder matching ``norecursedirs``, silently; its default list has "build",
    which once left all of tests/build/ out of every run."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(REPO / "pytest.ini")
    patterns = ini["pytest"]["norecursedirs"].split()
    folders = {path.parent.relative_to(REPO) for path in (REPO / "tests").rglob("test_*.py")}
    assert Path("tests/build") in folders and Path("tests/e2e") in folders
    hidden = sorted(str(folder) for folder in folders
                    if any(fnmatch.fnmatch(part, pattern) for part in folder.parts for pattern in patterns))
    assert not hidden, f"pytest.ini's norecursedirs hides {hidden}"


def test_readme_layout_names_every_module():
    """README's Layout is the map a newcomer reads first: a module it does not name is a module they miss."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Layout")
    layout = readme[start:readme.index("\n```\n", readme.index("```", start) + 3)]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", layout))
    modules = sorted(path.relative_to(REPO).as_posix() for path in (REPO / "comfyui_wrapper").rglob("*.py")
                     if path.stem not in words)
    assert not modules, f"README's Layout does not name: {modules}"
