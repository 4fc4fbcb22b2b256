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
from typing import Any, Callable, Iterable

from .custom_nodes import LOCK_FILE
from .errors import redact
from .manifest import WeightSpec
from .workflow import SeedChange, Workflow, strip_run_tokens

SCHEMA_VERSION = 1


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def custom_node_commits(comfyui_dir: Path) -> list[dict[str, Any]]:
    """From the installer's lock file: pack name, repository and full commit."""
    lock = _read_json(comfyui_dir / LOCK_FILE) or {}
    packs = lock.get("packs", lock) if isinstance(lock, dict) else lock
    if isinstance(packs, dict):
        packs = [{"name": name, **(info if isinstance(info, dict) else {})} for name, info in packs.items()]
    return [{key: pack.get(key) for key in ("name", "repo", "commit") if key in pack}
            for pack in packs or [] if isinstance(pack, dict)]


def shareable_workflow(workflow: Workflow, container_dirs: Iterable[Path]) -> Workflow:
    """The workflow as it ran, fit to hand back: no run tokens, and no absolute container paths
    (a path under one of ``container_dirs``, such as input/, becomes relative to it, which is
    how the user named the file)."""
    roots = sorted((str(Path(d)).rstrip("/") + "/" for d in container_dirs), key=len, reverse=True)
    clean = strip_run_tokens(workflow)
    for node in clean.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name, value in (inputs or {}).items():
            if isinstance(value, str):
                inputs[name] = next((value[len(root):] for root in roots if value.startswith(root)), value)
    return clean


def build_provenance(
    *,
    workflow: Workflow,
    seeds: Iterable[SeedChange],
    specs: Iterable[WeightSpec],
    url_weights: dict[str, str],
    sha_for: Callable[[WeightSpec], str | None],
    comfyui_dir: Path,
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "comfyui": _read_json(comfyui_dir / "comfyui_install.json"),
        "custom_nodes": custom_node_commits(comfyui_dir),
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
