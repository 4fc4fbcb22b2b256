#!/usr/bin/env python3
"""Record what ComfyUI's own frontend makes of UI-format workflows (the oracle).

``comfyui_wrapper.ui.convert.convert`` must turn a UI workflow into exactly the
API prompt that the frontend's "Save (API format)" writes. The only faithful
reference is the frontend itself, so this script:

1. boots the ComfyUI installed at ``ComfyUI/`` on its own port, with its own
   input/output/temp/user directories under a temporary folder;
2. opens its page in headless Chromium (Debian's ``/usr/bin/chromium`` driven by
   Playwright; Playwright's own browser downloads are never used);
3. for each workflow runs ``await app.loadGraphData(ui)`` then
   ``(await app.graphToPrompt()).output`` and serialises it with
   ``JSON.stringify`` (the bytes "Save (API format)" writes);
4. stores each output as a fixture together with the frontend version that
   produced it, and stores the raw ``/object_info`` the frontend used
   (gzip) so tests can run the converter with no ComfyUI and no browser.

Modes::

    scripts/ui_oracle.py                     # record every fixture (templates + cases)
    scripts/ui_oracle.py --only case__reroute_chain template__flux_schnell
    scripts/ui_oracle.py --check-sample 8    # re-run 8 random fixtures live; exit 1 on a difference

Corpus: the UI templates shipped by the ``comfyui-workflow-templates*``
packages (those whose node classes this ComfyUI knows; the others are counted
and listed in the manifest) plus the hand-made cases in
``tests/fixtures/ui_oracle/cases/*.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "ui_oracle"
CASES_DIR = FIXTURES / "cases"
EXPECTED_DIR = FIXTURES / "expected"
OBJECT_INFO_FILE = FIXTURES / "object_info.json.gz"
MANIFEST_FILE = FIXTURES / "manifest.json"

TEMPLATE_PACKAGES = (
    "comfyui_workflow_templates_media_api",
    "comfyui_workflow_templates_media_image",
    "comfyui_workflow_templates_media_other",
    "comfyui_workflow_templates_media_video",
)
# Node types the frontend registers itself (no backend class behind them).
FRONTEND_NODE_TYPES = frozenset({"PrimitiveNode", "Reroute", "Note", "MarkdownNote"})
# Renames loadGraphData applies before looking node types up.
FRONTEND_TYPE_RENAMES = {
    "T2IAdapterLoader": "ControlNetLoader",
    "ConditioningAverage ": "ConditioningAverage",
    "SDV_img2vid_Conditioning": "SVD_img2vid_Conditioning",
    "Load3DAnimation": "Load3D",
    "Preview3DAnimation": "Preview3D",
}

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Runs inside the page. Dialogs (missing models...) are left open: they do
# not change the graph. A timeout turns a hung promise into an error string.
JS_CONVERT = """
async ([ui, timeoutMs]) => {
  const work = (async () => {
    await window.app.loadGraphData(ui);
    const p = await window.app.graphToPrompt();
    return {output: JSON.stringify(p.output), version: p.workflow.extra.frontendVersion};
  })();
  const timer = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('timed out after ' + timeoutMs + ' ms')), timeoutMs));
  try {
    return await Promise.race([work, timer]);
  } catch (e) {
    return {error: String(e && e.stack || e)};
  }
}
"""
JS_READY = (
    "() => !!(window.app && window.app.graph && window.app.canvas && "
    "window.app.extensionManager && Array.isArray(window.app.graph.nodes))"
)


# --- the corpus -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One UI workflow to run through the oracle."""

    case_id: str  # "template__<name>" or "case__<name>"
    path: Path
    source: dict[str, Any]  # how tests find the input again

    @property
    def fixture_path(self) -> Path:
        return EXPECTED_DIR / f"{self.case_id}.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data


def node_types(ui: dict[str, Any]) -> set[str]:
    """Every node type used at any level, minus the ids of its own subgraphs."""
    subgraphs = (ui.get("definitions") or {}).get("subgraphs") or []
    own = {s.get("id") for s in subgraphs}
    types: set[str] = set()
    for nodes in [ui.get("nodes") or []] + [s.get("nodes") or [] for s in subgraphs]:
        for node in nodes:
            t = node.get("type")
            if isinstance(t, str) and t not in own:
                types.add(FRONTEND_TYPE_RENAMES.get(t, t))
    group_nodes = ((ui.get("extra") or {}).get("groupNodes")) or {}
    for name, group in group_nodes.items():
        types.discard(f"workflow>{name}")
        types.discard(f"workflow/{name}")
        for node in group.get("nodes") or []:
            t = node.get("type")
            if isinstance(t, str):
                types.add(FRONTEND_TYPE_RENAMES.get(t, t))
    return types


