#!/usr/bin/env python3
"""Rehearse the Cog image build on a machine without Docker: what would break in the image breaks here.

It reads cog.yaml and replays, in the order of Cog's generated Dockerfile (Cog base
image path: ENV, system packages, python_requirements, the cog SDK, `run:` commands,
then `WORKDIR /src` + `COPY . /src`):

1. what the Cog CLI does before Docker: predict.py read statically (tree-sitter,
   scripts/check_cog_static.py) and compared with .cog/openapi_schema.json; cog.yaml's
   rules (sdk_version pinned to the constraints' cog, no build secrets, no newline in a
   run command); scripts/cog_build.sh ships our schema and refuses a CLI without cog#3160;
2. an interpreter standing in for the image's: a copy of this machine's Python prefix
   (hard links) with an empty site-packages and an EXTERNALLY-MANAGED file in its stdlib,
   like the uv-managed Python of CUDA 13 images (a venv would be exempt from PEP 668);
3. python_requirements installed the way Cog does (local wheels staged under
   /tmp/local_package_artifacts, `--break-system-packages`), then cog==sdk_version;
4. every `run:` command verbatim, with the image's absolute paths (/opt, /src, /tmp,
   /root) mapped under a temporary root and no build secrets (the dev commands pass none);
5. the project copied as `COPY . /src` does (honouring .dockerignore) into an empty /src
   (the dev commands bind-mount the project over /src: whatever a build step put there
   is hidden);
6. the real Cog HTTP server started from that copy, and one prediction: a node from a
   custom pack installed by step 4 feeding an upscaler whose weight comes from the local
   CDN (tests/support/weights_cdn.py).

Custom node packs are local git repositories over file:// (one shaped like
VideoHelperSuite, one with requirements); their manifest replaces custom_nodes.json in
the rehearsed project, and the build wheel is rebuilt from it.

python_requirements: by default the stand-in's site-packages is layered over the
project's .venv (which scripts/setup.sh installs from the same constraints), so pip
resolves requirements/cog.txt against it and installs only what is missing (the build
wheel, and whatever the packs add, into the stand-in). `--fresh` installs everything
into the stand-in (torch and the CUDA wheels: several GB, minutes).

`--inject NAME` applies one of the issue's defects to the rehearsed project, to show
the rehearsal fails on it (see DEFECTS).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import build_image_wheel  # noqa: E402
import check_cog_static  # noqa: E402
import yaml  # noqa: E402

# Absolute paths of the image that a run: command or an ENV may name, mapped under the root.
IMAGE_PATHS = ("/opt", "/src", "/tmp", "/root", "/usr/local")
ARTIFACTS = "/tmp/local_package_artifacts"


class RehearsalFailed(Exception):
    """A step that would fail the image build (or the image) failed here."""


def log(message: str) -> None:
    print(f"[rehearse] {message}", flush=True)


# --- the project as Docker sees it ----------------------------------------------------------


def dockerignore_patterns(project: Path) -> list[str]:
    path = project / ".dockerignore"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    """Docker's matching for the patterns we use: `name/` or `name` at the root, `**/name/` anywhere."""
    from fnmatch import fnmatch

    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        dir_only = pattern.endswith("/")
        pattern = pattern.strip("/")
        if dir_only and not is_dir:
            continue
        if pattern.startswith("**/"):
            hit = fnmatch(relative.rsplit("/", 1)[-1], pattern[3:]) or fnmatch(relative, pattern[3:])
        else:
            hit = fnmatch(relative, pattern)
        if hit:
            result = not negate
    return result


