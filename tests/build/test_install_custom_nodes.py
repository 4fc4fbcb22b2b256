"""scripts/install_custom_nodes.py against real git repositories (file://) and real pip.

Requirements go into a throwaway venv (``pip --python``), never into the
project's own environment. ``six`` is the small real package a test pack needs.
The tests that install (a venv, git clones, pip: seconds each) are marked e2e;
the parsers' tests run in `pytest -m "not e2e"`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.node_packs import GOOD_NODES, PackRepo, git, load_script, make_repo, make_venv, write_manifest

inst = load_script("install_custom_nodes")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, PackRepo]:
    root = tmp_path_factory.mktemp("upstream")
    good = make_repo(root, "CW-Good-Pack", {"__init__.py": GOOD_NODES, "requirements.txt": "six  # tiny, pure python\n"})
    good.commit({"VERSION": "2\n"}, "a newer commit the pin does not want")
    sub = make_repo(root, "cw-sub", {"data.txt": "first\n"})
    sub.commit({"data.txt": "second\n"}, "newer submodule commit")
    with_sub = make_repo(root, "CW-Sub-Pack", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n",
                                                "requirements.txt": "tomli-w\n"})
    with_sub.add_submodule(sub, "vendor/sub")
    clash = make_repo(root, "CW-Torch-Pack", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n",
                                              "requirements.txt": "six\ntorch==2.0.0\n"})
    return {"good": good, "sub": with_sub, "clash": clash, "subrepo": sub}


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> str:
    return str(make_venv(tmp_path_factory.mktemp("venv") / "env"))


@pytest.fixture
def setup(tmp_path, upstream, venv_python):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.14.1\ntorchvision==0.29.1\n")
    good, sub = upstream["good"], upstream["sub"]
    manifest = write_manifest(tmp_path / "custom_nodes.json", [
        {"name": good.name, "repo": good.url, "commit": good.commits[0][:7]},
        {"name": sub.name, "repo": sub.url, "commit": sub.commits[-1][:9], "install_requirements": False},
    ])
    messages: list[str] = []

    def run(**kwargs):
        messages.clear()
        args = dict(python=venv_python, jobs=2, log=messages.append, overrides_path=None)
        args.update(kwargs)
        return inst.install(comfy, manifest, constraints, **args)

    return {"comfy": comfy, "manifest": manifest, "constraints": constraints, "run": run, "log": messages,
            "python": venv_python}


def empty_overrides(folder: Path) -> Path:
    path = folder / "overrides.txt"
    path.write_text("# none\n")
    return path


def head(path: Path) -> str:
    return git(path, "rev-parse", "HEAD")


@pytest.mark.e2e
def test_installs_each_pack_at_its_pinned_commit_with_requirements(setup, upstream):
    summary = setup["run"]()
    assert summary.errors == []
    good, sub, subrepo = upstream["good"], upstream["sub"], upstream["subrepo"]
    nodes = setup["comfy"] / "custom_nodes"
    # pinned by a 7-digit prefix while a newer commit exists upstream
    assert head(nodes / good.name) == good.commits[0] != good.commits[-1]
    assert not (nodes / good.name / "VERSION").exists()
    # submodules are checked out at the commit the pack records, not their newest
    assert head(nodes / sub.name) == sub.commits[-1]
    assert (nodes / sub.name / "vendor" / "sub" / "data.txt").read_text() == "first\n"
    assert head(nodes / sub.name / "vendor" / "sub") == subrepo.commits[0]

    installed = inst.installed_versions(setup["python"])
    assert "six" in installed
    assert "tomli-w" not in installed  # install_requirements: false
    lock = json.loads((setup["comfy"] / "custom_nodes.lock.json").read_text())
    entry = lock["packs"][good.name]
    assert entry["commit"] == good.commits[0] and entry["pinned"] == good.commits[0][:7]
    assert entry["resolved"] == {"six": installed["six"]}
    assert lock["packs"][sub.name]["commit"] == sub.commits[-1]
    assert "resolved" not in lock["packs"][sub.name]
    assert not (setup["comfy"] / inst.STAGING_NAME).exists()


@pytest.mark.e2e
def test_second_run_changes_nothing_and_is_fast(setup, upstream):
    assert setup["run"]().errors == []
    lock = setup["comfy"] / "custom_nodes.lock.json"
    before = (lock.read_text(), lock.stat().st_mtime_ns)
    site = Path(setup["python"]).parent.parent / "lib"
    site_mtimes = sorted((p.name, p.stat().st_mtime_ns) for p in site.glob("*/site-packages/*"))

    started = time.monotonic()
    summary = setup["run"]()
    elapsed = time.monotonic() - started

    assert summary.errors == []
    assert set(summary.actions.values()) == {"unchanged"}
    assert not any(m.startswith("pip") for m in setup["log"]), setup["log"]
    assert (lock.read_text(), lock.stat().st_mtime_ns) == before
    assert sorted((p.name, p.stat().st_mtime_ns) for p in site.glob("*/site-packages/*")) == site_mtimes
    assert elapsed < 2.0, f"a no-op run took {elapsed:.2f} s"


@pytest.mark.e2e
def test_pack_at_wrong_commit_or_edited_is_moved_back(setup, upstream):
    assert setup["run"]().errors == []
    good = upstream["good"]
    pack_dir = setup["comfy"] / "custom_nodes" / good.name
    git(pack_dir, "checkout", "-q", good.commits[-1])
    (pack_dir / "__init__.py").write_text("broken = True\n")

    summary = setup["run"]()

    assert summary.errors == [] and summary.actions[good.name] == "moved"
    assert head(pack_dir) == good.commits[0]
    assert (pack_dir / "__init__.py").read_text() == GOOD_NODES
    assert not (pack_dir / "VERSION").exists()


@pytest.mark.e2e
def test_new_pin_not_in_the_clone_is_fetched(setup, upstream, tmp_path):
    assert setup["run"]().errors == []
    # a commit made upstream after the clone, then pinned
    extra = make_repo(tmp_path / "up2", "CW-Moving-Pack", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    manifest = write_manifest(tmp_path / "m2.json", [
        {"name": extra.name, "repo": extra.url, "commit": extra.commits[0][:7], "install_requirements": False}])
    assert inst.install(setup["comfy"], manifest, setup["constraints"], log=lambda _: None).errors == []
    newer = extra.commit({"NEW": "x\n"}, "later")
    write_manifest(manifest, [{"name": extra.name, "repo": extra.url, "commit": newer[:8], "install_requirements": False}])

    summary = inst.install(setup["comfy"], manifest, setup["constraints"], log=lambda _: None)

    assert summary.errors == [] and summary.actions[extra.name] == "moved"
    assert head(setup["comfy"] / "custom_nodes" / extra.name) == newer


@pytest.mark.e2e
def test_requirement_conflicting_with_torch_is_refused_naming_pack_and_package(setup, upstream):
    clash, good = upstream["clash"], upstream["good"]
    write_manifest(setup["manifest"], [
        {"name": good.name, "repo": good.url, "commit": good.commits[0][:7]},
        {"name": clash.name, "repo": clash.url, "commit": clash.commits[0][:7]},
    ])
    result = subprocess.run(
        [sys.executable, str(inst.__file__), "--comfyui-dir", str(setup["comfy"]), "--manifest", str(setup["manifest"]),
         "--constraints", str(setup["constraints"]), "--python", setup["python"],
         "--overrides", str(empty_overrides(setup["constraints"].parent))],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )
    assert result.returncode == 1
    assert f"{clash.name}: set aside: its requirement on torch has no resolution" in result.stderr
    assert "torch==2.0.0" in result.stderr and "How to fix" in result.stderr and "overrides" in result.stderr
    # the other pack was still installed; the failed one is set aside (out of custom_nodes/), torch untouched
    lock = json.loads((setup["comfy"] / "custom_nodes.lock.json").read_text())
    assert "torch" in lock["set_aside"][clash.name]
    assert lock["packs"][good.name]["resolved"] == {"six": inst.installed_versions(setup["python"])["six"]}
    assert not (setup["comfy"] / "custom_nodes" / clash.name).exists()
    assert (setup["comfy"] / inst.SET_ASIDE_NAME / clash.name / "requirements.txt").is_file()
    assert "torch" not in inst.installed_versions(setup["python"])

    summary = setup["run"](only=[clash.name])
    (error,) = summary.errors
    assert (error.pack, error.package) == (clash.name, "torch")


@pytest.mark.e2e
def test_unknown_commit_and_not_a_clone_are_clear_errors(setup, upstream):
    good = upstream["good"]
    write_manifest(setup["manifest"], [{"name": good.name, "repo": good.url, "commit": "0000000"}])
    (error,) = setup["run"]().errors
    assert error.pack == good.name and "commit 0000000 is not in" in str(error)
    assert not (setup["comfy"] / "custom_nodes" / good.name).exists()  # nothing half-cloned is left

    (setup["comfy"] / "custom_nodes" / good.name).mkdir()
    write_manifest(setup["manifest"], [{"name": good.name, "repo": good.url, "commit": good.commits[0][:7]}])
    (error,) = setup["run"]().errors
    assert "exists but is not a git clone" in str(error) and "Move" in error.fix


@pytest.mark.e2e
def test_only_installs_the_named_packs_and_keeps_the_rest_of_the_lock(setup, upstream):
    good, sub = upstream["good"], upstream["sub"]
    assert setup["run"](only=[sub.name]).errors == []
    assert not (setup["comfy"] / "custom_nodes" / good.name).exists()
    assert setup["run"]().errors == []
    assert setup["run"](only=[sub.name]).errors == []
    lock = json.loads((setup["comfy"] / "custom_nodes.lock.json").read_text())
    assert set(lock["packs"]) == {good.name, sub.name}
    with pytest.raises(SystemExit, match="not in"):
        setup["run"](only=["No-Such-Pack"])


@pytest.mark.e2e
def test_missing_constraints_file_stops_before_any_change(setup):
    setup["constraints"].unlink()
    with pytest.raises(SystemExit, match="constraints file"):
        setup["run"]()
    assert list((setup["comfy"]).iterdir()) == []


def test_requirement_names_and_pip_failure_parsing():
    text = "six>=1.0\n# comment\n-r other.txt\nTomli_W[extra] ; python_version>'3'\ngit+https://x/y.git\n" \
           "pkg @ https://example.invalid/pkg.whl\n./local\n"
    assert inst.requirement_names(text) == ["six", "tomli-w", "pkg"]
    transitive = (
        "ERROR: Cannot install foo==1.0 because these package versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n    foo 1.0 depends on numpy<2\n    The user requested (constraint) numpy==2.1.0\n\n"
        "To fix this you could try to:\n"
    )
    error = inst.explain_pip_failure("Pack-X", transitive, Path("constraints.txt"))
    assert (error.pack, error.package) == ("Pack-X", "numpy")
    assert "foo 1.0 depends on numpy<2" in str(error)
    missing = "ERROR: Could not find a version that satisfies the requirement nosuchpkg==9 (from versions: none)\n"
    error = inst.explain_pip_failure("Pack-Y", missing, Path("constraints.txt"))
    assert error.package == "nosuchpkg" and "nosuchpkg==9" in str(error)


# --- one resolution for every pack -------------------------------------------------------


def _pack_files(requirements: str) -> dict[str, str]:
    return {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n", "requirements.txt": requirements}


@pytest.fixture(scope="module")
def ranged(tmp_path_factory) -> dict[str, PackRepo]:
    """Two packs that disagree on six's range, and one whose pin must be dropped."""
    root = tmp_path_factory.mktemp("ranged")
    return {
        "any": make_repo(root, "CW-Any-Six", _pack_files("six\n")),
        "old": make_repo(root, "CW-Old-Six", _pack_files("six<1.17\n")),
        "pinned": make_repo(root, "CW-Pinned-Six", _pack_files("six==1.15.0\ntomli-w\n")),
    }


