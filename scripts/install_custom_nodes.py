#!/usr/bin/env python3
"""Install the custom node packs of custom_nodes.json at their pinned commits.

For each pack: clone its repository into <ComfyUI dir>/custom_nodes/<name>
(submodules too), resolve the pinned short commit to the full one, check it
out and verify it. Then every pack's requirements file, plus the curated
lines of requirements/custom_nodes_overrides.txt (additions, pins, drops, each
with its reason), is installed in ONE pip run under our constraints file: no
pack can downgrade another, the manifest's order does not matter, and torch
and ComfyUI's pins never move. Finally ComfyUI loads every pack once (main.py
--quick-test-for-ci); a pack whose requirements have no resolution with the
others, or that fails to import, is set aside: moved to
<ComfyUI dir>/custom_nodes.set_aside/, so ComfyUI never imports it
half-installed, and reported with its reason (here and in the lock file, which
the wrapper's setup reads).

The lock file, <ComfyUI dir>/custom_nodes.lock.json, records the full commit
of every pack, the versions the resolution chose (VCS requirements by commit),
the requirement lines the overrides left out and the packs set aside.

Rules this script keeps, because it runs unattended inside the Docker build:
* standard library, git and pip only (it runs before the project is copied in);
* it never asks anything (GIT_TERMINAL_PROMPT=0, pip --no-input, stdin closed);
* idempotent: a second run finds every pack at its commit and the resolution's
  inputs and results unchanged, runs no pip and boots nothing (a few git calls
  per pack); a pack at the wrong commit is fetched and moved; tracked files
  edited in place are reset;
* a failure names the pack (and the package, for a requirement conflict); all
  packs are attempted and every failure is listed before it exits non-zero. A
  requirement conflict exits non-zero even though the rest is installed: it must
  be decided in the overrides file. A pack that fails to import is set aside
  and reported, and the run succeeds (scripts/check_custom_nodes.py then fails
  the build if that pack was measured as importing).

Packs are cloned in parallel (--jobs); pip installs into the environment of
--python (default: this interpreter). A pack's install.py is never run: what it
would install belongs in the overrides file.

The lock file lives in the ComfyUI folder (never committed): only a production
build, which can reach GitHub, produces a real one. Copy it out of a built
image to review or diff it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_NAME = "custom_nodes.lock.json"
STAGING_NAME = ".custom_nodes_staging"
SET_ASIDE_NAME = "custom_nodes.set_aside"  # beside custom_nodes/, so ComfyUI never loads what is in it
GIT_TIMEOUT_S = 900
PIP_TIMEOUT_S = 3600
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

QUIET_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


class InstallError(Exception):
    """One pack could not be installed as pinned; ``pack`` and ``package`` name the culprits."""

    def __init__(self, pack: str, message: str, *, package: str | None = None, fix: str = "") -> None:
        self.pack, self.package, self.fix = pack, package, fix
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.pack}: {self.args[0]}"
        return f"{text}\n  How to fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Pack:
    name: str
    repo: str
    commit: str
    install_requirements: bool = True

    @property
    def is_local(self) -> bool:
        """file:// or a plain path: only then may git use the file transport (tests, local mirrors)."""
        return self.repo.startswith("file://") or "://" not in self.repo and not self.repo.startswith("git@")


def normalize(name: str) -> str:
    """PEP 503 name, so "Tomli_W" and "tomli-w" compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_text(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path) -> list[Pack]:
    """custom_nodes.json -> packs (the checks the installer relies on; the runtime validates fully)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read the manifest {path}: {exc}") from None
    packs: list[Pack] = []
    seen: set[str] = set()
    for entry in data.get("packs", []) if isinstance(data, dict) else []:
        name, repo, commit = entry.get("name"), entry.get("repo"), entry.get("commit")
        if not (isinstance(name, str) and _NAME.match(name) and isinstance(repo, str) and repo
                and isinstance(commit, str) and _HEX.match(commit)):
            raise SystemExit(f"error: {path}: bad pack entry {entry!r} (needs name, repo and a hex commit)")
        if name.lower() in seen:
            raise SystemExit(f"error: {path}: pack {name} appears twice")
        seen.add(name.lower())
        packs.append(Pack(name, repo, commit, bool(entry.get("install_requirements", True))))
    if not packs:
        raise SystemExit(f"error: {path} lists no packs")
    return packs


# --- git ----------------------------------------------------------------------------


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **QUIET_ENV, **(env or {})})


