"""Packs that fail to import are set aside, and the health check notices a pack that stops importing.

Against real ComfyUI (a copy of the checkout's, booted by the installer and by
scripts/check_custom_nodes.py) and real git repositories of tiny packs. The
packs declare no requirements, so nothing is pip-installed into the project's
environment.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from comfyui_wrapper.nodes.packs import load_packs, set_aside_packs, setup_report
from tests.support.node_packs import GOOD_NODES, load_script, make_repo, write_manifest

inst = load_script("install_custom_nodes")
check = load_script("check_custom_nodes")
REPO_ROOT = Path(__file__).resolve().parents[3]

@pytest.fixture
def comfy_copy(tmp_path) -> Path:
    source = REPO_ROOT / "ComfyUI"
    if not (source / "main.py").is_file():
        pytest.skip("ComfyUI is not installed in the checkout (scripts/setup.sh)")
    dest = tmp_path / "ComfyUI"
    shutil.copytree(source, dest, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == source and n in (
                        "custom_nodes", "user", "output", "input", "temp", inst.LOCK_NAME, inst.SET_ASIDE_NAME)])
    (dest / "custom_nodes").mkdir()
    return dest


@pytest.mark.e2e
def test_a_pack_that_fails_to_import_is_set_aside_and_reported(tmp_path, comfy_copy):
    good = make_repo(tmp_path / "up", "CW-Good-Pack", {"__init__.py": GOOD_NODES})
    broken = make_repo(tmp_path / "up", "CW-Broken-Pack", {
        "__init__.py": "import cw_module_nobody_ships\nNODE_CLASS_MAPPINGS = {}\n"})
    manifest = write_manifest(tmp_path / "custom_nodes.json", [
        {"name": r.name, "repo": r.url, "commit": r.commits[0][:7]} for r in (good, broken)])
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.14.1\n")
    log: list[str] = []

    summary = inst.install(comfy_copy, manifest, constraints, overrides_path=None, log=log.append)

    assert summary.errors == []
    assert summary.imports["CW-Good-Pack"]["imported"]
    reason = summary.set_aside["CW-Broken-Pack"]
    assert "No module named 'cw_module_nobody_ships'" in reason
    assert not (comfy_copy / "custom_nodes" / "CW-Broken-Pack").exists()
    assert (comfy_copy / inst.SET_ASIDE_NAME / "CW-Broken-Pack" / "__init__.py").is_file()
    assert any(m.startswith("SET ASIDE CW-Broken-Pack") for m in log)
    assert set_aside_packs(comfy_copy) == {"CW-Broken-Pack": reason}
    packs = load_packs(manifest)
    report = setup_report([], {}, packs, comfy_copy)
    assert report == [f"Custom node pack CW-Broken-Pack was set aside when the packs were installed: {reason}; "
                      "workflows using its nodes will be refused."]

    # A second run keeps it aside without booting ComfyUI again.
    started = time.monotonic()
    again = inst.install(comfy_copy, manifest, constraints, overrides_path=None, log=log.append)
    assert again.errors == [] and again.imports == {} and again.set_aside == summary.set_aside
    assert time.monotonic() - started < 5
    assert not (comfy_copy / "custom_nodes" / "CW-Broken-Pack").exists()

    # The health check boots ComfyUI: the good pack imports with its two nodes, the broken one is set aside.
    now = check.measure(comfy_copy, inst.sys.executable, manifest)
    assert now["packs"]["CW-Good-Pack"]["state"] == "imports" and now["packs"]["CW-Good-Pack"]["nodes"] == 2
    assert now["packs"]["CW-Broken-Pack"]["state"] == "set_aside"
    assert check.compare(now, {"packs": {"CW-Good-Pack": {"state": "imports"}}}) == []
    problems = check.compare(now, {"packs": {"CW-Broken-Pack": {"state": "imports"}}})
    assert problems == [f"CW-Broken-Pack: measured as importing, now set_aside: {reason}"]


@pytest.mark.e2e
def test_installed_packs_still_import_as_measured():
    """Where the packs are installed (the image, a full setup): every pack measured as importing still does."""
    comfy = Path(os.environ.get("CW_COMFYUI_DIR") or REPO_ROOT / "ComfyUI")
    lock = inst.read_lock(comfy / inst.LOCK_NAME)
    if not lock["packs"]:
        pytest.skip(f"no custom node packs installed in {comfy} (scripts/install_custom_nodes.py)")
    assert check.main(["--comfyui-dir", str(comfy)]) == 0


def test_measured_results_name_every_pack_of_the_manifest():
    measured = json.loads((REPO_ROOT / "custom_nodes_measured.json").read_text())
    manifest = json.loads((REPO_ROOT / "custom_nodes.json").read_text())
    assert set(measured["packs"]) == {p["name"] for p in manifest["packs"]}
    for name, result in measured["packs"].items():
        assert result["state"] in ("imports", "set_aside", "not_measurable"), name
        assert result["state"] == "imports" or result.get("reason"), name


def test_supported_custom_nodes_md_is_current():
    build = load_script("build_supported_custom_nodes")
    assert build.main(["--check"]) == 0, "supported_custom_nodes.md is stale: run scripts/build_supported_custom_nodes.py"


def test_setup_report_names_packs_the_installer_set_aside_and_not_as_absent(tmp_path):
    from comfyui_wrapper.nodes.packs import PackSpec

    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / inst.LOCK_NAME).write_text(json.dumps({"packs": {}, "set_aside": {
        "Pack-A": "fails to import: ImportError: cannot import name 'x'", "Not-Shipped": "whatever"}}))
    packs = [PackSpec("Pack-A", "https://github.com/o/Pack-A", "abcdef1")]
    assert setup_report([], {}, packs, tmp_path) == [
        "Custom node pack Pack-A was set aside when the packs were installed: fails to import: ImportError: "
        "cannot import name 'x'; workflows using its nodes will be refused."]
    (tmp_path / inst.LOCK_NAME).write_text("not json")
    assert set_aside_packs(tmp_path) == {}