def _manifest(path: Path, repos: list[PackRepo]) -> Path:
    return write_manifest(path, [{"name": r.name, "repo": r.url, "commit": r.commits[0][:7]} for r in repos])


@pytest.mark.e2e
@pytest.mark.parametrize("order", ["any-first", "old-first"])
def test_one_resolution_for_all_packs_whatever_their_order(tmp_path, ranged, order):
    """Resolved together, a pack's upper bound holds for all, so no later pack downgrades an earlier one."""
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.14.1\n")
    repos = [ranged["any"], ranged["old"]] if order == "any-first" else [ranged["old"], ranged["any"]]
    python = str(make_venv(tmp_path / "env"))
    log: list[str] = []

    summary = inst.install(comfy, _manifest(tmp_path / "m.json", repos), constraints, python=python,
                           overrides_path=None, log=log.append)

    assert summary.errors == [] and summary.ran_pip
    assert [m for m in log if m.startswith("pip")] == [next(m for m in log if m.startswith("pip      all packs"))]
    assert inst.installed_versions(python)["six"] == "1.16.0"
    lock = json.loads((comfy / inst.LOCK_NAME).read_text())
    assert lock["packs"]["CW-Any-Six"]["resolved"] == lock["packs"]["CW-Old-Six"]["resolved"] == {"six": "1.16.0"}
    assert lock["requirements"]["resolved"]["six"] == "1.16.0"

    again = inst.install(comfy, _manifest(tmp_path / "m.json", repos[::-1]), constraints, python=python,
                         overrides_path=None, log=log.append)
    assert again.errors == [] and not again.ran_pip  # the order changed, the resolution did not


