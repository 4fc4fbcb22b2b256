"""The image build's inputs: cog.yaml, the build wheel, cog_build.sh, PEP 668, bad packs at build time.

Docker is not available here; scripts/rehearse_build.py replays the whole build (CI
runs it as its own step). These tests pin the rules that keep that build correct:
no build secrets, every build input inside the checksummed wheel, ComfyUI outside
/src, the SDK pinned, our schema shipped, and a bad pack failing the build cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from comfyui_wrapper.settings import Settings
from tests.support.node_packs import GOOD_NODES, load_script, make_repo, make_venv

REPO = Path(__file__).resolve().parents[2]
wheel_builder = load_script("build_image_wheel")
rehearsal = load_script("rehearse_build")
installer = load_script("install_custom_nodes")
CONFIG = yaml.safe_load((REPO / "cog.yaml").read_text())


# --- cog.yaml ---------------------------------------------------------------------------------


def test_sdk_version_is_the_constraints_cog():
    assert str(CONFIG["build"]["sdk_version"]) == rehearsal.constraint_pin(REPO, "cog")


def test_no_build_secrets_and_no_project_paths_in_run_steps():
    for item in CONFIG["build"]["run"]:
        command = item if isinstance(item, str) else item["command"]
        assert not isinstance(item, dict) or not item.get("mounts"), "build secrets are not in BuildKit's cache key"
        # The project is not in the image yet when run: steps execute (and /src is bind-mounted in dev mode).
        assert "/src" not in command and "/tmp/cw" not in command and " scripts/" not in command


def test_comfyui_lives_outside_src_where_the_settings_find_it():
    env = dict(item.split("=", 1) for item in CONFIG["environment"])
    comfyui_dir = env["CW_COMFYUI_DIR"]
    assert not comfyui_dir.startswith("/src")
    assert all(f"--comfyui-dir {comfyui_dir}" in (i if isinstance(i, str) else i["command"]) for i in CONFIG["build"]["run"])
    assert Settings.from_env(env).comfyui_dir == Path(comfyui_dir)


def test_cog_yaml_passes_the_rehearsals_own_checks():
    rehearsal.check_config(REPO, CONFIG)


# --- the build wheel ------------------------------------------------------------------------------


def test_committed_wheel_is_current_and_listed_in_cog_txt():
    assert subprocess.run([sys.executable, "scripts/build_image_wheel.py", "--check"], cwd=REPO).returncode == 0
    assert subprocess.run([sys.executable, "scripts/write_cog_requirements.py", "--check"], cwd=REPO).returncode == 0
    lines = (REPO / "requirements" / "cog.txt").read_text().splitlines()
    local = [line for line in lines if line.startswith("./")]
    # Cog's rule: a bare ./path, relative to the requirements file, inside the project.
    assert local == [f"./wheels/{wheel_builder.WHEEL_NAME}"]
    assert (REPO / "requirements" / local[0]).resolve() == wheel_builder.OUT


def test_wheel_is_reproducible_and_carries_every_build_input():
    assert wheel_builder.build() == wheel_builder.build()
    with zipfile.ZipFile(wheel_builder.OUT) as archive:
        names = set(archive.namelist())
        for source, inside in wheel_builder.MEMBERS:
            assert archive.read(f"cw_build/{inside}") == (REPO / source).read_bytes()
    assert "cw_build/__init__.py" in names and "cw_build-1.0.0.dist-info/RECORD" in names


@pytest.mark.parametrize("source", [s for s, _ in wheel_builder.MEMBERS])
def test_changing_any_build_input_changes_the_wheel(tmp_path: Path, source: str):
    """Cog stages the wheel with a checksummed COPY: a changed byte rebuilds the run: step."""
    for member, _ in wheel_builder.MEMBERS:
        (tmp_path / member).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / member, tmp_path / member)
    before = wheel_builder.build(tmp_path)
    with (tmp_path / source).open("a") as handle:
        handle.write("\n")
    assert wheel_builder.build(tmp_path) != before


def test_the_comfyui_pin_is_a_wheel_member():
    assert ("scripts/install_comfyui.py", "install_comfyui.py") in wheel_builder.MEMBERS
    assert "COMFYUI_COMMIT" in (REPO / "scripts" / "install_comfyui.py").read_text()


# --- COPY . /src ------------------------------------------------------------------------------------


def test_copy_honours_dockerignore(tmp_path: Path):
    project = tmp_path / "p"
    for relative in ("predict.py", ".cog/openapi_schema.json", ".venv/x", "ComfyUI/main.py", "a/__pycache__/m.pyc",
                     ".cog/cog.lock", ".cog/build/f", "runtime/input/i.png", "requirements/wheels/w.whl",
                     ".mypy_cache/3.11/m.json", ".ruff_cache/0.8.4/r", ".pytest_cache/v/x", ".hypothesis/e/x"):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text("x")
    shutil.copy2(REPO / ".dockerignore", project / ".dockerignore")
    rehearsal.copy_context(project, tmp_path / "src")
    copied = {p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*") if p.is_file()}
    assert copied == {"predict.py", ".cog/openapi_schema.json", "requirements/wheels/w.whl", ".dockerignore"}


def test_image_paths_are_mapped_under_the_root(tmp_path: Path):
    mapped = rehearsal.map_paths("python -m cw_build --comfyui-dir /opt/comfyui && ls /src/x /srcfoo a/opt", tmp_path)
    assert mapped == f"python -m cw_build --comfyui-dir {tmp_path}/opt/comfyui && ls {tmp_path}/src/x /srcfoo a/opt"


# --- cog_build.sh -------------------------------------------------------------------------------------


def test_cog_build_script_checks_the_cli_and_ships_our_schema(tmp_path: Path):
    rehearsal.check_cog_build_script(REPO, tmp_path)


# --- PEP 668 -----------------------------------------------------------------------------------------


def test_pack_installs_break_system_packages_only_where_the_interpreter_is_externally_managed(tmp_path: Path):
    marked = rehearsal.make_image_python(tmp_path / "root", with_pip=False)
    command = installer.pip_command(str(marked))
    assert command[:2] == ["env", "PIP_BREAK_SYSTEM_PACKAGES=1"] and "--python" in command
    venv = make_venv(tmp_path / "venv")  # a venv is exempt from PEP 668
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" not in installer.pip_command(str(venv))
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" not in installer.pip_command(sys.executable)


# --- bad packs at build time ---------------------------------------------------------------------------


def _installed_build(tmp_path: Path, packs: list[dict]) -> tuple[Path, Path]:
    """The build wheel (with ``packs`` as its manifest) unpacked into a site dir, and a ComfyUI copy."""
    project = tmp_path / "project"
    for member, _ in wheel_builder.MEMBERS:
        (project / member).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / member, project / member)
    entries = [{"install_requirements": False, "unsupported_nodes": {}, **p} for p in packs]
    (project / "custom_nodes.json").write_text(json.dumps({"packs": entries}))
    site = tmp_path / "site"
    with zipfile.ZipFile(__import__("io").BytesIO(wheel_builder.build(project))) as archive:
        archive.extractall(site)
    comfy = tmp_path / "opt" / "comfyui"
    comfy.parent.mkdir()
    subprocess.run(["cp", "-al", str(REPO / "ComfyUI"), str(comfy)], check=True)
    for entry in (comfy / "custom_nodes").iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return site, comfy


@pytest.mark.e2e
@pytest.mark.skipif(not (REPO / "ComfyUI" / "main.py").is_file(), reason="ComfyUI is not installed")
@pytest.mark.parametrize("case", ["broken entry", "unreachable repo", "missing commit"])
def test_a_bad_pack_fails_the_build_naming_it_and_leaves_nothing_installed(tmp_path: Path, case: str):
    good = make_repo(tmp_path / "repos", "cw-good", {"__init__.py": GOOD_NODES})
    bad = {
        "broken entry": {"name": "cw-bad", "repo": good.url},
        "unreachable repo": {"name": "cw-bad", "repo": (tmp_path / "nowhere").as_uri(), "commit": "abcdef1"},
        "missing commit": {"name": "cw-bad", "repo": good.url, "commit": "0123456789abcdef"},
    }[case]
    site, comfy = _installed_build(tmp_path, [{"name": "cw-good", "repo": good.url, "commit": good.commits[0][:7]}, bad])
    result = subprocess.run([sys.executable, "-m", "cw_build", "--comfyui-dir", str(comfy)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode != 0
    assert "cw-bad" in result.stderr and ("fix" in result.stderr.lower() or "needs name, repo" in result.stderr)
    assert "step 'custom node packs'" in result.stderr
    assert not comfy.exists(), "a failed build must not leave a half-installed ComfyUI"
