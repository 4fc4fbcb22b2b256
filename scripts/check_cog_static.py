#!/usr/bin/env python3
"""Read a predict.py the way the Cog CLI does, and check it against the committed schema.

`cog build`, `cog push`, `cog predict` and `cog serve` build the input schema
*statically* from predict.py with tree-sitter before any Docker step (Cog's
``pkg/schema/python``), not by importing it. Only these forms survive:

* ``choices=``: a list literal, a module-level name bound to a list/tuple
  literal, ``list(D.keys())`` / ``list(D.values())`` of a module-level dict
  literal, or ``+`` of those. Anything else aborts the build.
* ``description=``: one string literal or a module-level name bound to one. A
  parenthesised concatenation is dropped; ``"a" "b"`` comes out as ``a" "b``;
  escapes are not decoded (Cog keeps the raw text between the quotes).
* ``default=``: a literal or a module-level name bound to one, else Cog
  silently publishes None.
* ``ge=`` / ``le=``: number literals, else silently dropped.

This module applies those rules with the same parser (PyPI ``tree-sitter`` and
``tree-sitter-python``), reports every argument Cog could not resolve exactly,
and compares what Cog would publish with ``.cog/openapi_schema.json`` (names,
order, types, defaults, descriptions, ranges, choices). ``check(source,
schema)`` is the reusable entry point (generated predict.py files must pass it
too); the command line checks this repository:

    python scripts/check_cog_static.py [--predict predict.py] [--schema .cog/openapi_schema.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_UNRESOLVED = object()
_TYPES = {
    "str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
    "bool": {"type": "boolean"}, "Path": {"type": "string", "format": "uri"},
    "File": {"type": "string", "format": "uri"}, "Secret": {"type": "string", "format": "password"},
}


@dataclass
class StaticInput:
    """One predict() parameter as the Cog CLI reads it."""

    name: str
    order: int
    json_type: dict[str, Any] | None
    default: Any = None  # None: no default published
    description: str | None = None
    ge: float | None = None
    le: float | None = None
    choices: list[Any] | None = None


@dataclass
class Report:
    inputs: list[StaticInput] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _parser():
    try:
        import tree_sitter_python
        from tree_sitter import Language, Parser
    except ImportError:
        raise SystemExit("check_cog_static needs tree-sitter and tree-sitter-python "
                         "(pip install -r requirements/dev.txt -c requirements/constraints.txt)") from None
    return Parser(Language(tree_sitter_python.language()))


def _text(node, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8")


class _Reader:
    """The rules of Cog's literals.go / module_scope.go / inputs.go, strict where Cog is lossy."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.root = _parser().parse(source).root_node
        self.problems: list[str] = []
        self.scope: dict[str, Any] = {}
        for child in self.root.named_children:
            node = child.named_children[0] if child.type == "expression_statement" and child.named_child_count == 1 else child
            if node.type != "assignment":
                continue
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None or right is None or left.type != "identifier":
                continue
            value = self.literal(right, where=None)
            if value is not _UNRESOLVED:
                self.scope[_text(left, source)] = value

    # -- literals --------------------------------------------------------------------
    def string(self, node, where: str | None) -> Any:
        """A single plain string literal whose raw text is its value (what Cog publishes)."""
        if node.type != "string":
            if where and node.type in ("concatenated_string", "parenthesized_expression"):
                self.problems.append(f"{where}: a concatenated string; Cog drops or garbles it "
                                     "(write one string literal on one line)")
            return _UNRESOLVED
        raw = _text(node, self.source)
        prefix = raw[: len(raw) - len(raw.lstrip("rRbBuUfF"))]
        kinds = {c.type for c in node.named_children}
        if prefix.lower() not in ("", "r") or "interpolation" in kinds:
            if where:
                self.problems.append(f"{where}: a {prefix}-string; Cog reads only plain string literals")
            return _UNRESOLVED
        body = raw[len(prefix):]
        quote = 3 if body[:3] in ('"""', "'''") else 1
        value = body[quote:-quote]
        if "\\" in value and not prefix:
            if where:
                self.problems.append(f"{where}: a string with a backslash escape; Cog publishes the raw text "
                                     "between the quotes (avoid escapes)")
            return _UNRESOLVED
        return value

    def literal(self, node, where: str | None) -> Any:
        kind = node.type
        if kind == "none":
            return None
        if kind in ("true", "false"):
            return kind == "true"
        if kind in ("integer", "float") or (kind == "unary_operator" and node.named_children
                                            and node.named_children[0].type in ("integer", "float")):
            text = _text(node, self.source).replace("_", "")
            try:
                return int(text, 0) if "." not in text and "e" not in text.lower() else float(text)
            except ValueError:
                return float(text)
        if kind in ("string", "concatenated_string", "parenthesized_expression") and (
                kind != "parenthesized_expression"
                or any(c.type in ("string", "concatenated_string") for c in node.named_children)):
            return self.string(node, where)
        if kind in ("list", "tuple", "set"):
            items = [self.literal(c, where) for c in node.named_children]
            return _UNRESOLVED if any(i is _UNRESOLVED for i in items) else items
        if kind == "dictionary":
            out: dict[Any, Any] = {}
            for pair in node.named_children:
                if pair.type != "pair":
                    return _UNRESOLVED
                key = self.literal(pair.child_by_field_name("key"), where)
                value = self.literal(pair.child_by_field_name("value"), where)
                if key is _UNRESOLVED or value is _UNRESOLVED:
                    return _UNRESOLVED
                out[key] = value
            return out
        return _UNRESOLVED

    def literal_or_name(self, node, where: str | None) -> Any:
        if node.type == "identifier":
            return self.scope.get(_text(node, self.source), _UNRESOLVED)
        return self.literal(node, where)

    def choices(self, node) -> Any:
        kind = node.type
        if kind == "list":
            return self.literal(node, None)
        if kind == "identifier":
            value = self.scope.get(_text(node, self.source), _UNRESOLVED)
            return value if isinstance(value, list) else _UNRESOLVED
        if kind == "binary_operator" and _text(node.child_by_field_name("operator"), self.source) == "+":
            left, right = (self.choices(node.child_by_field_name(s)) for s in ("left", "right"))
            return _UNRESOLVED if _UNRESOLVED in (left, right) else left + right
        if kind == "call" and _text(node.child_by_field_name("function"), self.source) == "list":
            args = node.child_by_field_name("arguments").named_children
            inner = args[0] if len(args) == 1 and args[0].type == "call" else None
            func = inner.child_by_field_name("function") if inner else None
            if func is not None and func.type == "attribute":
                obj, attr = func.child_by_field_name("object"), _text(func.child_by_field_name("attribute"), self.source)
                mapping = self.scope.get(_text(obj, self.source)) if obj.type == "identifier" else None
                if isinstance(mapping, dict) and attr in ("keys", "values"):
                    return list(mapping.keys() if attr == "keys" else mapping.values())
        return _UNRESOLVED