class Git:
    """git for one pack; the file transport is allowed only for local repositories."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.prefix = ["git"] + (["-c", "protocol.file.allow=always"] if pack.is_local else [])

    def __call__(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = run(self.prefix + list(args), cwd=cwd, timeout=GIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InstallError(self.pack.name, f"git {args[0]} took over {GIT_TIMEOUT_S} s",
                               fix="Check that the repository answers, then run the installer again.") from None
        if check and result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            message = " ".join(l.strip() for l in output.splitlines() if not l.startswith("Cloning into"))[-1500:]
            raise InstallError(self.pack.name, f"git {' '.join(args[:2])} failed: {message}",
                               fix="Check that the repository URL in custom_nodes.json is public and reachable from this build.")
        return result

    def resolve(self, workdir: Path) -> str | None:
        """The full id of the pinned commit if this clone has it, else None."""
        result = self("rev-parse", "--verify", "--quiet", f"{self.pack.commit}^{{commit}}", cwd=workdir, check=False)
        if result.returncode == 0:
            return result.stdout.strip()
        if "ambiguous" in result.stderr:
            raise InstallError(self.pack.name, f"commit {self.pack.commit} is ambiguous in {self.pack.repo}",
                               fix="Pin a longer commit prefix (it must come from the source list).")
        return None

    def head(self, workdir: Path) -> str:
        return self("rev-parse", "HEAD", cwd=workdir).stdout.strip()

    def is_clean(self, workdir: Path) -> bool:
        """No tracked file edited and every submodule initialised at its recorded commit."""
        if self("status", "--porcelain", "--untracked-files=no", cwd=workdir).stdout.strip():
            return False
        if (workdir / ".gitmodules").is_file():
            status = self("submodule", "status", "--recursive", cwd=workdir).stdout
            return all(not line or line[0] == " " for line in status.splitlines())
        return True

    def checkout(self, workdir: Path, full: str) -> None:
        self("checkout", "--force", "--detach", full, cwd=workdir)
        if (workdir / ".gitmodules").is_file():
            self("submodule", "sync", "--recursive", cwd=workdir)
            self("submodule", "update", "--init", "--recursive", "--force", cwd=workdir)
        head = self.head(workdir)
        if head != full:
            raise InstallError(self.pack.name, f"checked out {head} but {full} was wanted",
                               fix="Remove the pack's folder and run the installer again.")


def fetch_missing(git: Git, workdir: Path) -> str:
    """Fetch from origin until the pinned commit is present; its full id."""
    git("fetch", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*", cwd=workdir)
    full = git.resolve(workdir)
    if full is None and len(git.pack.commit) == 40:
        # A full id that no branch contains can still be fetched by id from GitHub.
        git("fetch", "origin", git.pack.commit, cwd=workdir, check=False)
        full = git.resolve(workdir)
    if full is None:
        raise InstallError(git.pack.name, f"commit {git.pack.commit} is not in {git.pack.repo}",
                           fix="Check the commit pinned in custom_nodes.json against the source list.")
    return full


@dataclass
class CheckoutResult:
    pack: Pack
    commit: str = ""
    action: str = ""  # cloned | moved | unchanged
    seconds: float = 0.0
    error: InstallError | None = None


def checkout_pack(pack: Pack, custom_nodes: Path, staging: Path) -> CheckoutResult:
    """Make custom_nodes/<name> a clone of the pack at its pinned commit."""
    started = time.monotonic()
    git = Git(pack)
    dest = custom_nodes / pack.name
    result = CheckoutResult(pack)
    try:
        if dest.exists():
            if not (dest / ".git").exists():
                raise InstallError(pack.name, f"{dest} exists but is not a git clone",
                                   fix=f"Move {dest} away (it may hold your own files) and run the installer again.")
            remote = git("remote", "get-url", "origin", cwd=dest, check=False).stdout.strip()
            if remote and remote != pack.repo:
                git("remote", "set-url", "origin", pack.repo, cwd=dest)
            elif not remote:
                git("remote", "add", "origin", pack.repo, cwd=dest)
            full = git.resolve(dest)
            if full is not None and git.head(dest) == full and git.is_clean(dest):
                result.commit, result.action = full, "unchanged"
                return result
            full = full or fetch_missing(git, dest)
            git.checkout(dest, full)
            result.commit, result.action = full, "moved"
            return result
        staging.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{pack.name}-", dir=staging))
        try:
            clone = ["clone", "--no-checkout", "--origin", "origin"]
            if pack.repo.startswith(("https://", "http://")):
                clone.append("--filter=blob:none")  # commits and trees now, blobs for the pinned commit only
            git(*clone, pack.repo, str(work / "repo"))
            full = git.resolve(work / "repo") or fetch_missing(git, work / "repo")
            git.checkout(work / "repo", full)
            os.replace(work / "repo", dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        result.commit, result.action = full, "cloned"
    except InstallError as exc:
        result.error = exc
    except (OSError, subprocess.SubprocessError) as exc:
        result.error = InstallError(pack.name, f"{type(exc).__name__}: {exc}")
    finally:
        result.seconds = time.monotonic() - started
    return result


# --- pip ----------------------------------------------------------------------------

_SNAPSHOT = (
    "import importlib.metadata as m, json, re\n"
    "out = {}\n"
    "for d in m.distributions():\n"
    "    n = d.metadata['Name']\n"
    "    if n: out.setdefault(re.sub(r'[-_.]+', '-', n).lower(), d.version)\n"
    "print(json.dumps(out))\n"
)


def installed_versions(python: str) -> dict[str, str]:
    """{normalized name: version} of every distribution the target interpreter sees."""
    result = run([python, "-c", _SNAPSHOT], timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"error: cannot list the packages of {python}: {result.stderr.strip()[-800:]}")
    return json.loads(result.stdout)


def requirement_names(text: str) -> list[str]:
    """Names of the plain requirements in a requirements.txt (options, URLs and -r lines are skipped)."""
    names = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", ".", "/")) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", line):
            continue
        if match := _REQ_NAME.match(line):
            names.append(normalize(match.group(1)))
    return list(dict.fromkeys(names))


_CANNOT_INSTALL = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_CONSTRAINT_LINE = re.compile(r"The user requested \(constraint\) ([A-Za-z0-9][A-Za-z0-9._-]*)")
_DEPENDS_LINE = re.compile(r"^\s*(?:The user requested|([A-Za-z0-9][A-Za-z0-9._-]*) \S+ depends on) ([A-Za-z0-9][A-Za-z0-9._-]*)")
_NO_VERSION = re.compile(r"(?:Could not find a version that satisfies the requirement|No matching distribution found for) "
                         r"([A-Za-z0-9][A-Za-z0-9._-]*)(\S*)")


def explain_pip_failure(pack: str, output: str, constraints: Path) -> InstallError:
    """Turn pip's resolver output into one error naming the pack and the package."""
    lines = output.splitlines()
    if any(_CANNOT_INSTALL.search(line) for line in lines) or "ResolutionImpossible" in output:
        causes: list[str] = []
        if "The conflict is caused by:" in output:
            start = next(i for i, l in enumerate(lines) if "The conflict is caused by:" in l) + 1
            for line in lines[start:]:
                if not line.strip():
                    break
                causes.append(line.strip())
        constrained = [m.group(1) for l in causes if (m := _CONSTRAINT_LINE.search(l))]
        involved = constrained or [m.group(2) for l in causes if (m := _DEPENDS_LINE.match(l))]
        package = normalize(involved[0]) if involved else None
        if package is None and (match := next(filter(None, map(_CANNOT_INSTALL.search, lines)), None)):
            package = normalize(_REQ_NAME.match(match.group(1)).group(1))
        about = f" on {package}" if constrained else (f" ({package})" if package else "")
        return InstallError(
            pack,
            f"its requirements conflict with our constraints{about}: " + ("; ".join(causes) or output.strip()[-800:]),
            package=package,
            fix=(f"Keep {constraints.name} as it is: set install_requirements to false for {pack} "
                 "(SKIP_REQUIREMENTS in scripts/build_custom_nodes.py) and pin what it needs in a version that fits, "
                 "or pin an older commit of the pack whose requirements fit."),
        )
    if match := next(filter(None, map(_NO_VERSION.search, lines)), None):
        package = normalize(match.group(1))
        return InstallError(
            pack, f"no installable version of {match.group(1)}{match.group(2)} for this Python and platform "
            "(within our constraints)", package=package,
            fix=f"Set install_requirements to false for {pack} and provide {package} another way, or pin another commit.")
    errors = [l for l in lines if l.startswith("ERROR:")] or lines[-15:]
    return InstallError(pack, "pip failed: " + " ".join(l.strip() for l in errors)[-1500:],
                        fix="Read pip's message above; fix the requirement or disable install_requirements for the pack.")


