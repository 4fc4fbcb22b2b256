"""Numbers the recorded fixtures never hold, where Python arithmetic differs from JavaScript's.

Why: each of these let a bare Python exception (or memory exhaustion) out of
convert() instead of the frontend's result or a UIFormatError:

- a custom node's ``"step": 0`` on two inputs fed by one Primitive: the
  frontend's lcm(0, 0) is ``Math.abs(0 * 0) / gcd(0, 0)`` = NaN, the merged
  spec then fails mergeCommonInputSpec's ``===`` (NaN !== NaN) and the
  Primitive keeps its widget; Python raised ZeroDivisionError;
- a link whose origin slot is a huge number: fixBadLinks grows a sparse
  array up to it, the port padded a real list (one number, gigabytes);
- an integer beyond the double range: JSON.parse reads Infinity, Python keeps
  it exact and every ``float()`` of it raised OverflowError; the same for a
  slot index saved as a long digit string (the schema's ``parseInt``, which
  Python's int() also differs from on "0x10", "1_000" or non-ASCII digits).
"""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

import pytest

from comfyui_wrapper.ui.convert import convert
from comfyui_wrapper.ui.jsvalues import js_parse_int, parse_json_int
from comfyui_wrapper.ui.specmerge import _lcm, merge_input_spec
from tests.unit.ui.test_convert import FIXTURES


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    with gzip.open(FIXTURES / "object_info.json.gz", "rb") as fh:
        return json.loads(fh.read())


def _case(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "cases" / f"{name}.json").read_text(encoding="utf-8"))


def test_lcm_of_two_zero_steps_is_nan_as_in_javascript() -> None:
    assert math.isnan(_lcm(0, 0))
    assert _lcm(0, 2) == 0 and _lcm(4, 6) == 12 and _lcm(0.5, 0.25) == 0.5


def test_zero_steps_do_not_merge() -> None:
    assert merge_input_spec(["INT", {"step": 0}], ["INT", {"step": 0}]) is None
    assert merge_input_spec(["INT", {"step": 0, "min": 0}], ["INT", {"step": 2, "min": 0}]) == ["INT", {"step": 0, "min": 0, "max": math.inf}]


def _primitive_feeding_two_zero_step_inputs(object_info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    object_info = dict(object_info)
    spec = ["INT", {"default": 3, "min": 0, "max": 10, "step": 0}]
    object_info["StepZero"] = {
        "input": {"required": {"a": spec, "b": spec}}, "input_order": {"required": ["a", "b"]},
        "output": [], "output_name": [], "name": "StepZero", "display_name": "Step zero",
        "python_module": "custom_nodes.stepzero", "output_node": True,
    }
    ui = {
        "last_node_id": 2, "last_link_id": 2, "version": 0.4,
        "links": [[1, 1, 0, 2, 0, "INT"], [2, 1, 0, 2, 1, "INT"]],
        "nodes": [
            {"id": 1, "type": "PrimitiveNode", "pos": [0, 0], "size": [200, 80], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1, 2], "widget": {"name": "a"}}],
             "properties": {"Run widget replace on values": False}, "widgets_values": [5.4, "fixed"]},
            {"id": 2, "type": "StepZero", "pos": [300, 0], "size": [200, 80], "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "a", "type": "INT", "widget": {"name": "a"}, "link": 1},
                        {"name": "b", "type": "INT", "widget": {"name": "b"}, "link": 2}],
             "outputs": [], "properties": {}, "widgets_values": [3, 3]},
        ],
    }
    return ui, object_info


def test_primitive_feeding_zero_step_inputs_converts(object_info: dict[str, Any]) -> None:
    ui, info = _primitive_feeding_two_zero_step_inputs(object_info)
    # the targets' int widgets round with step 0 || 1 = 1
    assert convert(ui, info)["2"]["inputs"] == {"a": 5, "b": 5}


@pytest.mark.parametrize(("slot", "written"), [(10**9, 10**9), (2**40, 2**40), (1e308, 1), (-1, -1), (5, 5)])
def test_huge_link_slot_does_not_exhaust_memory(object_info: dict[str, Any], slot: float, written: int) -> None:
    ui = _case("primitive_node")
    assert ui["links"][0][:4] == [1, 1, 0, 5]  # checkpoint loader (1) -> KSampler (5)
    ui["links"][0][2] = slot  # the fixer re-adds the link to output `slot` of node 1
    # graphToPrompt writes parseInt(String(slot)): "1e+308" gives 1
    assert convert(ui, object_info)["5"]["inputs"]["model"] == ["1", written]


def test_integers_beyond_doubles_are_infinity(object_info: dict[str, Any]) -> None:
    assert parse_json_int("1" + "0" * 400) == math.inf and parse_json_int("-" + "9" * 400) == -math.inf
    assert parse_json_int(str(2**64)) == 2**64 and isinstance(parse_json_int("7"), int)
    ui = _case("primitive_node")
    sampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] = 10**400  # steps
    for link in ui["links"]:
        link[2] = 10**400
    got = convert(ui, object_info)[str(sampler["id"])]["inputs"]
    assert got["steps"] is None and got["model"] == ["1", None]  # JSON.stringify(Infinity) is null


@pytest.mark.parametrize(("text", "value"), [
    ("5", 5), (" 12abc", 12), ("1e400", 1), ("-5", -5), ("0x10", 16), ("-0X1f", -31), ("1_000", 1), ("\ufeff 4", 4),
    ("0x", None), ("abc", None), ("", None), ("-", None), ("\u0663", None), ("1" + "0" * 400, math.inf),
    ("-" + "9" * 5000, -math.inf), ("0" * 5000 + "3", 3),
])
def test_slot_strings_parse_as_parse_int(text: str, value: float | None) -> None:
    assert js_parse_int(text) == value


def test_long_digit_string_slot_is_infinity(object_info: dict[str, Any]) -> None:
    ui = _case("primitive_node")
    ui["links"][0][2] = "1" + "0" * 400
    assert convert(ui, object_info)["5"]["inputs"]["model"] == ["1", None]


@pytest.mark.parametrize(("slot", "written"), [(1e21, 1), (1e-7, 1), (2.7, 2), (10**21, 1), ("0x1", 1)])
def test_origin_slot_is_written_as_parse_int_of_its_string(object_info: dict[str, Any], slot: Any, written: int) -> None:
    """graphToPrompt writes parseInt(link.origin_slot): String(1e21) is "1e+21", whose parseInt is 1."""
    ui = _case("bypassed")
    ui["version"] = "not a number"  # fails the schema check, so the link keeps its slot as saved
    ui["links"][0][2] = slot
    origin, target = ui["links"][0][1], ui["links"][0][3]
    got = convert(ui, object_info)
    assert [v for v in got[str(target)]["inputs"].values() if isinstance(v, list) and v[0] == str(origin)] == [[str(origin), written]]