def template_cases(object_info: dict[str, Any]) -> tuple[list[Case], dict[str, list[str]]]:
    """Usable template cases, and the skipped ones with their unknown classes."""
    known = set(object_info) | FRONTEND_NODE_TYPES
    cases: list[Case] = []
    skipped: dict[str, list[str]] = {}
    for package in TEMPLATE_PACKAGES:
        root = package_dir(package)
        if root is None:
            continue
        version = package_version(package)
        for path in sorted((root / "templates").glob("*.json")):
            raw = path.read_bytes()
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if not is_ui_workflow(data):
                continue  # index.json and translations
            case_id = f"template__{path.stem}"
            unknown = sorted(node_types(data) - known)
            if unknown:
                skipped[case_id] = unknown
                continue
            cases.append(
                Case(
                    case_id,
                    path,
                    {
                        "kind": "template",
                        "package": package,
                        "version": version,
                        "file": f"templates/{path.name}",
                        "sha256": sha256_bytes(raw),
                    },
                )
            )
    return cases, skipped


def hand_cases() -> list[Case]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        raw = path.read_bytes()
        cases.append(
            Case(
                f"case__{path.stem}",
                path,
                {"kind": "case", "file": f"cases/{path.name}", "sha256": sha256_bytes(raw)},
            )
        )
    return cases


# --- ComfyUI ------------------------------------------------------------------------


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


class ComfyServer:
    """A ComfyUI child process for the oracle: own port, own directories, always stopped."""

    def __init__(self, port: int, python: str, comfy_dir: Path, startup_timeout: float = 240.0):
        self.port = port
        self.python = python
        self.comfy_dir = comfy_dir
        self.startup_timeout = startup_timeout
        self.url = f"http://127.0.0.1:{port}"
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def __enter__(self) -> "ComfyServer":
        self._tmp = tempfile.TemporaryDirectory(prefix="ui_oracle_")
        root = Path(self._tmp.name)
        dirs = {name: root / name for name in ("input", "output", "temp", "user")}
        for d in dirs.values():
            d.mkdir()
        self._log = root / "comfyui.log"
        cmd = [
            self.python, str(self.comfy_dir / "main.py"), "--cpu",
            "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
            "--input-directory", str(dirs["input"]), "--output-directory", str(dirs["output"]),
            "--temp-directory", str(dirs["temp"]), "--user-directory", str(dirs["user"]),
        ]
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/object_info", timeout=10) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise TimeoutError(f"ComfyUI did not answer /object_info within {self.startup_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=20)
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return json.loads(resp.read())


# --- the browser ----------------------------------------------------------------------


class Oracle:
    """ComfyUI's page in headless Chromium; converts one UI workflow at a time."""

    def __init__(self, url: str, recycle_every: int = 20, timeout_s: float = 60.0, verbose: bool = False):
        self.url = url
        self.recycle_every = recycle_every
        self.timeout_ms = int(timeout_s * 1000)
        self.verbose = verbose
        self._pw: Any = None
        self._context: Any = None
        self._page: Any = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._uses = 0
        self.console: list[str] = []

    def __enter__(self) -> "Oracle":
        from playwright.sync_api import sync_playwright  # imported here: tests never need it

        self._pw = sync_playwright().start()
        self._profile = tempfile.TemporaryDirectory(prefix="ui_oracle_chromium_")
        self._context = self._pw.chromium.launch_persistent_context(
            self._profile.name, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._context is not None:
                self._context.close()
        finally:
            if self._pw is not None:
                self._pw.stop()
            if self._profile is not None:
                self._profile.cleanup()

    def _open_page(self) -> None:
        if self._page is not None:
            self._page.close()
        page = self._context.new_page()
        page.on("console", self._on_console)
        page.goto(self.url + "/", wait_until="load", timeout=120_000)
        page.wait_for_function(JS_READY, timeout=120_000)
        # Let the start-up workflow finish loading before we replace it.
        page.wait_for_load_state("networkidle", timeout=60_000)
        page.wait_for_timeout(500)
        self._page = page
        self._uses = 0

    def node_titles(self) -> dict[str, str]:
        """The title the frontend gives each registered node type (its English locale)."""
        if self._page is None:
            self._open_page()
        return self._page.evaluate(
            "() => Object.fromEntries(Object.entries(window.LiteGraph.registered_node_types)"
            ".map(([k, v]) => [k, v.title]))"
        )

    def _on_console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"{msg.type}: {msg.text[:300]}")

    def convert(self, ui: dict[str, Any], fresh_page: bool = False) -> dict[str, Any]:
        """{"output": {...}, "frontend_version": "..."} or {"error": "..."}."""
        if self._page is None or fresh_page or self._uses >= self.recycle_every:
            self._open_page()
        self._uses += 1
        self.console = []
        result = self._page.evaluate(JS_CONVERT, [ui, self.timeout_ms])
        self._page.keyboard.press("Escape")  # close a missing-models dialog, if any
        if "error" in result:
            self._page.close()
            self._page = None  # never reuse a page after a failure
            return {"error": result["error"]}
        return {"output": json.loads(result["output"]), "frontend_version": result["version"]}


