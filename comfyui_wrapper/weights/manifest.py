"""weights_manifest.json: the weights this container can fetch by name.

The manifest is data, built by ``scripts/build_weights_manifest.py`` from the
public sources in /work/shared/sources, so every URL in it can be traced to a
source. This module only reads and checks it and answers two questions:
"which weight is this name?" (``resolve``, canonical names and synonyms) and
"what did the user probably mean?" (``suggest``). It does no I/O beyond
reading the one file.

File format (``schema_version`` 1)::

    {"schema_version": 1,
     "weights": [
       {"name": "sd_xl_base_1.0.safetensors",   # may hold a subfolder: "bbox/face_yolov8m.pt"
        "folder": "checkpoints",                # ComfyUI model folder name
        "url": "https://.../sd_xl_base_1.0.safetensors.tar",
        "archive": "tar",                       # "file": the URL serves the weight itself;
                                                # "tar": a tar holding the file (or a directory)
                                                #        under its name
        "size": null, "sha256": null,           # of the weight itself; null = learned at first
                                                # download and kept in the cache's records
        "synonyms": [],                         # other names workflows use for it
        "mirrors": ["https://..."],             # direct URLs of the same file (archive "file")
        "approx_size": 6940000000}]}            # for estimates only, never for verification

Validation happens on load and names the entry and field at fault, because a
broken manifest must fail at startup, not in the middle of a prediction.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, get_args

from ..errors import ManifestError, redacted_repr

SCHEMA_VERSION = 1
ArchiveKind = Literal["file", "tar"]  # "file": the URL serves the weight itself; "tar": a tar holding it
ARCHIVE_KINDS: tuple[ArchiveKind, ...] = get_args(ArchiveKind)
_FIELDS = {"name", "folder", "url", "archive", "size", "sha256", "synonyms", "mirrors", "approx_size"}
_REQUIRED = {"name", "folder", "url", "archive"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@redacted_repr
@dataclass(frozen=True)
class WeightSpec:
    """One weight: where ComfyUI looks for it and where to fetch it from."""

    name: str
    folder: str
    url: str
    archive: ArchiveKind = "file"
    size: int | None = None
    sha256: str | None = None
    synonyms: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    approx_size: int | None = None

    @property
    def key(self) -> str:
        """``folder/name``: unique in the cache, and the weight's path under weights_dir."""
        return f"{self.folder}/{self.name}"

    @property
    def estimated_size(self) -> int | None:
        """Exact size when known, else the catalogue's approximation, else None."""
        return self.size if self.size is not None else self.approx_size

    def sources(self) -> list[tuple[str, ArchiveKind]]:
        """(url, archive kind) to try in order: the primary URL, then the mirrors (plain files)."""
        return [(self.url, self.archive)] + [(mirror, "file") for mirror in self.mirrors]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "folder": self.folder, "url": self.url, "archive": self.archive,
            "size": self.size, "sha256": self.sha256, "synonyms": list(self.synonyms),
            "mirrors": list(self.mirrors), "approx_size": self.approx_size,
        }


def _fail(where: str, message: str, **fields: Any) -> ManifestError:
    return ManifestError(f"{where}: {message}", **fields)


def _check_relative_name(value: str) -> bool:
    """A name is a relative POSIX path that stays inside its folder."""
    if not value or value.startswith("/") or "\\" in value or "\0" in value:
        return False
    return all(part not in ("", ".", "..") for part in value.split("/"))


def _check_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and " " not in value


