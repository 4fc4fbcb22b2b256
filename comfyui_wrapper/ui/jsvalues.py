"""JavaScript value semantics the UI-format converter must reproduce.

ComfyUI's frontend runs in a browser, so the API prompt it writes carries
JavaScript's rules: ``Math.round`` rounds halves up, ``toFixed`` rounds the
exact binary value, a textarea turns any value into a string with ``\\n``
line ends, and ``JSON.stringify`` writes ``1.0`` as ``1`` and loses integer
precision past 2**53. The converter uses these helpers wherever the frontend's
result depends on them, so its output is byte-for-byte the frontend's.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


class _Undefined:
    """JavaScript's ``undefined``: falsy, prints as "undefined", dropped by JSON.stringify."""

    _instance: "_Undefined | None" = None

    def __new__(cls) -> "_Undefined":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()


def truthy(value: Any) -> bool:
    """JavaScript truthiness (``[]`` and ``{}`` are truthy, ``NaN`` is not)."""
    if value is None or value is False or value is UNDEFINED:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def math_round(x: float) -> float:
    """``Math.round``: nearest integer, halves towards +infinity."""
    if not math.isfinite(x):
        return x
    floor = math.floor(x)
    return float(floor + 1) if x - floor >= 0.5 else float(floor)


def to_fixed(x: float, digits: int) -> str:
    """``Number.prototype.toFixed``: round the exact binary value, ties to the larger."""
    if not math.isfinite(x) or abs(x) >= 1e21:
        return number_to_string(x)
    sign = "-" if x < 0 else ""
    exact = Decimal(abs(x))
    quantum = Decimal(1).scaleb(-digits)
    down = exact.quantize(quantum, rounding=ROUND_FLOOR)
    up = exact.quantize(quantum, rounding=ROUND_CEILING)
    result = up if (up - exact) <= (exact - down) else down
    return sign + f"{result:f}"


def number_to_string(x: float | int) -> str:
    """``Number.prototype.toString()`` / ``String(x)`` for a number."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int) and abs(x) <= MAX_SAFE_INTEGER:
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    # repr gives the shortest round-tripping digits, as JS does; only the layout differs.
    digits, exponent = _shortest_digits(x)
    sign = "-" if x < 0 else ""
    k = len(digits)
    n = exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """Digits and exponent n such that abs(x) == 0.DIGITS * 10**n, shortest form."""
    text = repr(abs(x))
    mantissa, _, exp = text.partition("e")
    exponent = int(exp) if exp else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    leading_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    n = len(whole) + exponent - leading_zeros
    digits = digits.rstrip("0") or "0"
    return digits, n


def to_js_string(value: Any) -> str:
    """``String(value)`` as a textarea's value setter applies it (null becomes "")."""
    if value is None:
        return ""
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or is_number(value):
        return number_to_string(value)
    if isinstance(value, list):
        return ",".join("" if v is None else to_js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def normalize_newlines(text: str) -> str:
    """A textarea's API value: CRLF and lone CR become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_json_int(text: str) -> int | float:
    """``parse_int`` for json.loads: an integer beyond the double range is ±Infinity, as JSON.parse reads it.

    Python keeps such an integer exact, and every ``float()`` of it then raises OverflowError.
    """
    return _as_double_range(int(text))


def _as_double_range(value: int) -> int | float:
    """``value`` kept exact, or ±Infinity where a JavaScript number overflows."""
    try:
        float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    return value


# StrWhiteSpaceChar: what parseInt skips before the number.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PARSE_INT = re.compile(f"[{_JS_SPACE}]*([+-]?)(?:(0[xX])([0-9a-fA-F]*)|([0-9]*))")


def js_parse_int(text: str) -> int | float | None:
    """``parseInt(text)`` (no radix): None for NaN, ±Infinity beyond the double range.

    Python's int() differs: it accepts underscores and non-ASCII digits, refuses trailing
    text, reads "0x10" as an error rather than 16, and has no Infinity.
    """
    match = _PARSE_INT.match(text)
    if match is None:  # never: every part of the pattern may be empty
        return None
    sign, hex_prefix, hex_digits, digits = match.groups()
    base, body = (16, hex_digits) if hex_prefix else (10, digits)
    if not body:
        return None
    body = body.lstrip("0") or "0"
    if len(body) > (256 if base == 16 else 309):  # beyond 2**1024 whatever the digits
        return -math.inf if sign == "-" else math.inf
    value = int(body, base)
    return _as_double_range(-value if sign == "-" else value)


def json_number(value: Any) -> Any:
    """A number as ``JSON.parse(JSON.stringify(x))`` in a browser leaves it."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) <= MAX_SAFE_INTEGER:
            return value
        value = float(value)  # JSON.parse already rounded it to a double
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # JSON.stringify writes NaN and Infinity as null
        if value.is_integer() and abs(value) < 1e21:
            return int(Decimal(repr(value)))
        return value
    return value


def json_clean(value: Any) -> Any:
    """What JSON.stringify writes: numbers as in :func:`json_number`, undefined dropped (null in arrays)."""
    if isinstance(value, dict):
        return {k: json_clean(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, list):
        return [None if v is UNDEFINED else json_clean(v) for v in value]
    if value is UNDEFINED:
        return None
    return json_number(value)


def is_array_index_key(key: str) -> bool:
    """Whether a JS object enumerates this key first (canonical array index)."""
    return key.isdigit() and (key == "0" or not key.startswith("0")) and int(key) < 2**32 - 1


def js_object_order(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Key order of a JS object: integer-like keys ascending, then insertion order."""
    index_keys = sorted((k for k, _ in items if is_array_index_key(k)), key=int)
    out: dict[str, Any] = {}
    values = dict(items)
    for key in index_keys:
        out[key] = values[key]
    for key, value in items:
        if key not in out:
            out[key] = value
    return out