# --- recording and checking -----------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_object_info(object_info: dict[str, Any]) -> str:
    raw = json.dumps(object_info, ensure_ascii=False, sort_keys=False).encode("utf-8")
    FIXTURES.mkdir(parents=True, exist_ok=True)
    tmp = OBJECT_INFO_FILE.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    os.replace(tmp, OBJECT_INFO_FILE)
    return sha256_bytes(raw)


def fixture_record(case: Case, result: dict[str, Any], comfy_version: str, object_info_sha: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "case": case.case_id,
        "source": case.source,
        "frontend_version": result.get("frontend_version"),
        "comfyui_version": comfy_version,
        "object_info_sha256": object_info_sha,
    }
    if "error" in result:
        record["error"] = result["error"].splitlines()[0]  # the message; the stack names a port
    else:
        record["output"] = result["output"]
    return record


def iter_selected(cases: list[Case], only: list[str] | None) -> Iterator[Case]:
    if not only:
        yield from cases
        return
    wanted = set(only)
    for case in cases:
        if case.case_id in wanted or case.path.stem in wanted:
            yield case


def record(args: argparse.Namespace, server_url: str, comfy_version: str) -> int:
    object_info = fetch_json(f"{server_url}/object_info")
    if args.only and MANIFEST_FILE.exists():
        recorded = json.loads(MANIFEST_FILE.read_text(encoding="utf-8")).get("object_info_sha256")
        live = sha256_bytes(json.dumps(object_info, ensure_ascii=False).encode("utf-8"))
        if recorded and live != recorded:
            print("this ComfyUI's /object_info differs from the one the other fixtures were recorded with; "
                  "re-record everything (no --only) so that all fixtures share one dump")
            return 1
    object_info_sha = write_object_info(object_info)
    templates, skipped = template_cases(object_info)
    cases = templates + hand_cases()
    selected = list(iter_selected(cases, args.only))
    if not args.only:  # a full run replaces every fixture
        for old in EXPECTED_DIR.glob("*.json"):
            old.unlink()
    failures = 0
    started = time.monotonic()
    with Oracle(server_url, recycle_every=args.recycle_every, verbose=args.verbose) as oracle:
        titles = oracle.node_titles()
        locale_titles = {
            name: title for name, title in sorted(titles.items())
            if name in object_info and title != (object_info[name].get("display_name") or name)
        }
        for i, case in enumerate(selected, 1):
            ui = json.loads(case.path.read_text(encoding="utf-8"))
            result = oracle.convert(ui)
            if "error" in result:
                failures += 1
                print(f"[{i}/{len(selected)}] {case.case_id}: ERROR {result['error'].splitlines()[0]}")
            else:
                print(f"[{i}/{len(selected)}] {case.case_id}: {len(result['output'])} nodes")
            if args.verbose and oracle.console:
                print("    " + "\n    ".join(oracle.console[:20]))
            write_json(case.fixture_path, fixture_record(case, result, comfy_version, object_info_sha))
    versions = {p: package_version(p) for p in ("comfyui_frontend_package", "comfyui_workflow_templates", *TEMPLATE_PACKAGES)}
    # The manifest describes the whole corpus, whichever fixtures this run recorded.
    write_json(
        MANIFEST_FILE,
        {
            "frontend_version": versions["comfyui_frontend_package"],
            "comfyui_version": comfy_version,
            "packages": versions,
            "object_info_sha256": object_info_sha,
            "templates_usable": len(templates),
            "templates_skipped": len(skipped),
            "skipped_unknown_nodes": skipped,
            "hand_cases": len(cases) - len(templates),
            # node types whose frontend title differs from /object_info's display_name
            "locale_titles": locale_titles,
        },
    )
    print(
        f"recorded {len(selected)} fixture(s) in {time.monotonic() - started:.0f} s; "
        f"{len(templates)} templates usable, {len(skipped)} skipped for unknown nodes; {failures} oracle error(s)"
    )
    return 0