def pip_command(python: str) -> list[str]:
    command = [sys.executable, "-m", "pip"]
    # Compare unresolved paths: a venv's python is a symlink to the same binary as another venv's.
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        command += ["--python", python]
    # PEP 668: CUDA 13 Cog images run a uv-managed Python whose stdlib carries EXTERNALLY-MANAGED,
    # and there a plain `pip install` fails. Such an interpreter (not a venv: venvs are exempt) is
    # ours to fill, as Cog's own installs into it do. --break-system-packages is an option of
    # `pip install`, which callers append after this prefix: pass it as pip's environment variable.
    probe = ("import os, sys, sysconfig; print(int(sys.prefix == sys.base_prefix and os.path.isfile("
             "os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'))))")
    marked = run([python, "-c", probe], timeout=120)
    if marked.returncode == 0 and marked.stdout.strip() == "1":
        command = ["env", "PIP_BREAK_SYSTEM_PACKAGES=1", *command]
    return command


# --- the curated overrides ----------------------------------------------------------------

DEFAULT_OVERRIDES = REPO_ROOT / "requirements" / "custom_nodes_overrides.txt"
_VERBS = {"add": (1, None), "pin": (1, None), "last": (1, None), "drop": (1, 2), "file": (2, 2),
          "skip": (1, 1), "set-aside": (1, 1)}


