"""Unpack a user's zip or tar into input/ without trusting a byte of it.

An uploaded archive is hostile until proven otherwise, so extraction never
calls ``extractall``. Each member is checked and written by hand:

* Names: absolute paths, drive letters (``C:``), ``..`` components and NUL
  bytes are refused. Backslashes count as separators (Windows tools write
  them), so ``..\\..\\evil`` is caught as the escape it means to be.
* Links: symlinks and hardlinks are refused outright, even ones that would
  stay inside input/. Media inputs never need them, and refusing is simpler
  to get right than proving a link chain harmless. Device files, FIFOs and
  sockets are refused too. Tar members also pass ``tarfile.data_filter`` as a
  second opinion.
* Bombs: the bytes actually written are counted (headers can lie) against
  ``max_input_bytes``, their ratio to the archive's size on disk against
  ``max_compression_ratio`` (after a 1 MiB grace, so a small, very
  compressible image is fine), and kept entries against ``max_archive_files``.
* All or nothing: members are written to a temporary folder next to input/
  (same file system, so moves are renames) and moved into input/ only after
  every member passed. On any error the temporary folder is removed and
  input/ is exactly as before.

OS clutter (``__MACOSX/``, ``.DS_Store``, ``Thumbs.db``, ``._*`` AppleDouble
files...) is skipped, not refused: it is what a zip made by Finder contains.
An archive with no members places nothing and is not an error; the runner's
validation reports what the workflow then lacks.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import (
    InputFileError,
    InputTooLargeError,
    PredictionTimeoutError,
    UnsafeInputError,
    WrapperError,
    hide_server_paths,
    printable,
)
from ..filetypes import sniff_archive

if TYPE_CHECKING:
    from ..settings import Settings

CHUNK = 1024 * 1024
RATIO_GRACE_BYTES = 1024 * 1024  # below this much output the ratio is not checked
MAX_NAME_BYTES = 255  # per path component, as Linux file systems allow
MAX_DEPTH = 64  # folders in one entry's path; deeper ones are refused (pathlib recurses per level)
MAX_PATH_BYTES = 4000  # a whole entry path, under Linux's PATH_MAX of 4096
CENTRAL_ENTRY_BYTES = 1024  # generous average size of one zip central-directory record
TAR_HEADER_ALLOWANCE = 2048  # tar bytes per member beyond its data (header, padding, long names)

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
# Single-file formats that are zips inside; such a file is placed, not unpacked.
_ZIP_BASED_FILES = {
    ".npz", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".epub", ".jar", ".whl",
    ".usdz", ".3mf", ".ora", ".kra",
}
# Operating-system clutter that archive tools add; skipped silently.
_JUNK_DIRS = {"__MACOSX", ".Spotlight-V100", ".Trashes", ".fseventsd", ".TemporaryItems", "$RECYCLE.BIN"}
_JUNK_FILES = {".DS_Store", "Thumbs.db", "ehthumbs.db", "desktop.ini", "Desktop.ini", "Icon\r", ".directory"}
_DRIVE = re.compile(r"^[A-Za-z]:")

# Errors a damaged archive raises while it is read (not while we write).
_READ_ERRORS = (
    zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, EOFError, OSError,
    ValueError, NotImplementedError,
)


@dataclass(frozen=True)
class InputLimits:
    """Caps on what one prediction's inputs may put on disk (downloads and extraction)."""

    max_input_bytes: int = 2 * 1024**3
    max_archive_files: int = 10_000
    max_compression_ratio: float = 200.0
    max_seconds: float = 1800.0  # unpacking one archive; the prediction's deadline (CW_PREDICTION_TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        return cls(
            max_input_bytes=settings.max_input_bytes,
            max_archive_files=settings.max_archive_files,
            max_compression_ratio=settings.max_compression_ratio,
            max_seconds=settings.prediction_timeout_s,
        )

    @property
    def max_entries(self) -> int:
        """Entries of any kind (files, folders, OS clutter) one archive may list."""
        return 2 * self.max_archive_files


