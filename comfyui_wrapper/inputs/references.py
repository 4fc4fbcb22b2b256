"""Get a prediction's input files into ComfyUI's input/ folder, and check they are there.

Three ways files arrive, one folder they land in:

* ``input_file`` (Cog upload, CLI path, http(s) URL or ``data:`` URI):
  Cog's own fetch of a URL is governed by ``govern_cog_downloads`` and
  ``check_input_origin`` refuses a server path a request names (see "input_file
  from Cog" below); ``resolve_input_source`` turns a string into a local file, then
  ``place_input_file`` puts a single media file in input/ twice (as
  ``input.<ext>``, the name the examples use, and under its own name, the
  name a workflow exported with that upload uses), or unpacks a zip/tar with
  the rules in ``archives.py``.
* http(s) URLs in the workflow: ``fetch_workflow_urls`` downloads each media
  URL once, through ``urls.open_url`` (no loopback/private/metadata targets,
  checked on every redirect), and returns a rewritten copy of the workflow.
* Files already named in the workflow: ``check_input_references`` finds every
  input that reads from input/ (object_info's upload flags plus a short table
  of custom loaders) and ``require_inputs`` raises one MissingInputError that
  lists all missing names at once, with what is present and close matches.

Every download goes to a hidden ``.part`` file and is renamed only when
complete and checked, so an error never leaves a half file behind.
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import requests

from ..errors import (
    DownloadError,
    InputFileError,
    InputTooLargeError,
    MissingInputError,
    UnsafeInputError,
    WrapperError,
    printable,
    redact,
)
from ..filetypes import (
    MEDIA_EXTENSIONS,
    SNIFF_BYTES,
    extension_for_mime,
    extension_of,
    filename_from_disposition,
    is_text_type,
    looks_like_text,
    sniff_archive,
    sniff_media,
)
from ..object_info import input_options
from ..urls import (
    BodyDeadline,
    PinnedSession,
    Scope,
    UrlPolicy,
    check_url,
    is_http_url,
    new_session,
    open_url,
    refuse_encoding,
)
from ..workflow import meta_title
from .archives import CHUNK, ExtractResult, InputLimits, archive_kind, extract_archive

__all__ = [
    "FetchedUrl", "InputLimits", "InputRef", "PlacedInputs", "absolutize_input_paths",
    "check_input_origin", "check_input_references", "forget_cog_download", "govern_cog_downloads", "fetch_workflow_urls", "missing_inputs_error", "place_input_file",
    "require_inputs", "resolve_input_source", "upload_name",
]

MAX_PARALLEL_DOWNLOADS = 4
# --- what a file is --------------------------------------------------------------


def _check_is_media(head: bytes, content_type: str, what: str) -> None:
    """Refuse text answers; accept known magic and unknown binary (loaders vary)."""
    if sniff_media(head) or sniff_archive(head):
        return
    if is_text_type(content_type) or looks_like_text(head):
        kind = "".join(ch for ch in content_type.split(";", 1)[0].strip()[:60] if ch.isprintable()) or "text"
        # Never quote the body: it may come from a service that should not have answered.
        raise InputFileError(
            f"{what} is not media: the server sent {kind}, not an image, video or audio file.",
            fix="Use a direct link to the file itself (it should download, not open a web page).",
        )


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
    kind: str  # "file", "zip" or "tar"
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


# --- downloads -----------------------------------------------------------------------


class _Budget:
    """Bytes all downloads of one call may write together (max_input_bytes), thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int, url: str) -> None:
        with self._lock:
            if self.used + size > self.limit:
                raise _too_large(url, self.limit)
            self.used += size

    def give_back(self, size: int) -> None:
        with self._lock:
            self.used -= size


def _too_large(url: str, limit: int) -> InputTooLargeError:
    return InputTooLargeError(
        f"URL {redact(url)!r} is larger than the input limit of {limit} bytes (the limit counts all "
        "inputs of a prediction together).",
        fix="Use a smaller file, or raise CW_MAX_INPUT_BYTES.", limit=limit, url=redact(url),
    )


class _Cancelled(Exception):
    """Another download of the same call failed; stop quietly."""