@dataclass
class Overrides:
    """Our decisions about the packs' requirements, from the curated overrides file.

    Every pack's requirements are resolved in one pip run; these lines are how we
    settle what no single resolution can satisfy, each with its reason in the file.
    """

    add: list[str] = field(default_factory=list)  # requirement lines installed with the packs'
    pin: list[str] = field(default_factory=list)  # constraints held for every pack
    last: list[str] = field(default_factory=list)  # reinstalled after the run so their files win
    drop: dict[str, dict[str, str]] = field(default_factory=dict)  # pack or "*" -> {name: reason}
    files: dict[str, str] = field(default_factory=dict)  # pack -> requirements file used instead
    skip: dict[str, str] = field(default_factory=dict)  # pack -> why its requirements are not installed
    set_aside: dict[str, str] = field(default_factory=dict)  # pack -> why it is set aside untried
    unknown: list[str] = field(default_factory=list)  # packs named that the manifest lacks (lines ignored)
    text: str = ""


def read_overrides(path: Path | None, pack_names: Iterable[str]) -> Overrides:
    """Parse the overrides file; a line without a reason or naming an unknown pack stops the run."""
    result = Overrides()
    if path is None:
        return result
    if not path.is_file():
        raise SystemExit(f"error: overrides file {path} not found; without it the packs' requirements do not resolve "
                         "together (pass the file, or none only in tests)")
    known = set(pack_names)
    result.text = path.read_text(encoding="utf-8")
    for number, raw in enumerate(result.text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        body, sep, reason = line.partition(" #")
        words, reason = body.split(), reason.strip()
        where = f"{path.name} line {number}"
        if not sep or not reason:
            raise SystemExit(f"error: {where}: every override needs its reason after ' # '")
        verb, args = words[0], words[1:]
        if verb not in _VERBS:
            raise SystemExit(f"error: {where}: unknown verb {verb!r} (one of {', '.join(sorted(_VERBS))})")
        low, high = _VERBS[verb]
        if len(args) < low or (high is not None and len(args) > high):
            raise SystemExit(f"error: {where}: {verb} takes {low}{'' if high == low else '+' if high is None else f'-{high}'}"
                             " argument(s)")
        if verb in ("add", "pin", "last"):
            getattr(result, verb).append(" ".join(args))
            continue
        pack = args[0] if verb != "drop" or len(args) == 2 else "*"
        if pack != "*" and pack not in known:
            result.unknown.append(pack)  # a shorter manifest (--manifest) than the one the file was written for
            continue
        if verb == "drop":
            result.drop.setdefault(pack, {})[normalize(args[-1])] = reason
        elif verb == "file":
            result.files[pack] = args[1]
        elif verb == "skip":
            result.skip[pack] = reason
        else:
            result.set_aside[pack] = reason
    return result


# --- one resolution for every pack ----------------------------------------------------------

_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_URL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*\+)?[A-Za-z][A-Za-z0-9+.-]*://")


def line_name(line: str) -> str | None:
    """The distribution a requirement line asks for (a VCS URL: its #egg= or repository name)."""
    if match := _EGG.search(line):
        return normalize(match.group(1))
    if _URL.match(line):
        last = line.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1].split("@", 1)[0]
        last = last[:-4] if last.endswith(".git") else last
        return normalize(last) if _REQ_NAME.match(last) else None
    match = _REQ_NAME.match(line)
    return normalize(match.group(1)) if match else None


@dataclass
class Requirements:
    """The packs' requirement lines after our overrides, each with the pack it came from."""

    lines: list[tuple[str, str]] = field(default_factory=list)  # (line, origin: pack name or "overrides")
    per_pack: dict[str, dict[str, Any]] = field(default_factory=dict)

    def text(self) -> str:
        """The merged requirements file, sorted: the manifest's order never changes the resolution's key."""
        origins: dict[str, set[str]] = {}
        for line, origin in self.lines:
            origins.setdefault(line, set()).add(origin)
        return "".join(f"{line}  # {', '.join(sorted(o))}\n" for line, o in sorted(origins.items()))

    def packs_naming(self, package: str | None, output: str = "") -> list[str]:
        """The packs whose lines ask for ``package`` (or, when pip named none, whose URL its output shows)."""
        if package:
            return sorted({o for l, o in self.lines if o != "overrides" and line_name(l) == package})
        return sorted({o for l, o in self.lines if o != "overrides" and "://" in l
                       and l.split("@", 1)[0].removeprefix("git+") in output})


