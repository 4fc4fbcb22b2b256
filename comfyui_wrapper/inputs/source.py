"""Where ``input_file`` comes from: a CLI path, an http(s) URL, a data: URI, or Cog's own fetch.

``resolve_input_source`` turns the CLI's ``--input-file`` string into a local
file (a URL through ``fetch.download``, a data: URI decoded with the input
byte cap). Cog's fetch of a URL file input is governed by
``govern_cog_downloads``, and ``check_input_origin`` refuses a server path a
request names (see "input_file from Cog" below). The local file then goes
through ``place.place_input_file`` like an upload.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from ..errors import InputFileError, InputTooLargeError, MissingInputError, UnsafeInputError, WrapperError
from ..filetypes import SNIFF_BYTES, extension_for_mime, extension_of, sniff_archive, sniff_media
from ..urls import PinnedSession, Scope, UrlPolicy, check_url, is_http_url, new_session
from .archives import InputLimits
from .fetch import OTHER_SCHEME, Budget, download, with_prefix
from .place import safe_filename

__all__ = ["check_input_origin", "forget_cog_download", "govern_cog_downloads", "resolve_input_source"]

# --- input_file as a string (CLI) ------------------------------------------------------

_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL | re.IGNORECASE)


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
            path, _ = download(session, text, tmp_dir, policy, Budget(limits.max_input_bytes))
            return path
        except WrapperError as error:
            raise with_prefix(error, "input_file") from None
        finally:
            if own_session:
                session.close()
    if OTHER_SCHEME.match(text):
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

    convert.__doc__ = "URLPath.convert, replaced by comfyui_wrapper.inputs.source.govern_cog_downloads."
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