def _json_type(annotation: str) -> dict[str, Any] | None:
    text = annotation.replace(" ", "")
    for wrapper in ("Optional[", "typing.Optional["):
        if text.startswith(wrapper) and text.endswith("]"):
            text = text[len(wrapper):-1]
    if text.endswith("|None"):
        text = text[:-5]
    text = text.rsplit(".", 1)[-1]
    return dict(_TYPES[text]) if text in _TYPES else None


def _predict_params(reader: _Reader, class_name: str, method: str):
    for child in reader.root.named_children:
        node = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        if node is None or node.type != "class_definition" or _text(node.child_by_field_name("name"), reader.source) != class_name:
            continue
        for stmt in node.child_by_field_name("body").named_children:
            func = stmt.child_by_field_name("definition") if stmt.type == "decorated_definition" else stmt
            if func is not None and func.type == "function_definition" and _text(func.child_by_field_name("name"), reader.source) == method:
                return func.child_by_field_name("parameters")
    return None


def read_inputs(source: str | bytes, class_name: str = "Predictor", method: str = "predict") -> Report:
    """What the Cog CLI publishes for ``class_name.method``'s parameters, and every lossy spot."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    reader = _Reader(data)
    report = Report()
    if reader.root.has_error:
        report.problems.append("the file does not parse as Python (tree-sitter found a syntax error)")
    params = _predict_params(reader, class_name, method)
    if params is None:
        report.problems.append(f"no {class_name}.{method}() found")
        return report
    for param in params.named_children:
        if param.type == "identifier":
            continue  # self
        if param.type not in ("typed_parameter", "typed_default_parameter"):
            report.problems.append(f"parameter {_text(param, data)!r}: needs a type annotation")
            continue
        name_node = param.child_by_field_name("name") or next(
            (c for c in param.named_children if c.type == "identifier"), None)
        name = _text(name_node, data)
        annotation = _text(param.child_by_field_name("type"), data)
        item = StaticInput(name, len(report.inputs), _json_type(annotation))
        if item.json_type is None:
            report.problems.append(f"parameter '{name}': type {annotation!r} is not one this checker knows")
        value = param.child_by_field_name("value")
        if value is not None:
            _read_value(reader, item, value)
        report.inputs.append(item)
    report.problems[:0] = reader.problems
    return report


def _read_value(reader: _Reader, item: StaticInput, value) -> None:
    data = reader.source
    func = value.child_by_field_name("function") if value.type == "call" else None
    if func is None or _text(func, data) not in ("Input", "cog.Input"):
        default = reader.literal_or_name(value, f"parameter '{item.name}': default")
        if default is _UNRESOLVED:
            reader.problems.append(f"parameter '{item.name}': default `{_text(value, data)}` cannot be statically resolved")
        item.default = None if default is _UNRESOLVED else default
        return
    for arg in value.child_by_field_name("arguments").named_children:
        if arg.type != "keyword_argument":
            reader.problems.append(f"parameter '{item.name}': positional Input() arguments are ignored by Cog")
            continue
        key = _text(arg.child_by_field_name("name"), data)
        node = arg.child_by_field_name("value")
        where = f"parameter '{item.name}': {key}"
        if key == "default":
            got = reader.literal_or_name(node, where)
            if got is _UNRESOLVED:
                reader.problems.append(f"{where} `{_text(node, data)}` is not a literal; Cog would publish None")
            item.default = None if got is _UNRESOLVED else got
        elif key == "description":
            got = reader.string(node, where) if node.type != "identifier" else reader.scope.get(_text(node, data), _UNRESOLVED)
            if not isinstance(got, str):
                if not any(p.startswith(where) for p in reader.problems):
                    reader.problems.append(f"{where} is not one string literal; Cog would drop it")
            else:
                item.description = got
        elif key in ("ge", "le"):
            got = reader.literal(node, where)
            text = _text(node, data).strip()
            if "_" in text or text.lower().lstrip("+-").startswith(("0x", "0o", "0b")):
                got = None  # Cog parses ge/le with Go's ParseFloat: plain decimal numbers only
            if isinstance(got, bool) or not isinstance(got, (int, float)):
                reader.problems.append(f"{where} `{_text(node, data)}` is not a number literal; Cog would drop it")
            else:
                setattr(item, key, float(got))
        elif key == "choices":
            got = reader.choices(node)
            if got is _UNRESOLVED:
                reader.problems.append(f"{where}: choices expression cannot be statically resolved "
                                       f"(`{_text(node, data)}`); Cog aborts the build")
            else:
                item.choices = got
        elif key == "default_factory":
            reader.problems.append(f"{where}: default_factory is not supported by Cog's static schema")


def published_property(item: StaticInput) -> dict[str, Any]:
    """The schema property Cog would write for one input (the shape of .cog/openapi_schema.json)."""
    prop: dict[str, Any] = {"title": item.name.replace("_", " ").title(), "x-order": item.order}
    if item.choices is not None:
        prop["allOf"] = [{"$ref": f"#/components/schemas/{item.name}"}]
    else:
        prop.update(item.json_type or {})
    if item.description is not None:
        prop["description"] = item.description
    if item.default is not None:
        prop["default"] = item.default
    if item.ge is not None:
        prop["minimum"] = item.ge
    if item.le is not None:
        prop["maximum"] = item.le
    return prop


def compare(report: Report, schema: dict[str, Any]) -> list[str]:
    """Every difference between what Cog reads and the committed schema."""
    components = schema.get("components", {}).get("schemas", {})
    committed = components.get("Input", {}).get("properties", {})
    ours = [i.name for i in report.inputs]
    if ours != list(committed):
        return [f"inputs differ: predict.py has {ours}, the schema has {list(committed)}"]
    problems = []
    for item in report.inputs:
        want, have = published_property(item), committed[item.name]
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                problems.append(f"input '{item.name}': {key} is {want.get(key)!r} as Cog reads predict.py, "
                                f"{have.get(key)!r} in the committed schema")
        if item.choices is not None:
            enum = components.get(item.name, {})
            if enum.get("enum") != item.choices or {k: enum.get(k) for k in ("type",)} != {"type": (item.json_type or {}).get("type")}:
                problems.append(f"input '{item.name}': choices {item.choices} (type {(item.json_type or {}).get('type')}) "
                                f"vs the schema's {enum.get('enum')} (type {enum.get('type')})")
    return problems


def check(source: str | bytes, schema: dict[str, Any] | None = None, class_name: str = "Predictor",
          method: str = "predict") -> list[str]:
    """All problems: unresolvable or lossy arguments, then differences from ``schema`` (if given)."""
    report = read_inputs(source, class_name, method)
    problems = list(report.problems)
    if schema is not None:
        problems += compare(report, schema)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict", type=Path, default=REPO_ROOT / "predict.py")
    parser.add_argument("--schema", type=Path, default=REPO_ROOT / ".cog" / "openapi_schema.json",
                        help="committed schema to compare with ('' to skip)")
    parser.add_argument("--ref", default="Predictor", help="class name (cog.yaml's predict: after the colon)")
    args = parser.parse_args(argv)
    schema = json.loads(args.schema.read_text()) if str(args.schema) else None
    problems = check(args.predict.read_text(encoding="utf-8"), schema, args.ref)
    for problem in problems:
        print(f"{args.predict}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.predict}: every input is statically readable by Cog and matches {args.schema}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