@dataclass
class ExtractResult:
    """What an extraction placed, as POSIX paths relative to input/."""

    files: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # OS clutter left out
    total_bytes: int = 0


ArchiveFormat = Literal["zip", "tar"]


def archive_kind(path: Path, name: str | None = None) -> ArchiveFormat | None:
    """'zip', 'tar' or None, from the content first and the name second.

    Content wins because uploads often lose their names (Cog hands over
    temporary paths); the name matters only when the content has no magic
    (an old-style tar) or to keep zip-based single files (.npz, .docx) whole.
    """
    name = (name or path.name).lower()
    with path.open("rb") as handle:
        head = handle.read(512)
    suffix = Path(name).suffix
    sniffed = sniff_archive(head)
    if sniffed == ".zip":
        return None if suffix in _ZIP_BASED_FILES else "zip"
    if sniffed is not None:
        return "tar"
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    return None


def member_path(name: str) -> str | None:
    """The safe relative POSIX path for an archive member name, or None if it names nothing.

    Raises UnsafeInputError for names that would land outside the target.
    """
    if "\x00" in name:
        raise UnsafeInputError(
            f"Archive entry {name!r} contains a NUL byte; refusing the archive.", entry=name,
        )
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise UnsafeInputError(
            f"Archive entry {name!r} has an absolute path; entries must be relative so they stay "
            "inside input/.",
            fix="Re-create the archive from inside the folder you want to send (relative paths).",
            entry=name,
        )
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeInputError(
            f"Archive entry {name!r} contains '..', which could write outside input/; refusing the archive.",
            fix="Re-create the archive without '..' in entry names.", entry=name,
        )
    length = len(normalized.encode("utf-8", "surrogateescape"))
    if len(parts) > MAX_DEPTH or length > MAX_PATH_BYTES:
        what = (f"is nested {len(parts)} folders deep (at most {MAX_DEPTH})" if len(parts) > MAX_DEPTH
                else f"is {length} bytes long (at most {MAX_PATH_BYTES})")
        raise InputFileError(
            f"Archive entry {printable(name, 80)!r} {what}; refusing the archive.",
            fix="Flatten the folder structure inside the archive, or shorten its names.", entry=name,
        )
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InputFileError(
                f"Archive entry {name[:80]!r}... has a name part longer than {MAX_NAME_BYTES} bytes, "
                "which the file system cannot store.",
                fix="Shorten the file or folder names inside the archive.", entry=name,
            )
    return "/".join(parts) if parts else None


def is_junk(relative: str) -> bool:
    """True for OS clutter (Finder's __MACOSX and ._ files, Windows' Thumbs.db)."""
    parts = relative.split("/")
    base = parts[-1]
    return (
        any(part in _JUNK_DIRS for part in parts)
        or base in _JUNK_FILES
        or base.startswith("._")
    )


