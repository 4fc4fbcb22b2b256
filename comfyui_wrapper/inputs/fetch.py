"""One media URL into a folder: the download that ``source.py`` and ``workflow_urls.py`` share.

``download`` goes through ``urls.open_url`` (no loopback/private/metadata
targets, checked on every redirect), streams into a hidden ``.part`` file
against a byte budget shared by all downloads of one prediction
(max_input_bytes), refuses text answers (an HTML error page is not an image),
and renames the file into place only when it is complete and checked.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from ..errors import DownloadError, InputFileError, InputTooLargeError, WrapperError
from ..filetypes import (
    SNIFF_BYTES,
    extension_for_mime,
    extension_of,
    filename_from_disposition,
    is_text_type,
    looks_like_text,
    sniff_archive,
    sniff_media,
)
from ..urls import BodyDeadline, PinnedSession, UrlPolicy, open_url, refuse_encoding
from .archives import CHUNK
from .place import safe_filename

__all__ = ["Budget", "Cancelled", "OTHER_SCHEME", "download", "with_prefix"]

# A URL-looking value with a scheme (file://, ftp://...): refused where a URL would be fetched.
OTHER_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


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


# --- downloads -----------------------------------------------------------------------


class Budget:
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
        f"URL {url!r} is larger than the input limit of {limit} bytes (the limit counts all "
        "inputs of a prediction together).",
        fix="Use a smaller file, or raise CW_MAX_INPUT_BYTES.", limit=limit, url=url,
    )


class Cancelled(Exception):
    """Another download of the same call failed; stop quietly."""


def download(
    session: PinnedSession, url: str, directory: Path, policy: UrlPolicy, budget: Budget,
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
                            raise Cancelled()
                        budget.take(len(block), url)
                        taken += len(block)
                        handle.write(block)
                        if not checked:
                            head += block[: SNIFF_BYTES - len(head)]
                            if len(head) >= SNIFF_BYTES:
                                _check_is_media(head, content_type, f"URL {url!r}")
                                checked = True
                except requests.RequestException as exc:
                    if session.scope is not None:
                        session.scope.check()
                    raise DownloadError(
                        f"URL {target.shown!r} (host {target.host}) stopped sending after {taken} bytes "
                        f"({type(exc).__name__}).",
                        fix="Try again; if it keeps failing, the server is unreliable: host the file elsewhere.",
                        url=url,
                    ) from None
            if session.scope is not None:
                session.scope.check()  # an abort shuts the socket down, which a body without length reads as its end
            if taken == 0:
                raise InputFileError(f"URL {url!r} returned an empty body.", url=url)
            if not checked:
                _check_is_media(head, content_type, f"URL {url!r}")
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


def with_prefix(error: WrapperError, where: str, **extra: Any) -> WrapperError:
    """The same error class and fix, its message prefixed with where it happened."""
    fields = {**error.fields, **extra}
    return type(error)(f"{where}: {error.message}", fix=error.fix, **fields)