@pytest.mark.e2e
def test_overrides_drop_pin_and_add_decide_what_one_run_installs(tmp_path, ranged):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.14.1\n")
    overrides = tmp_path / "overrides.txt"
    overrides.write_text(
        "# our decisions\n"
        "drop CW-Pinned-Six six  # its ==1.15.0 would hold every pack back\n"
        "drop tomli-w  # not needed by anyone (test)\n"
        "pin six==1.16.0  # held for every pack\n"
        "add tomli-w==1.1.0  # added at one version for all (test)\n"
        "skip No-Such-Pack  # a line for a pack this manifest lacks is ignored\n"
    )
    python = str(make_venv(tmp_path / "env"))
    log: list[str] = []
    manifest = _manifest(tmp_path / "m.json", [ranged["any"], ranged["pinned"]])

    summary = inst.install(comfy, manifest, constraints, python=python, overrides_path=overrides, log=log.append)

    assert summary.errors == []
    installed = inst.installed_versions(python)
    assert (installed["six"], installed["tomli-w"]) == ("1.16.0", "1.1.0")
    entry = json.loads((comfy / inst.LOCK_NAME).read_text())["packs"]["CW-Pinned-Six"]
    assert entry["dropped"] == {"six==1.15.0": "its ==1.15.0 would hold every pack back",
                                "tomli-w": "not needed by anyone (test)"}
    assert any("No-Such-Pack" in m for m in log)

    overrides.write_text(overrides.read_text().replace("pin six==1.16.0", "pin six==1.17.0"))
    assert inst.install(comfy, manifest, constraints, python=python, overrides_path=overrides,
                        log=log.append).ran_pip  # a changed decision is a new resolution
    assert inst.installed_versions(python)["six"] == "1.17.0"


