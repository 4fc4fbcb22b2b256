"""custom_nodes.json and the node catalogue, without a ComfyUI.

The runtime checks against a booted ComfyUI with test packs installed are in
tests/e2e/test_packs.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from comfyui_wrapper.errors import ManifestError
from comfyui_wrapper.nodes.catalogue import NodeCatalogue
from comfyui_wrapper.nodes.packs import load_packs, parse_packs
from tests.support.node_packs import REPO_ROOT, load_script

build_manifest = load_script("build_custom_nodes")
build_catalogue = load_script("build_node_catalogue")
manager = load_script("manager_catalogue")

PROMISED = [
    "ComfyUI_IPAdapter_plus", "comfyui_controlnet_aux", "ComfyUI-Inspire-Pack", "ComfyUI-Logic",
    "ComfyUI-AnimateDiff-Evolved", "ComfyUI-VideoHelperSuite", "ComfyUI-Advanced-ControlNet",
    "efficiency-nodes-comfyui", "Derfuu_ComfyUI_ModdedNodes", "ComfyUI_FizzNodes",
    "ComfyUI-Impact-Pack", "ComfyUI_UltimateSDUpscale", "rgthree-comfy", "ComfyUI-KJNodes", "ComfyUI_essentials",
]


@pytest.fixture(scope="module")
def extension_map() -> dict[str, Any]:
    return manager.extension_node_map()


# --- custom_nodes.json ------------------------------------------------------------------


def test_manifest_is_what_the_build_script_makes_from_the_source():
    if not build_manifest.DEFAULT_SOURCE.is_file():
        pytest.skip(f"source list {build_manifest.DEFAULT_SOURCE} is not on this machine")
    source = json.loads(build_manifest.DEFAULT_SOURCE.read_text())
    committed = (REPO_ROOT / "custom_nodes.json").read_text()
    assert committed == build_manifest.render(build_manifest.build(source))
    # every repository and commit comes from the source, in its order
    packs = load_packs()
    assert [(p.repo, p.commit) for p in packs] == [(s["repo"], s["commit"]) for s in source["packs"]]


def test_manifest_shape_and_promised_packs():
    packs = load_packs()
    assert len(packs) == 69
    names = [p.name for p in packs]
    assert len({n.lower() for n in names}) == len(names)
    for name in PROMISED:
        assert name in names
    for pack in packs:
        assert pack.repo == f"https://github.com/{pack.repo.split('/')[3]}/{pack.name}"
        assert len(pack.commit) == 7 and int(pack.commit, 16) >= 0
        assert isinstance(pack.install_requirements, bool)
        for cls, reason in pack.unsupported_nodes.items():
            assert cls and len(reason) > 20


def test_unsupported_nodes_are_real_class_names_of_their_packs(extension_map):
    catalogue = NodeCatalogue(data=build_catalogue.compact(extension_map))
    marked = [(p, cls) for p in load_packs() for cls in p.unsupported_nodes]
    assert marked
    for pack, cls in marked:
        owners = {provider.name.lower() for provider in catalogue.providers(cls)}
        assert pack.name.lower() in owners, (pack.name, cls, owners)


@pytest.mark.parametrize("entry, problem", [
    ({"name": "a", "repo": "https://x/a", "commit": "xyz"}, "not a 7-40 digit hex"),
    ({"name": "../a", "repo": "https://x/a", "commit": "abcdef0"}, "not a usable folder name"),
    ({"name": "a", "repo": "https://x/a", "commit": "abcdef0", "unsupported_nodes": {"N": ""}}, "unsupported_nodes"),
    ({"name": "a", "repo": "https://x/a", "commit": "abcdef0", "install_requirements": "yes"}, "true or false"),
])
def test_manifest_errors_name_the_entry(entry, problem):
    with pytest.raises(ManifestError, match=problem) as info:
        parse_packs({"packs": [entry]}, Path("custom_nodes.json"))
    assert "build_custom_nodes.py" in str(info.value)
    with pytest.raises(ManifestError, match="appears twice"):
        good = {"name": "A", "repo": "https://x/a", "commit": "abcdef0"}
        parse_packs({"packs": [good, {**good, "name": "a"}]})


# --- the catalogue ------------------------------------------------------------------------


def test_catalogue_compaction_prefers_preempting_pack_and_keeps_patterns(tmp_path):
    data = build_catalogue.compact({
        "https://github.com/a/first": [["Shared", "OnlyA"], {"title_aux": "First"}],
        "https://github.com/b/second": [["Shared"], {"title_aux": "Second", "preemptions": ["Shared"]}],
        "https://github.com/c/pattern": [[], {"title_aux": "Pat", "nodename_pattern": r" \(pat\)$"}],
        "https://github.com/d/badregex": [[], {"nodename_pattern": "(unclosed"}],
    })
    path = tmp_path / "cat.json"
    build_catalogue.write(data, path)
    catalogue = NodeCatalogue(path)
    assert not catalogue.loaded
    assert [p.repo for p in catalogue.providers("Shared")] == ["https://github.com/b/second", "https://github.com/a/first"]
    assert [p.title for p in catalogue.providers("Thing (pat)")] == ["Pat"]
    assert catalogue.providers("Nothing") == [] and catalogue.loaded
    assert catalogue.classes_of("https://github.com/A/First.git") == {"Shared", "OnlyA"}


def test_missing_catalogue_means_no_suggestions_not_a_crash(tmp_path):
    catalogue = NodeCatalogue(tmp_path / "absent.json")
    assert catalogue.providers("Anything") == []
    assert "build_node_catalogue" in catalogue.load_error


def test_real_catalogue_knows_shipped_and_other_packs(extension_map, tmp_path):
    path = tmp_path / "node_catalogue.json"
    build_catalogue.write(build_catalogue.compact(extension_map), path)
    started = time.perf_counter()
    catalogue = NodeCatalogue(path)
    providers = catalogue.providers("IPAdapterAdvanced")
    load_s = time.perf_counter() - started
    assert [p.repo for p in providers] == ["https://github.com/cubiq/ComfyUI_IPAdapter_plus"]
    assert catalogue.providers("DF_Integer")[0].name == "Derfuu_ComfyUI_ModdedNodes"  # by nodename_pattern
    assert load_s < 0.5, f"loading the catalogue took {load_s:.2f} s"