def _download(
    session: PinnedSession, url: str, directory: Path, policy: UrlPolicy, budget: _Budget,
    *, prefix: str = "", stop: threading.Event | None = None,
) -> tuple[Path, int]:
    """GET ``url`` into ``directory`` under a name taken from the URL; returns (path, size).

    The body streams into a hidden .part file; the name (and its extension,
    sniffed when the URL has none) is decided only once the content passed
    the media check, then the file is renamed into place.
    """
    response, target = open_url(session, url, policy)
    partial = directory / f".download-{uuid.uuid4().hex}.part"
    taken = 0
    try:
        with response:
            if response.status_code != 200:
                raise DownloadError(
                    f"URL {target.shown!r} (host {target.host}) answered HTTP {response.status_code}.",
                    fix="Check that the URL is correct and public (open it in a browser), then try again.",
                    url=target.shown, status=response.status_code,
                )
            refuse_encoding(response, target, "URL")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > budget.limit - budget.used:
                raise _too_large(url, budget.limit)
            content_type = response.headers.get("content-type", "")
            head = b""
            checked = False
            with partial.open("wb") as handle, BodyDeadline(response, url, policy):
                try:
                    for block in response.iter_content(CHUNK):
                        if stop is not None and stop.is_set():
                            raise _Cancelled()
                        budget.take(len(block), url)
                        taken += len(block)
                        handle.write(block)
                        if not checked:
                            head += block[: SNIFF_BYTES - len(head)]
                            if len(head) >= SNIFF_BYTES:
                                _check_is_media(head, content_type, f"URL {redact(url)!r}")
                                checked = True
                except requests.RequestException as exc:
                    if session.scope is not None:
                        session.scope.check()
                    raise DownloadError(
                        f"URL {target.shown!r} (host {target.host}) stopped sending after {taken} bytes "
                        f"({type(exc).__name__}).",
                        fix="Try again; if it keeps failing, the server is unreliable: host the file elsewhere.",
                        url=redact(url),
                    ) from None
            if session.scope is not None:
                session.scope.check()  # an abort shuts the socket down, which a body without length reads as its end
            if taken == 0:
                raise InputFileError(f"URL {redact(url)!r} returned an empty body.", url=redact(url))
            if not checked:
                _check_is_media(head, content_type, f"URL {redact(url)!r}")
            name = safe_filename(filename_from_disposition(response.headers.get("content-disposition")) or "") \
                or safe_filename(unquote(urlsplit(url).path)) or "download"
            if not extension_of(name):
                name += sniff_media(head) or sniff_archive(head) or extension_for_mime(content_type)
            placed = directory / f"{prefix}{name}"
            os.replace(partial, placed)
            return placed, taken
    except BaseException:
        partial.unlink(missing_ok=True)
        budget.give_back(taken)
        raise


# --- input_file as a string (CLI) ------------------------------------------------------

_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL | re.IGNORECASE)
_OTHER_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


def _decode_data_uri(value: str, limits: InputLimits) -> tuple[bytes, str, str]:
    """(content, mime type, name from a ;name= parameter) of a data: URI."""
    match = _DATA_URI.match(value.strip())
    if not match:
        raise InputFileError(
            "The data: URI is malformed (expected data:<type>[;base64],<data>).",
            fix="Build it as data:image/png;base64,<base64 of the file>.",
        )
    params = [p.strip() for p in match.group("params").split(";") if p.strip()]
    payload = match.group("data")
    if len(payload) * 3 // 4 > limits.max_input_bytes:
        raise InputTooLargeError(
            f"The data: URI holds more than the input limit of {limits.max_input_bytes} bytes.",
            fix="Send the file as an upload or URL, or raise CW_MAX_INPUT_BYTES.", limit=limits.max_input_bytes,
        )
    name = next((unquote(p.split("=", 1)[1]) for p in params if p.lower().startswith(("name=", "filename="))), "")
    if any(p.lower() == "base64" for p in params):
        compact = re.sub(r"\s+", "", unquote(payload))
        compact += "=" * (-len(compact) % 4)
        try:
            url_safe = "-" in compact or "_" in compact  # base64url, as some tools write it
            content = base64.b64decode(compact, altchars=b"-_" if url_safe else None, validate=True)
        except ValueError:
            raise InputFileError(
                "The data: URI says base64 but its data is not valid base64.",
                fix="Encode the file with standard base64 (base64 -w0 file).",
            ) from None
    else:
        content = unquote_to_bytes(payload)
    if not content:
        raise InputFileError("The data: URI holds no data.", fix="Put the file's bytes after the comma.")
    if len(content) > limits.max_input_bytes:
        raise InputTooLargeError(
            f"The data: URI holds {len(content)} bytes, more than the input limit of {limits.max_input_bytes}.",
            fix="Send a smaller file, or raise CW_MAX_INPUT_BYTES.", limit=limits.max_input_bytes,
        )
    return content, match.group("mime").strip().lower(), name