def test_overrides_file_needs_a_reason_per_line_and_known_verbs(tmp_path):
    path = tmp_path / "o.txt"
    path.write_text("add six\n")
    with pytest.raises(SystemExit, match="reason"):
        inst.read_overrides(path, [])
    path.write_text("replace six  # why\n")
    with pytest.raises(SystemExit, match="unknown verb"):
        inst.read_overrides(path, [])
    path.write_text("file P  # missing its path\n")
    with pytest.raises(SystemExit, match="takes"):
        inst.read_overrides(path, ["P"])
    path.write_text("drop opencv-python  # all\ndrop P numpy  # one\nset-aside P  # broken\nlast x  # wins\n")
    parsed = inst.read_overrides(path, ["P"])
    assert parsed.drop == {"*": {"opencv-python": "all"}, "P": {"numpy": "one"}}
    assert parsed.set_aside == {"P": "broken"} and parsed.last == ["x"]


def test_the_curated_overrides_file_names_only_real_packs_and_parses():
    manifest = json.loads((inst.REPO_ROOT / "custom_nodes.json").read_text())
    names = [p["name"] for p in manifest["packs"]]
    parsed = inst.read_overrides(inst.DEFAULT_OVERRIDES, names)
    assert parsed.unknown == []
    assert "opencv-contrib-python-headless" in parsed.last and any(a.startswith("insightface") for a in parsed.add)