class _Extraction:
    """Writes members into a staging folder, enforcing every limit as bytes land."""

    def __init__(self, archive: Path, staging: Path, limits: InputLimits) -> None:
        self.archive = archive
        self.staging = staging
        self.limits = limits
        self.archive_bytes = max(1, archive.stat().st_size)
        self.result = ExtractResult()
        self._files: dict[str, None] = {}  # ordered set; a later duplicate replaces the file
        self._dirs: dict[str, None] = {}
        self.scanned = 0
        self.skipped_bytes = 0
        self.deadline = time.monotonic() + limits.max_seconds

    # -- limits ----------------------------------------------------------------
    def count_member(self) -> None:
        """Bound the work per archive: junk and folders count, at twice the file limit."""
        self.scanned += 1
        if self.scanned > self.limits.max_entries:
            raise self._too_many()
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise PredictionTimeoutError(
                f"Unpacking archive {self.archive.name!r} took longer than {self.limits.max_seconds:g} s.",
                fix="Send a smaller archive (or the files themselves), or raise CW_PREDICTION_TIMEOUT.",
                limit=self.limits.max_seconds,
            )

    def count_skipped(self, relative: str, size: int) -> None:
        """Clutter left out still counts: a tar must decompress a skipped member's data to pass it."""
        self.result.skipped.append(relative)
        self.skipped_bytes += max(0, size)
        self._check_total(relative, self.result.total_bytes + self.skipped_bytes)

    def _count_file(self, relative: str) -> None:
        if relative not in self._files and len(self._files) >= self.limits.max_archive_files:
            raise self._too_many()

    def _too_many(self) -> InputTooLargeError:
        return InputTooLargeError(
            f"Archive {self.archive.name!r} has more than {self.limits.max_archive_files} files "
            f"(or more than {2 * self.limits.max_archive_files} entries counting folders and OS clutter).",
            fix="Send fewer files, or raise CW_MAX_ARCHIVE_FILES.",
            limit=self.limits.max_archive_files,
        )

    def _count_bytes(self, relative: str, size: int) -> None:
        self.result.total_bytes += size
        self._check_total(relative, self.result.total_bytes + self.skipped_bytes)

    def _check_total(self, relative: str, total: int) -> None:
        if total > self.limits.max_input_bytes:
            raise InputTooLargeError(
                f"Archive {self.archive.name!r} unpacks to more than {self.limits.max_input_bytes} bytes "
                f"(stopped at {printable(relative, 120)!r}; skipped OS clutter counts too).",
                fix="Send a smaller archive, or raise CW_MAX_INPUT_BYTES.",
                limit=self.limits.max_input_bytes,
            )
        ratio = total / self.archive_bytes
        if total > RATIO_GRACE_BYTES and ratio > self.limits.max_compression_ratio:
            raise InputTooLargeError(
                f"Archive {self.archive.name!r} unpacks to over {ratio:.0f} times its own size "
                f"({self.archive_bytes} bytes -> {total}+ bytes at {relative!r}); this looks like a "
                f"zip bomb (the limit is {self.limits.max_compression_ratio:g}x).",
                fix="Send the files uncompressed or less compressible, or raise CW_MAX_COMPRESSION_RATIO.",
                limit=self.limits.max_compression_ratio,
            )

    # -- writing -----------------------------------------------------------------
    def add_directory(self, relative: str) -> None:
        try:
            (self.staging / relative).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._conflict(relative, exc) from None
        self._dirs[relative] = None

    def add_file(self, relative: str, read: Callable[[int], bytes]) -> None:
        self._count_file(relative)
        target = self.staging / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = target.open("wb")
        except OSError as exc:
            raise self._conflict(relative, exc) from None
        with handle:
            while True:
                try:
                    block = read(CHUNK)
                except WrapperError:
                    raise
                except _READ_ERRORS as exc:
                    raise damaged(self.archive, exc) from None
                if not block:
                    break
                self._count_bytes(relative, len(block))
                self.check_time()
                try:
                    handle.write(block)
                except OSError as exc:
                    raise InputFileError(
                        f"Could not write {relative!r} from archive {self.archive.name!r}: {exc.strerror}.",
                        fix="Free disk space or send a smaller archive.", entry=relative,
                    ) from None
        self._files[relative] = None
        # A parent folder of a file is implied; record it for the move step.
        parent = Path(relative).parent
        while str(parent) != ".":
            self._dirs.setdefault(parent.as_posix(), None)
            parent = parent.parent

    def _conflict(self, relative: str, exc: OSError) -> InputFileError:
        if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return InputFileError(
                f"Archive {self.archive.name!r} has conflicting entries at {relative!r} "
                f"(a file and a folder with the same name): {exc.strerror or exc}.",
                fix="Re-create the archive so no file shares its name with a folder.", entry=relative,
            )
        return InputFileError(
            f"Could not create {relative!r} from archive {self.archive.name!r}: {exc.strerror or exc}.",
            fix="Shorten deeply nested paths inside the archive, or free disk space.", entry=relative,
        )

    def finish(self) -> ExtractResult:
        self.result.files = list(self._files)
        self.result.directories = sorted(self._dirs)
        return self.result