def resolve_input_source(
    value: str, tmp_dir: Path, policy: UrlPolicy, limits: InputLimits, *, session: PinnedSession | None = None,
    scope: Scope | None = None,
) -> Path:
    """Turn the CLI's ``--input-file`` (a path, an http(s) URL or a data: URI) into a local file.

    URLs and data URIs are written into ``tmp_dir``: a URL under its own name
    (Content-Disposition or the URL path, extension sniffed when missing), a
    data URI as ``input.<ext>`` from its MIME type or content. The result then
    goes through place_input_file exactly like an upload.
    """
    tmp_dir = Path(tmp_dir)
    text = value.strip()
    if text[:5].lower() == "data:":
        content, mime, name = _decode_data_uri(text, limits)
        ext = extension_of(name) or extension_for_mime(mime) or sniff_media(content[:SNIFF_BYTES]) \
            or sniff_archive(content[:SNIFF_BYTES]) or ""
        tmp_dir.mkdir(parents=True, exist_ok=True)
        safe = safe_filename(name) if name else ""  # "x.png/" leaves nothing: the folder itself must not be the target
        target = tmp_dir / (safe if safe and extension_of(safe) else f"input{ext}")
        partial = target.with_name(f".{target.name}.part")
        partial.write_bytes(content)
        os.replace(partial, target)
        return target
    if is_http_url(text):
        tmp_dir.mkdir(parents=True, exist_ok=True)
        own_session = session is None
        session = session or new_session(scope)
        try:
            path, _ = _download(session, text, tmp_dir, policy, _Budget(limits.max_input_bytes))
            return path
        except WrapperError as error:
            raise _with_prefix(error, "input_file") from None
        finally:
            if own_session:
                session.close()
    if _OTHER_SCHEME.match(text):
        check_url(text, policy)  # raises UnsafeInputError naming the scheme
    path = Path(text).expanduser()
    if not path.exists():
        raise MissingInputError(
            f"input_file {text!r} does not exist.",
            fix="Give an existing file path, an http(s) URL, or a data: URI.", filename=text,
        )
    return path


# --- input_file from Cog ------------------------------------------------------------------
#
# How Cog 0.23 (coglet) hands a file input to predict(), read from its SDK and checked against
# the real server: the request's JSON string goes to cog.types.Path.validate only when it is an
# http(s) URL or a data: URI; that makes a URLPath, and before predict() runs the worker calls
# URLPath.convert() on it (in a thread pool: "Downloading N URLPath input(s)"), which streams
# the URL with a bare requests.get (no address policy, no byte cap, no total deadline) into a
# temporary file and passes predict() that file as a cog Path. Any other string (a server path
# such as /etc/hostname, file:///...) reaches predict() unchanged, as a str.
#
# So the fetch can be governed from inside the worker: govern_cog_downloads() replaces
# URLPath.convert with our own fetcher (resolve_input_source: the URL policy on every hop, the
# input byte cap, CW_URL_TOTAL_TIMEOUT), and remembers each file it wrote. check_input_origin()
# then accepts, for a prediction, only a file this process downloaded that way, or an http(s)
# URL or data: URI (fetched by us); a local path only when the caller says it is its own (the
# CLI, Python callers). A convert already running is not cancelled by Cog's cancel, but it
# cannot outlast CW_URL_TOTAL_TIMEOUT nor exceed CW_MAX_INPUT_BYTES.

_COG_DOWNLOADS: set[str] = set()
_COG_LOCK = threading.Lock()


def govern_cog_downloads(current: Any) -> bool:
    """Make Cog fetch URL file inputs through our fetcher; ``current()`` gives (UrlPolicy, InputLimits).

    Returns False when the Cog SDK is not importable (the CLI without Cog).
    Idempotent: a second call only changes where the policy comes from.
    """
    try:
        from cog import types as cog_types
    except ImportError:
        return False

    def convert(self: Any) -> Any:
        if getattr(self, "_path", None) is None:
            policy, limits = current()
            folder = Path(tempfile.mkdtemp(prefix="cw-cog-input-"))
            try:
                path = resolve_input_source(str(self.source), folder, policy, limits)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            with _COG_LOCK:
                _COG_DOWNLOADS.add(str(path))
            self._path = cog_types.Path(path)
        return self._path

    convert.__doc__ = "URLPath.convert, replaced by comfyui_wrapper.inputs.references.govern_cog_downloads."
    cog_types.URLPath.convert = convert
    return True