def test_requirement_line_names_cover_vcs_urls():
    assert inst.line_name("git+https://github.com/WASasquatch/img2texture.git") == "img2texture"
    assert inst.line_name("git+https://github.com/x/ffmpy.git@v1#egg=ffmpy-fork") == "ffmpy-fork"
    assert inst.line_name("opencv-python-headless[ffmpeg]>=4") == "opencv-python-headless"
    assert inst.line_name("onnxruntime-gpu; sys_platform != 'darwin'") == "onnxruntime-gpu"


def test_import_summary_parsing_names_the_failed_pack_and_its_exception():
    log = (
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
        "ModuleNotFoundError: No module named 'cupy'\n"
        "Cannot import /c/custom_nodes/Bad-Pack module for custom nodes: No module named 'cupy'\n"
        "\nImport times for custom nodes:\n"
        "   0.0 seconds: /c/custom_nodes/websocket_image_save.py\n"
        "   0.1 seconds (IMPORT FAILED): /c/custom_nodes/Bad-Pack\n"
        "   1.5 seconds: /c/custom_nodes/Good-Pack\n"
    )
    parsed = inst.parse_import_log(log)
    assert parsed["Good-Pack"] == {"seconds": 1.5, "imported": True, "reason": None}
    assert parsed["Bad-Pack"]["reason"] == "ModuleNotFoundError: No module named 'cupy'"
    assert parsed["websocket_image_save"]["imported"]


@pytest.mark.e2e
def test_vcs_requirement_is_recorded_by_commit(tmp_path):
    """A pack's git+ requirement is locked by the commit pip built, not only by its version."""
    lib = make_repo(tmp_path / "up", "cw-vcs-demo", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
                          '[project]\nname = "cw-vcs-demo"\nversion = "0.1"\n',
        "cw_vcs_demo.py": "VALUE = 1\n",
    })
    pack = make_repo(tmp_path / "up", "CW-Vcs-Pack", _pack_files(f"git+{lib.url}\n"))
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch==2.14.1\n")
    python = str(make_venv(tmp_path / "env"))

    summary = inst.install(comfy, _manifest(tmp_path / "m.json", [pack]), constraints, python=python,
                           overrides_path=None, log=lambda _: None)

    assert summary.errors == []
    lock = json.loads((comfy / inst.LOCK_NAME).read_text())
    assert lock["requirements"]["vcs"]["cw-vcs-demo"] == {"url": lib.url, "commit": lib.commits[-1]}
    assert lock["packs"]["CW-Vcs-Pack"]["resolved"] == {"cw-vcs-demo": "0.1"}
