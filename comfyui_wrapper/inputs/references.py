"""Files a workflow names in input/: which inputs read from it, and are they there.

``check_input_references`` finds every input that reads from input/
(object_info's upload flags plus ``KNOWN_LOADERS``, a short table of custom
loaders) and ``require_inputs`` raises one MissingInputError that lists all
missing names at once, with what is present and close matches. A value that
leaves input/ ('..', an absolute path elsewhere, a link out) is refused.
``absolutize_input_paths`` then hands loaders that open their value from
ComfyUI's working directory (``relative_to="cwd"``) the absolute path.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..errors import MissingInputError, UnsafeInputError
from ..object_info import input_options
from ..urls import is_http_url
from ..workflow import NodeInput, meta_title
from .fetch import OTHER_SCHEME

__all__ = [
    "InputRef", "KNOWN_LOADERS", "absolutize_input_paths", "check_input_references", "is_upload_input",
    "iter_string_inputs", "missing_inputs_error", "original_key", "require_inputs"
]

# --- which loaders read from input/ --------------------------------------------------


InputKind = Literal["file", "directory"]  # what an input reference names in input/
RelativeTo = Literal["input", "cwd"]  # "input": joined to input/ by ComfyUI; "cwd": opened as a path


@dataclass(frozen=True)
class Loader:
    """How a known loader input uses its value."""

    kind: InputKind
    relative_to: RelativeTo = "input"


# Loader inputs that read from input/ but that object_info does not flag with
# *_upload (custom nodes), plus the core ones so fetch_workflow_urls (which has
# no object_info) knows them too. Keep this short: the generic rules (upload
# flags, media-extension URLs, inputs named "directory") cover the rest.
KNOWN_LOADERS: dict[tuple[str, str], Loader] = {
    # ComfyUI core
    ("LoadImage", "image"): Loader("file"),
    ("LoadImageMask", "image"): Loader("file"),
    ("LoadVideo", "file"): Loader("file"),
    ("LoadAudio", "audio"): Loader("file"),
    # ...and its dataset loaders: `folder` is a combo of input/'s subfolders, with no upload flag
    ("LoadImageDataSetFromFolder", "folder"): Loader("directory"),
    ("LoadImageTextDataSetFromFolder", "folder"): Loader("directory"),
    # ComfyUI-VideoHelperSuite: combo lists of input/ with no upload flag
    ("VHS_LoadVideo", "video"): Loader("file"),
    ("VHS_LoadVideoFFmpeg", "video"): Loader("file"),
    ("VHS_LoadAudioUpload", "audio"): Loader("file"),
    ("VHS_LoadImages", "directory"): Loader("directory"),
    # ...and its *Path nodes, which open the string as a path from ComfyUI's working directory
    ("VHS_LoadVideoPath", "video"): Loader("file", "cwd"),
    ("VHS_LoadVideoFFmpegPath", "video"): Loader("file", "cwd"),
    ("VHS_LoadImagePath", "image"): Loader("file", "cwd"),
    ("VHS_LoadImagesPath", "directory"): Loader("directory", "cwd"),
    ("VHS_LoadAudio", "audio_file"): Loader("file", "cwd"),
    # ComfyUI-Inspire-Pack: os.path.isdir(directory), i.e. also the working directory
    ("LoadImagesFromDir //Inspire", "directory"): Loader("directory", "cwd"),
    ("LoadImageListFromDir //Inspire", "directory"): Loader("directory", "cwd"),
    ("LoadImage //Inspire", "image"): Loader("file"),
    # Older packs' directory loader, resolved under input/
    ("LoadImagesFromDirectory", "directory"): Loader("directory"),
}


def iter_string_inputs(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, str]]:
    """(node_id, node, input_name, value) for every string input; links are lists and skipped."""
    for node_id, node in workflow.items():
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        for name, value in inputs.items():
            if isinstance(value, str):
                yield str(node_id), node, name, value


def original_key(workflow: dict[str, Any], node_id: str) -> Any:
    """Node ids are strings in API JSON; tolerate a dict built with int keys."""
    return next(key for key in workflow if str(key) == node_id)


# --- which inputs read from input/, and are they there -----------------------------------


@dataclass(frozen=True)
class InputRef:
    """One workflow input that names a file or folder in input/."""

    node_id: str
    class_type: str
    title: str
    input_name: str
    value: str  # as written in the workflow
    relative_path: str  # annotation and leading 'input/' removed, relative to input/
    kind: InputKind
    relative_to: RelativeTo  # see KNOWN_LOADERS
    path: Path  # absolute
    exists: bool

    @property
    def where(self) -> NodeInput:
        return NodeInput(self.node_id, self.class_type, self.title, self.input_name)


def is_upload_input(opts: dict[str, Any]) -> bool:
    """Inputs the ComfyUI frontend gives an upload button: *_upload or upload flags, input folder."""
    flagged = any(key.endswith("upload") and bool(value) for key, value in opts.items())
    return flagged and opts.get("image_folder", "input") == "input"


_ANNOTATION = re.compile(r"\s*\[(input|output|temp)\]\s*$")


def _relative_input_path(
    value: str, input_dir: Path, loader: Loader, where: NodeInput,
) -> str | None:
    """The path under input/ that ``value`` names, None for values not in input/.

    Absolute paths inside input/ are accepted (a workflow already made
    absolute); other absolute paths and '..' are refused.
    """
    text = value.strip()
    annotation = _ANNOTATION.search(text)
    if annotation:
        if annotation.group(1) != "input":
            return None  # [output] / [temp] files are ComfyUI's own, not ours to check
        text = text[: annotation.start()]
    posix = PurePosixPath(text.replace("\\", "/"))

    def refuse(reason: str) -> UnsafeInputError:
        return UnsafeInputError(
            f"{where.describe()}: {value!r} {reason}; inputs are read only from inside input/.",
            fix="Name the file relative to input/ (as it appears inside your zip), without '..' or a leading '/'.",
            node_id=where.node_id, input_name=where.input_name, value=value,
        )

    if posix.is_absolute() or re.match(r"^[A-Za-z]:", text):
        root = input_dir.resolve()
        try:
            inside = Path(text).resolve().relative_to(root)
        except ValueError:
            raise refuse("is an absolute path outside input/") from None
        return inside.as_posix()
    if ".." in posix.parts:
        raise refuse("contains '..'")
    parts = [p for p in posix.parts if p != "."]
    if loader.relative_to == "cwd" and parts[:1] == ["input"]:
        parts = parts[1:]  # ComfyUI's working dir holds input/; "input/x" means our input/x
    return "/".join(parts)


def check_input_references(workflow: dict[str, Any], object_info: dict[str, Any], input_dir: Path) -> list[InputRef]:
    """Every input that names a file or folder in input/, each marked present or not.

    An input counts when object_info flags it for upload (image_upload,
    video_upload, audio_upload, file_upload... and not an output-folder
    picker), when it is in KNOWN_LOADERS, or when it is named ``directory``
    and holds a relative path (checked as a folder; save nodes excepted).
    URLs (fetch them first), empty values and ``[output]``/``[temp]`` names
    are not checked. Raises UnsafeInputError for a value that leaves input/.
    """
    input_dir = Path(input_dir)
    root = input_dir.resolve()
    refs: list[InputRef] = []
    for node_id, node, name, value in iter_string_inputs(workflow):
        class_type = str(node.get("class_type", ""))
        text = value.strip()
        if not text or is_http_url(text) or OTHER_SCHEME.match(text) or text[:5].lower() == "data:":
            continue
        loader = KNOWN_LOADERS.get((class_type, name))
        if loader is None:
            opts = input_options(object_info, class_type).get(name)
            if opts is not None and is_upload_input(opts):
                loader = Loader("file")
            elif (name == "directory" and "save" not in class_type.lower()
                  and not PurePosixPath(text).is_absolute() and not re.match(r"^[A-Za-z]:", text)):
                loader = Loader("directory")
        if loader is None:
            continue
        where = NodeInput(node_id, class_type, meta_title(node) or "", name)
        relative = _relative_input_path(text, input_dir, loader, where)
        if relative is None:
            continue
        path = input_dir / relative if relative else input_dir
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise UnsafeInputError(
                f"{where.describe()}: {value!r} leads outside input/ through a link.",
                node_id=node_id, input_name=name, value=value,
            )
        exists = path.is_dir() if loader.kind == "directory" else path.is_file()
        refs.append(InputRef(node_id, class_type, where.title, name, value, relative, loader.kind,
                             loader.relative_to, path.absolute(), exists))
    return refs


def _present(input_dir: Path, limit: int = 10_000) -> tuple[list[str], list[str]]:
    """(files, folders) under input/, relative POSIX paths, hidden entries skipped."""
    files: list[str] = []
    folders: list[str] = []
    if not input_dir.is_dir():
        return files, folders
    for current, dirnames, filenames in os.walk(input_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(current).relative_to(input_dir)
        for d in dirnames:
            folders.append((rel / d).as_posix())
        for f in sorted(filenames):
            if not f.startswith("."):
                files.append((rel / f).as_posix())
        if len(files) + len(folders) > limit:
            break
    return files, folders


def _suggest(wanted: str, candidates: list[str]) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    if wanted.lower() in lowered:
        return lowered[wanted.lower()]
    close = difflib.get_close_matches(wanted, candidates, n=1, cutoff=0.6)
    if close:
        return close[0]
    by_base = {PurePosixPath(c).name: c for c in candidates}
    close = difflib.get_close_matches(PurePosixPath(wanted).name, list(by_base), n=1, cutoff=0.6)
    return by_base[close[0]] if close else None


def missing_inputs_error(refs: list[InputRef], input_dir: Path, *, listed: int = 30) -> MissingInputError | None:
    """One MissingInputError naming every missing file and folder, or None if all are there."""
    missing = [ref for ref in refs if not ref.exists]
    if not missing:
        return None
    files, folders = _present(Path(input_dir))
    lines = [f"The workflow loads {len(missing)} file(s) or folder(s) from input/ that are not there:"]
    for ref in missing:
        what = "folder" if ref.kind == "directory" else "file"
        hint = _suggest(ref.relative_path, folders if ref.kind == "directory" else files)
        lines.append(
            f"  - {ref.where.describe()}: {what} {ref.relative_path or ref.value!r} is missing"
            + (f"; did you mean {hint!r}?" if hint else ".")
        )
    if files or folders:
        present = [f + "/" for f in folders] + files
        more = f" ... and {len(present) - listed} more" if len(present) > listed else ""
        lines.append("input/ holds: " + ", ".join(present[:listed]) + more)
    else:
        lines.append("input/ is empty: no input_file was given (or it held no files) and the workflow has no URLs.")
    return MissingInputError("\n".join(lines), missing=missing, present=files + [f + "/" for f in folders])


def require_inputs(workflow: dict[str, Any], object_info: dict[str, Any], input_dir: Path) -> list[InputRef]:
    """check_input_references, raising one MissingInputError that lists all missing names."""
    refs = check_input_references(workflow, object_info, input_dir)
    error = missing_inputs_error(refs, input_dir)
    if error is not None:
        raise error
    return refs


def absolutize_input_paths(workflow: dict[str, Any], refs: list[InputRef]) -> dict[str, Any]:
    """A copy of the workflow where loaders that open paths from the working directory
    (KNOWN_LOADERS with relative_to="cwd": VHS *Path nodes, Inspire's directory
    loaders) get the absolute path under input/, so they find the file whatever
    ComfyUI's working directory is."""
    new_workflow = copy.deepcopy(workflow)
    for ref in refs:
        if ref.relative_to == "cwd":
            new_workflow[original_key(workflow, ref.node_id)]["inputs"][ref.input_name] = str(ref.path)
    return new_workflow
