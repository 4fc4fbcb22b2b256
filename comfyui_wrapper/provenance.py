"""provenance.json: what a user needs to reproduce a result exactly.

Returned beside the outputs only when asked (``return_provenance``): the
workflow as it actually ran (randomised seeds, rewritten weight names and
input paths), the ComfyUI version and commit, the custom node packs and their
commits, and the sha256 of every weight the run used.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .errors import redact
from .workflow import SeedChange, Workflow, strip_run_tokens

if TYPE_CHECKING:
    from .weights.manifest import WeightSpec

SCHEMA_VERSION = 1


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def shareable_workflow(workflow: Workflow, container_dirs: Iterable[Path]) -> Workflow:
    """The workflow as it ran, fit to hand back: no run tokens, and no absolute container paths
    (a path under one of ``container_dirs``, such as input/, becomes relative to it, which is
    how the user named the file), and no URL secrets."""
    roots = sorted((str(Path(d)).rstrip("/") + "/" for d in container_dirs), key=len, reverse=True)
    clean = strip_run_tokens(workflow)
    for node in clean.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if isinstance(value, str):  # a URL left in an input keeps no token: this file is made to be shared
                inputs[name] = redact(next((value[len(root):] for root in roots if value.startswith(root)), value))
    return clean


def build_provenance(
    *,
    workflow: Workflow,
    seeds: Iterable[SeedChange],
    specs: Iterable[WeightSpec],
    url_weights: dict[str, str],
    sha_for: Callable[[WeightSpec], str | None],
    comfyui_dir: Path,
    custom_nodes: list[dict[str, Any]],
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "comfyui": _read_json(comfyui_dir / "comfyui_install.json"),
        "custom_nodes": custom_nodes,  # nodes.packs.pack_commits: each pack's name, repo, commit
        # provenance.json is made to be shared: URLs lose their query tokens (the user has their own).
        "weights": [{"name": s.name, "folder": s.folder, "sha256": sha_for(s), "url": redact(s.url)} for s in specs],
        "weights_by_url": [{"url": redact(url), "name": name} for url, name in url_weights.items()],
        "seeds": [asdict(change) if is_dataclass(change) else change for change in seeds],
        "options": options,
        "workflow": workflow,
    }


def write_provenance(path: Path, **fields: Any) -> Path:
    path.write_text(json.dumps(build_provenance(**fields), indent=2, default=str) + "\n")
    return path
