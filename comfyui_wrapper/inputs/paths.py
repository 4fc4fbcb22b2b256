"""Every file path a workflow names stays inside the folder it belongs to.

A public endpoint runs workflows written by anyone, and many nodes (core and
packs) join a string input onto one of ComfyUI's folders and open the result:

* ``folder_paths.get_annotated_filepath`` (LoadImage, LoadImageMask,
  LoadImageOutput, LoadAudio, LoadVideo, Load3D's ``{"image": ...}`` dict...)
  strips a ``[input]``/``[output]``/``[temp]`` suffix and does
  ``os.path.join(folder, name)``: an absolute ``name`` replaces the folder
  outright and ``..`` climbs out of it; ComfyUI checks neither.
* ``folder_paths.get_save_image_path`` refuses a ``filename_prefix`` that
  leaves output/, but nodes that build paths themselves do not:
  ``SaveImageDataSetToFolder``/``SaveImageTextDataSetToFolder`` write to
  ``os.path.join(output, folder_name)``, and packs do the same with their own
  input names (``directory``, ``path``, ``folder``, ``output_path``...).

So instead of a list of nodes (which packs would always outgrow) this module
checks every string value of every node input, at any depth of dicts and
lists, and refuses the prediction before anything is queued when a value,
after removing a ``[input]``/``[output]``/``[temp]`` annotation:

* contains a NUL byte (C code stops at it: the name checked is not the name opened);
* is absolute: starts with ``/``, ``\\``, ``~`` (expanduser) or a drive letter
  (``C:``), even inside our own folders (a user cannot know where they are, and
  accepting them would let one probe for it; our own rewrites to absolute
  paths happen after this check);
* has a ``..`` segment (split on ``/`` and ``\\``), anywhere, also once Unicode
  compatibility forms are folded (full-width ``．．／``, for nodes that normalise text);
* uses the ``file:`` scheme;
* names an existing entry of input/, output/ or temp/ (only the annotated one
  when annotated) that is a link leading out of its folder, or is not a regular file or folder
  (a FIFO, socket or device would hang or flood the reader).

Why this is complete for the escapes ComfyUI allows: on Linux a string can
leave the folder it is joined onto only by being absolute (join discards the
folder), by ``~`` (for nodes that expand it), by ``..``, or by a link inside
the folder; the first three are syntax and are refused here whatever the
node, the last is checked on disk for the folders that hold user data.
The check is purely lexical for anything outside our folders, so no message
can tell whether a path outside exists.

What it deliberately allows: relative names with subfolders
(``photos/a.png``, ``videos/ComfyUI``, ``%date:yyyy%/x``); URLs (``http(s)``,
``data:``), which the URL policy checks; and inputs that object_info declares
as multiline text (prompts), which are free text and which no core node opens
as a path. A single-line text value that happens to look like an absolute
path or holds ``..`` as a segment (a delimiter of ``/``, a regex ``..\\d``) is
refused; that is the price of covering nodes we do not know.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UnsafeInputError, WorkflowError, printable
from ..object_info import is_multiline_text, node_inputs
from ..workflow import NodeInput, meta_title

__all__ = ["MAX_VALUE_DEPTH", "PathRoots", "check_workflow_paths", "path_problem", "split_annotation"]

MAX_VALUE_DEPTH = 32  # dicts/lists inside one input; ComfyUI's own inputs go 2 deep
_ANNOTATION = re.compile(r"\s*\[(input|output|temp)\]\s*$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


@dataclass(frozen=True)
class PathRoots:
    """The folders a workflow's relative names are joined onto."""

    input: Path
    output: Path
    temp: Path

    def named(self, annotation: str | None) -> Path:
        return {"output": self.output, "temp": self.temp}.get(annotation or "input", self.input)

    def all(self) -> tuple[Path, ...]:
        return (self.input, self.output, self.temp)


