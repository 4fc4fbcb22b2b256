"""Put a prediction's ``input_file`` (a local file by now) into ComfyUI's input/ folder.

``place_input_file`` puts a single media file in input/ twice (as
``input.<ext>``, the name the examples use, and under its own name, the name
a workflow exported with that upload uses), or unpacks a zip/tar with the
rules in ``archives.py``. Where the file comes from (a Cog upload, a CLI path,
a URL, a data: URI) is ``source.py``'s business; files the workflow itself
names are ``workflow_urls.py``'s and ``references.py``'s.

Every file is written under a hidden ``.part`` name and renamed only when
complete, so an error never leaves a half file behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InputFileError, InputTooLargeError, MissingInputError, WrapperError, printable
from ..filetypes import MEDIA_EXTENSIONS, SNIFF_BYTES, extension_of, sniff_media
from .archives import ArchiveFormat, ExtractResult, InputLimits, archive_kind, extract_archive

__all__ = ["PlacedInputs", "place_input_file", "safe_filename", "upload_name"]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def safe_filename(name: str, max_bytes: int = 200) -> str:
    """A plain file name from an untrusted one: its last path part, no control characters.

    Deliberately light: the point of keeping an upload's own name is that the
    workflow names it exactly, so spaces, brackets and non-ASCII letters stay.
    Path separators, NUL and leading dots go (no hidden files, no '..').
    Returns '' when nothing usable is left.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _CONTROL_CHARS.sub("", base).strip().lstrip(".").strip()
    if not base:
        return ""
    ext = extension_of(base)
    ext = base[len(base) - len(ext):] if ext else ""  # the name's own case: a workflow may say photo.JPG
    stem = base[: len(base) - len(ext)] if ext else base
    while len((stem + ext).encode("utf-8", "surrogateescape")) > max_bytes and stem:
        stem = stem[:-1]
    return (stem + ext) if stem else ""


# --- input_file ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedInputs:
    """What place_input_file put in input/, for the runner's log."""

    source_name: str
    kind: Literal["file"] | ArchiveFormat
    paths: tuple[str, ...]  # files, POSIX paths relative to input/
    directories: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # archive clutter left out (__MACOSX, .DS_Store...)
    total_bytes: int = 0

    def describe(self, limit: int = 20) -> str:
        if not self.paths:
            return f"input_file {self.source_name!r}: the {self.kind} archive holds no files; nothing placed."
        shown = ", ".join(printable(path, 200) for path in self.paths[:limit])
        if len(self.paths) > limit:
            shown += f", ... ({len(self.paths) - limit} more)"
        extra = f"; skipped {len(self.skipped)} OS clutter entries" if self.skipped else ""
        what = "file" if self.kind == "file" else f"{self.kind} archive"
        return (
            f"input_file {self.source_name!r} ({what}, {self.total_bytes} bytes) placed in input/ as: "
            f"{shown}{extra}"
        )


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy (or hardlink) to a hidden temp name beside target, then rename over it."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputFileError(
            f"Could not place {target.name!r} in input/: {exc.strerror or exc}.",
            fix="Free disk space, or rename the file if a folder of that name exists in input/.",
        ) from None


# Cog's runtime saves a URL or data: input as NamedTemporaryFile(suffix=<its file name>):
# <temp dir>/tmp + 8 random characters + the name the user gave.
_COG_TEMP_NAME = re.compile(r"^tmp[a-z0-9_]{8}(?P<name>.+)$")


def upload_name(path: Path) -> str:
    """The name the user gave an uploaded file, for placing it "under its own name".

    A workflow exported with an upload names it as the user's file was
    called (photo.png), but Cog hands predict() /tmp/tmpab12cd34photo.png;
    for a file directly in the temp folder with that shape the prefix is
    dropped. Any other path keeps its own name.
    """
    path = Path(path)
    match = _COG_TEMP_NAME.match(path.name)
    try:
        in_temp = path.parent.resolve() == Path(tempfile.gettempdir()).resolve()
    except OSError:
        in_temp = False
    return match.group("name") if match and in_temp else path.name


def place_input_file(
    source: Path, input_dir: Path, limits: InputLimits, *, original_name: str | None = None,
) -> PlacedInputs:
    """Put one uploaded file into ``input_dir``.

    A zip or tar (recognised by content, or by name when the content has no
    magic) is unpacked with archives.extract_archive. Any other file is placed
    as ``input.<ext>`` and under its own (sanitised) name; ``ext`` is the
    name's media extension, else the one its bytes announce, else whatever
    extension the name has. ``original_name`` is the name the user gave, when
    ``source`` is a temporary path that lost it.
    """
    source = Path(source)
    display = original_name or source.name
    if not source.exists():
        raise MissingInputError(
            f"input_file {display!r} does not exist.", fix="Check the path of the file you passed.",
            filename=str(source),
        )
    if not source.is_file():
        raise InputFileError(
            f"input_file {display!r} is a folder, not a file.",
            fix="Zip the folder (zip -r inputs.zip folder) and pass the zip; folder names are kept.",
            filename=str(source),
        )
    size = source.stat().st_size
    name = safe_filename(display)
    if size == 0:
        raise InputFileError(
            f"input_file {display!r} is empty (0 bytes).", fix="Upload the file again.", filename=display,
        )
    kind = archive_kind(source, name or source.name)
    if kind:
        result: ExtractResult = extract_archive(source, Path(input_dir), limits, kind=kind)
        return PlacedInputs(
            source_name=display, kind=kind, paths=tuple(result.files), directories=tuple(result.directories),
            skipped=tuple(result.skipped), total_bytes=result.total_bytes,
        )
    if size > limits.max_input_bytes:
        raise InputTooLargeError(
            f"input_file {display!r} is {size} bytes, more than the limit of {limits.max_input_bytes} bytes.",
            fix="Send a smaller file, or raise CW_MAX_INPUT_BYTES.", limit=limits.max_input_bytes,
        )
    with source.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    named = extension_of(name)
    ext = named if named in MEDIA_EXTENSIONS else (sniff_media(head) or named)
    if not ext:
        raise InputFileError(
            f"Cannot tell what kind of file input_file {display!r} is: its name has no extension and its "
            "content is not a known image, video, audio or archive format.",
            fix="Give the file its proper extension (.png, .mp4, .wav, .zip...) and upload it again.",
            filename=display,
        )
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    primary = f"input{ext}"
    _copy_atomic(source, input_dir / primary)
    placed = [primary]
    if name and name != primary:
        try:
            _copy_atomic(input_dir / primary, input_dir / name)
        except WrapperError:
            (input_dir / primary).unlink(missing_ok=True)
            raise
        placed.append(name)
    return PlacedInputs(source_name=display, kind="file", paths=tuple(placed), total_bytes=size)