def check_input_origin(input_file: Path | str, *, local_allowed: bool) -> None:
    """Refuse an input_file that names a file already on this machine, unless the caller owns it.

    Accepted: an http(s) URL or data: URI (we fetch it), a file our governed
    Cog download wrote for this process, or any path when ``local_allowed``
    (the CLI and Python callers pass their own files). Decided from the value
    alone, before any file system access: the answer says nothing about what
    exists on the server.
    """
    text = str(input_file).strip()
    if local_allowed or is_http_url(text) or text[:5].lower() == "data:":
        return
    with _COG_LOCK:
        if str(input_file) in _COG_DOWNLOADS:
            return
    raise UnsafeInputError(
        "input_file must be an uploaded file, an http(s) URL or a data: URI; a path on the server is refused.",
        fix="Upload the file (or give its public URL) instead of naming a path.",
    )


def forget_cog_download(input_file: Path | str) -> None:
    """The file is placed (or refused): no later prediction may name it, and its temp folder goes."""
    with _COG_LOCK:
        known = str(input_file) in _COG_DOWNLOADS
        _COG_DOWNLOADS.discard(str(input_file))
    if known:
        path = Path(input_file)
        path.unlink(missing_ok=True)
        if path.parent.name.startswith("cw-cog-input-"):
            shutil.rmtree(path.parent, ignore_errors=True)


# --- URLs inside the workflow ----------------------------------------------------------


@dataclass(frozen=True)
class _Loader:
    """How a known loader input uses its value."""

    kind: str  # "file" or "directory"
    relative_to: str = "input"  # "input": joined to input/ by ComfyUI; "cwd": opened as a path


# Loader inputs that read from input/ but that object_info does not flag with
# *_upload (custom nodes), plus the core ones so fetch_workflow_urls (which has
# no object_info) knows them too. Keep this short: the generic rules (upload
# flags, media-extension URLs, inputs named "directory") cover the rest.
KNOWN_LOADERS: dict[tuple[str, str], _Loader] = {
    # ComfyUI core
    ("LoadImage", "image"): _Loader("file"),
    ("LoadImageMask", "image"): _Loader("file"),
    ("LoadVideo", "file"): _Loader("file"),
    ("LoadAudio", "audio"): _Loader("file"),
    # ...and its dataset loaders: `folder` is a combo of input/'s subfolders, with no upload flag
    ("LoadImageDataSetFromFolder", "folder"): _Loader("directory"),
    ("LoadImageTextDataSetFromFolder", "folder"): _Loader("directory"),
    # ComfyUI-VideoHelperSuite: combo lists of input/ with no upload flag
    ("VHS_LoadVideo", "video"): _Loader("file"),
    ("VHS_LoadVideoFFmpeg", "video"): _Loader("file"),
    ("VHS_LoadAudioUpload", "audio"): _Loader("file"),
    ("VHS_LoadImages", "directory"): _Loader("directory"),
    # ...and its *Path nodes, which open the string as a path from ComfyUI's working directory
    ("VHS_LoadVideoPath", "video"): _Loader("file", "cwd"),
    ("VHS_LoadVideoFFmpegPath", "video"): _Loader("file", "cwd"),
    ("VHS_LoadImagePath", "image"): _Loader("file", "cwd"),
    ("VHS_LoadImagesPath", "directory"): _Loader("directory", "cwd"),
    ("VHS_LoadAudio", "audio_file"): _Loader("file", "cwd"),
    # ComfyUI-Inspire-Pack: os.path.isdir(directory), i.e. also the working directory
    ("LoadImagesFromDir //Inspire", "directory"): _Loader("directory", "cwd"),
    ("LoadImageListFromDir //Inspire", "directory"): _Loader("directory", "cwd"),
    ("LoadImage //Inspire", "image"): _Loader("file"),
    # Older packs' directory loader, resolved under input/
    ("LoadImagesFromDirectory", "directory"): _Loader("directory"),
}


