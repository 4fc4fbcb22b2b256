"""Which ComfyUI model folder each loader input reads from.

``/object_info`` tells us a loader's current choices but not where they come
from; the wrapper needs the folder to put a downloaded weight where the loader
will look. ``scripts/build_model_folder_map.py`` asks ComfyUI once, at install
time, and writes ``<ComfyUI>/model_folder_map.json``; this module only reads
that file (a few kilobytes: loading it is well under a millisecond), so
setup() pays nothing for it. Folder names are ComfyUI's own
(``checkpoints``, ``loras``, ``diffusion_models``, ``text_encoders``...);
the legacy names ComfyUI still accepts (``unet``, ``clip``) are aliases.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ModelFolderMapError

MAP_NAME = "model_folder_map.json"
SCHEMA = 1


def default_map_path(comfyui_dir: Path) -> Path:
    return Path(comfyui_dir) / MAP_NAME


@dataclass(frozen=True)
class ModelFolderMap:
    """{class_type: {input_name: (folder, ...)}} plus the folders ComfyUI knows.

    An input lists several folders only when its choices merge several (none do
    in core ComfyUI); the first is where a new file is best placed.
    """

    inputs: Mapping[str, Mapping[str, tuple[str, ...]]]
    folders: frozenset[str]
    aliases: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    comfyui_version: str = "unknown"
    custom_nodes: tuple[str, ...] = ()
    source: str = MAP_NAME

    @classmethod
    def load(cls, path: Path | str) -> "ModelFolderMap":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelFolderMapError(f"The model folder map {path} does not exist.", path=str(path)) from None
        except (OSError, ValueError) as error:
            raise ModelFolderMapError(f"The model folder map {path} is unreadable: {error}.", path=str(path)) from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def from_json(cls, data: Any, *, source: str = MAP_NAME) -> "ModelFolderMap":
        def bad(what: str) -> ModelFolderMapError:
            return ModelFolderMapError(f"The model folder map {source} is malformed: {what}.", path=source)

        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise bad(f"expected a JSON object with \"schema\": {SCHEMA}")
        folders, raw_inputs = data.get("folders"), data.get("inputs")
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise bad('"folders" must be a list of folder names')
        if not isinstance(raw_inputs, dict):
            raise bad('"inputs" must map node classes to their inputs')
        inputs: dict[str, dict[str, tuple[str, ...]]] = {}
        for class_type, by_input in raw_inputs.items():
            if not isinstance(by_input, dict):
                raise bad(f"inputs of {class_type!r} must be an object")
            for input_name, names in by_input.items():
                if not isinstance(names, list) or not names or not set(names) <= set(folders):
                    raise bad(f"{class_type}.{input_name} must list known folders, not {names!r}")
                inputs.setdefault(class_type, {})[input_name] = tuple(names)
        aliases = data.get("aliases") or {}
        extensions = data.get("extensions") or {}
        if not isinstance(aliases, dict) or not isinstance(extensions, dict):
            raise bad('"aliases" and "extensions" must be objects')
        return cls(
            inputs=inputs,
            folders=frozenset(folders),
            aliases={str(k): str(v) for k, v in aliases.items()},
            extensions={str(k): tuple(v) for k, v in extensions.items()},
            comfyui_version=str(data.get("comfyui_version", "unknown")),
            custom_nodes=tuple(data.get("custom_nodes") or ()),
            source=source,
        )

    # --- questions ---------------------------------------------------------------

    def folder_for(self, class_type: str, input_name: str) -> str | None:
        """The folder this input reads its file from, or None if it is not a model-file input."""
        found = self.folders_for(class_type, input_name)
        return found[0] if found else None

    def folders_for(self, class_type: str, input_name: str) -> tuple[str, ...]:
        return tuple(self.inputs.get(class_type, {}).get(input_name, ()))

    def inputs_for_folder(self, folder: str) -> list[tuple[str, str]]:
        """Every (class_type, input_name) that lists files of ``folder`` (legacy names accepted)."""
        folder = self.canonical_folder(folder) or folder
        return sorted(
            (class_type, input_name)
            for class_type, by_input in self.inputs.items()
            for input_name, names in by_input.items()
            if folder in names
        )

    def canonical_folder(self, name: str) -> str | None:
        """ComfyUI's name for a folder (``unet`` -> ``diffusion_models``), or None if unknown."""
        name = self.aliases.get(name, name)
        return name if name in self.folders else None

    def is_model_input(self, class_type: str, input_name: str) -> bool:
        return bool(self.folders_for(class_type, input_name))

    def __len__(self) -> int:
        """How many (class_type, input_name) pairs read model files."""
        return sum(len(by_input) for by_input in self.inputs.values())

    def stale_reasons(self, comfyui_dir: Path) -> list[str]:
        """Why this map may not describe the ComfyUI in ``comfyui_dir`` (empty if it does).

        Cheap (one directory listing): the version and the installed custom
        node packs are compared with those the map was built from.
        """
        reasons: list[str] = []
        version_file = Path(comfyui_dir) / "comfyui_version.py"
        try:
            text = version_file.read_text()
        except OSError:
            text = ""
        if text and f'"{self.comfyui_version}"' not in text:
            reasons.append(f"built for ComfyUI {self.comfyui_version}, which is not the version in {comfyui_dir}")
        nodes_dir = Path(comfyui_dir) / "custom_nodes"
        if nodes_dir.is_dir():
            present = sorted(
                name for name in os.listdir(nodes_dir)
                if name != "__pycache__" and not name.endswith(".disabled")
                and ((nodes_dir / name).is_dir() or name.endswith(".py"))
            )
            if present != sorted(self.custom_nodes):
                added = sorted(set(present) - set(self.custom_nodes))
                removed = sorted(set(self.custom_nodes) - set(present))
                reasons.append(f"custom nodes changed since the map was built (added {added}, removed {removed})")
        return reasons