def split_annotation(value: str) -> tuple[str, str | None]:
    """('name', 'output') for 'name [output]'; (value, None) when not annotated."""
    match = _ANNOTATION.search(value)
    if not match:
        return value, None
    return value[: match.start()], match.group(1)


def path_problem(value: str, roots: PathRoots) -> str | None:
    """Why ``value`` would reach outside its folder, or None when it is fine (see module docstring)."""
    if "\x00" in value:
        return "contains a NUL byte"
    text = value.strip()
    if not text:
        return None
    if text[:5].lower() == "file:":
        return "uses the 'file' scheme; files are named relative to their folder, not by file: URL"
    if _URL.match(text) or text[:5].lower() == "data:":
        return None  # URLs: the URL policy decides
    name, annotation = split_annotation(text)
    name = name.strip()
    if not name:
        return None
    # Compatibility forms ("．．／" full-width) become ".." and "/" for any node that normalises text.
    folded = unicodedata.normalize("NFKC", name)
    if ".." in re.split(r"[\\/]", name) or ".." in re.split(r"[\\/]", folded):
        return "contains '..'"
    if folded != name and (folded.startswith(("/", "\\", "~")) or _DRIVE.match(folded)):
        return "is an absolute path; only names relative to ComfyUI's folders are allowed"
    if name.startswith(("/", "\\", "~")) or _DRIVE.match(name):
        return "is an absolute path; only names relative to ComfyUI's folders are allowed"
    # Unannotated names may be joined onto input/ (loaders) or output/ (save nodes): check each.
    for root in ((roots.named(annotation),) if annotation else roots.all()):
        problem = _on_disk_problem(root / name, root)
        if problem:
            return problem
    return None


def _on_disk_problem(full: Path, root: Path) -> str | None:
    """A link out of ``root``, or an entry that is not a regular file or folder."""
    try:
        os.lstat(full)
    except (OSError, ValueError):
        return None  # not there: the missing-input check names it
    try:
        real = full.resolve()
        real_root = root.resolve()
    except (OSError, RuntimeError):
        return "is a link that cannot be followed"
    if real != real_root and real_root not in real.parents:
        return "leads outside its folder through a link"
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is not a regular file (a device, FIFO or socket)"
    return None


def _strings(value: Any, where: NodeInput) -> Iterator[tuple[NodeInput, str]]:
    """Every string inside an input value, with where it sits (dicts and lists walked without recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            yield (replace(where, at=at) if at else where), item
        elif isinstance(item, (dict, list, tuple)):
            if len(at) >= MAX_VALUE_DEPTH:
                raise WorkflowError(
                    f"{where.describe()}: the value is nested more than {MAX_VALUE_DEPTH} levels deep.",
                    fix="Send plain values; no ComfyUI node takes inputs nested this deep.",
                    node_id=where.node_id, input_name=where.input_name,
                )
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, (*at, key if isinstance(key, int) else str(key))) for key, child in children)


def check_workflow_paths(workflow: dict[str, Any], roots: PathRoots, object_info: dict[str, Any] | None = None) -> None:
    """Refuse the first input whose value names a path outside its folder (UnsafeInputError).

    The message names node, class and input and why; for anything outside our
    folders it is decided from the text alone, so it says nothing about what
    exists there.
    """
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        class_type = str(node.get("class_type", ""))
        title = meta_title(node) or ""
        free_text = {name for name, spec in node_inputs(object_info, class_type).items() if is_multiline_text(spec)}
        for name, value in node["inputs"].items():
            if name in free_text:
                continue
            for where, text in _strings(value, NodeInput(str(node_id), class_type, title, str(name))):
                problem = path_problem(text, roots)
                if problem:
                    raise UnsafeInputError(
                        f"{where.describe()}: '{printable(text)}' {problem}; a workflow may read and write only "
                        "inside ComfyUI's input/, output/, temp/ and model folders.",
                        fix="Name files relative to their folder (as they appear in your upload or in output/), "
                            "without '..', a leading '/' or '~', or a drive letter.",
                        node_id=str(node_id), input_name=str(name), value=text,
                    )