@dataclass(frozen=True)
class _Use:
    node_id: str
    class_type: str
    title: str
    input_name: str
    relative_to: str

    def where(self) -> str:
        title = f" {printable(self.title, 100)!r}" if self.title and self.title != self.class_type else ""
        return (f"Node {printable(self.node_id, 80)}{title} ({printable(self.class_type, 100)}), "
                f"input {printable(self.input_name, 100)!r}")


@dataclass(frozen=True)
class FetchedUrl:
    """One URL downloaded into input/, and the workflow inputs that now name it."""

    url: str = field(repr=False)
    local_name: str  # relative to input/, what input-relative loaders now say
    path: Path
    size: int
    uses: tuple[tuple[str, str], ...]  # (node_id, input_name)

    @property
    def redacted_url(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        return (f"FetchedUrl(url={self.redacted_url!r}, local_name={self.local_name!r}, "
                f"size={self.size}, uses={self.uses!r})")


def _iter_string_inputs(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str, str]]:
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


def _url_is_media(url: str) -> bool:
    return extension_of(PurePosixPath(urlsplit(url).path).name) in MEDIA_EXTENSIONS


def _with_prefix(error: WrapperError, where: str, **extra: Any) -> WrapperError:
    """The same error class and fix, its message prefixed with where it happened."""
    fields = {**error.fields, **extra}
    return type(error)(f"{where}: {error.message}", fix=error.fix, **fields)


def fetch_workflow_urls(
    workflow: dict[str, Any], input_dir: Path, policy: UrlPolicy, limits: InputLimits, *,
    session: PinnedSession | None = None, scope: Scope | None = None,
) -> tuple[dict[str, Any], list[FetchedUrl]]:
    """Download media URLs named in the workflow into input/; return a rewritten copy.

    A string input is fetched when it is an http(s) URL in a known loader
    input (KNOWN_LOADERS) or any URL whose path ends in a media extension.
    Each distinct URL is fetched once (several in parallel) and saved as
    ``<8 hex of sha256(url)>_<name>``, so two URLs ending in the same name
    never collide; every input naming it is rewritten (to that name, or to its
    absolute path for loaders that open paths from the working directory).
    Non-http schemes (file:, ftp:, data:) in such inputs are refused. On any
    failure the files this call downloaded are removed and the first error in
    workflow order is raised, naming node, input and (redacted) URL.
    """
    input_dir = Path(input_dir)
    uses: dict[str, list[_Use]] = {}
    for node_id, node, name, value in _iter_string_inputs(workflow):
        text = value.strip()
        class_type = str(node.get("class_type", ""))
        loader = KNOWN_LOADERS.get((class_type, name))
        use = _Use(node_id, class_type, (meta_title(node) or ""), name, loader.relative_to if loader else "input")
        if is_http_url(text):
            if loader or _url_is_media(text):
                uses.setdefault(text, []).append(use)
        elif text[:5].lower() == "data:" and loader:
            raise UnsafeInputError(
                f"{use.where()}: data: URIs are accepted only for input_file, not inside the workflow.",
                fix="Pass the file as input_file (a data: URI works there) and name it in the workflow.",
                node_id=node_id, input_name=name,
            )
        elif _OTHER_SCHEME.match(text) and (loader or _url_is_media(text)):
            try:
                check_url(text, policy)
            except WrapperError as error:
                raise _with_prefix(error, use.where(), node_id=node_id, input_name=name) from None
    if not uses:
        return copy.deepcopy(workflow), []

    # Refuse unsafe URLs before any request is made.
    for url, url_uses in uses.items():
        try:
            check_url(url, policy)
        except WrapperError as error:
            raise _with_prefix(error, url_uses[0].where(), node_id=url_uses[0].node_id,
                               input_name=url_uses[0].input_name, url=redact(url)) from None

    input_dir.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits.max_input_bytes)
    stop = threading.Event()
    if scope is not None:
        scope.on_abort(stop.set)

    def fetch_one(url: str) -> tuple[Path, int]:
        own = session is None
        http = session or new_session(scope)
        try:
            return _download(http, url, input_dir, policy, budget, stop=stop,
                             prefix=hashlib.sha256(url.encode()).hexdigest()[:8] + "_")
        except BaseException:
            stop.set()
            raise
        finally:
            if own:
                http.close()

    urls = list(uses)
    outcomes: dict[str, tuple[Path, int] | BaseException] = {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_DOWNLOADS, len(urls)), thread_name_prefix="input-url") as pool:
        futures = {url: pool.submit(fetch_one, url) for url in urls}
        for url, future in futures.items():
            try:
                outcomes[url] = future.result()
            except BaseException as exc:  # collected; raised below in workflow order
                outcomes[url] = exc
                for other in futures.values():
                    other.cancel()
    failures = [(url, outcome) for url, outcome in outcomes.items() if isinstance(outcome, BaseException)]
    if failures or len(outcomes) < len(urls):
        for outcome in outcomes.values():
            if isinstance(outcome, tuple):
                outcome[0].unlink(missing_ok=True)
        real = [(url, exc) for url, exc in failures if not isinstance(exc, (_Cancelled, CancelledError))]
        url, failure = (real or failures)[0]
        first = uses[url][0]
        if isinstance(failure, WrapperError):
            others = f" (also used by {len(uses[url]) - 1} more input(s))" if len(uses[url]) > 1 else ""
            raise _with_prefix(failure, first.where() + others, node_id=first.node_id,
                               input_name=first.input_name, url=redact(url)) from None
        raise failure

    new_workflow = copy.deepcopy(workflow)
    fetched: list[FetchedUrl] = []
    for url in urls:
        path, size = outcomes[url]  # type: ignore[misc]
        for use in uses[url]:
            node = new_workflow[_original_key(workflow, use.node_id)]
            node["inputs"][use.input_name] = str(path) if use.relative_to == "cwd" else path.name
        fetched.append(FetchedUrl(url=url, local_name=path.name, path=path, size=size,
                                  uses=tuple((u.node_id, u.input_name) for u in uses[url])))
    return new_workflow, fetched