def load_fixture_input(fixture: dict[str, Any]) -> dict[str, Any]:
    source = fixture["source"]
    if source["kind"] == "case":
        path = FIXTURES / source["file"]
    else:
        root = package_dir(source["package"])
        if root is None:
            raise FileNotFoundError(f"package {source['package']} is not installed")
        path = root / source["file"]
    raw = path.read_bytes()
    if sha256_bytes(raw) != source["sha256"]:
        raise ValueError(f"{path} changed since the fixture was recorded; re-record with scripts/ui_oracle.py")
    return json.loads(raw)


def describe_difference(want: Any, got: Any, where: str = "") -> list[str]:
    """Paths where two JSON values differ (key order counts: it is what Save writes)."""
    if isinstance(want, dict) and isinstance(got, dict):
        diffs = []
        for key in list(dict.fromkeys(list(want) + list(got))):
            if key not in got:
                diffs.append(f"{where}/{key}: missing live")
            elif key not in want:
                diffs.append(f"{where}/{key}: only live ({json.dumps(got[key])[:80]})")
            else:
                diffs.extend(describe_difference(want[key], got[key], f"{where}/{key}"))
        if not diffs and list(want) != list(got):
            diffs.append(f"{where}: key order differs")
        return diffs
    if json.dumps(want) != json.dumps(got):
        return [f"{where}: recorded {json.dumps(want)[:80]}, live {json.dumps(got)[:80]}"]
    return []


def check_sample(args: argparse.Namespace, server_url: str) -> int:
    fixtures = sorted(EXPECTED_DIR.glob("*.json"))
    if args.only:
        wanted = set(args.only)
        fixtures = [p for p in fixtures if p.stem in wanted or p.stem.split("__", 1)[-1] in wanted]
    if not fixtures:
        print("no fixtures under", EXPECTED_DIR)
        return 1
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    chosen = rng.sample(fixtures, min(args.check_sample, len(fixtures)))
    print(f"checking {len(chosen)} of {len(fixtures)} fixtures live (seed {seed})")
    bad = 0
    with Oracle(server_url, verbose=args.verbose) as oracle:
        for path in chosen:
            fixture = json.loads(path.read_text(encoding="utf-8"))
            ui = load_fixture_input(fixture)
            result = oracle.convert(ui, fresh_page=True)
            if result.get("frontend_version") not in (None, fixture.get("frontend_version")):
                print(f"DIFF {path.stem}: frontend {result['frontend_version']} != recorded {fixture['frontend_version']}")
                bad += 1
                continue
            want = {"error": fixture["error"]} if "error" in fixture else {"output": fixture["output"]}
            got = {"error": result["error"]} if "error" in result else {"output": result["output"]}
            if "error" in want and "error" in got:
                print(f"same {path.stem} (oracle error both times)")
                continue
            if json.dumps(want) != json.dumps(got):
                bad += 1
                print(f"DIFF {path.stem}: " + "; ".join(describe_difference(want, got)[:10]))
            else:
                print(f"same {path.stem}")
    print(f"{len(chosen) - bad} same, {bad} different")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-sample", type=int, metavar="N", help="re-run N random fixtures live; exit 1 on a difference")
    parser.add_argument("--seed", type=int, help="seed for --check-sample's choice")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="record (or check) only these cases (case id or file stem)")
    parser.add_argument("--url", help="use a ComfyUI already running at this URL instead of booting one")
    parser.add_argument("--port", type=int, default=8302, help="port for the ComfyUI this script boots (default 8302)")
    parser.add_argument("--comfyui-dir", type=Path, default=REPO_ROOT / "ComfyUI")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs ComfyUI (default: this one)")
    parser.add_argument("--recycle-every", type=int, default=20, help="open a fresh page after this many workflows")
    parser.add_argument("--verbose", action="store_true", help="print the page's console errors and warnings")
    args = parser.parse_args(argv)

    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    if args.url:
        return run(args, args.url.rstrip("/"))
    with ComfyServer(free_port(args.port), args.python, args.comfyui_dir) as server:
        return run(args, server.url)


def run(args: argparse.Namespace, url: str) -> int:
    stats = fetch_json(f"{url}/system_stats")
    comfy_version = stats.get("system", {}).get("comfyui_version", "unknown")
    if args.check_sample:
        return check_sample(args, url)
    return record(args, url, comfy_version)


if __name__ == "__main__":
    sys.exit(main())
