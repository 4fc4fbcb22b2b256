"""The custom node packs we ship, what they provide at run time, and why a node is missing.

Three sources, combined only when a workflow needs them:

* ``custom_nodes.json`` (built by scripts/build_custom_nodes.py): the packs we
  ship, each pinned to a commit, and the nodes we refuse with a reason
  (``load_packs``);
* ComfyUI itself once booted: ``/object_info`` tells which node classes each
  installed pack registered (``python_module`` is ``custom_nodes.<folder>``),
  and the boot log tells which packs failed to import and why
  (``report_failed_imports``);
* the public catalogue (catalogue.py), consulted only for node classes
  nobody here provides, to name the pack a user should ask for.

``check_nodes`` turns all of that into one ``UnknownNodeError`` listing every
node the workflow uses that this container cannot run, each with the reason
and the pack involved. Setup only calls ``load_packs`` and
``report_failed_imports`` (milliseconds); the catalogue is read at the first
unknown node.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import ManifestError, UnknownNodeError
from ..workflow import NodeInput, meta_title, node_order_key
from .catalogue import NodeCatalogue, Provider, normalize_repo

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFEST = REPO_ROOT / "custom_nodes.json"
LOCK_FILE = "custom_nodes.lock.json"

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# --- the manifest ------------------------------------------------------------------


@dataclass(frozen=True)
class PackSpec:
    """One entry of custom_nodes.json."""

    name: str  # folder under custom_nodes/ (the repository's name)
    repo: str
    commit: str  # short or full commit id, as pinned
    install_requirements: bool = True
    unsupported_nodes: Mapping[str, str] = field(default_factory=dict)  # class -> reason shown to users
    notes: str = ""


def _manifest_error(path: Path, problem: str) -> ManifestError:
    return ManifestError(
        f"{path}: {problem}",
        fix="Rebuild custom_nodes.json with scripts/build_custom_nodes.py (edit that script's tables, not the file).",
        path=str(path),
    )


def parse_packs(data: Any, path: Path = DEFAULT_MANIFEST) -> tuple[PackSpec, ...]:
    """Validate custom_nodes.json's parsed content (shared by the runtime and the installer's tests)."""
    if not isinstance(data, dict) or not isinstance(data.get("packs"), list):
        raise _manifest_error(path, 'expected an object with a "packs" list')
    packs: list[PackSpec] = []
    seen: set[str] = set()
    for position, entry in enumerate(data["packs"]):
        where = f"packs[{position}]"
        if not isinstance(entry, dict):
            raise _manifest_error(path, f"{where} is not an object")
        name, repo, commit = entry.get("name"), entry.get("repo"), entry.get("commit")
        if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
            raise _manifest_error(path, f"{where}: name {name!r} is not a usable folder name")
        if name.lower() in seen:
            raise _manifest_error(path, f"{where}: pack name {name!r} appears twice")
        seen.add(name.lower())
        if not isinstance(repo, str) or not repo:
            raise _manifest_error(path, f"{where} ({name}): repo is missing")
        if not isinstance(commit, str) or not _COMMIT.match(commit):
            raise _manifest_error(path, f"{where} ({name}): commit {commit!r} is not a 7-40 digit hex commit id")
        unsupported = entry.get("unsupported_nodes", {})
        if not isinstance(unsupported, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in unsupported.items()
        ):
            raise _manifest_error(path, f"{where} ({name}): unsupported_nodes must map class names to reasons")
        install = entry.get("install_requirements", True)
        if not isinstance(install, bool):
            raise _manifest_error(path, f"{where} ({name}): install_requirements must be true or false")
        packs.append(PackSpec(name, repo, commit, install, dict(unsupported), str(entry.get("notes", ""))))
    return tuple(packs)


def load_packs(path: Path = DEFAULT_MANIFEST) -> tuple[PackSpec, ...]:
    """Read and validate custom_nodes.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _manifest_error(path, "file not found") from None
    except ValueError as exc:
        raise _manifest_error(path, f"not valid JSON ({exc})") from None
    return parse_packs(data, path)


# --- what ComfyUI loaded -----------------------------------------------------------


