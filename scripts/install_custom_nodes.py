#!/usr/bin/env python3
"""Install the custom node packs of custom_nodes.json at their pinned commits.

For each pack: clone its repository into <ComfyUI dir>/custom_nodes/<name>
(submodules too), resolve the pinned short commit to the full one, check it
out and verify it; then install the pack's requirements.txt with pip under
our constraints file, so a pack can never replace torch, torchvision or
anything else ComfyUI pins. The result is recorded in
<ComfyUI dir>/custom_nodes.lock.json: full commit and the resolved
requirement versions of every pack, so a build is reproducible and a drift
shows up as a diff.

Rules this script keeps, because it runs unattended inside the Docker build:
* standard library, git and pip only (it runs before the project is copied in);
* it never asks anything (GIT_TERMINAL_PROMPT=0, pip --no-input, stdin closed);
* idempotent: a second run finds every pack at its commit with its recorded
  requirements present and does nothing (a few git calls per pack); a pack at
  the wrong commit is fetched and moved; tracked files edited in place are reset;
* a failure names the pack (and the package, for a requirement conflict); all
  packs are attempted and every failure is listed before it exits non-zero.

Packs are cloned in parallel (--jobs); pip runs one pack at a time, in manifest
order, into the environment of --python (default: this interpreter).
A pack's install.py, if it has one, is not run; the lock file records that it exists.

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


def pip_install(pack: Pack, requirements: Path, constraints: Path, python: str) -> list[dict[str, Any]]:
    """Install one requirements file under the constraints; pip's report entries of what it installed."""
    with tempfile.TemporaryDirectory(prefix="cw-pip-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = pip_command(python) + [
            "install", "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
            "--no-warn-script-location", "-r", str(requirements), "-c", str(constraints), "--report", str(report),
        ]
        try:
            result = run(cmd, cwd=requirements.parent, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InstallError(pack.name, f"pip took over {PIP_TIMEOUT_S} s installing {requirements}") from None
        if result.returncode != 0:
            raise explain_pip_failure(pack.name, result.stdout + "\n" + result.stderr, constraints)
        try:
            return json.loads(report.read_text()).get("install", [])
        except (OSError, ValueError):
            return []


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


def requirements_are_current(entry: dict[str, Any], want: dict[str, Any], installed: dict[str, str]) -> bool:
    """The lock says this exact requirements file was installed, and all it resolved is still there."""
    if any(entry.get(k) != v for k, v in want.items()):
        return False
    return all(installed.get(name) == version for name, version in entry.get("resolved", {}).items())


# --- the run --------------------------------------------------------------------------


@dataclass
class Summary:
    errors: list[InstallError] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)


