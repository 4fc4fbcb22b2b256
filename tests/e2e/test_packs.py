"""The runtime checks of comfyui_wrapper.nodes.packs against a real ComfyUI.

One ComfyUI boot (module fixture ``comfy``) serves every test that needs one:
test packs are git repositories made here, installed by the real installer
into a temporary base directory (``--base-directory``), one of them working,
three broken in different ways. The boot's own log and /object_info feed
``report_failed_imports`` and ``check_nodes``, and a workflow using the
working pack's node runs end to end. custom_nodes.json and the catalogue on
their own are checked in tests/unit/nodes/test_packs.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
import requests
from PIL import Image

from comfyui_wrapper.errors import UnknownNodeError
from comfyui_wrapper.nodes.catalogue import NodeCatalogue
from comfyui_wrapper.nodes.packs import (
    ImportFailure,
    PackSpec,
    check_nodes,
    find_node_problems,
    load_packs,
    nodes_by_pack,
    pack_of_module,
    report_failed_imports,
    setup_report,
)
from tests.support.cog_server import stop_process
from tests.support.node_packs import (
    BROKEN_IMPORT,
    BROKEN_SYNTAX,
    GOOD_NODES,
    NO_MAPPINGS,
    REPO_ROOT,
    load_script,
    make_repo,
    write_manifest,
)

pytestmark = pytest.mark.e2e

build_catalogue = load_script("build_node_catalogue")
installer = load_script("install_custom_nodes")
manager = load_script("manager_catalogue")

COMFYUI = REPO_ROOT / "ComfyUI"


@pytest.fixture(scope="module")
def extension_map() -> dict[str, Any]:
    return manager.extension_node_map()


# --- a real ComfyUI with test packs ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, extension_map) -> Iterator[dict[str, Any]]:
    if not (COMFYUI / "main.py").is_file():
        pytest.skip("ComfyUI is not installed (scripts/install_comfyui.py)")
    root = tmp_path_factory.mktemp("packs")
    good = make_repo(root / "up", "CW-Good-Pack", {"__init__.py": GOOD_NODES})
    good.commit({"__init__.py": GOOD_NODES.replace('"CWInvertImage": CWInvertImage}',
                                                   '"CWInvertImage": CWInvertImage, "CWNewerNode": CWInvertImage}')},
                "a newer commit adds CWNewerNode")
    broken = make_repo(root / "up", "CW-Broken-Pack", {"__init__.py": BROKEN_IMPORT})
    syntax = make_repo(root / "up", "CW-Syntax-Pack", {"__init__.py": BROKEN_SYNTAX})
    empty = make_repo(root / "up", "CW-Empty-Pack", {"__init__.py": NO_MAPPINGS})
    manifest = write_manifest(root / "custom_nodes.json", [
        {"name": good.name, "repo": good.url, "commit": good.commits[0][:7], "install_requirements": False,
         "unsupported_nodes": {"CWInvertImage": "it is refused for this test's sake."}},
        *({"name": r.name, "repo": r.url, "commit": r.commits[0][:7], "install_requirements": False}
          for r in (broken, syntax, empty)),
    ])
    base = root / "base"
    base.mkdir()
    summary = installer.install(base, manifest, root / "no-constraints-needed.txt", log=lambda _: None)
    assert summary.errors == []

    # the real public catalogue, plus what it would say about our test packs
    ext = dict(extension_map)
    ext[good.url] = [["CWSolidImage", "CWInvertImage", "CWNewerNode"], {"title_aux": "CW good"}]
    ext[broken.url] = [["CWBrokenNode"], {"title_aux": "CW broken"}]
    catalogue_path = base / "node_catalogue.json"
    build_catalogue.write(build_catalogue.compact(ext), catalogue_path)

    port = _free_port()
    log_path = root / "comfyui.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "main.py", "--base-directory", str(base), "--cpu", "--listen", "127.0.0.1",
             "--port", str(port), "--disable-api-nodes", "--disable-auto-launch"],
            cwd=COMFYUI, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        object_info = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = requests.get(f"{url}/object_info", timeout=5)
                if response.ok:
                    object_info = response.json()
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        assert object_info is not None, log_path.read_text()[-3000:]
        yield {
            "url": url, "base": base, "object_info": object_info, "log": log_path.read_text(),
            "packs": load_packs(manifest) + load_packs(),  # test packs plus everything we really ship
            "catalogue": NodeCatalogue(catalogue_path),
            "repos": {"good": good, "broken": broken, "syntax": syntax, "empty": empty},
        }
    finally:
        stop_process(process, 15)


def test_failed_imports_are_parsed_from_a_real_boot_log(comfy):
    failures = {f.pack: f for f in report_failed_imports(comfy["log"])}
    assert report_failed_imports(comfy["log"].splitlines(keepends=True)) == list(failures.values())
    assert set(failures) == {"CW-Broken-Pack", "CW-Syntax-Pack", "CW-Empty-Pack"}
    assert failures["CW-Broken-Pack"].reason == "ModuleNotFoundError: No module named 'cw_no_such_dependency_for_tests'"
    assert failures["CW-Syntax-Pack"].reason.startswith("SyntaxError: ")
    assert "NODE_CLASS_MAPPINGS" in failures["CW-Empty-Pack"].reason
    assert failures["CW-Broken-Pack"].path == str(comfy["base"] / "custom_nodes" / "CW-Broken-Pack")

    lines = setup_report(list(failures.values()), comfy["object_info"], comfy["packs"], comfy["base"])
    assert ("Custom node pack CW-Broken-Pack failed to import: ModuleNotFoundError: No module named "
            "'cw_no_such_dependency_for_tests'; workflows using its nodes will be refused with this reason.") in lines
    # the real packs are not installed in this test's ComfyUI, and one summary line says so
    [absent] = [line for line in lines if "listed in custom_nodes.json are not installed" in line]
    shipped = len([p for p in comfy["packs"] if not p.name.startswith("CW-")])  # the test packs are there
    assert absent.startswith(f"{shipped} of {len(comfy['packs'])} custom node packs")


def test_object_info_tells_which_pack_provides_which_nodes(comfy):
    by_pack = nodes_by_pack(comfy["object_info"], comfy["packs"])
    assert by_pack == {"CW-Good-Pack": {"CWSolidImage", "CWInvertImage"}}
    assert comfy["object_info"]["CWSolidImage"]["python_module"] == "custom_nodes.CW-Good-Pack"
    assert pack_of_module("custom_nodes.ComfyUI-KJNodes.nodes") == "ComfyUI-KJNodes"
    assert pack_of_module("comfy_extras.nodes_mask") is None


def test_check_nodes_explains_every_node_it_cannot_run(comfy):
    workflow = {
        "1": {"class_type": "CWSolidImage", "inputs": {"size": 8, "value": 0.5}},
        "2": {"class_type": "CWBrokenNode", "inputs": {}, "_meta": {"title": "My broken"}},
        "3": {"class_type": "CWNewerNode", "inputs": {}},
        "4": {"class_type": "IPAdapterAdvanced", "inputs": {}},
        "5": {"class_type": "UnetLoaderGGUF", "inputs": {}},
        "6": {"class_type": "DF_Integer", "inputs": {}},
        "7": {"class_type": "KSamplr", "inputs": {}},
        "8": {"class_type": "CWInvertImage", "inputs": {"image": ["1", 0]}},
        "9": {"class_type": "SaveLoRANode", "inputs": {}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }
    failures = report_failed_imports(comfy["log"])
    with pytest.raises(UnknownNodeError) as info:
        check_nodes(workflow, comfy["object_info"], comfy["packs"], comfy["catalogue"], failures)
    error = info.value
    assert error.node_ids == ["2", "3", "4", "5", "6", "7", "8", "9"]
    kinds = {p.node_id: p.kind for p in error.problems}
    assert kinds == {"2": "failed_import", "3": "newer_version", "4": "not_installed", "5": "not_shipped",
                     "6": "not_installed", "7": "unknown", "8": "unsupported", "9": "core_other"}
    text = str(error)
    assert text.startswith("This workflow uses 8 nodes this container cannot run:")
    assert ('node 2 "My broken" (CWBrokenNode): it comes from the custom node pack CW-Broken-Pack, which this '
            "container ships but which failed to import at startup: ModuleNotFoundError: No module named "
            "'cw_no_such_dependency_for_tests'") in text
    assert "CW-Good-Pack is installed at commit" in text and "newer version of that pack" in text
    assert "https://github.com/city96/ComfyUI-GGUF), which this container does not ship" in text
    assert "did you mean KSampler?" in text
    assert "node 8 (CWInvertImage): not supported in this container: it is refused for this test's sake." in text
    assert "node 6 (DF_Integer): its name matches the node names of the custom node pack Derfuu_ComfyUI_ModdedNodes" in text
    assert "How to fix:" in text and "Ask for the packs named to be added to custom_nodes.json" in text
    assert isinstance(error, ValueError)


def test_check_nodes_passes_a_good_workflow_without_reading_the_catalogue(comfy, tmp_path):
    catalogue = NodeCatalogue(comfy["catalogue"].path)
    workflow = {"1": {"class_type": "CWSolidImage", "inputs": {}}, "2": {"class_type": "SaveImage", "inputs": {}}}
    started = time.perf_counter()
    check_nodes(workflow, comfy["object_info"], comfy["packs"], catalogue)
    assert time.perf_counter() - started < 0.05
    assert not catalogue.loaded
    assert find_node_problems({"9": {"class_type": "Nope"}}, {}, [], None)[0].kind == "unknown"


def test_a_workflow_using_the_installed_pack_runs_end_to_end(comfy):
    workflow = {
        "1": {"class_type": "CWSolidImage", "inputs": {"size": 8, "value": 0.25}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cw_pack_test"}},
    }
    check_nodes(workflow, comfy["object_info"], comfy["packs"], comfy["catalogue"])
    response = requests.post(f"{comfy['url']}/prompt", json={"prompt": workflow, "client_id": "cw-test"}, timeout=10)
    assert response.status_code == 200, response.text
    prompt_id = response.json()["prompt_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        history = requests.get(f"{comfy['url']}/history/{prompt_id}", timeout=5).json()
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed"):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"prompt did not finish: {history}")
    (image,) = history[prompt_id]["outputs"]["2"]["images"]
    path = comfy["base"] / "output" / image["subfolder"] / image["filename"]
    with Image.open(path) as picture:
        assert picture.size == (8, 8)
        assert picture.convert("RGB").getpixel((3, 3)) == (63, 63, 63)  # SaveImage truncates 0.25 * 255


def test_prestartup_single_file_and_builtin_failures(comfy):
    log = (
        "Failed to execute startup-script: /c/custom_nodes/X-Pack/prestartup_script.py / boom\n"
        "Cannot import /c/ComfyUI/comfy_extras/nodes_train.py module for custom nodes: No module named 'x'\n"
        "Cannot import /c/custom_nodes/solo.py module for custom nodes: bad value\n"
        "\nImport times for custom nodes:\n"
        "   0.0 seconds (IMPORT FAILED): /c/custom_nodes/solo.py\n"
    )
    failures = report_failed_imports(log)
    assert failures == [
        ImportFailure("solo", "/c/custom_nodes/solo.py", "bad value"),
        ImportFailure("X-Pack", "/c/custom_nodes/X-Pack", "boom", "prestartup"),
        ImportFailure("comfy_extras/nodes_train.py", "/c/ComfyUI/comfy_extras/nodes_train.py",
                      "No module named 'x'", "builtin"),
    ]
    assert setup_report(failures, {}, []) == [
        "Custom node pack solo failed to import: bad value; workflows using its nodes will be refused with this reason.",
        "Custom node pack X-Pack failed its prestartup script: boom (the pack may still have loaded).",
        "ComfyUI's built-in node file comfy_extras/nodes_train.py failed to import: No module named 'x'; "
        "workflows using its nodes will be refused with this reason.",
    ]
    # a core node missing while a built-in file failed: blame the failure, not the ComfyUI version
    (problem,) = find_node_problems({"1": {"class_type": "SaveLoRANode"}}, comfy["object_info"], comfy["packs"],
                                    comfy["catalogue"], failures)
    assert problem.kind == "failed_import" and "comfy_extras/nodes_train.py (No module named 'x')" in problem.detail
    assert PackSpec("a", "r", "abcdef0").install_requirements is True
