#!/usr/bin/env python3
"""Record which model folder each file input of each ComfyUI node reads from.

ComfyUI's ``/object_info`` lists a loader's current file choices but not the
folder they come from, and the wrapper must know it to put a downloaded weight
where the loader will look (``CheckpointLoaderSimple.ckpt_name`` ->
``checkpoints``). Guessing from input names breaks on custom nodes, so we ask
ComfyUI itself, once, at install time:

1. A throwaway tree holds a one-file custom node, the *probe*, added to the
   ``custom_nodes`` search path through an extra_model_paths YAML. ComfyUI
   imports it after its own nodes and every installed pack, so by then every
   model folder is registered, including those packs add (or replace).
2. The probe gives each folder a private directory of uniquely named
   placeholders ``__cwprobe_NNN__<ext>`` (several extensions, because nodes
   filter by extension; an extensionless file; a sub-directory holding
   ``model_index.json``/``config.json`` for loaders that list folders) and adds
   it to that folder's search paths. It writes the folder list to probe.json.
3. We read ``/object_info``: an input whose choices include ``__cwprobe_NNN``
   reads from folder NNN. ComfyUI is then stopped and the tree deleted.

The map is written beside ComfyUI (default ``<ComfyUI>/model_folder_map.json``):

    {"schema": 1, "comfyui_version": "0.3.75", "comfyui_commit": "...",
     "custom_nodes": [...], "folders": [...], "aliases": {"unet": "diffusion_models", ...},
     "extensions": {"checkpoints": [".ckpt", ...], ...},
     "inputs": {"CheckpointLoaderSimple": {"ckpt_name": ["checkpoints"]}, ...}}

Each input lists its folders in the order its choices show them (the first
is where a new file is best placed). Rerun after adding custom nodes.

Standard library only, like install_comfyui.py, so an image build step can run
it before the project's own packages are installed. It boots ComfyUI with
``--cpu``: the node list does not depend on the device, and a build has no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMFYUI = REPO_ROOT / "ComfyUI"
MAP_NAME = "model_folder_map.json"
SCHEMA = 1
PROBE_TOKEN = re.compile(r"__cwprobe_(\d{3})__")
# Not model folders: ComfyUI imports code from custom_nodes.
SKIP_FOLDERS = ("custom_nodes",)

# The probe custom node. Runs inside ComfyUI; keep it to the standard library and folder_paths.
PROBE_SOURCE = r'''
"""Written by build_model_folder_map.py: gives every model folder a directory of placeholders."""
import json
import os

import folder_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = set(__SKIP__)
EXTENSIONS = __EXTENSIONS__
ALIAS_CANDIDATES = __ALIASES__



def _shape(entry):
    """(paths, extensions) from any way a pack registers a folder: ComfyUI's ([paths], {exts}),
    tuples such as VideoHelperSuite's ((), {".json"}), sets, bare path lists, one path, None."""
    if entry is None:
        return [], set()
    if isinstance(entry, str):
        return [entry], set()
    if isinstance(entry, (list, tuple)) and len(entry) == 2 and not isinstance(entry[1], str):
        raw_paths, raw_exts = entry
        if isinstance(raw_paths, str):
            raw_paths = [raw_paths]
        return [str(p) for p in (raw_paths or ())], {str(e) for e in (raw_exts or ())}
    if isinstance(entry, (list, tuple, set, frozenset)):
        return [str(p) for p in entry], set()
    raise TypeError("registered as %s, not (paths, extensions)" % type(entry).__name__)


folders = {}
extensions = {}
skipped = {}
for index, name in enumerate(sorted(str(n) for n in folder_paths.folder_names_and_paths if n not in SKIP)):
    try:
        token = "__cwprobe_%03d__" % index
        paths, own_set = _shape(folder_paths.folder_names_and_paths[name])
        # ComfyUI's own shape, so add_model_folder_path can append (a tuple of paths cannot).
        folder_paths.folder_names_and_paths[name] = (paths, own_set)
        own = sorted(own_set)
        directory = os.path.join(ROOT, "models", "%03d" % index)
        os.makedirs(os.path.join(directory, token + "dir"), exist_ok=True)
        for inner in ("model_index.json", "config.json"):
            open(os.path.join(directory, token + "dir", inner), "w").close()
        for ext in sorted(set(EXTENSIONS) | {e for e in own if e != "folder" and "/" not in e and os.sep not in e}):
            open(os.path.join(directory, token + ext), "w").close()
        folder_paths.add_model_folder_path(name, directory)
        folders["%03d" % index] = name
        extensions[name] = own
    except Exception as error:  # one odd registration must not cost the whole map
        skipped[name] = "%s: %s" % (type(error).__name__, error)

