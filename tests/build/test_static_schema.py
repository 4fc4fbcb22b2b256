"""predict.py as the Cog CLI reads it: statically, with tree-sitter, before any build step.

Each rule Cog applies (choices, description, default, ge/le) gets a small bad
predict.py that must be caught; the real predict.py must pass and match the
committed .cog/openapi_schema.json exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.node_packs import load_script

REPO = Path(__file__).resolve().parents[2]
static = load_script("check_cog_static")
SCHEMA = json.loads((REPO / ".cog" / "openapi_schema.json").read_text())


def predictor(params: str, header: str = "") -> str:
    return (f"from cog import BasePredictor, Input, Path\n{header}\n\n"
            f"class Predictor(BasePredictor):\n    def predict(\n        self,\n{params}\n    ) -> Path:\n        pass\n")


def test_predict_py_is_readable_by_cog_and_matches_the_committed_schema():
    assert static.check((REPO / "predict.py").read_text(), SCHEMA) == []


def test_the_command_line_checks_this_repository():
    result = subprocess.run([sys.executable, "scripts/check_cog_static.py"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_output_format_choices_equal_the_runtime_formats():
    from comfyui_wrapper.outputs import OUTPUT_FORMATS

    report = static.read_inputs((REPO / "predict.py").read_text())
    assert next(i for i in report.inputs if i.name == "output_format").choices == list(OUTPUT_FORMATS)


@pytest.mark.parametrize("header, choices", [
    ("", '["a", "b"]'),
    ('FORMATS = ["a", "b"]', "FORMATS"),
    ('FORMATS = ("a", "b")', "FORMATS"),
    ('D = {"a": 1, "b": 2}', "list(D.keys())"),
    ('D = {1: "a", 2: "b"}', "list(D.values())"),
    ('X = ["a"]', 'X + ["b"]'),
])
def test_every_choices_form_cog_resolves_is_accepted(header, choices):
    report = static.read_inputs(predictor(f'        fmt: str = Input(description="d", choices={choices}, default="a"),', header))
    assert report.problems == []
    assert report.inputs[0].choices == ["a", "b"]


BAD = {
    "choices from an import": ("from x import FORMATS", 'fmt: str = Input(choices=list(FORMATS), default="a")', "cannot be statically resolved"),
    "choices from a comprehension": ("", 'fmt: str = Input(choices=[f for f in "ab"], default="a")', "cannot be statically resolved"),
    "choices from a function": ("", 'fmt: str = Input(choices=sorted(["a"]), default="a")', "cannot be statically resolved"),
    "parenthesised description": ("", 'x: str = Input(description=(\n"one "\n"two"), default="")', "concatenated string"),
    "implicit concatenation": ("", 'x: str = Input(description="one " "two", default="")', "concatenated string"),
    "f-string description": ("N = 1", 'x: str = Input(description=f"{N} things", default="")', "-string"),
    "escaped description": ("", r'x: str = Input(description="a \"quoted\" word", default="")', "backslash"),
    "description from a call": ("", 'x: str = Input(description=str(1), default="")', "not one string literal"),
    "default from an import": ("from x import D", "x: int = Input(default=D)", "not a literal"),
    "default from arithmetic": ("", "x: int = Input(default=2 * 3)", "not a literal"),
    "plain default not literal": ("import os", "x: str = os.sep", "cannot be statically resolved"),
    "ge from a name": ("LOW = 0", "x: int = Input(default=1, ge=LOW)", "ge `LOW` is not a number literal"),
    "le from arithmetic": ("", "x: int = Input(default=1, le=10 * 10)", "le `10 * 10` is not a number literal"),
    "ge a string": ("", 'x: int = Input(default=1, ge="0")', "not a number literal"),
    "le in hex": ("", "x: int = Input(default=1, le=0x10)", "not a number literal"),
    "no annotation": ("", "x=Input(default=1)", "needs a type annotation"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_rule_violation_is_caught(case):
    """Each bad form is reported (Cog would abort, drop, garble or publish None)."""
    header, param, message = BAD[case]
    problems = static.check(predictor(f"        {param},", header))
    assert any(message in p for p in problems), problems


def schema_with(**changes):
    schema = json.loads(json.dumps(SCHEMA))
    for dotted, value in changes.items():
        name, key = dotted.split("__")
        schema["components"]["schemas"]["Input"]["properties"][name][key] = value
    return schema


@pytest.mark.parametrize("change", [
    {"output_quality__maximum": 99.0},
    {"output_quality__minimum": 1.0},
    {"workflow_json__default": "x"},
    {"workflow_json__description": "other"},
    {"return_temp_files__type": "string"},
    {"randomise_seeds__x-order": 9},
])
def test_any_difference_from_the_committed_schema_is_caught(change):
    problems = static.check((REPO / "predict.py").read_text(), schema_with(**change))
    assert problems and all("committed schema" in p for p in problems)


def test_order_choices_and_missing_inputs_are_compared():
    source = (REPO / "predict.py").read_text()
    schema = json.loads(json.dumps(SCHEMA))
    schema["components"]["schemas"]["output_format"]["enum"] = ["webp", "png"]
    assert any("choices" in p for p in static.check(source, schema))
    props = schema["components"]["schemas"]["Input"]["properties"]
    reordered = dict(reversed(list(props.items())))
    schema["components"]["schemas"]["Input"]["properties"] = reordered
    assert any("inputs differ" in p for p in static.check(source, schema))


def test_a_syntax_error_is_reported():
    assert any("does not parse" in p for p in static.check(predictor('        x: str = Input(default="a",,')))


def test_negative_and_float_bounds_are_read():
    report = static.read_inputs(predictor("        x: float = Input(default=0.5, ge=-1, le=2.5e0),"))
    assert report.problems == [] and (report.inputs[0].ge, report.inputs[0].le) == (-1.0, 2.5)