def pack_of_module(python_module: str) -> str | None:
    """``custom_nodes.X`` or ``custom_nodes.X.sub`` -> ``X``; core modules -> None."""
    if not python_module.startswith("custom_nodes."):
        return None
    rest = python_module[len("custom_nodes."):]
    return rest.split(".", 1)[0] or None


def nodes_by_pack(object_info: Mapping[str, Any], packs: Sequence[PackSpec] = ()) -> dict[str, set[str]]:
    """Folder name under custom_nodes/ -> node classes it registered, from /object_info.

    A folder name may itself contain dots (ComfyUI keeps the folder name as is),
    so the names of our own packs are matched first.
    """
    names = sorted((p.name for p in packs), key=len, reverse=True)
    result: dict[str, set[str]] = {}
    for class_type, info in object_info.items():
        module = info.get("python_module", "") if isinstance(info, Mapping) else ""
        if not isinstance(module, str) or not module.startswith("custom_nodes."):
            continue
        rest = module[len("custom_nodes."):]
        pack = next((n for n in names if rest == n or rest.startswith(n + ".")), None)
        pack = pack or pack_of_module(module)
        if pack:
            result.setdefault(pack, set()).add(class_type)
    return result


@dataclass(frozen=True)
class ImportFailure:
    """A custom node pack ComfyUI could not load at boot."""

    pack: str  # folder (or .py file stem) under custom_nodes/
    path: str
    reason: str  # the exception, e.g. "ModuleNotFoundError: No module named 'cv2'"
    # "import"; "prestartup" (its prestartup_script.py failed, the pack may still load);
    # "builtin" (one of ComfyUI's own node files, comfy_extras/ or comfy_api_nodes/; pack is "comfy_extras/x.py")
    stage: str = "import"

    def describe(self) -> str:
        if self.stage == "builtin":
            return f"ComfyUI's built-in node file {self.pack} failed to import: {self.reason}"
        if self.stage == "prestartup":
            return f"Custom node pack {self.pack} failed its prestartup script: {self.reason}"
        return f"Custom node pack {self.pack} failed to import: {self.reason}"


_SUMMARY_FAILED = re.compile(r"\d+\.\d seconds \(IMPORT FAILED\): (?P<path>.+?)\s*$")
_CANNOT_IMPORT = re.compile(r"Cannot import (?P<path>.+?) module for custom nodes: (?P<error>.*)$")
_SKIP_NO_MAPPINGS = re.compile(r"Skip (?P<path>.+?) module for custom nodes due to the lack of (?P<what>.+?)\s*$")
_ENTRYPOINT = re.compile(
    r"(?:Error while calling comfy_entrypoint in (?P<path1>.+?): (?P<error>.*)"
    r"|comfy_entrypoint in (?P<path2>.+?) (?P<problem>(?:is not callable|did not return).*?)(?:, skipping\.)?)$"
)
_PRESTARTUP = re.compile(r"Failed to execute startup-script: (?P<path>.+?) / (?P<error>.*)$")
_MAX_EXCEPTION_LINES = 12
_BUILTIN_FOLDERS = ("/comfy_extras", "/comfy_api_nodes")


def _pack_from_path(path: str) -> str:
    base = path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".py") else base


def _exception_before(lines: Sequence[str], index: int) -> str | None:
    """The final exception line(s) of the traceback logged just above ``lines[index]``.

    ComfyUI logs ``traceback.format_exc()`` and then the "Cannot import" line,
    whose ``str(e)`` drops the exception type (and is empty for some errors);
    the traceback's tail has both.
    """
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    tail: list[str] = []
    while i >= 0 and len(tail) < _MAX_EXCEPTION_LINES:
        line = lines[i]
        if line.startswith((" ", "\t")) or line.startswith("Traceback (most recent call last)"):
            break
        tail.append(line.rstrip())
        i -= 1
    else:
        return None
    if not tail or i < 0:
        return None
    text = " ".join(reversed([t for t in tail if t]))
    return text or None