def _original_key(workflow: dict[str, Any], node_id: str) -> Any:
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
    kind: str  # "file" or "directory"
    relative_to: str  # "input" or "cwd" (see KNOWN_LOADERS)
    path: Path  # absolute
    exists: bool

    def where(self) -> str:
        return _Use(self.node_id, self.class_type, self.title, self.input_name, self.relative_to).where()


def _is_upload_input(opts: dict[str, Any]) -> bool:
    """Inputs the ComfyUI frontend gives an upload button: *_upload or upload flags, input folder."""
    flagged = any(key.endswith("upload") and bool(value) for key, value in opts.items())
    return flagged and opts.get("image_folder", "input") == "input"


_ANNOTATION = re.compile(r"\s*\[(input|output|temp)\]\s*$")


def _relative_input_path(
    value: str, input_dir: Path, loader: _Loader, where: str, node_id: str, name: str,
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
            f"{where}: {value!r} {reason}; inputs are read only from inside input/.",
            fix="Name the file relative to input/ (as it appears inside your zip), without '..' or a leading '/'.",
            node_id=node_id, input_name=name, value=value,
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
    for node_id, node, name, value in _iter_string_inputs(workflow):
        class_type = str(node.get("class_type", ""))
        text = value.strip()
        if not text or is_http_url(text) or _OTHER_SCHEME.match(text) or text[:5].lower() == "data:":
            continue
        loader = KNOWN_LOADERS.get((class_type, name))
        if loader is None:
            opts = input_options(object_info, class_type).get(name)
            if opts is not None and _is_upload_input(opts):
                loader = _Loader("file")
            elif (name == "directory" and "save" not in class_type.lower()
                  and not PurePosixPath(text).is_absolute() and not re.match(r"^[A-Za-z]:", text)):
                loader = _Loader("directory")
        if loader is None:
            continue
        use = _Use(node_id, class_type, (meta_title(node) or ""), name, loader.relative_to)
        relative = _relative_input_path(text, input_dir, loader, use.where(), node_id, name)
        if relative is None:
            continue
        path = input_dir / relative if relative else input_dir
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise UnsafeInputError(
                f"{use.where()}: {value!r} leads outside input/ through a link.",
                node_id=node_id, input_name=name, value=value,
            )
        exists = path.is_dir() if loader.kind == "directory" else path.is_file()
        refs.append(InputRef(node_id, class_type, use.title, name, value, relative, loader.kind,
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
            f"  - {ref.where()}: {what} {ref.relative_path or ref.value!r} is missing"
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
            new_workflow[_original_key(workflow, ref.node_id)]["inputs"][ref.input_name] = str(ref.path)
    return new_workflow