def collect_requirements(packs: Iterable[Pack], custom_nodes: Path, overrides: Overrides) -> Requirements:
    """Every pack's requirement lines plus the curated additions, with the dropped ones recorded."""
    reqs = Requirements()
    for pack in packs:
        if not pack.install_requirements or pack.name in overrides.skip:
            continue
        rel = overrides.files.get(pack.name, "requirements.txt")
        path = custom_nodes / pack.name / rel
        if not path.is_file():
            continue
        raw = path.read_bytes()
        info: dict[str, Any] = {"file": rel, "sha256": sha256_text(raw), "names": [], "dropped": {}}
        drops = {**overrides.drop.get("*", {}), **overrides.drop.get(pack.name, {})}
        for text_line in raw.decode("utf-8", "replace").splitlines():
            line = text_line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            name = line_name(line)
            if line.startswith("-") or name is None:
                info["dropped"][line] = "pip options and local paths in a pack's file are not followed"
                continue
            if name in drops:
                info["dropped"][line] = drops[name]
                continue
            info["names"].append(name)
            reqs.lines.append((line, pack.name))
        reqs.per_pack[pack.name] = info
    if reqs.per_pack:  # the curated lines complete the packs' requirements; alone they install nothing
        reqs.lines += [(line, "overrides") for line in overrides.add]
    return reqs


@dataclass
class Resolution:
    key: str
    resolved: dict[str, str] = field(default_factory=dict)
    vcs: dict[str, dict[str, str]] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)
    ran_pip: bool = False