def report_failed_imports(log_text: str | Iterable[str]) -> list[ImportFailure]:
    """Packs that failed to load, from one boot's ComfyUI log (text, or its lines), each with its reason.

    The authority is ComfyUI's import-times summary (``(IMPORT FAILED): path``);
    the reason comes from the lines ComfyUI logged while loading that path.
    Prestartup-script failures are reported too (the pack may still import).
    """
    text = log_text if isinstance(log_text, str) else "\n".join(line.rstrip("\n") for line in log_text)
    lines = text.splitlines()
    reasons: dict[str, str] = {}
    failed_paths: list[str] = []
    prestartup: list[ImportFailure] = []
    builtin: list[ImportFailure] = []
    for index, line in enumerate(lines):
        if match := _SUMMARY_FAILED.search(line):
            failed_paths.append(match["path"])
        elif match := _CANNOT_IMPORT.search(line):
            path = match["path"]
            reasons[path] = _exception_before(lines, index) or match["error"].strip() or "(no message)"
            folder, _, filename = path.replace("\\", "/").rstrip("/").rpartition("/")
            if folder.endswith(_BUILTIN_FOLDERS):  # ComfyUI's own node files: no summary line follows
                builtin.append(ImportFailure(f"{folder.rsplit('/', 1)[-1]}/{filename}", path, reasons[path], "builtin"))
        elif match := _SKIP_NO_MAPPINGS.search(line):
            reasons[match["path"]] = f"it defines no {match['what']}, so ComfyUI registered none of its nodes"
        elif match := _ENTRYPOINT.search(line):
            path = match["path1"] or match["path2"]
            reasons[path] = "comfy_entrypoint " + (match["error"] or match["problem"]).strip()
        elif match := _PRESTARTUP.search(line):
            path = str(Path(match["path"]).parent)
            prestartup.append(ImportFailure(_pack_from_path(path), path, match["error"].strip(), "prestartup"))
    failures: dict[str, ImportFailure] = {}
    for path in failed_paths:
        reason = reasons.get(path) or "see the ComfyUI log above the 'Import times for custom nodes' summary"
        failures[path] = ImportFailure(_pack_from_path(path), path, reason)
    return list(failures.values()) + prestartup + builtin


