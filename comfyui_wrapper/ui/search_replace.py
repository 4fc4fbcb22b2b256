"""The frontend's searchAndReplace.ts: ``%Node.widget%`` and ``%date:...%`` in text widgets.

Its own module because both the graph (a Primitive node pushing its value into
targets) and the prompt (a widget serialising itself) use it; kept in either, the
two import each other.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .jsvalues import UNDEFINED, to_js_string

if TYPE_CHECKING:
    from .graph import Node


def apply_text_replacements(nodes: Iterable[Node], value: Any) -> str:
    """searchAndReplace.ts: %Node.widget% and %date:...% in a text value.

    ``nodes``: every node of the root graph, subgraphs included (graph.for_each_node).
    """
    text = to_js_string(value)
    all_nodes = list(nodes)

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        split = inner.split(".")
        if len(split) != 2:
            if split[0].startswith("date:"):
                return format_date(split[0][5:], datetime.now())
            return match.group(0)
        nodes = [n for n in all_nodes if n.properties.get("Node name for S&R") == split[0]]
        if not nodes:
            nodes = [n for n in all_nodes if n.title == split[0]]
        if not nodes:
            return match.group(0)
        widget = nodes[0].find_widget(split[1])
        if widget is None:
            return match.group(0)
        value = widget.value
        text_value = to_js_string("" if value is None or value is UNDEFINED else value)
        return re.sub(r'[/?<>\\:*|"\x00-\x1f\x7f]', "_", text_value)

    return re.sub(r"%([^%]+)%", replace, text)


def format_date(text: str, date: datetime) -> str:
    parts: dict[str, Callable[[datetime], int]] = {
        "d": lambda d: d.day, "M": lambda d: d.month, "h": lambda d: d.hour, "m": lambda d: d.minute, "s": lambda d: d.second,
    }

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "yy":
            return str(date.year)[2:]
        if token == "yyyy":
            return str(date.year)
        if token[0] in parts:
            return str(parts[token[0]](date)).rjust(len(token), "0")
        return token

    return re.sub(r"dd?|MM?|hh?|mm?|ss?|yyy?y?", sub, text)