def resolve_all(reqs: Requirements, overrides: Overrides, constraints: Path, python: str, previous: dict[str, Any],
                log) -> Resolution:
    """One pip run for every pack's requirements together (or none, when the lock says it is all there)."""
    text = reqs.text()
    pins = "\n".join(overrides.pin) + "\n"
    key = sha256_text("\0".join([text, constraints.read_text(encoding="utf-8"), pins, "\n".join(overrides.last)])
                      .encode())
    installed = installed_versions(python)
    if previous.get("sha256") == key and all(installed.get(n) == v for n, v in previous.get("resolved", {}).items()):
        return Resolution(key, dict(previous.get("resolved", {})), dict(previous.get("vcs", {})))
    result = Resolution(key, ran_pip=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cw-pip-") as tmp:
        req_file, pin_file, report = Path(tmp) / "requirements.txt", Path(tmp) / "pins.txt", Path(tmp) / "report.json"
        req_file.write_text(text)
        pin_file.write_text(pins)
        cmd = pip_command(python) + [
            "install", "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
            "--no-warn-script-location", "-r", str(req_file), "-c", str(constraints), "-c", str(pin_file),
            "--report", str(report),
        ]
        try:
            done = run(cmd, cwd=Path(tmp), timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InstallError("requirements", f"pip took over {PIP_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise explain_pip_failure("requirements", done.stdout + "\n" + done.stderr, constraints)
        try:
            items = json.loads(report.read_text()).get("install", [])
        except (OSError, ValueError):
            items = []
    for item in items:
        meta = item.get("metadata", {})
        name, version = normalize(meta.get("name", "")), meta.get("version", "")
        if not name:
            continue
        if installed.get(name) not in (None, version):
            result.replaced[name] = f"{installed[name]} -> {version}"
        installed[name] = result.resolved[name] = version
        vcs = (item.get("download_info") or {}).get("vcs_info")
        if vcs:
            result.vcs[name] = {"url": item["download_info"].get("url", ""), "commit": vcs.get("commit_id", "")}
    for line, _ in reqs.lines:
        name = line_name(line)
        if name in installed:
            result.resolved.setdefault(name, installed[name])
    for name, value in previous.get("vcs", {}).items():
        if name in result.resolved and name not in result.vcs:
            result.vcs[name] = value  # already installed from the same URL: keep the commit recorded then
    log(f"pip      all packs' requirements: {len(items)} installed in {time.monotonic() - started:.1f} s")
    if result.replaced:
        log("note     changed packages already present: " + ", ".join(f"{k} {v}" for k, v in result.replaced.items()))
    if overrides.last:
        # The versions the resolution chose, reinstalled without dependencies: only their files change.
        again = [f"{n}=={installed[normalize(n)]}" for n in overrides.last if normalize(n) in installed]
        cmd = pip_command(python) + ["install", "--no-input", "--no-deps", "--force-reinstall", "--progress-bar", "off",
                                     *again]
        done = run(cmd, timeout=PIP_TIMEOUT_S)
        if done.returncode != 0:
            raise explain_pip_failure("overrides (last)", done.stdout + "\n" + done.stderr, constraints)
        log(f"pip      reinstalled last: {', '.join(overrides.last)}")
    result.resolved = dict(sorted(result.resolved.items()))
    return result


# --- import check ---------------------------------------------------------------------------

_IMPORT_TIME = re.compile(r"^\s*(?P<s>\d+\.\d) seconds(?P<failed> \(IMPORT FAILED\))?: (?P<path>.+?)\s*$")
_CANNOT = re.compile(r"Cannot import (?P<path>.+?) module for custom nodes: (?P<error>.*)$")


def parse_import_log(text: str) -> dict[str, dict[str, Any]]:
    """{folder: {"seconds", "imported", "reason"}} from ComfyUI's custom-node import summary.

    The runtime's richer parser is comfyui_wrapper.nodes.packs.report_failed_imports;
    this one is kept to the standard library because the image build runs it
    before the project is copied in.
    """
    lines = text.splitlines()
    reasons: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    for index, line in enumerate(lines):
        if match := _CANNOT.search(line):
            reason = match["error"].strip()
            j = index - 1  # the traceback's last line has the exception type
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and not lines[j].startswith((" ", "\t")) and ":" in lines[j]:
                reason = lines[j].strip()
            reasons[match["path"].rstrip("/")] = reason or "(no message)"
        elif match := _IMPORT_TIME.search(line):
            path = match["path"].rstrip("/")
            name = Path(path).name
            out[name[:-3] if name.endswith(".py") else name] = {
                "seconds": float(match["s"]), "imported": not match["failed"],
                "reason": None if not match["failed"] else reasons.get(path, "see ComfyUI's log"),
            }
    return out


def boot_check(comfyui_dir: Path, python: str, timeout: float = 900) -> tuple[dict[str, dict[str, Any]], str]:
    """Load every pack in custom_nodes/ the way ComfyUI does at boot, then exit; per pack result and the log."""
    cmd = [python, "main.py", "--cpu", "--quick-test-for-ci", "--disable-api-nodes", "--disable-auto-launch"]
    try:
        done = run(cmd, cwd=comfyui_dir, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InstallError("import check", f"ComfyUI did not finish loading the packs in {timeout:.0f} s") from None
    log_text = done.stdout + "\n" + done.stderr
    if done.returncode != 0 and "Import times for custom nodes" not in log_text:
        raise InstallError("import check", "ComfyUI failed to boot: " + log_text.strip()[-1500:],
                           fix="Read ComfyUI's output above; a pack may break ComfyUI itself.")
    return parse_import_log(log_text), log_text


def compile_bytecode(custom_nodes: Path, python: str) -> bool:
    """Precompile the packs' Python files, so no container pays for it at every start.

    A fresh container boots from the image; without bytecode in the image every
    start compiles every pack again (bench/custom_nodes_boot.py measures it).
    Files that do not compile (a pack's Python 2 leftovers) are skipped: ComfyUI
    never imports them either. True when compileall found nothing to complain about.
    """
    done = run([python, "-m", "compileall", "-q", "-j", "0", str(custom_nodes)], timeout=900)
    return done.returncode == 0


# --- the lock file ----------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("packs"), dict) else {"packs": {}}
    except (OSError, ValueError):
        return {"packs": {}}


def write_lock(path: Path, data: dict[str, Any]) -> bool:
    """Write atomically, and only when the content changes (a no-op run leaves the file alone)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


# --- the run --------------------------------------------------------------------------


@dataclass
class Summary:
    errors: list[InstallError] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)
    set_aside: dict[str, str] = field(default_factory=dict)  # pack -> reason
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)  # the import check's result per pack
    ran_pip: bool = False


def restore_set_aside(custom_nodes: Path, aside: Path, names: Iterable[str]) -> None:
    """Put packs an earlier run set aside back, so this run checks them again like any other."""
    for name in names:
        if (aside / name).is_dir() and not (custom_nodes / name).exists():
            os.replace(aside / name, custom_nodes / name)


def set_aside(custom_nodes: Path, aside: Path, name: str) -> None:
    """Move a pack out of custom_nodes/ so ComfyUI never imports it half-installed."""
    if (custom_nodes / name).exists():
        aside.mkdir(exist_ok=True)
        shutil.rmtree(aside / name, ignore_errors=True)
        os.replace(custom_nodes / name, aside / name)


def install(comfyui_dir: Path, manifest: Path, constraints: Path, *, only: Iterable[str] = (),
            python: str = sys.executable, jobs: int = 8, overrides_path: Path | None = DEFAULT_OVERRIDES,
            import_check: bool = True, precompile: bool = True, log=print) -> Summary:
    """Install the manifest's packs (or ``only`` those); returns what happened and every error."""
    packs = read_manifest(manifest)
    overrides = read_overrides(overrides_path, (p.name for p in packs))
    wanted = set(only)
    unknown = wanted - {p.name for p in packs}
    if unknown:
        raise SystemExit(f"error: --only names packs not in {manifest}: {', '.join(sorted(unknown))}")
    selected = [p for p in packs if not wanted or p.name in wanted]
    needs_pip = any(p.install_requirements for p in selected)
    if needs_pip and not constraints.is_file():
        raise SystemExit(f"error: constraints file {constraints} not found; requirements are never installed "
                         "without it (it keeps torch and ComfyUI's pins in place)")
    custom_nodes = comfyui_dir / "custom_nodes"
    if not comfyui_dir.is_dir():
        raise SystemExit(f"error: {comfyui_dir} does not exist; install ComfyUI first (scripts/install_comfyui.py)")
    custom_nodes.mkdir(exist_ok=True)
    staging = comfyui_dir / STAGING_NAME
    aside_dir = comfyui_dir / SET_ASIDE_NAME
    lock_path = comfyui_dir / LOCK_NAME
    lock = read_lock(lock_path)
    constraints_sha = sha256_text(constraints.read_bytes()) if constraints.is_file() else None
    summary = Summary()
    if overrides.unknown:
        log(f"note     {DEFAULT_OVERRIDES.name} lines for packs not in {manifest.name} ignored: "
            + ", ".join(sorted(set(overrides.unknown))))
    restore_set_aside(custom_nodes, aside_dir, (p.name for p in packs))

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        checkouts = list(pool.map(lambda p: checkout_pack(p, custom_nodes, staging), selected))
    shutil.rmtree(staging, ignore_errors=True)

    entries: dict[str, Any] = {}
    for done in checkouts:
        pack = done.pack
        if done.error is not None:
            summary.errors.append(done.error)
            log(f"FAILED   {done.error}")
            continue
        if done.action != "unchanged":
            log(f"{done.action:<8} {pack.name} at {done.commit[:12]} ({done.seconds:.1f} s)")
        entries[pack.name] = {
            "repo": pack.repo, "pinned": pack.commit, "commit": done.commit,
            "install_requirements": pack.install_requirements and pack.name not in overrides.skip,
            "has_install_py": (custom_nodes / pack.name / "install.py").is_file(),
        }
        summary.actions[pack.name] = done.action
    kept = {p.name: lock["packs"][p.name] for p in packs
            if p.name not in entries and p.name in lock["packs"] and (custom_nodes / p.name).is_dir()}
    for name, reason in overrides.set_aside.items():
        summary.set_aside[name] = f"set aside by {DEFAULT_OVERRIDES.name}: {reason}"

    # One resolution over every pack present (not only the selected ones), so order never matters.
    present = [p for p in packs if (p.name in entries or p.name in kept) and p.name not in summary.set_aside]
    resolution: Resolution | None = None
    for _attempt in range(len(present) + 1):
        reqs = collect_requirements([p for p in present if p.name not in summary.set_aside], custom_nodes, overrides)
        if not reqs.lines:
            break
        try:
            resolution = resolve_all(reqs, overrides, constraints, python, lock.get("requirements", {}), log)
            break
        except InstallError as exc:
            culprits = reqs.packs_naming(exc.package, str(exc))
            exc.fix = (f"Decide it in {DEFAULT_OVERRIDES.name}: 'drop PACK {exc.package or 'NAME'}', 'pin ...' or "
                       "'skip PACK', each with its reason.")
            if not culprits:
                # No pack to blame: every pack with requirements would load without them.
                summary.errors.append(exc)
                log(f"FAILED   {exc}")
                for name in sorted({origin for _, origin in reqs.lines} - {"overrides"}):
                    summary.set_aside[name] = f"its requirements were not installed (pip failed for all packs: {exc.args[0][:300]})"
                break
            for name in culprits:
                error = InstallError(name, f"set aside: its requirement on {exc.package or 'a URL'} has no resolution "
                                     f"with the other packs under our constraints ({exc.args[0][:600]})",
                                     package=exc.package, fix=exc.fix)
                summary.errors.append(error)
                summary.set_aside[name] = (f"its requirement on {exc.package} has no resolution with the other packs"
                                           if exc.package else f"its requirements cannot be installed: {exc.args[0][:300]}")
                log(f"FAILED   {error}")
    if resolution is not None:
        summary.ran_pip = resolution.ran_pip
        for name, entry in {**kept, **entries}.items():
            info = reqs.per_pack.get(name)
            for key in ("requirements_file", "requirements_sha256", "resolved", "dropped", "replaced"):
                entry.pop(key, None)
            if info is not None:
                entry.update({"requirements_file": info["file"], "requirements_sha256": info["sha256"],
                              "constraints_sha256": constraints_sha,
                              "resolved": {n: resolution.resolved[n] for n in info["names"] if n in resolution.resolved}})
                if info["dropped"]:
                    entry["dropped"] = info["dropped"]

    # Load the packs the way ComfyUI does; a pack that fails is set aside with the reason.
    check_key = sha256_text(json.dumps([sorted((n, e["commit"]) for n, e in {**kept, **entries}.items()),
                                        resolution.key if resolution else "", sorted(summary.set_aside)]).encode())
    previous_check = lock.get("import_check", {})
    if previous_check.get("key") == check_key:
        for name, reason in previous_check.get("failed", {}).items():
            summary.set_aside.setdefault(name, reason)
    elif import_check and (comfyui_dir / "main.py").is_file():
        for name in summary.set_aside:
            set_aside(custom_nodes, aside_dir, name)
        started = time.monotonic()
        try:
            summary.imports, _ = boot_check(comfyui_dir, python)
        except InstallError as exc:
            summary.errors.append(exc)
            log(f"FAILED   {exc}")
        else:
            failed = {name: f"fails to import: {r['reason']}" for name, r in summary.imports.items()
                      if not r["imported"] and name in {p.name for p in packs}}
            summary.set_aside.update(failed)
            previous_check = {"key": check_key, "failed": failed}
            log(f"checked  {len(summary.imports)} packs load in ComfyUI ({time.monotonic() - started:.1f} s), "
                f"{len(failed)} failed")
    for name, reason in summary.set_aside.items():
        set_aside(custom_nodes, aside_dir, name)
        log(f"SET ASIDE {name}: {reason} (moved to {aside_dir / name})")
        for entry in (entries.get(name), kept.get(name)):
            if entry is not None:
                entry["set_aside"] = reason
    if precompile and any(a != "unchanged" for a in summary.actions.values()):
        compile_bytecode(custom_nodes, python)
    installed_py = [n for n, e in entries.items() if e["has_install_py"] and n not in summary.set_aside]
    if installed_py:
        log(f"note     install.py not run (its needs belong in {DEFAULT_OVERRIDES.name}): {', '.join(installed_py)}")

    manifest_names = {p.name for p in packs}
    dropped = sorted(set(lock["packs"]) - manifest_names)
    if dropped:
        log(f"note     no longer in the manifest (folders left in place): {', '.join(dropped)}")
    new_lock: dict[str, Any] = {
        "generated_by": "scripts/install_custom_nodes.py",
        "manifest_sha256": sha256_text(manifest.read_bytes()),
        "constraints_sha256": constraints_sha,
        "overrides_sha256": sha256_text(overrides.text.encode()),
        "python": python,
        "packs": dict(sorted({**kept, **entries}.items())),
        "set_aside": dict(sorted(summary.set_aside.items())),
    }
    if resolution is not None:
        new_lock["requirements"] = {"sha256": resolution.key, "resolved": resolution.resolved,
                                    "vcs": dict(sorted(resolution.vcs.items()))}
    if previous_check.get("key") == check_key:
        new_lock["import_check"] = previous_check
    write_lock(lock_path, new_lock)
    unchanged = sum(1 for a in summary.actions.values() if a == "unchanged")
    log(f"{len(summary.actions)} packs ready ({unchanged} already up to date), {len(summary.set_aside)} set aside, "
        f"{len(summary.errors)} failed; lock: {lock_path}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", type=Path,
                        default=Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI"))
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "custom_nodes.json")
    parser.add_argument("--constraints", type=Path, default=REPO_ROOT / "requirements" / "constraints.txt")
    parser.add_argument("--overrides", type=Path, default=DEFAULT_OVERRIDES,
                        help="curated additions, pins and drops for the packs' requirements")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="check out only these packs")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose environment receives the requirements (default: this one)")
    parser.add_argument("--jobs", type=int, default=8, help="parallel git clones")
    parser.add_argument("--no-compile", action="store_true", help="do not precompile the packs' bytecode")
    parser.add_argument("--no-import-check", action="store_true",
                        help="do not boot ComfyUI to find packs that fail to import")
    args = parser.parse_args(argv)
    summary = install(args.comfyui_dir.resolve(), args.manifest.resolve(), args.constraints.resolve(),
                      only=args.only, python=args.python, jobs=args.jobs, overrides_path=args.overrides.resolve(),
                      import_check=not args.no_import_check, precompile=not args.no_compile)
    if summary.set_aside:
        print(f"\n{len(summary.set_aside)} pack(s) set aside (not loaded by ComfyUI; their nodes are refused "
              "with this reason):", file=sys.stderr)
        for name, reason in sorted(summary.set_aside.items()):
            print(f"- {name}: {reason}", file=sys.stderr)
    if summary.errors:
        print(f"\nerror: {len(summary.errors)} pack(s) could not be installed:", file=sys.stderr)
        for error in summary.errors:
            print(f"- {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