def _spec_from_json(raw: Any, index: int, source: str) -> WeightSpec:
    where = f"{source}, entry {index}"
    if not isinstance(raw, dict):
        raise _fail(where, f"must be an object, not {type(raw).__name__}.", entry=index)
    name = raw.get("name")
    if isinstance(name, str):
        where = f"{source}, entry {index} ({name!r})"
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}.",
                    entry=index, field=unknown[0])
    missing = sorted(_REQUIRED - set(raw))
    if missing:
        raise _fail(where, f"missing required field(s) {', '.join(missing)}.", entry=index, field=missing[0])

    def bad(field: str, expected: str) -> ManifestError:
        return _fail(where, f"field {field!r} must be {expected}, got {raw.get(field)!r}.", entry=index, field=field)

    if not isinstance(name, str) or not _check_relative_name(name):
        raise bad("name", "a relative path inside the folder (no leading '/', no '..', forward slashes)")
    folder = raw["folder"]
    if not isinstance(folder, str) or not folder or "/" in folder or "\\" in folder or folder.startswith("."):
        raise bad("folder", "a ComfyUI model folder name (no slashes, not starting with '.')")
    if not _check_url(raw["url"]):
        raise bad("url", "an http(s) URL")
    if raw["archive"] not in ARCHIVE_KINDS:
        raise bad("archive", " or ".join(repr(kind) for kind in ARCHIVE_KINDS))
    for field in ("size", "approx_size"):
        value = raw.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise bad(field, "a byte count (whole number >= 0) or null")
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
        raise bad("sha256", "64 lowercase hex digits or null")
    synonyms = raw.get("synonyms", [])
    if not isinstance(synonyms, list) or not all(isinstance(s, str) and _check_relative_name(s) for s in synonyms):
        raise bad("synonyms", "a list of relative names")
    mirrors = raw.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(_check_url(m) for m in mirrors):
        raise bad("mirrors", "a list of http(s) URLs")
    return WeightSpec(
        name=name, folder=folder, url=raw["url"], archive=raw["archive"], size=raw.get("size"),
        sha256=sha, synonyms=tuple(synonyms), mirrors=tuple(mirrors), approx_size=raw.get("approx_size"),
    )


def _quick_ratio(a: Counter[str], b: Counter[str]) -> float:
    """difflib's quick_ratio() from letter counts made once: an upper bound of ratio(), equal to quick_ratio()."""
    length = a.total() + b.total()
    common = sum(min(count, b[letter]) for letter, count in a.items())
    return 2.0 * common / length if length else 1.0


def _split_for_matching(name: str) -> tuple[str, str, str]:
    """Lowercased (path without extension, stem of the last part, extension) for fuzzy matching.

    Extensions are compared apart: ".safetensors" shared by two unrelated names
    would otherwise make them look alike.
    """
    path = name.replace("\\", "/").lower()
    head, slash, base = path.rpartition("/")
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or len(ext) > 12 or not ext.isalnum():
        stem, ext = base, ""
    return head + slash + stem, stem, ext