def damaged(archive: Path, exc: BaseException) -> InputFileError:
    """The error for an archive whose bytes do not decode."""
    detail = printable(hide_server_paths(str(exc)), 300) or type(exc).__name__  # an OSError names our staging path
    if isinstance(exc, NotImplementedError):
        return InputFileError(
            f"Archive {archive.name!r} uses a compression method this container cannot read ({detail}).",
            fix="Re-create it as a plain .zip (deflate) or .tar.gz.", archive=str(archive),
        )
    return InputFileError(
        f"Archive {archive.name!r} is damaged and cannot be read ({detail}).",
        fix="Re-create the archive (zip or tar) and upload it again; check that the upload was not cut short.",
        archive=str(archive),
    )


def _unsafe_type(name: str, what: str) -> UnsafeInputError:
    return UnsafeInputError(
        f"Archive entry {name!r} is {what}; links, devices and FIFOs are refused so nothing can "
        "point or write outside input/.",
        fix="Re-create the archive with plain files and folders only (no symlinks or hardlinks).",
        entry=name,
    )


# --- zip -------------------------------------------------------------------------


def _zip_directory_size(path: Path) -> tuple[int, int] | None:
    """(entries, central directory bytes) from a zip's end records, read without building a listing.

    zipfile.ZipFile() parses the whole central directory into objects first;
    a 40 MiB zip listing 500k entries costs seconds and hundreds of MiB before
    any limit could apply. The end record (and its zip64 twin) states both
    numbers in a few bytes. None when no end record is found (zipfile then
    reports the damage).
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        tail_start = max(0, size - (22 + 65535))
        handle.seek(tail_start)
        tail = handle.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        _, _, _, _, entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at: at + 22])
        locator = tail[at - 20: at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":  # zip64: the real counts are in the zip64 end record
            (offset,) = struct.unpack("<Q", locator[8:16])
            if offset + 56 <= size:
                handle.seek(offset)
                record = handle.read(56)
                if record[:4] == b"PK\x06\x06":
                    entries, cd_size = struct.unpack("<QQ", record[32:48])
    return entries, cd_size


def _extract_zip(job: _Extraction) -> None:
    listing = _zip_directory_size(job.archive)
    if listing is not None:
        entries, cd_size = listing
        if entries > job.limits.max_entries or cd_size > job.limits.max_entries * CENTRAL_ENTRY_BYTES:
            raise InputTooLargeError(
                f"Archive {job.archive.name!r} lists {entries} entries ({cd_size} bytes of directory); at most "
                f"{job.limits.max_archive_files} files ({job.limits.max_entries} entries counting folders and "
                "OS clutter) are accepted.",
                fix="Send fewer files, or raise CW_MAX_ARCHIVE_FILES.", limit=job.limits.max_archive_files,
            )
    try:
        archive = zipfile.ZipFile(job.archive)
    except _READ_ERRORS as exc:
        raise damaged(job.archive, exc) from None
    with archive:
        try:
            infos = archive.infolist()
        except _READ_ERRORS as exc:
            raise damaged(job.archive, exc) from None
        declared = sum(info.file_size for info in infos)
        if declared > job.limits.max_input_bytes:  # cheap early refusal; real bytes are counted too
            raise InputTooLargeError(
                f"Archive {job.archive.name!r} declares {declared} bytes of content, more than the "
                f"limit of {job.limits.max_input_bytes} bytes.",
                fix="Send a smaller archive, or raise CW_MAX_INPUT_BYTES.", limit=job.limits.max_input_bytes,
            )
        for info in infos:
            job.count_member()
            relative = member_path(info.filename)
            if relative is None or is_junk(relative):
                if relative:
                    job.count_skipped(relative, info.file_size)
                continue
            mode = info.external_attr >> 16
            if info.create_system == 3 and mode:  # Unix attributes are meaningful
                if stat.S_ISLNK(mode):
                    raise _unsafe_type(info.filename, "a symbolic link")
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    raise _unsafe_type(info.filename, "a device file, FIFO or socket")
            if info.flag_bits & 0x1:
                raise InputFileError(
                    f"Archive entry {info.filename!r} is password-protected; encrypted zips are not supported.",
                    fix="Re-create the zip without a password.", entry=info.filename,
                )
            if info.is_dir():
                job.add_directory(relative)
                continue
            try:
                stream = archive.open(info)
            except _READ_ERRORS as exc:
                raise damaged(job.archive, exc) from None
            with stream:
                job.add_file(relative, stream.read)


# --- tar -------------------------------------------------------------------------


class _BoundedStream(io.RawIOBase):
    """The decompressed tar stream, refusing to go past a byte cap, a ratio or the deadline.

    tarfile passes over a skipped member (and reads long-name and pax headers
    whole into memory) by decompressing it: without a bound on the stream
    itself, a few KB of bzip2 declaring 20 GiB of clutter keeps the container
    busy for minutes. Every position the stream reaches, by read or by seek,
    is counted here.
    """

    def __init__(self, raw: io.BufferedIOBase, job: _Extraction) -> None:
        super().__init__()
        self.raw = raw
        self.job = job
        self.cap = job.limits.max_input_bytes + job.limits.max_entries * TAR_HEADER_ALLOWANCE
        self.position = 0

    def _reach(self, position: int) -> None:
        job = self.job
        if position > self.cap:
            raise InputTooLargeError(
                f"Archive {job.archive.name!r} decompresses to more than {self.cap} bytes (the input limit of "
                f"{job.limits.max_input_bytes} bytes plus tar headers; skipped OS clutter counts too).",
                fix="Send a smaller archive, or raise CW_MAX_INPUT_BYTES.", limit=job.limits.max_input_bytes,
            )
        ratio = position / job.archive_bytes
        if position > RATIO_GRACE_BYTES + self.job.limits.max_entries * TAR_HEADER_ALLOWANCE \
                and ratio > job.limits.max_compression_ratio:
            raise InputTooLargeError(
                f"Archive {job.archive.name!r} decompresses to over {ratio:.0f} times its own size; this looks "
                f"like a zip bomb (the limit is {job.limits.max_compression_ratio:g}x, skipped entries included).",
                fix="Send the files uncompressed or less compressible, or raise CW_MAX_COMPRESSION_RATIO.",
                limit=job.limits.max_compression_ratio,
            )
        job.check_time()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.position + offset}.get(whence)
        if target is None:
            raise io.UnsupportedOperation("seek from the end of a compressed tar")
        self._reach(target)
        while target > self.position:  # forward in steps, so the deadline is checked as it goes
            step = min(target, self.position + 16 * CHUNK)
            self.raw.seek(step)
            self.position = step
            self._reach(step)
        if target < self.position:
            self.raw.seek(target)
            self.position = target
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.cap + 1 - self.position
        data = self.raw.read(min(size, self.cap + 1 - self.position))
        self.position += len(data)
        self._reach(self.position)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open_tar_stream(job: _Extraction) -> _BoundedStream:
    with job.archive.open("rb") as handle:
        head = handle.read(6)
    if head.startswith(b"\x1f\x8b"):
        raw: io.BufferedIOBase = gzip.GzipFile(job.archive, "rb")
    elif head.startswith(b"BZh"):
        raw = bz2.BZ2File(job.archive, "rb")
    elif head.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMAFile(job.archive, "rb")
    else:
        raw = job.archive.open("rb")
    return _BoundedStream(raw, job)


def _tar_members(archive: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """Iterate lazily, turning read errors into 'damaged' (a stream may break midway)."""
    while True:
        try:
            member = archive.next()
        except WrapperError:
            raise
        except _READ_ERRORS as exc:
            raise damaged(path, exc) from None
        if member is None:
            return
        yield member


def _extract_tar(job: _Extraction) -> None:
    stream = _open_tar_stream(job)
    try:
        archive = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
    except WrapperError:
        stream.close()
        raise
    except _READ_ERRORS as exc:
        stream.close()
        raise damaged(job.archive, exc) from None
    with archive, stream:
        for member in _tar_members(archive, job.archive):
            job.count_member()
            relative = member_path(member.name)
            if relative is None or is_junk(relative):
                if relative:
                    job.count_skipped(relative, member.size)
                continue
            if member.issym():
                raise _unsafe_type(member.name, f"a symbolic link (to {member.linkname!r})")
            if member.islnk():
                raise _unsafe_type(member.name, f"a hard link (to {member.linkname!r})")
            if member.ischr() or member.isblk() or member.isfifo():
                raise _unsafe_type(member.name, "a device file or FIFO")
            if not (member.isreg() or member.isdir()):
                raise _unsafe_type(member.name, f"of an unsupported tar type {member.type!r}")
            try:  # the standard library's own 'data' rules as a second check
                tarfile.data_filter(member, str(job.staging))
            except tarfile.FilterError as exc:
                raise UnsafeInputError(
                    f"Archive entry {member.name!r} was refused: {printable(hide_server_paths(str(exc)), 300)}.",
                    entry=member.name,
                ) from None
            if member.isdir():
                job.add_directory(relative)
                continue
            try:
                stream = archive.extractfile(member)
            except _READ_ERRORS as exc:
                raise damaged(job.archive, exc) from None
            if stream is None:  # not a regular file after all
                raise _unsafe_type(member.name, "not a regular file")
            with stream:
                job.add_file(relative, stream.read)


# --- moving into place -----------------------------------------------------------


def _check_no_clash(result: ExtractResult, input_dir: Path) -> None:
    """Refuse before moving anything if an entry would replace a file with a folder or back.

    Also refuses to write through a symlink already in input/ (we never make
    one, but input/ is not ours alone).
    """
    for relative in result.directories:
        target = input_dir / relative
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise InputFileError(
                f"Archive folder {relative!r} clashes with a file or link of that name already in input/.",
                fix="Rename the folder inside the archive.", entry=relative,
            )
    for relative in result.files:
        target = input_dir / relative
        if target.is_dir() and not target.is_symlink():
            raise InputFileError(
                f"Archive file {relative!r} clashes with a folder of that name already in input/.",
                fix="Rename the file inside the archive.", entry=relative,
            )


def _merge(source: Path, target: Path) -> None:
    """Move a checked staging tree into target: whole subtrees by rename where target lacks them."""
    for entry in source.iterdir():
        destination = target / entry.name
        if entry.is_dir() and destination.is_dir() and not destination.is_symlink():
            _merge(entry, destination)
        else:
            if destination.is_symlink():
                destination.unlink()
            os.replace(entry, destination)


def _move_into_place(staging: Path, result: ExtractResult, input_dir: Path) -> None:
    _check_no_clash(result, input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    _merge(staging, input_dir)


def extract_archive(archive: Path, input_dir: Path, limits: InputLimits, *, kind: ArchiveFormat | None = None) -> ExtractResult:
    """Unpack a zip or tar into ``input_dir`` safely; see the module docstring for the rules.

    ``kind`` ('zip' or 'tar') skips detection. Raises UnsafeInputError for a
    hostile entry, InputTooLargeError past a limit, InputFileError for a
    damaged archive; in every error case ``input_dir`` is left untouched.
    """
    kind = kind or archive_kind(archive)
    if kind not in ("zip", "tar"):
        raise InputFileError(f"{archive.name!r} is not a zip or tar archive.", archive=str(archive))
    input_dir = Path(input_dir)
    parent = input_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{input_dir.name}-extract-", dir=parent))
    try:
        job = _Extraction(archive, staging, limits)
        (_extract_zip if kind == "zip" else _extract_tar)(job)
        result = job.finish()
        _move_into_place(staging, result, input_dir)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
