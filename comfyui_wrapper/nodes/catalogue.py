"""Which public custom node pack provides a node class: a read-only, lazily loaded catalogue.

The data is comfyui-manager 4.3's ``extension-node-map.json`` (3,341 pack
repositories and the node classes each provides), compacted at install time by
``scripts/build_node_catalogue.py`` into ``<ComfyUI dir>/node_catalogue.json``.
It is only needed to explain an unknown node, so nothing is read until the
first lookup: setup stays as fast as a bare ComfyUI boot.

File format (``format`` 1)::

    {"format": 1, "source": "...",
     "repos":    [[repo_url, title], ...],          # index = repo id
     "nodes":    {"ClassName": [repo_id, ...]},      # preferred pack first
     "patterns": [[regex, repo_id], ...]}           # nodename_pattern, re.search
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
CATALOGUE_FILE = "node_catalogue.json"
CORE_REPO = "https://github.com/comfyanonymous/ComfyUI"


def normalize_repo(url: str) -> str:
    """Compare repository URLs the way GitHub does: case-insensitive, no .git, no trailing slash."""
    url = url.strip().rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    return url.lower()


@dataclass(frozen=True)
class Provider:
    """A pack the catalogue says provides a node class."""

    repo: str
    title: str
    by_pattern: bool = False  # matched by the pack's nodename_pattern, not listed by name

    @property
    def name(self) -> str:
        """The repository's own name (the folder it would have under custom_nodes/)."""
        return self.repo.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_core(self) -> bool:
        return normalize_repo(self.repo) == normalize_repo(CORE_REPO)


@dataclass(frozen=True)
class _Loaded:
    repos: tuple[Provider, ...]
    nodes: dict[str, list[int]]
    patterns: tuple[tuple[re.Pattern[str], int], ...]


class NodeCatalogue:
    """Node class -> providing packs. Reads its file on first use; a missing or bad file means 'no data'.

    A catalogue without data is not an error: unknown nodes are still refused,
    the message just cannot name a pack.
    """

    def __init__(self, path: Path | None = None, *, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self._data = data
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self.load_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._parse(self._read())
            return self._loaded

    def _read(self) -> dict[str, Any]:
        if self._data is not None:
            return self._data
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.load_error = f"{self.path} does not exist (run scripts/build_node_catalogue.py)"
            return {}
        except (OSError, ValueError) as exc:
            self.load_error = f"{self.path} is unreadable: {exc}"
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            self.load_error = f"{self.path} is not a format-{FORMAT} node catalogue"
            return {}
        return data

    @staticmethod
    def _parse(data: dict[str, Any]) -> _Loaded:
        repos = tuple(Provider(str(url), str(title)) for url, title in data.get("repos", []))
        patterns = []
        for regex, index in data.get("patterns", []):
            try:
                patterns.append((re.compile(regex), int(index)))
            except re.error:
                continue
        return _Loaded(repos, dict(data.get("nodes", {})), tuple(patterns))

    def providers(self, class_type: str) -> list[Provider]:
        """Packs providing ``class_type``, preferred first; name patterns only when no exact entry exists."""
        loaded = self._load()
        ids = loaded.nodes.get(class_type)
        by_pattern = not ids
        if by_pattern:
            ids = [index for pattern, index in loaded.patterns if pattern.search(class_type)]
        result: list[Provider] = []
        for index in dict.fromkeys(ids or []):
            if 0 <= index < len(loaded.repos):
                found = loaded.repos[index]
                result.append(Provider(found.repo, found.title, True) if by_pattern else found)
        return result

    def classes_of(self, repo: str) -> set[str]:
        """Every class the catalogue lists for one repository (exact entries only)."""
        loaded = self._load()
        wanted = normalize_repo(repo)
        ids = {i for i, p in enumerate(loaded.repos) if normalize_repo(p.repo) == wanted}
        return {name for name, where in loaded.nodes.items() if ids.intersection(where)}
