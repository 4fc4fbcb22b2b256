"""Model files a UI-format workflow declares in its nodes' ``properties.models``.

ComfyUI's templates (and workflows saved from them) list, on each loader node,
the files it needs: ``{"name", "url", "directory"}``. The API format drops
node properties, so we read them from the UI JSON before conversion. The plan
uses them two ways: as a test oracle for weight detection over the shipped
templates, and at run time, where a name that is not in our manifest but is
declared with a URL is downloaded like a weight given by URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ..errors import redacted_repr
from ..urls import is_http_url


@redacted_repr
@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    url: str | None
    directory: str | None
    node_id: str


def _graph_nodes(ui: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for node in ui.get("nodes") or []:
        if isinstance(node, Mapping):
            yield str(node.get("id")), node
    definitions = ui.get("definitions") or {}
    for subgraph in definitions.get("subgraphs") or [] if isinstance(definitions, Mapping) else []:
        if isinstance(subgraph, Mapping):
            for node in subgraph.get("nodes") or []:
                if isinstance(node, Mapping):
                    yield f"{subgraph.get('id', '?')}/{node.get('id')}", node


def embedded_models(ui: Mapping[str, Any]) -> list[EmbeddedModel]:
    """Every declared model, first declaration of a name wins, in graph order."""
    found: dict[str, EmbeddedModel] = {}
    for node_id, node in _graph_nodes(ui):
        properties = node.get("properties")
        models = properties.get("models") if isinstance(properties, Mapping) else None
        for entry in models or []:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
                continue
            url = entry.get("url") if is_http_url(entry.get("url")) else None
            directory = entry.get("directory") if isinstance(entry.get("directory"), str) else None
            found.setdefault(entry["name"], EmbeddedModel(entry["name"], url, directory, node_id))
    return list(found.values())
