"""The error family: declared fields only, URLs redacted inside, every raise site's fields declared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from comfyui_wrapper import errors
from comfyui_wrapper.errors import DownloadError, UnknownNodeError, WrapperError

PACKAGE = Path(__file__).resolve().parents[2] / "comfyui_wrapper"
FAMILY = {name: cls for name, cls in vars(errors).items() if isinstance(cls, type) and issubclass(cls, WrapperError)}


def test_an_undeclared_field_fails_where_it_is_raised():
    with pytest.raises(TypeError, match="DownloadError declares no field nodeid"):
        DownloadError("x", nodeid="3")


def test_declared_fields_read_as_attributes_with_none_by_default():
    error = UnknownNodeError("missing nodes", class_types=["Foo"])
    assert error.class_types == ["Foo"] and error.problems is None and error.node_id is None


def test_a_url_field_is_always_redacted():
    error = DownloadError("could not fetch", url="https://u:p@host/x?token=SECRET")
    assert "SECRET" not in error.url and "u:p" not in error.url
    assert "SECRET" not in repr(error.fields)


def test_every_keyword_at_every_raise_site_is_declared():
    """Statically, so a rare path cannot meet the TypeError first in production."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in FAMILY:
                continue
            declared = FAMILY[name].declared_fields() | {"fix"}
            wrong += [f"{path.relative_to(PACKAGE)}:{node.lineno} {name}({kw.arg}=)"
                      for kw in node.keywords if kw.arg is not None and kw.arg not in declared]
    assert not wrong, "\n".join(wrong)


def test_connection_lost_is_in_the_family():
    from comfyui_wrapper.server.client import ConnectionLost

    assert issubclass(ConnectionLost, WrapperError) and ConnectionLost is errors.ConnectionLost


def test_graph_error_is_in_the_family_and_names_the_node():
    """ui/ raises GraphError(reason, node); convert.py raises it again naming the node, still a UIFormatError."""
    import gzip
    import json

    from comfyui_wrapper.ui.convert import convert
    from comfyui_wrapper.ui.graph import GraphError

    assert GraphError is errors.GraphError and issubclass(GraphError, errors.UIFormatError)
    bare = GraphError("no input 3", node="a node")
    assert (bare.message, bare.node, bare.node_id) == ("no input 3", "a node", None)

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "ui_oracle"
    object_info = json.loads(gzip.open(fixtures / "object_info.json.gz").read())
    ui = json.loads((fixtures / "cases" / "bypassed.json").read_text(encoding="utf-8"))
    ksampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    ksampler["inputs"][1]["link"] = 9999
    with pytest.raises(GraphError) as caught:
        convert(ui, object_info)
    error = caught.value
    assert error.node_id == "5" and error.node is None
    assert error.message.startswith("Cannot convert this UI-format workflow: node 5 (type 'KSampler'")
    assert "9999" in error.message and "How to fix:" not in error.message and "Export (API)" in error.fix
