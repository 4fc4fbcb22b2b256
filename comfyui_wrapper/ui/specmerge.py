"""mergeInputSpec from the frontend: when one Primitive node feeds several widgets.

The frontend intersects the number ranges (and combo choices) of every widget a
Primitive node feeds, then rebuilds the Primitive's widget from the merged spec;
the rebuilt widget clamps and rounds its value, which can change the number the
prompt receives. Specs here are V1 specs: ``[type_or_choices, options]``.
"""

from __future__ import annotations

import math
from typing import Any

IGNORE_KEYS = frozenset({"default", "forceInput", "defaultInput", "control_after_generate", "multiline", "tooltip", "dynamicPrompts"})


def _type(spec: Any) -> Any:
    head = spec[0] if isinstance(spec, list) and spec else None
    return "COMBO" if isinstance(head, list) or head == "COMBO" else head


def _options(spec: Any) -> dict[str, Any]:
    if isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def _option(options: dict[str, Any], key: str, default: float) -> Any:
    """``options[key] ?? default``: the value is whatever the node's JSON holds (a JS number, usually)."""
    value = options.get(key)
    return default if value is None else value


def _gcd(a: float, b: float) -> float:
    while b != 0:
        a, b = b, math.fmod(a, b)
    return a


def _lcm(a: float, b: float) -> float:
    divisor = _gcd(a, b)
    return abs(a * b) / divisor if divisor != 0 else math.nan  # two steps of 0: 0 / 0, NaN in JavaScript


def _merge_common(spec1: list[Any], spec2: list[Any]) -> list[Any] | None:
    options1, options2 = _options(spec1), _options(spec2)
    keys = list(dict.fromkeys(list(options1) + list(options2)))
    for key in keys:
        if key in IGNORE_KEYS:
            continue
        v1, v2 = options1.get(key), options2.get(key)
        same = (v1 is v2) if isinstance(v1, (list, dict)) or isinstance(v2, (list, dict)) else (v1 == v2 and type(v1) is type(v2) or _num_eq(v1, v2))
        if not same and not (v1 is None and v2 is None):
            return None
    return [_type(spec1), {**options1, **options2}]


def _num_eq(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool) and a == b


def merge_input_spec(spec1: Any, spec2: Any) -> list[Any] | None:
    if _type(spec1) != _type(spec2):
        return None
    kind = _type(spec1)
    if kind in ("INT", "FLOAT"):
        o1, o2 = _options(spec1), _options(spec2)
        min1, max1 = _option(o1, "min", -math.inf), _option(o1, "max", math.inf)
        min2, max2 = _option(o2, "min", -math.inf), _option(o2, "max", math.inf)
        if min1 > max2 or max1 < min2:
            return None
        step1, step2 = _option(o1, "step", 1), _option(o2, "step", 1)
        merged = {"min": max(min1, min2), "max": min(max1, max2), "step": _lcm(step1, step2)}
        merged = {k: (int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v) for k, v in merged.items()}
        return _merge_common([spec1[0], {**o1, **merged}], [spec1[0], {**o2, **merged}])
    if kind == "COMBO":
        o1, o2 = _options(spec1), _options(spec2)
        c1 = spec1[0] if isinstance(spec1[0], list) else (o1.get("options") or [])
        c2 = spec2[0] if isinstance(spec2[0], list) else (o2.get("options") or [])
        inter = [v for i, v in enumerate(c1) if v in c2 and v not in c1[:i]]
        if not inter:
            return None
        return _merge_common(["COMBO", {**o1, "options": inter}], ["COMBO", {**o2, "options": inter}])
    return _merge_common(spec1, spec2)
