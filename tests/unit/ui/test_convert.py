"""UI-format -> API conversion, checked against outputs recorded from ComfyUI's own frontend.

Every file in tests/fixtures/ui_oracle/expected/ holds what frontend 1.32.9
produced ("Save (API format)") for one workflow: a UI template shipped with
the pinned comfyui-workflow-templates packages, or a hand-made case in
fixtures/ui_oracle/cases/. ``scripts/ui_oracle.py`` records them in headless
Chromium; these tests need neither a browser nor a ComfyUI: they load the
/object_info dump recorded next to the fixtures.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest

from comfyui_wrapper.errors import UIFormatError, WorkflowError
from comfyui_wrapper.ui.convert import convert, is_ui_format
from comfyui_wrapper.ui.jsvalues import json_number, math_round, number_to_string, to_fixed
from comfyui_wrapper.ui.nodedefs import LOCALE_TITLES, NodeDefs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ui_oracle"
EXPECTED = sorted((FIXTURES / "expected").glob("*.json"))
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text(encoding="utf-8"))
FRONTEND_VERSION = "1.32.9"


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as fh:
        return json.loads(fh.read())


def load_input(fixture: dict[str, Any]) -> dict[str, Any]:
    source = fixture["source"]
    if source["kind"] == "case":
        raw = (FIXTURES / source["file"]).read_bytes()
    else:
        spec = importlib.util.find_spec(source["package"])
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{source['package']} is not installed")
        raw = (Path(list(spec.submodule_search_locations)[0]) / source["file"]).read_bytes()
        installed = importlib.metadata.version(source["package"])
        assert installed == source["version"], (
            f"fixture recorded with {source['package']} {source['version']}, installed {installed}: "
            "re-record with scripts/ui_oracle.py"
        )
    assert hashlib.sha256(raw).hexdigest() == source["sha256"], f"{source['file']} changed since it was recorded"
    return json.loads(raw)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@pytest.mark.parametrize("path", EXPECTED, ids=[p.stem for p in EXPECTED])
def test_matches_frontend(path: Path, object_info: dict[str, Any]) -> None:
    fixture = json.loads(path.read_text(encoding="utf-8"))
    assert fixture["frontend_version"] in (FRONTEND_VERSION, None)
    ui = load_input(fixture)
    before = copy.deepcopy(ui)
    if "error" in fixture:  # the frontend itself throws on this workflow
        with pytest.raises(UIFormatError) as info:
            convert(ui, object_info, rng=random.Random(0))
        assert "How to fix:" in str(info.value)
        return
    got = convert(ui, object_info, rng=random.Random(0))
    want = fixture["output"]
    assert ui == before, "convert() must not modify its input"
    assert sorted(got) == sorted(want), "node ids differ"
    for node_id, want_node in want.items():
        got_node = got[node_id]
        assert got_node["class_type"] == want_node["class_type"], node_id
        assert got_node["_meta"] == want_node["_meta"], node_id
        assert sorted(got_node["inputs"]) == sorted(want_node["inputs"]), f"{node_id}: input names differ"
        for name, value in want_node["inputs"].items():
            assert canonical(got_node["inputs"][name]) == canonical(value), f"{node_id}.{name}"
    # byte for byte, key order included (what "Save (API format)" writes)
    assert json.dumps(got, ensure_ascii=False) == json.dumps(want, ensure_ascii=False)


def test_fixture_set_is_complete() -> None:
    templates = [p for p in EXPECTED if p.stem.startswith("template__")]
    cases = [p for p in EXPECTED if p.stem.startswith("case__")]
    assert len(templates) == MANIFEST["templates_usable"] > 150
    assert len(cases) == MANIFEST["hand_cases"] == len(list((FIXTURES / "cases").glob("*.json")))
    assert MANIFEST["frontend_version"] == FRONTEND_VERSION
    for name in ("primitive_node", "reroute_chain", "notes_and_muted", "bypassed", "converted_widget",
                 "subgraph", "group_node", "dict_widgets_values"):
        assert (FIXTURES / "expected" / f"case__{name}.json").exists(), name


def test_locale_titles_match_recorded_frontend() -> None:
    assert LOCALE_TITLES == MANIFEST["locale_titles"]


def test_is_ui_format(object_info: dict[str, Any]) -> None:
    fixture = json.loads((FIXTURES / "expected" / "case__bypassed.json").read_text(encoding="utf-8"))
    ui = load_input(fixture)
    assert is_ui_format(ui)
    assert not is_ui_format(fixture["output"])
    assert not is_ui_format({"nodes": {"1": {}}})
    assert not is_ui_format([])
    assert not is_ui_format("{}")
    assert is_ui_format({"version": 1, "nodes": [], "state": {}})
    with pytest.raises(UIFormatError):
        convert(fixture["output"], object_info)


def _case(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "cases" / f"{name}.json").read_text(encoding="utf-8"))


def test_unknown_node_names_node_and_fix(object_info: dict[str, Any]) -> None:
    ui = _case("unknown_muted")
    for node in ui["nodes"]:
        if node["type"] == "SomeCustomUpscaler":
            node["mode"] = 0
            node["title"] = "My upscaler"
    with pytest.raises(UIFormatError) as info:
        convert(ui, object_info)
    err = info.value
    text = str(err)
    assert "80" in text and "SomeCustomUpscaler" in text and "My upscaler" in text
    assert "Export (API)" in text
    assert err.node_id == "80" and err.missing_classes == ["SomeCustomUpscaler"]
    assert isinstance(err, WorkflowError) and isinstance(err, ValueError)


def test_broken_link_names_node(object_info: dict[str, Any]) -> None:
    ui = _case("bypassed")
    ksampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    ksampler["inputs"][1]["link"] = 9999  # positive -> a link that does not exist
    with pytest.raises(UIFormatError) as info:
        convert(ui, object_info)
    text = str(info.value)
    assert "node 5" in text and "KSampler" in text and "9999" in text and "How to fix:" in text


def test_browser_only_node_is_refused(object_info: dict[str, Any]) -> None:
    ui = _case("notes_and_muted")
    ui["nodes"].append({
        "id": 90, "type": "WebcamCapture", "pos": [0, 0], "size": [200, 200], "flags": {}, "order": 9, "mode": 0,
        "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": []}], "properties": {},
        "widgets_values": [0, 512, 512, False, "capture"],
    })
    with pytest.raises(UIFormatError, match="WebcamCapture"):
        convert(ui, object_info)
    ui["nodes"][-1]["mode"] = 2  # muted: nothing to capture
    assert "90" not in convert(ui, object_info)


def test_dynamic_prompts_draw_from_rng(object_info: dict[str, Any]) -> None:
    ui = _case("widget_values")
    positive = next(n for n in ui["nodes"] if n["id"] == 2)
    positive["widgets_values"] = ["a {red|green|blue} {cat|dog} // gone"]
    seen = {convert(ui, object_info, rng=random.Random(seed))["2"]["inputs"]["text"] for seed in range(40)}
    assert seen <= {f"a {c} {a} " for c in ("red", "green", "blue") for a in ("cat", "dog")}
    assert len(seen) > 3
    first = convert(ui, object_info, rng=random.Random(7))["2"]["inputs"]["text"]
    assert convert(ui, object_info, rng=random.Random(7))["2"]["inputs"]["text"] == first


def test_custom_pack_dict_widgets_values_map_by_name(object_info: dict[str, Any]) -> None:
    info = dict(object_info)
    info["VHS_Like"] = {
        "input": {"required": {"images": ["IMAGE"], "frame_rate": ["FLOAT", {"default": 8}],
                               "format": [["gif", "mp4"], {}], "save_output": ["BOOLEAN", {"default": True}]}},
        "input_order": {"required": ["images", "frame_rate", "format", "save_output"]},
        "output": [], "output_name": [], "name": "VHS_Like", "display_name": "Video Combine",
        "python_module": "custom_nodes.videohelper", "output_node": True,
    }
    ui = _case("bypassed")
    ui["nodes"].append({
        "id": 91, "type": "VHS_Like", "pos": [0, 0], "size": [200, 200], "flags": {}, "order": 9, "mode": 0,
        "inputs": [{"name": "images", "type": "IMAGE", "link": None}], "outputs": [], "properties": {},
        "widgets_values": {"frame_rate": 24, "format": "mp4", "save_output": False, "videopreview": {"hidden": False}},
    })
    node = convert(ui, info)["91"]
    assert node["inputs"] == {"frame_rate": 24, "format": "mp4", "save_output": False}
    assert node["_meta"] == {"title": "Video Combine"}


def test_accepts_prepared_node_defs(object_info: dict[str, Any]) -> None:
    ui = _case("reroute_chain")
    defs = NodeDefs(object_info)
    assert convert(ui, defs) == convert(ui, object_info)


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(1.005, 2, "1.00"), (2.675, 2, "2.67"), (0.5, 0, "1"), (-1.5, 0, "-2"), (7.12, 1, "7.1"), (1e-7, 3, "0.000")],
)
def test_to_fixed_is_javascripts(value: float, digits: int, text: str) -> None:
    assert to_fixed(value, digits) == text


def test_js_numbers() -> None:
    assert math_round(-1.5) == -1.0 and math_round(2.5) == 3.0 and math_round(0.49999999999999994) == 0.0
    assert number_to_string(1e21) == "1e+21" and number_to_string(123.0) == "123" and number_to_string(1e-7) == "1e-7"
    assert json_number(18446744073709551615) == 18446744073709552000
    assert json_number(3.0) == 3 and isinstance(json_number(3.0), int)
    assert json_number(float("nan")) is None


# --- robustness: damaged workflows fail with UIFormatError, never with a random exception --------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 99), st.text(max_size=3), st.just([]), st.just({}),
                  st.just([1, 2]), st.just({"name": "x"}))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(["subgraph", "primitive_node", "group_node", "bypassed", "reroute_chain"]),
       picks=st.lists(st.tuples(st.integers(0, 10**6), _JUNK, st.booleans()), min_size=1, max_size=4))
def test_damaged_workflows_fail_cleanly(object_info: dict[str, Any], case: str, picks: list) -> None:
    ui = _case(case)
    for choice, junk, delete in picks:
        paths = [p for p in _paths(ui) if p]
        path = paths[choice % len(paths)]
        parent = ui
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(junk)  # st.just() hands out one shared object
    try:
        result = convert(ui, object_info, rng=random.Random(0))
    except UIFormatError as exc:
        assert "How to fix:" in str(exc)
    else:
        json.dumps(result)  # whatever converts must be plain JSON
