#!/usr/bin/env python3
"""Pack health check: boot ComfyUI with the installed packs and compare with what was measured.

Boots ComfyUI (main.py, CPU, on a free loopback port) with everything in
custom_nodes/, reads /object_info and the import-times summary ComfyUI logs,
and gives one verdict per pack: imports (with its node classes and import
seconds), or fails (with the reason), or is set aside (the installer's lock
says why). It exits 1 when a pack that custom_nodes_measured.json lists as
importing no longer does: for the image build, after
scripts/install_custom_nodes.py, and wherever packs are installed.

``--write`` records this boot as the new measured results instead (with
``--notes``, a JSON file of {pack: {"not_measurable": reason} or
{"missing_files": [...]}} for packs this machine could not install as pinned);
scripts/build_supported_custom_nodes.py turns that file into
supported_custom_nodes.md.

Standard library only, like the installer: the image build runs it before the
project is copied in.

    python scripts/check_custom_nodes.py --comfyui-dir ComfyUI [--python PY] [--write] [--notes FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MEASURED = REPO_ROOT / "custom_nodes_measured.json"
BOOT_TIMEOUT_S = 900


def _installer():
    """scripts/install_custom_nodes.py, for its log parser and lock reader (one copy of each)."""
    path = Path(__file__).resolve().with_name("install_custom_nodes.py")
    spec = importlib.util.spec_from_file_location("install_custom_nodes", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("install_custom_nodes", module)
    spec.loader.exec_module(module)
    return module


inst = _installer()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def boot(comfyui_dir: Path, python: str, *, extra_args: list[str] = (), timeout: float = BOOT_TIMEOUT_S
         ) -> dict[str, Any]:
    """Start ComfyUI, wait until /object_info answers, stop it: seconds, node classes and the log."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cw-packcheck-") as tmp:
        cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
               "--input-directory", f"{tmp}/input", "--output-directory", f"{tmp}/output",
               "--temp-directory", tmp, *extra_args]
        log_path = Path(tmp) / "comfyui.log"
        started = time.monotonic()
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(cmd, cwd=comfyui_dir, stdin=subprocess.DEVNULL, stdout=log_file,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                object_info = _wait_for_object_info(port, process, started + timeout)
                seconds = time.monotonic() - started
            finally:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, signal.SIGKILL)
        log_text = log_path.read_text(errors="replace")
    if object_info is None:
        raise SystemExit(f"error: ComfyUI did not answer /object_info within {timeout:.0f} s; its log ends:\n"
                         + log_text[-3000:])
    return {"seconds": seconds, "object_info": object_info, "log": log_text}