def set_aside_packs(comfyui_dir: Path) -> dict[str, str]:
    """{pack: reason} for the packs the installer moved out of custom_nodes/ (from its lock file).

    scripts/install_custom_nodes.py sets a pack aside when its requirements have no
    resolution with the others or it fails to import, so ComfyUI never loads it
    half-installed; the lock says why.
    """
    try:
        data = json.loads((comfyui_dir / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    aside = data.get("set_aside") if isinstance(data, dict) else None
    if not isinstance(aside, dict):
        return {}
    return {str(name): str(reason) for name, reason in aside.items()}


def setup_report(
    failures: Sequence[ImportFailure],
    object_info: Mapping[str, Any],
    packs: Sequence[PackSpec],
    comfyui_dir: Path | None = None,
) -> list[str]:
    """One line per problem worth a look after boot: failed imports, set-aside and absent shipped packs."""
    lines = [f.describe() + ("; workflows using its nodes will be refused with this reason." if f.stage != "prestartup"
                             else " (the pack may still have loaded).") for f in failures]
    if comfyui_dir is not None:
        aside = set_aside_packs(comfyui_dir)
        shipped = {pack.name for pack in packs}
        lines += [f"Custom node pack {name} was set aside when the packs were installed: {reason}; "
                  "workflows using its nodes will be refused." for name, reason in sorted(aside.items())
                  if name in shipped]
        loaded = nodes_by_pack(object_info, packs)
        failed = {f.pack for f in failures} | set(aside)
        absent = [pack.name for pack in packs if pack.name not in loaded and pack.name not in failed
                  and not (comfyui_dir / "custom_nodes" / pack.name).exists()]
        if absent:
            # One line, not one per pack: a development checkout has none of them installed.
            listed = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
            lines.append(
                f"{len(absent)} of {len(packs)} custom node packs listed in custom_nodes.json are not installed "
                f"in {comfyui_dir / 'custom_nodes'}: {listed} (run scripts/install_custom_nodes.py)."
            )
    return lines


# --- checking a workflow -------------------------------------------------------------


# Why a node cannot run: its class is refused here, its pack failed to import, is not installed, needs a
# newer version, is not shipped, is in ComfyUI but not this one (core_other), or no pack is known.
ProblemKind = Literal["unsupported", "failed_import", "not_installed", "newer_version", "not_shipped",
                      "core_other", "unknown"]


@dataclass(frozen=True)
class NodeProblem:
    """Why one node of a workflow cannot run here."""

    node_id: str
    class_type: str
    title: str | None
    kind: ProblemKind
    detail: str
    pack: str | None = None
    repo: str | None = None

    def describe(self) -> str:
        return f"{NodeInput(self.node_id, self.class_type, self.title or '').describe()}: {self.detail}"


_FIXES = {
    "unsupported": "Replace the refused nodes as their reasons say.",
    "failed_import": "A pack that failed to import is broken in this image: report it with the reason shown, "
    "or use other nodes.",
    "not_installed": "A pack we list is missing from this image: report it.",
    "newer_version": "For nodes from a newer version of a pack, use nodes the pinned version has, or ask for the "
    "pack's pin in custom_nodes.json to be raised.",
    "not_shipped": "Ask for the packs named to be added to custom_nodes.json, or replace their nodes with ones this "
    "container has.",
    "core_other": "Replace the core nodes named with nodes this ComfyUI version has.",
    "unknown": "Check the spelling of the class_type values; nodes from private or local packs cannot run here.",
}


class _Diagnoser:
    """Explains one missing class, with lookups built once per check."""

    def __init__(
        self,
        object_info: Mapping[str, Any],
        packs: Sequence[PackSpec],
        catalogue: NodeCatalogue | None,
        failed_imports: Iterable[ImportFailure],
    ) -> None:
        self.object_info = object_info
        self.catalogue = catalogue
        self.by_repo = {normalize_repo(p.repo): p for p in packs}
        self.by_name = {p.name.lower(): p for p in packs}
        self.loaded = nodes_by_pack(object_info, packs)
        failed_imports = list(failed_imports)
        self.failed = {f.pack: f for f in failed_imports if f.stage == "import"}
        self.builtin_failed = [f for f in failed_imports if f.stage == "builtin"]

    def _ours(self, provider: Provider) -> tuple[PackSpec | None, str]:
        spec = self.by_repo.get(normalize_repo(provider.repo))
        if spec:
            return spec, ""
        spec = self.by_name.get(provider.name.lower())
        if spec:
            return spec, f" (the public catalogue lists this node under {provider.repo}, a repository of the same name)"
        return None, ""

    @staticmethod
    def _origin(provider: Provider) -> str:
        if provider.by_pattern:
            return "its name matches the node names of the custom node pack"
        return "it comes from the custom node pack"

    @staticmethod
    def _also(others: Sequence[Provider], lead: str) -> str:
        if not others:
            return ""
        text = lead + ", ".join(p.repo for p in others[:3])
        return text + (f" and {len(others) - 3} more" if len(others) > 3 else "")

    def diagnose(self, node_id: str, class_type: str, title: str | None) -> NodeProblem:
        providers = self.catalogue.providers(class_type) if self.catalogue is not None else []
        foreign = [p for p in providers if not p.is_core and self._ours(p)[0] is None]
        for provider in providers:
            spec, aside = self._ours(provider)
            if spec is None:
                continue
            if spec.name in self.failed:
                return NodeProblem(node_id, class_type, title, "failed_import",
                                   f"{self._origin(provider)} {spec.name}, which this container ships but "
                                   f"which failed to import at startup: {self.failed[spec.name].reason}{aside}",
                                   spec.name, spec.repo)
            if spec.name in self.loaded:
                return NodeProblem(node_id, class_type, title, "newer_version",
                                   f"the custom node pack {spec.name} is installed at commit {spec.commit}, which does "
                                   f"not have this node; it comes from a newer version of that pack{aside}"
                                   + self._also(foreign, "; packs we do not ship that also define it: "),
                                   spec.name, spec.repo)
            return NodeProblem(node_id, class_type, title, "not_installed",
                               f"{self._origin(provider)} {spec.name}, which is listed in custom_nodes.json "
                               f"but provided no nodes at startup (not installed in this image?){aside}",
                               spec.name, spec.repo)
        core = next((p for p in providers if p.is_core), None)
        if core is not None:
            if self.builtin_failed:
                files = "; ".join(f"{f.pack} ({f.reason})" for f in self.builtin_failed[:3])
                return NodeProblem(node_id, class_type, title, "failed_import",
                                   "it is a ComfyUI core node, and some of ComfyUI's own node files failed to "
                                   f"import at startup, so it is probably in one of them: {files}", None, core.repo)
            return NodeProblem(node_id, class_type, title, "core_other",
                               "it is a ComfyUI core node that this container's ComfyUI version does not have "
                               "(it belongs to another ComfyUI version)"
                               + self._also(foreign, "; custom node packs that also define it: "),
                               None, core.repo)
        if foreign:
            first = foreign[0]
            return NodeProblem(node_id, class_type, title, "not_shipped",
                               f'{self._origin(first)} "{first.title}" ({first.repo}), which this '
                               f"container does not ship" + self._also(foreign[1:], "; also provided by "),
                               first.name, first.repo)
        close = difflib.get_close_matches(class_type, list(self.object_info), n=3, cutoff=0.8)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return NodeProblem(node_id, class_type, title, "unknown",
                           f"no node class of this name is installed or listed in the public pack catalogue{hint}")


def find_node_problems(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    packs: Sequence[PackSpec],
    catalogue: NodeCatalogue | None,
    failed_imports: Iterable[ImportFailure] = (),
) -> list[NodeProblem]:
    """Every node of an API-format workflow that cannot run here, in node-id order (no I/O unless one is unknown)."""
    unsupported = {cls: (p, reason) for p in packs for cls, reason in p.unsupported_nodes.items()}
    diagnoser: _Diagnoser | None = None
    problems: list[NodeProblem] = []
    for node_id in sorted((str(k) for k in workflow), key=node_order_key):
        node = workflow.get(node_id)
        if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
            continue  # workflow.py reports malformed nodes
        class_type, title = node["class_type"], meta_title(node)
        if class_type in unsupported:
            pack, reason = unsupported[class_type]
            problems.append(NodeProblem(node_id, class_type, title, "unsupported",
                                        f"not supported in this container: {reason}", pack.name, pack.repo))
        elif class_type not in object_info:
            diagnoser = diagnoser or _Diagnoser(object_info, packs, catalogue, failed_imports)
            problems.append(diagnoser.diagnose(node_id, class_type, title))
    return problems


def check_nodes(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    packs: Sequence[PackSpec],
    catalogue: NodeCatalogue | None,
    failed_imports: Iterable[ImportFailure] = (),
) -> None:
    """Raise one UnknownNodeError naming every node this container cannot run (and why), or return."""
    problems = find_node_problems(workflow, object_info, packs, catalogue, failed_imports)
    if not problems:
        return
    count = len(problems)
    lines = [f"This workflow uses {count} node{'s' if count != 1 else ''} this container cannot run:"]
    lines += [f"- {p.describe()}" for p in problems]
    kinds = list(dict.fromkeys(p.kind for p in problems))
    fix = " ".join(_FIXES[k] for k in kinds)
    raise UnknownNodeError(
        "\n".join(lines),
        fix=fix,
        problems=problems,
        node_ids=[p.node_id for p in problems],
        class_types=sorted({p.class_type for p in problems}),
    )


def pack_commits(comfyui_dir: Path) -> list[dict[str, Any]]:
    """From the installer's lock file: each pack's name, repository and full commit (for provenance.json)."""
    try:
        lock = json.loads((comfyui_dir / LOCK_FILE).read_text())
    except (OSError, ValueError):
        lock = {}
    packs = lock.get("packs", lock) if isinstance(lock, dict) else lock
    if isinstance(packs, dict):
        packs = [{"name": name, **(info if isinstance(info, dict) else {})} for name, info in packs.items()]
    return [{key: pack.get(key) for key in ("name", "repo", "commit") if key in pack}
            for pack in packs or [] if isinstance(pack, dict)]