def copy_context(project: Path, dest: Path) -> int:
    """`COPY . dest` with .dockerignore applied; returns the number of files."""
    patterns = dockerignore_patterns(project)
    count = 0
    for folder, dirs, files in os.walk(project):
        rel_dir = Path(folder).relative_to(project)
        keep = []
        for name in sorted(dirs):
            rel = (rel_dir / name).as_posix()
            full = Path(folder) / name
            if ignored(rel, True, patterns) or full.is_symlink() and not full.resolve().is_relative_to(project):
                continue
            keep.append(name)
        dirs[:] = keep
        for name in files:
            rel = (rel_dir / name).as_posix()
            if ignored(rel, False, patterns):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(folder) / name, target, follow_symlinks=True)
            count += 1
    return count


# --- the image's interpreter ----------------------------------------------------------------


def make_image_python(root: Path, base_prefix: Path = Path(sys.base_prefix), with_pip: bool = True) -> Path:
    """A copy of this machine's Python prefix at <root>/usr/local/python, externally managed.

    Hard links (fast, no space); an empty site-packages with pip from ensurepip; an
    EXTERNALLY-MANAGED file in its stdlib, as uv marks the Pythons it installs.
    """
    prefix = root / "usr" / "local" / "python"
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = base_prefix / "lib" / version
    (prefix / "bin").mkdir(parents=True)
    binary = Path(os.path.realpath(base_prefix / "bin" / version))
    os.link(binary, prefix / "bin" / version)
    for alias in ("python", "python3"):
        (prefix / "bin" / alias).symlink_to(version)
    target = prefix / "lib" / version
    target.mkdir(parents=True)
    # Everything but site-packages (the image starts with an empty one) and the stdlib's own tests.
    entries = [str(entry) for entry in stdlib.iterdir() if entry.name not in ("site-packages", "test")]
    subprocess.run(["cp", "-al", *entries, str(target)], check=True)
    (target / "site-packages").mkdir()
    python = prefix / "bin" / "python"
    if with_pip:
        run_checked([str(python), "-m", "ensurepip", "--default-pip"], "pip for the stand-in interpreter",
                    env={"PYTHONPATH": ""})
    (prefix / "lib" / version / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This Python stands in for the image's uv-managed Python (PEP 668).\n")
    return python


def layer_over(python: Path, site_packages: Path) -> None:
    """Make ``site_packages`` visible after the stand-in's own (a .pth line), like a lower image layer."""
    out = subprocess.run([str(python), "-c", "import sysconfig;print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(out, "zz_cw_rehearsal_layer.pth").write_text(str(site_packages) + "\n")


# --- running things ---------------------------------------------------------------------------


def run_checked(command: list[str] | str, what: str, *, env: dict[str, str] | None = None, cwd: Path | None = None,
                shell: bool = False, timeout: float = 1800) -> str:
    started = time.monotonic()
    result = subprocess.run(command, env={**os.environ, **(env or {})}, cwd=cwd, shell=shell,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stdout + "\n" + result.stderr).strip()[-6000:]
        raise RehearsalFailed(f"{what} failed (exit {result.returncode}):\n{tail}")
    log(f"{what}: ok ({time.monotonic() - started:.1f} s)")
    return result.stdout


def map_paths(text: str, root: Path) -> str:
    """Image absolute paths (/opt/..., /src, ...) -> the same paths under ``root``."""
    pattern = r"(?<![\w./-])(" + "|".join(re.escape(p) for p in IMAGE_PATHS) + r")(?=/|\b|$)"
    return re.sub(pattern, lambda m: str(root) + m.group(1), text)


# --- what the Cog CLI checks before Docker ---------------------------------------------------


def constraint_pin(project: Path, name: str) -> str | None:
    for line in (project / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip().lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    return None


def check_config(project: Path, config: dict[str, Any]) -> None:
    build = config.get("build") or {}
    problems = []
    sdk = build.get("sdk_version")
    want = constraint_pin(project, "cog")
    if not sdk:
        problems.append(f"cog.yaml has no build.sdk_version: the image would get the newest cog SDK, not {want}")
    elif str(sdk) != want:
        problems.append(f"cog.yaml's build.sdk_version {sdk} differs from requirements/constraints.txt's cog=={want}")
    for item in build.get("run") or []:
        entry = item if isinstance(item, dict) else {"command": item}
        if "\n" in entry.get("command", "").strip():
            problems.append(f"a run command contains a newline (Cog rejects it): {entry['command'][:80]}")
        for mount in entry.get("mounts") or []:
            if mount.get("type") == "secret":
                problems.append(f"run command mounts the build secret {mount.get('id')!r}: BuildKit leaves secret "
                                "contents out of the cache key, and cog predict/serve pass no secrets")
    gitignore = (project / ".gitignore").read_text() if (project / ".gitignore").is_file() else ""
    for left_by_cli in (".cog/cog.lock", ".cog/build/"):
        if left_by_cli not in gitignore.split():
            problems.append(f".gitignore does not ignore {left_by_cli} (the Cog CLI leaves it behind)")
    if problems:
        raise RehearsalFailed("cog.yaml / project checks:\n- " + "\n- ".join(problems))
    log("cog.yaml: sdk_version pinned, no build secrets, CLI leftovers ignored")


def check_cog_build_script(project: Path, work: Path) -> None:
    """scripts/cog_build.sh with a stand-in `cog`: refuses 0.22.0, passes --openapi-schema to build and push."""
    fake = work / "fake-cog"
    record = work / "fake-cog.args"
    fake.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then echo \"cog version $FAKE_COG_VERSION (built x)\"; "
                    f"exit 0; fi\necho \"$@\" >> {shlex.quote(str(record))}\n")
    fake.chmod(0o755)
    script = project / "scripts" / "cog_build.sh"
    env = {**os.environ, "COG": str(fake), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    old = subprocess.run([str(script), "-t", "x"], env={**env, "FAKE_COG_VERSION": "0.22.0"}, capture_output=True, text=True)
    if old.returncode == 0:
        raise RehearsalFailed("scripts/cog_build.sh accepted Cog 0.22.0, which lacks cog#3160 (CUDA 13 bases)")
    for command in (["-t", "x"], ["push", "r8.im/x/y"]):
        result = subprocess.run([str(script), *command], env={**env, "FAKE_COG_VERSION": "0.22.1"},
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RehearsalFailed(f"scripts/cog_build.sh {' '.join(command)} failed: {result.stderr[-2000:]}")
    calls = record.read_text().splitlines() if record.is_file() else []
    if len(calls) != 2 or not all("--openapi-schema .cog/openapi_schema.json" in c for c in calls) \
            or not calls[0].startswith("build") or not calls[1].startswith("push"):
        raise RehearsalFailed(f"scripts/cog_build.sh must run cog build/push with --openapi-schema; it ran {calls}")
    log("scripts/cog_build.sh: refuses Cog 0.22.0, ships .cog/openapi_schema.json on build and push")


# --- local packs ---------------------------------------------------------------------------------


VHS_LIKE_PACK = '''
import folder_paths

# As ComfyUI-VideoHelperSuite does: a folder registered as a tuple, not ([paths], {exts}).
folder_paths.folder_names_and_paths["VHS_video_formats"] = ((), {".json"})


class CWRehearsalFormats:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"format": (["image/gif"] + folder_paths.get_filename_list("VHS_video_formats"),)}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, format):
        return (format,)


NODE_CLASS_MAPPINGS = {"CWRehearsalFormats": CWRehearsalFormats}
'''


def make_local_packs(where: Path) -> list[dict[str, Any]]:
    """Three git repositories over file://: image nodes (with requirements), VHS-shaped, plain."""
    from tests.support.node_packs import GOOD_NODES, make_repo

    image = make_repo(where, "cw-rehearsal-image-nodes", {"__init__.py": GOOD_NODES,
                                                          "requirements.txt": "numpy\n"})
    vhs = make_repo(where, "ComfyUI-VideoHelperSuite", {"__init__.py": VHS_LIKE_PACK})
    vhs.commit({"README.md": "a newer commit than the pinned one\n"})
    return [
        {"name": "cw-rehearsal-image-nodes", "repo": image.url, "commit": image.commits[0][:7]},
        {"name": "ComfyUI-VideoHelperSuite", "repo": vhs.url, "commit": vhs.commits[0][:10]},
    ]


def write_manifest(context: Path, packs: list[dict[str, Any]]) -> None:
    entries = [{"install_requirements": True, "unsupported_nodes": {}, **p} for p in packs]
    (context / "custom_nodes.json").write_text(json.dumps({"packs": entries}, indent=2) + "\n")


# --- defects, to show the rehearsal catches each ---------------------------------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise SystemExit(f"--inject: {path} no longer contains {old!r}")
    path.write_text(text.replace(old, new, 1))


def _yaml_edit(context: Path, change: Callable[[dict[str, Any]], None]) -> None:
    config = yaml.safe_load((context / "cog.yaml").read_text())
    change(config)
    (context / "cog.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _secrets(config: dict[str, Any]) -> None:
    config["build"]["run"] = [{"command": "python /tmp/cw/scripts/image_build.py --comfyui-dir /opt/comfyui",
                               "mounts": [{"type": "secret", "id": "image_build", "target": "/tmp/cw/scripts/image_build.py"}]}]


DEFECTS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "choices": ("1. choices=list(...) of an imported name (the CLI aborts)",
                lambda c: _edit(c / "predict.py", "choices=OUTPUT_FORMAT_CHOICES", "choices=list(OUTPUT_FORMATS)")),
    "description": ("1. a parenthesised description (the CLI drops it)",
                    lambda c: _edit(c / "predict.py",
                                    'description="Format of the returned images. Videos, GIFs, audio and other files '
                                    'are returned as they are.",',
                                    'description=("Format of the returned images. "\n"Videos, GIFs, audio and other '
                                    'files are returned as they are."),')),
    "pep668": ("2. a plain pip install in a run: step (externally managed Python)",
               lambda c: _edit(c / "scripts" / "install_custom_nodes.py",
                               '    if marked.returncode == 0 and marked.stdout.strip() == "1":', "    if False:")),
    "secrets": ("3. the run: step fed by build secrets", lambda c: _yaml_edit(c, _secrets)),
    "src": ("3. ComfyUI installed under /src (hidden by the dev commands' bind mount)",
            lambda c: _yaml_edit(c, lambda y: (y["build"].__setitem__("run", ["python -m cw_build --comfyui-dir /src/ComfyUI"]),
                                               y.__setitem__("environment", ["CW_COMFYUI_DIR=/src/ComfyUI"])))),
    "sdk": ("4. no build.sdk_version", lambda c: _yaml_edit(c, lambda y: y["build"].pop("sdk_version"))),
    "tuple": ("5. the folder map appending to a tuple registration (VideoHelperSuite)",
              lambda c: _edit(c / "scripts" / "build_model_folder_map.py",
                              "folder_paths.folder_names_and_paths[name] = (paths, own_set)",
                              "folder_paths.folder_names_and_paths[name] = folder_paths.folder_names_and_paths[name]")),
    "cli": ("6. cog_build.sh without the CLI version check",
            lambda c: _edit(c / "scripts" / "cog_build.sh", 'if ! newer_than_0_22_0 "$version" &&', "if false &&")),
    "lock": ("6. .cog/cog.lock not ignored", lambda c: _edit(c / ".gitignore", ".cog/cog.lock\n", "")),
}


def _drop_probe_guard(context: Path) -> None:
    """--inject tuple must not be rescued by the probe's per-folder guard: drop the guard as well."""
    _edit(context / "scripts" / "build_model_folder_map.py",
          "    except Exception as error:  # one odd registration must not cost the whole map\n"
          "        skipped[name] = \"%s: %s\" % (type(error).__name__, error)\n",
          "    except ImportError:\n        raise\n")


# --- the rehearsal ----------------------------------------------------------------------------------


PREDICTION_WORKFLOW = {
    "1": {"class_type": "CWSolidImage", "inputs": {"size": 8, "value": 0.25}},
    "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "cw-test-compact-2x.safetensors"}},
    "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "rehearsal"}},
}


def rehearse(work: Path, *, fresh: bool = False, inject: str | None = None, project: Path = REPO_ROOT,
             prediction_input: dict[str, Any] | None = None) -> dict[str, float]:
    """Run every step; returns seconds per step. Raises RehearsalFailed at the first failure."""
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - sum(timings.values()) - started, 1)

    root = work / "root"
    context = work / "context"
    root.mkdir(parents=True)
    count = copy_context(project, context)
    if inject:
        DEFECTS[inject][1](context)
        if inject == "tuple":
            _drop_probe_guard(context)
        log(f"injected defect {DEFECTS[inject][0]}")
    write_manifest(context, make_local_packs(work / "packs"))
    (context / build_image_wheel.OUT.relative_to(REPO_ROOT)).unlink(missing_ok=True)
    run_checked([sys.executable, str(context / "scripts" / "build_image_wheel.py"), "--root", str(context)],
                "build wheel from the rehearsed project")
    log(f"build context: {count} files after .dockerignore; packs from local git repositories")
    lap("context")

    # 1. The Cog CLI, before Docker.
    config = yaml.safe_load((context / "cog.yaml").read_text())
    schema = json.loads((context / ".cog" / "openapi_schema.json").read_text())
    module, _, class_name = config["predict"].partition(":")
    problems = check_cog_static.check((context / module).read_text(), schema, class_name)
    if problems:
        raise RehearsalFailed("the Cog CLI's static reading of predict.py:\n- " + "\n- ".join(problems))
    log("predict.py: statically readable by the Cog CLI, equal to .cog/openapi_schema.json")
    check_config(context, config)
    check_cog_build_script(context, work)
    lap("cli")

    # 2. The image's interpreter and ENV.
    python = make_image_python(root)
    bin_dir = python.parent
    image_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": "", "VIRTUAL_ENV": "",
                 "HOME": str(root / "root"), "PYTHONUNBUFFERED": "1"}
    (root / "root").mkdir()
    for item in config.get("environment") or []:
        name, _, value = str(item).partition("=")
        image_env[name] = map_paths(value, root)
    if not fresh:
        layer_over(python, REPO_ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages")
    lap("interpreter")

    # 3. python_requirements (local artifacts staged as Cog does), then the SDK.
    build = config["build"]
    req_path = context / build["python_requirements"]
    lines = []
    for line in req_path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith(("./", "../")):
            source = (req_path.parent / stripped).resolve()
            if not source.is_file() or not source.is_relative_to(context.resolve()):
                raise RehearsalFailed(f"python_requirements names {stripped}, which is not a file inside the project")
            staged = Path(ARTIFACTS) / source.relative_to(context.resolve())
            (root / staged.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / staged.relative_to("/"))
            line = str(root / staged.relative_to("/"))
        elif stripped.split("==")[0].strip().lower() in ("cog", "coglet"):
            continue  # Cog drops these and installs its own (sdk_version)
        lines.append(line)
    staged_req = root / "tmp" / "requirements.txt"
    staged_req.write_text("\n".join(lines) + "\n")
    pip = [str(python), "-m", "pip", "install", "--break-system-packages", "--no-input", "--progress-bar", "off"]
    run_checked(pip + ["-r", str(staged_req)], "python_requirements", env=image_env, timeout=3600)
    run_checked(pip + [f"cog=={build['sdk_version']}"], f"cog SDK {build['sdk_version']}", env=image_env)
    lap("python_requirements")

    # 4. run: commands, verbatim, paths mapped, no secrets.
    for item in build.get("run") or []:
        command = item["command"] if isinstance(item, dict) else item
        for mount in (item.get("mounts") or []) if isinstance(item, dict) else []:
            log(f"note: secret {mount.get('id')} not provided (cog predict/serve pass none)")
        mapped = map_paths(command.strip(), root)
        log(f"RUN {command.strip()}")
        run_checked(mapped, f"run: {command.strip()[:60]}", env=image_env, cwd=root, shell=True, timeout=3600)
    lap("run")

    # 5. WORKDIR /src, COPY . /src into an empty /src (the dev commands' bind mount hides the rest).
    src = root / "src"
    shutil.rmtree(src, ignore_errors=True)
    copy_context(context, src)
    log("COPY . /src (into an empty /src, as the dev commands' bind mount leaves it)")
    lap("copy")

    # 6. The real Cog server from the copy, one prediction with a weight from the local CDN.
    predict_once(src, python, image_env, work, config, prediction_input)
    lap("predict")
    return timings


def predict_once(src: Path, python: Path, image_env: dict[str, str], work: Path, config: dict[str, Any],
                 prediction_input: dict[str, Any] | None = None) -> None:
    import requests

    from tests.support.weights_cdn import local_cdn

    with ExitStack() as stack:
        _control, manifest = stack.enter_context(local_cdn(work / "cdn"))
        port = _free_port()
        env = {**os.environ, **image_env, "COG_PREDICT_TYPE_STUB": config["predict"], "PORT": str(port),
               "CW_WEIGHTS_MANIFEST": str(manifest), "CW_ALLOW_PRIVATE_URLS": "1", "CW_FORCE_CPU": "1"}
        log_path = work / "cog_server.log"
        handle = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen([str(python), "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=src, env=env,
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        stack.callback(_stop, process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = requests.get(f"{base}/health-check", timeout=5).json().get("status")
            except requests.RequestException:
                status = None
            if status in ("READY", "SETUP_FAILED", "UNHEALTHY"):
                break
            time.sleep(0.5)
        if status != "READY":
            raise RehearsalFailed(f"the Cog server did not become READY (status {status}):\n"
                                  f"{log_path.read_text(errors='replace')[-5000:]}")
        log("Cog server READY (setup() booted ComfyUI from CW_COMFYUI_DIR)")
        body = {"input": prediction_input if prediction_input is not None else
                {"workflow_json": json.dumps(PREDICTION_WORKFLOW), "output_format": "png", "randomise_seeds": False}}
        for _ in range(100):
            response = requests.post(f"{base}/predictions", json=body, timeout=600)
            if response.status_code != 409:
                break
            time.sleep(0.05)
        result = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or result.get("status") != "succeeded" or len(result.get("output") or []) != 1:
            raise RehearsalFailed(f"the prediction failed: HTTP {response.status_code} {json.dumps(result)[:3000]}\n"
                                  f"{log_path.read_text(errors='replace')[-4000:]}")
        log(f"prediction succeeded: {str(result['output'][0])[:80]}...")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--fresh", action="store_true", help="install python_requirements from scratch (GBs)")
    parser.add_argument("--inject", choices=sorted(DEFECTS), help="apply one known defect; the rehearsal must fail")
    parser.add_argument("--project", type=Path, default=REPO_ROOT,
                        help="the Cog project to rehearse (default: this one; e.g. a folder new-model wrote)")
    parser.add_argument("--input", type=json.loads, metavar="JSON",
                        help="the prediction's input object (default: the built-in workflow with a local-CDN weight)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="cw-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        timings = rehearse(work, fresh=args.fresh, inject=args.inject, project=args.project.resolve(),
                           prediction_input=args.input)
    except RehearsalFailed as failure:
        print(f"\nREHEARSAL FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        if not (args.keep or args.work):
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            log(f"kept {work}")
    log(f"rehearsal passed in {time.monotonic() - started:.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