def _wait_for_object_info(port: int, process: subprocess.Popen, deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/object_info", timeout=120) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            time.sleep(0.1)
    return None


def nodes_per_pack(object_info: dict[str, Any]) -> dict[str, list[str]]:
    """{pack folder: node classes} from /object_info's python_module ("custom_nodes.<folder>[.sub]")."""
    out: dict[str, list[str]] = {}
    for name, info in object_info.items():
        module = info.get("python_module", "") if isinstance(info, dict) else ""
        if module.startswith("custom_nodes."):
            out.setdefault(module.split(".")[1], []).append(name)
    return {k: sorted(v) for k, v in out.items()}


def measure(comfyui_dir: Path, python: str, manifest: Path) -> dict[str, Any]:
    """One boot's verdict for every pack of the manifest."""
    packs = inst.read_manifest(manifest)
    lock = inst.read_lock(comfyui_dir / inst.LOCK_NAME)
    result = boot(comfyui_dir, python)
    imports = inst.parse_import_log(result["log"])
    nodes = nodes_per_pack(result["object_info"])
    verdicts: dict[str, dict[str, Any]] = {}
    for pack in packs:
        entry = lock["packs"].get(pack.name, {})
        verdict: dict[str, Any] = {"commit": entry.get("commit")}
        aside = lock.get("set_aside", {}).get(pack.name)
        loaded = imports.get(pack.name)
        if aside:
            verdict.update(state="set_aside", reason=aside)
        elif loaded is None:
            verdict.update(state="not_installed",
                           reason=f"no folder custom_nodes/{pack.name} (run scripts/install_custom_nodes.py)")
        elif not loaded["imported"]:
            verdict.update(state="fails", reason=loaded["reason"], import_seconds=loaded["seconds"])
        else:
            verdict.update(state="imports", nodes=len(nodes.get(pack.name, [])), import_seconds=loaded["seconds"])
        if entry.get("dropped"):
            verdict["dropped_requirements"] = entry["dropped"]
        verdicts[pack.name] = verdict
    return {"boot_seconds": round(result["seconds"], 2), "node_classes": len(result["object_info"]),
            "packs": verdicts}


def compare(now: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Problems: packs measured as importing that do not import now."""
    problems = []
    for name, before in measured.get("packs", {}).items():
        if before.get("state") != "imports":
            continue
        current = now["packs"].get(name)
        if current is None:
            continue  # not in this manifest (a trimmed one, e.g. new-model's): nothing to hold it to
        if current["state"] != "imports":
            problems.append(f"{name}: measured as importing, now {current['state']}: {current.get('reason')}")
    return problems


def to_measured(now: dict[str, Any], notes: dict[str, Any], python: str, comfyui_dir: Path) -> dict[str, Any]:
    """The measured-results file: this boot plus the notes on what could not be measured here."""
    version = inst.run([python, "-c", "import sys; print(sys.version.split()[0])"], timeout=60).stdout.strip()
    comfy = ""
    version_file = comfyui_dir / "comfyui_version.py"
    if version_file.is_file():
        comfy = version_file.read_text().split("=")[-1].strip().strip("\"'")
    packs = {}
    for name, verdict in now["packs"].items():
        note = notes.get(name, {})
        if verdict["state"] == "not_installed" and note.get("not_measurable"):
            verdict = {"commit": None, "state": "not_measurable", "reason": note["not_measurable"]}
        if note.get("missing_files"):
            verdict["missing_files"] = note["missing_files"]
        packs[name] = {k: v for k, v in verdict.items() if v is not None}
    return {
        "_generated_by": "scripts/check_custom_nodes.py --write (a boot of ComfyUI with the installed packs)",
        "measured_on": {"date": _dt.date.today().isoformat(), "comfyui": comfy, "python": version,
                        "device": "cpu", "machine": platform.machine()},
        "boot_seconds_with_packs": now["boot_seconds"],
        "node_classes": now["node_classes"],
        "packs": packs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", type=Path,
                        default=Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI"))
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "custom_nodes.json")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs ComfyUI")
    parser.add_argument("--measured", type=Path, default=DEFAULT_MEASURED)
    parser.add_argument("--write", action="store_true", help="record this boot as the measured results")
    parser.add_argument("--notes", type=Path, help="with --write: JSON {pack: {not_measurable|missing_files}}")
    args = parser.parse_args(argv)
    now = measure(args.comfyui_dir.resolve(), args.python, args.manifest)
    counts: dict[str, int] = {}
    for name, verdict in sorted(now["packs"].items()):
        counts[verdict["state"]] = counts.get(verdict["state"], 0) + 1
        detail = (f"{verdict['nodes']} nodes, {verdict['import_seconds']:.1f} s" if verdict["state"] == "imports"
                  else verdict.get("reason", ""))
        print(f"{verdict['state']:<13} {name}: {detail}")
    print(f"boot {now['boot_seconds']:.1f} s, {now['node_classes']} node classes; "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if args.write:
        notes = json.loads(args.notes.read_text()) if args.notes else {}
        data = to_measured(now, notes, args.python, args.comfyui_dir)
        args.measured.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.measured}")
        return 0
    measured = json.loads(args.measured.read_text()) if args.measured.is_file() else {}
    problems = compare(now, measured)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
