"""Weights shipped as uncompressed tars, used without a second copy on disk.

Every manifest weight on the CDN is ``…/{name}.tar``: a tar holding the file
(or, for a few models, a directory) under its name. Downloading the whole tar
and then extracting it costs twice the disk and a second pass over the bytes.
This module gives the two ways around that; ``cache.py`` picks one:

- **One file** (almost every weight). A tar member's bytes are contiguous: they
  start right after the member's header(s) and are exactly ``size`` long. The
  headers are a 512-byte ustar block, possibly preceded by extension headers
  that carry long names or big sizes: pax ``x`` (this member) and ``g``
  (global), GNU ``L`` (long name) and ``K`` (long link name), each followed by
  its data padded to 512 bytes. ``first_member(head)`` reads them from the
  first few KB of the archive and returns the member's byte range, so the
  downloader can fetch that range (in parallel parts) straight into the final
  file. It raises ``NeedMoreBytes`` when the headers run past ``head``, so the
  caller can read on.
- **Anything else** (a directory, several members, a compressed tar, a tar
  whose first member is not the weight). ``extract_stream(fileobj, out)``
  extracts members in order while the bytes arrive from one stream: only the
  extracted files ever reach the disk, never the archive.

Safety rules are those of the extraction this replaces (``extractall`` with the
standard library's ``data`` filter): no absolute paths, nothing that resolves
outside the target, links only to targets inside it, no device files or FIFOs.
The header path also refuses sparse members (they would expand past the bytes
sent) and anything but regular files and directories on the fast path. Every
member's size is checked against the free disk before its bytes are written.
Refusals raise UnsafeInputError; a damaged or non-tar stream raises
WeightDownloadError, both naming the weight.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Callable

from ..errors import CacheBudgetError, UnsafeInputError, WeightDownloadError
from ..sizes import human_bytes
from .download import NoWindow, Window

BLOCK = 512
HEAD_BYTES = 64 * 1024  # a first read: headers of any sane member fit in it
MAX_HEADER_BYTES = 1024 * 1024  # extension headers longer than this are refused
# Bytes that may follow the last member: two zero blocks, then padding to a whole record (20 blocks by
# default in GNU tar, bsdtar and Python's tarfile): at most 2 + 19 blocks; one more block of slack.
END_PADDING_BYTES = 22 * BLOCK
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_ENCODING = "utf-8"


@dataclass(frozen=True)
class MemberSpan:
    """Where one member's bytes lie in its archive."""

    name: str  # as stored, after pax/GNU long names
    is_file: bool  # a regular file (else a directory, link or other)
    offset: int  # first byte of the data
    size: int

    @property
    def end(self) -> int:
        """Where the next header starts: the data padded to a whole block."""
        return self.offset + -(-self.size // BLOCK) * BLOCK

    def is_only_member(self, archive_size: int | None) -> bool:
        """True when nothing but end-of-archive padding can follow this member."""
        return archive_size is not None and self.end <= archive_size <= self.end + END_PADDING_BYTES


class NeedMoreBytes(Exception):
    """The headers run past the bytes given: read at least ``needed`` bytes and call again."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"need {needed} bytes")
        self.needed = needed


class NotATar(Exception):
    """The bytes do not start with a plain tar header (compressed, or not a tar at all)."""


def _round_up(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _headers_end(head: bytes) -> int:
    """The offset just past the first member's own 512-byte header, walking extension headers."""
    pos = 0
    while True:
        if pos + BLOCK > len(head):
            raise NeedMoreBytes(pos + BLOCK)
        try:
            info = tarfile.TarInfo.frombuf(head[pos:pos + BLOCK], _ENCODING, "surrogateescape")
        except (tarfile.EmptyHeaderError, tarfile.EOFHeaderError):  # type: ignore[attr-defined]
            raise NotATar("the archive is empty") from None
        except tarfile.HeaderError as exc:
            raise NotATar(str(exc) or "not a tar header") from None
        if info.type not in _EXTENSION_TYPES:
            return pos + BLOCK
        pos += BLOCK + _round_up(info.size)
        if pos > MAX_HEADER_BYTES:
            raise NotATar(f"extension headers longer than {MAX_HEADER_BYTES} bytes")


def first_member(head: bytes) -> MemberSpan:
    """The first member of a plain tar whose first bytes are ``head``.

    Raises NeedMoreBytes when the headers continue past ``head`` and NotATar
    when ``head`` is not the start of an uncompressed tar. The standard
    library decodes the headers (pax records, GNU long names, base-256 sizes);
    this function only makes sure it is handed all of them.
    """
    end = _headers_end(head)
    try:
        with tarfile.open(fileobj=io.BytesIO(head[:end]), mode="r:", encoding=_ENCODING) as archive:
            member = archive.firstmember  # type: ignore[attr-defined]
    except tarfile.TarError as exc:
        raise NotATar(str(exc) or type(exc).__name__) from None
    if member is None:
        raise NotATar("no member")
    if member.offset_data != end:  # e.g. an old GNU sparse member with more header blocks
        return MemberSpan(member.name, False, member.offset_data, member.size)
    return MemberSpan(member.name, member.isreg() and not member.issparse(), member.offset_data, member.size)


def wanted_names(name: str) -> tuple[str, str]:
    """The member names that hold weight ``name``: its full name, then its base name."""
    return name, PurePosixPath(name).name


def matches(span: MemberSpan, name: str) -> bool:
    """Whether ``span`` is the weight ``name`` itself (as the extraction would find it)."""
    stored = span.name.replace("\\", "/")
    while stored.startswith("./"):
        stored = stored[2:]
    return stored in wanted_names(name)


def member_window(name: str) -> Callable[[Callable[[int], bytes], int | None], Window]:
    """A ``window`` for download.fetch: the byte range of weight ``name`` in a one-member tar.

    Raises NoWindow (the caller then extracts the stream) unless the first
    member is a regular file named ``name`` (or its base name) and nothing but
    end-of-archive padding follows it, so that the range is exactly what the
    extraction would have produced.
    """
    def window(read: Callable[[int], bytes], archive_size: int | None) -> Window:
        head = read(HEAD_BYTES)
        while True:
            try:
                span = first_member(head)
                break
            except NeedMoreBytes as more:
                if len(head) < more.needed:
                    head = read(more.needed)
                if len(head) < more.needed:
                    raise NoWindow() from None  # a truncated archive: the extraction reports it
            except NotATar:
                raise NoWindow() from None
        if span.is_file and matches(span, name) and span.is_only_member(archive_size):
            return Window(span.offset, span.size)
        raise NoWindow()

    return window


def check_member(member: tarfile.TarInfo, dest: Path, *, weight: str, url: str) -> tarfile.TarInfo:
    """Today's extraction rules for one member: the ``data`` filter, and no sparse files.

    Returns the member as the filter adjusted it (modes); raises UnsafeInputError.
    """
    if member.issparse():
        raise _unsafe(weight, url, f"{member.name!r} is a sparse file")
    try:
        return tarfile.data_filter(member, str(dest))
    except tarfile.FilterError as exc:
        raise _unsafe(weight, url, str(exc)) from None


def _unsafe(weight: str, url: str, detail: str) -> UnsafeInputError:
    return UnsafeInputError(
        f"The archive for {weight} from {url} has an unsafe entry ({detail}); nothing was kept.",
        fix="Report the weight's URL; archives must not hold absolute paths, '..' or links outside.",
        filename=weight, url=url)


def _damaged(weight: str, url: str, detail: str) -> WeightDownloadError:
    return WeightDownloadError(
        f"The file downloaded for {weight} from {url} is not a readable tar archive ({detail}).",
        fix="Check the manifest entry's URL and archive kind.", filename=weight, url=url)


def extract_stream(
    fileobj: IO[bytes], out: Path, *, weight: str, url: str,
    free_bytes: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free,
) -> int:
    """Extract a tar read front to back from ``fileobj`` into ``out``; returns the file bytes written.

    Members are written as their bytes arrive (the stream is never seeked
    back), so only the extracted copy is ever on disk. Each member passes
    ``check_member``, and its size must fit in the free disk before its first
    byte is written. Compressed tars (gzip, bzip2, xz) are accepted, as the
    whole-archive extraction accepted them.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = 0

    def guard(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        nonlocal written
        checked = check_member(member, out, weight=weight, url=url)
        if checked.isreg():
            free = free_bytes(out)
            if checked.size > free:
                raise CacheBudgetError(
                    f"Not enough disk space to extract {weight} from {url}: {checked.name} needs "
                    f"{human_bytes(checked.size)}, {human_bytes(free)} free.", filename=weight, url=url)
            written += checked.size
        return checked

    try:
        with tarfile.open(fileobj=fileobj, mode="r|*", encoding=_ENCODING) as archive:
            archive.errorlevel = 2  # a member that cannot be written fails the weight
            archive.extractall(out, filter=guard)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError) as exc:
        raise _damaged(weight, url, str(exc) or type(exc).__name__) from None
    except tarfile.StreamError as exc:  # e.g. a hard link to a member it cannot seek back to
        raise _damaged(weight, url, f"cannot be extracted in one pass: {exc}") from None
    except tarfile.ExtractError as exc:
        raise _damaged(weight, url, str(exc)) from None
    return written


def find_extracted(out: Path, name: str) -> Path | None:
    """The weight inside an extraction folder: ``out/name``, else ``out/<base name>``."""
    for candidate in wanted_names(name):
        path = out / candidate
        if path.exists() and not path.is_symlink():
            return path
    return None


def listing(out: Path, limit: int = 10) -> list[str]:
    """Top-level names in an extraction folder, for an error message."""
    return sorted(entry for entry in os.listdir(out))[:limit] if out.is_dir() else []


__all__ = ["MemberSpan", "NeedMoreBytes", "NotATar", "first_member", "matches", "member_window", "extract_stream",
           "check_member",
           "find_extracted", "listing", "HEAD_BYTES", "END_PADDING_BYTES"]