def install(comfyui_dir: Path, manifest: Path, constraints: Path, *, only: Iterable[str] = (),
            python: str = sys.executable, jobs: int = 8, log=print) -> Summary:
    """Install the manifest's packs (or ``only`` those); returns what happened and every error."""
    packs = read_manifest(manifest)
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
    lock_path = comfyui_dir / LOCK_NAME
    lock = read_lock(lock_path)
    constraints_sha = sha256_text(constraints.read_bytes()) if constraints.is_file() else None
    summary = Summary()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        checkouts = list(pool.map(lambda p: checkout_pack(p, custom_nodes, staging), selected))
    shutil.rmtree(staging, ignore_errors=True)

    installed: dict[str, str] | None = None
    entries: dict[str, Any] = {}
    for done in checkouts:
        pack = done.pack
        if done.error is not None:
            summary.errors.append(done.error)
            log(f"FAILED   {done.error}")
            continue
        if done.action != "unchanged":
            log(f"{done.action:<8} {pack.name} at {done.commit[:12]} ({done.seconds:.1f} s)")
        pack_dir = custom_nodes / pack.name
        req_file = pack_dir / "requirements.txt"
        entry: dict[str, Any] = {
            "repo": pack.repo, "pinned": pack.commit, "commit": done.commit,
            "install_requirements": pack.install_requirements,
            "has_install_py": (pack_dir / "install.py").is_file(),
        }
        if pack.install_requirements and req_file.is_file():
            req_bytes = req_file.read_bytes()
            # Keyed on the file's content, not the commit: moving a pack whose requirements
            # did not change does not run pip again.
            want = {"install_requirements": True,
                    "requirements_sha256": sha256_text(req_bytes), "constraints_sha256": constraints_sha}
            previous = lock["packs"].get(pack.name, {})
            if installed is None:
                installed = installed_versions(python)
            if requirements_are_current(previous, want, installed):
                entry.update({k: previous[k] for k in ("requirements_sha256", "constraints_sha256", "resolved")})
                if previous.get("replaced"):
                    entry["replaced"] = previous["replaced"]
            else:
                started = time.monotonic()
                try:
                    report = pip_install(pack, req_file, constraints, python)
                except InstallError as exc:
                    summary.errors.append(exc)
                    log(f"FAILED   {exc}")
                    continue
                added: dict[str, str] = {}
                replaced: dict[str, str] = {}
                for item in report:
                    meta = item.get("metadata", {})
                    name, version = normalize(meta.get("name", "")), meta.get("version", "")
                    if not name:
                        continue
                    if installed.get(name) not in (None, version):
                        replaced[name] = f"{installed[name]} -> {version}"
                    installed[name] = added[name] = version
                direct = {n: installed[n] for n in requirement_names(req_bytes.decode("utf-8", "replace"))
                          if n in installed}
                entry.update(want)
                entry["resolved"] = dict(sorted({**direct, **added}.items()))
                if replaced:
                    entry["replaced"] = replaced
                    log(f"WARNING  {pack.name} changed installed packages: "
                        + ", ".join(f"{k} {v}" for k, v in replaced.items()))
                log(f"pip      {pack.name}: {len(added)} installed in {time.monotonic() - started:.1f} s")
        entries[pack.name] = entry
        summary.actions[pack.name] = done.action
        if entry["has_install_py"]:
            log(f"note     {pack.name} has an install.py, which this installer does not run")

    manifest_names = {p.name for p in packs}
    kept = {k: v for k, v in lock["packs"].items() if k in manifest_names and k not in {p.name for p in selected}}
    dropped = sorted(set(lock["packs"]) - manifest_names)
    if dropped:
        log(f"note     no longer in the manifest (folders left in place): {', '.join(dropped)}")
    new_lock = {
        "generated_by": "scripts/install_custom_nodes.py",
        "manifest_sha256": sha256_text(manifest.read_bytes()),
        "constraints_sha256": constraints_sha,
        "python": python,
        "packs": dict(sorted({**kept, **entries}.items())),
    }
    write_lock(lock_path, new_lock)
    unchanged = sum(1 for a in summary.actions.values() if a == "unchanged")
    log(f"{len(summary.actions)} packs ready ({unchanged} already up to date), {len(summary.errors)} failed; "
        f"lock: {lock_path}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui-dir", type=Path,
                        default=Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI"))
    parser.add_argument("--manifest", type=Path, default=REPO_ROOT / "custom_nodes.json")
    parser.add_argument("--constraints", type=Path, default=REPO_ROOT / "requirements" / "constraints.txt")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="install only these packs")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose environment receives the requirements (default: this one)")
    parser.add_argument("--jobs", type=int, default=8, help="parallel git clones")
    args = parser.parse_args(argv)
    summary = install(args.comfyui_dir.resolve(), args.manifest.resolve(), args.constraints.resolve(),
                      only=args.only, python=args.python, jobs=args.jobs)
    if summary.errors:
        print(f"\nerror: {len(summary.errors)} pack(s) could not be installed:", file=sys.stderr)
        for error in summary.errors:
            print(f"- {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