aliases = {a: folder_paths.map_legacy(a) for a in ALIAS_CANDIDATES if hasattr(folder_paths, "map_legacy")}
with open(os.path.join(ROOT, "probe.json"), "w") as handle:
    json.dump({"folders": folders, "extensions": extensions, "skipped": skipped,
               "aliases": {a: f for a, f in aliases.items() if a != f}}, handle)

NODE_CLASS_MAPPINGS = {}
'''

# Extensions placeholders get in every folder; a folder's own extensions are added to these.
# "" is an extensionless file (ComfyUI's "classifiers" folder lists only those).
PLACEHOLDER_EXTENSIONS = (
    "", ".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl",
    ".gguf", ".onnx", ".engine", ".trt", ".yaml", ".json", ".txt",
)
# ComfyUI importing many packs on a build host's CPU takes minutes (the image build passes 900).
DEFAULT_TIMEOUT_S = 600.0
# Legacy folder names ComfyUI still accepts (folder_paths.map_legacy); recorded if they map.
ALIAS_CANDIDATES = ("unet", "clip")


class ProbeError(RuntimeError):
    """ComfyUI did not answer, or the probe did not run."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_probe_tree(root: Path) -> Path:
    """The probe node, its YAML and ComfyUI's scratch folders under ``root``; returns the YAML."""
    nodes = root / "probe_nodes"
    nodes.mkdir(parents=True)
    source = (
        PROBE_SOURCE.replace("__SKIP__", repr(list(SKIP_FOLDERS)))
        .replace("__EXTENSIONS__", repr(list(PLACEHOLDER_EXTENSIONS)))
        .replace("__ALIASES__", repr(list(ALIAS_CANDIDATES)))
    )
    (nodes / "cw_folder_probe.py").write_text(source)
    for sub in ("input", "output", "temp", "user"):
        (root / sub).mkdir()
    yaml = root / "probe_paths.yaml"
    # JSON strings are valid YAML scalars and quote any odd path safely.
    yaml.write_text(f"cw_folder_probe:\n  base_path: {json.dumps(str(root))}\n  custom_nodes: probe_nodes\n")
    return yaml


def boot_and_fetch(comfyui_dir: Path, python: str, root: Path, yamls: list[Path], port: int, timeout_s: float) -> dict:
    """Start ComfyUI, return its /object_info, always stop it."""
    paths = [arg for yaml in yamls for arg in ("--extra-model-paths-config", str(yaml))]
    command = [
        python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch", *paths,
        "--input-directory", str(root / "input"), "--output-directory", str(root / "output"),
        "--temp-directory", str(root / "temp"), "--user-directory", str(root / "user"),
    ]
    log_path = root / "comfyui.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise ProbeError(f"ComfyUI exited with code {process.returncode} before answering.\n{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise ProbeError(f"ComfyUI did not answer /object_info within {timeout_s:.0f} s.\n{_tail(log_path)}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info", timeout=60) as response:
                        return json.load(response)
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.25)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no ComfyUI log)"
    return "--- last lines of the ComfyUI log ---\n" + "\n".join(text[-lines:])


def _strings(value: object) -> list[str]:
    """Every string inside an input spec, in order: old-style ``[[choices], {...}]`` and
    new-style ``["COMBO", {"options": [...]}]`` alike, and any nesting custom nodes use."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def inputs_by_folder(object_info: dict, folders: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """{class_type: {input_name: [folder, ...]}} for every input listing a placeholder."""
    result: dict[str, dict[str, list[str]]] = {}
    for class_type in sorted(object_info):
        spec = object_info[class_type].get("input") or {}
        for section in ("required", "optional"):
            for input_name, input_spec in (spec.get(section) or {}).items():
                found: list[str] = []
                for text in _strings(input_spec):
                    for index in PROBE_TOKEN.findall(text):
                        folder = folders.get(index)
                        if folder and folder not in found:
                            found.append(folder)
                if found:
                    result.setdefault(class_type, {})[input_name] = found
    return result


def comfyui_identity(comfyui_dir: Path) -> tuple[str, str | None]:
    """(version, commit): the version from comfyui_version.py, the commit from our install marker."""
    version = "unknown"
    match = re.search(r'__version__\s*=\s*"([^"]+)"', _read(comfyui_dir / "comfyui_version.py"))
    if match:
        version = match.group(1)
    try:
        commit = json.loads(_read(comfyui_dir / "comfyui_install.json")).get("comfyui_commit")
    except ValueError:
        commit = None
    return version, commit


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def installed_custom_nodes(comfyui_dir: Path) -> list[str]:
    """Packs the map was built with, so a stale map can be recognised."""
    folder = comfyui_dir / "custom_nodes"
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir()
        if p.name != "__pycache__" and not p.name.endswith(".disabled") and (p.is_dir() or p.suffix == ".py")
    )


def registering_packs(comfyui_dir: Path, folder: str) -> list[str]:
    """Packs whose Python source names ``folder`` in quotes: who most likely registered it."""
    found = []
    for pack in installed_custom_nodes(comfyui_dir):
        root = comfyui_dir / "custom_nodes" / pack
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))[:2000]
        needles = (f'"{folder}"', f"'{folder}'")
        if any(needle in _read(path) for path in files if path.is_file() for needle in needles):
            found.append(pack)
    return found


def report_skipped(comfyui_dir: Path, skipped: dict[str, str], log=print) -> dict[str, dict[str, object]]:
    """Name each folder the probe had to skip and the pack(s) behind it; the map is built without them."""
    out: dict[str, dict[str, object]] = {}
    for folder, reason in sorted(skipped.items()):
        packs = registering_packs(comfyui_dir, folder)
        out[folder] = {"reason": reason, "packs": packs}
        by = f" (registered by {', '.join(packs)})" if packs else ""
        log(f"WARNING: model folder {folder!r}{by} skipped: {reason}. Its loaders are left out of the map; "
            "report it to the pack or pin another commit in custom_nodes.json.", file=sys.stderr)
    return out


def build_map(comfyui_dir: Path, python: str = sys.executable, port: int = 0, timeout_s: float = DEFAULT_TIMEOUT_S,
              keep: bool = False, extra_configs: list[Path] | tuple[Path, ...] = ()) -> dict:
    """Boot ComfyUI with the probe and return the map (see the module docstring).

    ``extra_configs`` are extra_model_paths YAMLs the container runs ComfyUI
    with (for instance one adding a custom_nodes folder): pass the same ones so
    the probe sees the same nodes. They are loaded before the probe's own.
    """
    comfyui_dir = Path(comfyui_dir).resolve()
    if not (comfyui_dir / "main.py").is_file():
        raise ProbeError(f"No ComfyUI at {comfyui_dir} (no main.py there).")
    root = Path(tempfile.mkdtemp(prefix="cw-folder-probe-"))
    try:
        yaml = write_probe_tree(root)
        yamls = [Path(p).resolve() for p in extra_configs] + [yaml]
        object_info = boot_and_fetch(comfyui_dir, python, root, yamls, port or free_port(), timeout_s)
        try:
            probe = json.loads((root / "probe.json").read_text())
        except (OSError, ValueError):
            raise ProbeError(f"The probe custom node did not run.\n{_tail(root / 'comfyui.log')}") from None
    finally:
        if keep:
            print(f"kept the probe tree at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    version, commit = comfyui_identity(comfyui_dir)
    skipped = report_skipped(comfyui_dir, probe.get("skipped") or {})
    return {
        "schema": SCHEMA,
        "comfyui_version": version,
        "comfyui_commit": commit,
        "custom_nodes": installed_custom_nodes(comfyui_dir),
        "node_classes": len(object_info),
        "folders": sorted(probe["folders"].values()),
        "aliases": dict(sorted(probe["aliases"].items())),
        "extensions": dict(sorted(probe["extensions"].items())),
        "inputs": inputs_by_folder(object_info, probe["folders"]),
        "skipped_folders": skipped,
    }


def write_json_atomically(data: dict, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.incomplete")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui-dir", type=Path, default=DEFAULT_COMFYUI)
    parser.add_argument("--out", type=Path, help=f"map file (default <comfyui-dir>/{MAP_NAME})")
    parser.add_argument("--python", default=sys.executable, help="Python that runs ComfyUI (default: this one)")
    parser.add_argument("--port", type=int, default=0, help="port for the probe ComfyUI (default: a free one)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds to wait for ComfyUI (default {DEFAULT_TIMEOUT_S:.0f})")
    parser.add_argument("--extra-model-paths-config", type=Path, action="append", default=[], metavar="YAML",
                        help="an extra_model_paths YAML ComfyUI normally runs with (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the probe tree and ComfyUI log for debugging")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        data = build_map(args.comfyui_dir, args.python, args.port, args.timeout, args.keep, args.extra_model_paths_config)
    except ProbeError as error:
        print(f"build_model_folder_map: {error}", file=sys.stderr)
        return 1
    out = args.out or (Path(args.comfyui_dir) / MAP_NAME)
    write_json_atomically(data, out)
    pairs = sum(len(v) for v in data["inputs"].values())
    print(f"{out}: {pairs} inputs of {len(data['inputs'])} node classes over {len(data['folders'])} folders "
          f"(ComfyUI {data['comfyui_version']}, {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