class Manifest:
    """The validated manifest; iterate it for every WeightSpec."""

    def __init__(self, specs: list[WeightSpec], *, source: str = "weights_manifest.json") -> None:
        self.source = source
        self._by_name: dict[str, WeightSpec] = {}
        self._by_synonym: dict[str, WeightSpec] = {}
        for index, spec in enumerate(specs):
            if spec.name in self._by_name:
                raise ManifestError(f"{source}, entry {index} ({spec.name!r}): the name appears twice.",
                                    entry=index, field="name")
            self._by_name[spec.name] = spec
        for index, spec in enumerate(specs):
            for synonym in spec.synonyms:
                where = f"{source}, entry {index} ({spec.name!r})"
                if synonym in self._by_name:
                    raise ManifestError(
                        f"{where}: synonym {synonym!r} is also the name of another weight and would hide it.",
                        entry=index, field="synonyms")
                other = self._by_synonym.get(synonym)
                if other is not None and other.name != spec.name:
                    raise ManifestError(f"{where}: synonym {synonym!r} is also a synonym of {other.name!r}.",
                                        entry=index, field="synonyms")
                self._by_synonym[synonym] = spec
        # Precomputed for suggest(): (lowercased full name, stem, extension, canonical name).
        self._candidates = [
            (*_split_for_matching(alias), spec.name)
            for spec in specs for alias in (spec.name, *spec.synonyms)
        ]

    @functools.cached_property
    def _candidate_letters(self) -> list[tuple[Counter[str], Counter[str]]]:
        """Letter counts of each candidate's (full name, stem), for suggest()'s bound; made on first use."""
        return [(Counter(full), Counter(stem)) for full, stem, _, _ in self._candidates]

    @classmethod
    def load(cls, path: Path | str) -> "Manifest":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"The weights manifest {path} does not exist.", path=str(path)) from None
        except json.JSONDecodeError as exc:
            raise ManifestError(f"The weights manifest {path} is not valid JSON: {exc.msg} at line {exc.lineno}.",
                                path=str(path)) from None
        return cls.from_json(data, source=path.name)

    @classmethod
    def from_json(cls, data: Any, *, source: str = "weights_manifest.json") -> "Manifest":
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: the top level must be an object with schema_version and weights.")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ManifestError(
                f"{source}: schema_version is {version!r}; this code reads version {SCHEMA_VERSION}.",
                field="schema_version")
        weights = data.get("weights")
        if not isinstance(weights, list):
            raise ManifestError(f"{source}: 'weights' must be a list of entries.", field="weights")
        return cls([_spec_from_json(raw, index, source) for index, raw in enumerate(weights)], source=source)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "weights": [spec.to_json() for spec in self]}

    # --- look-ups ---------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def folders(self) -> list[str]:
        return sorted({spec.folder for spec in self})

    def __iter__(self) -> Iterator[WeightSpec]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    def get(self, name: str) -> WeightSpec | None:
        """Canonical names only."""
        return self._by_name.get(name)

    def resolve(self, name: str) -> WeightSpec | None:
        """The weight a workflow value names: canonical name or synonym.

        Windows-style separators (``SDXL\\x.safetensors``, from workflows saved on
        Windows) are read as ``/`` so such workflows still resolve.
        """
        for candidate in (name, name.replace("\\", "/")) if "\\" in name else (name,):
            spec = self._by_name.get(candidate) or self._by_synonym.get(candidate)
            if spec is not None:
                return spec
        return None

    def suggest(self, name: str, n: int = 3, *, cutoff: float = 0.6) -> list[str]:
        """Up to ``n`` canonical names closest to ``name``, best first.

        Case-insensitive. Compares the whole name and, separately, the file stem
        (so a missing subfolder, a changed extension, ``v1.4`` vs ``v1.5`` or
        ``fp16`` vs ``bf16`` still rank close); a shared extension breaks ties.
        """
        query = name.strip()
        if not query:
            return []
        query_full, query_stem, query_ext = _split_for_matching(query)
        matcher_full = difflib.SequenceMatcher(autojunk=False)
        matcher_full.set_seq2(query_full)
        matcher_stem = difflib.SequenceMatcher(autojunk=False)
        matcher_stem.set_seq2(query_stem)
        query_letters = Counter(query_full), Counter(query_stem)
        best: dict[str, float] = {}
        for (full, stem, ext, canonical), letters in zip(self._candidates, self._candidate_letters):
            matcher_full.set_seq1(full)
            matcher_stem.set_seq1(stem)
            if matcher_full.real_quick_ratio() < cutoff - 0.1 and matcher_stem.real_quick_ratio() < cutoff - 0.1:
                continue
            bonus = 0.02 if ext and ext == query_ext else 0.0
            shorter, longer = sorted((query_stem, stem), key=len)
            prefix = len(shorter) >= 5 and longer.startswith(shorter)
            if not prefix and max(_quick_ratio(query_letters[0], letters[0]),
                                  _quick_ratio(query_letters[1], letters[1])) + bonus < cutoff:
                continue  # the bound cannot reach the cutoff, so neither can ratio() (50x dearer)
            score = max(matcher_full.ratio(), matcher_stem.ratio())
            if prefix:
                # "sd_xl_base" for "sd_xl_base_1.0": a prefix is a strong hint.
                score = max(score, 0.75 + 0.25 * len(shorter) / len(longer))
            score += bonus
            if score >= cutoff and score > best.get(canonical, 0.0):
                best[canonical] = score
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [canonical for canonical, _ in ranked[:n]]
