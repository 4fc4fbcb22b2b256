"""Fetch one large file over HTTP(S): parallel byte ranges, resume, verify, rename.

Why it is built this way:

- Weight files are gigabytes and CDNs cap each connection (tens of MB/s), so a
  file is split into byte ranges fetched over several keep-alive connections at
  once (one ``requests.Session`` per worker thread). A server without Range
  support is still fetched, as one stream.
- Part sizes are *guided*: each new part is ``remaining / (2 * connections)``,
  capped at ``part_bytes`` and floored at ``min(MIN_PART_BYTES, part_bytes)``.
  Early parts are big (few requests, each costing a round trip), the last ones
  small, so every connection stays busy until the end and all finish together.
  The factor 2 matters for hashing: with ``remaining / connections`` the first
  part would end only with the whole download, holding the hashed prefix back
  until then (a simulation of 1 GB over 8 connections: 0.27 s of hashing left
  after the last byte, against 0.003 s; 48 requests instead of 37).
- The first request is ``Range: bytes=0-``. Its answer tells the size, whether
  ranges work, the final URL after redirects and the Content-Disposition name,
  and its body becomes part 0: no round trip is spent on a separate probe.
  ``admit`` sees that size before any body byte is read, so a caller with a
  budget refuses there (the cache does: it never probes a weight's size).
- A ``window`` keeps only a byte range of the body (a tar member: see
  tar_weights): its first bytes, read from the first response, say where the
  range lies; the range is then fetched like a whole file (parallel parts,
  resume, hash, rename), so a tar weight needs no archive on disk. ``stream``
  hands one body to a reader front to back instead (a tar extracted as it
  arrives), resuming a broken connection where it stopped.
- A dropped connection costs only what is missing: the part is re-requested from
  the byte where it stopped (a server without ranges is re-read from the start,
  the bytes already on disk skipped). Failures that made no progress are retried
  with exponential backoff; 404/403 and friends are not retried.
- Bytes go to ``.<name>.<pid>.<random>.incomplete`` beside ``dest`` (same file
  system, so the final ``os.replace`` is atomic). Size and sha256 are checked
  before that rename, so a partial or corrupt file never appears under its final
  name; on any error, KeyboardInterrupt included, the temporary file is removed.
  (The file is not fsync'ed: a killed process is safe, a power cut is not.)
  Its full size is reserved first (``posix_fallocate``), so a full disk fails
  at once, not at 97 %, and ENOSPC becomes CacheBudgetError naming the file.
- sha256 costs almost nothing after the last byte: a hasher thread reads the
  temporary file back as its contiguous written prefix grows, so it hashes what
  is on disk, in parallel with the download, and only the last few MB remain
  when the network is done.
- Every request goes through a ``urls.PinnedSession``: each hop (redirects
  included) is parsed once with the client's own parser, resolved once, every
  address checked, and the connection made to that checked address only.
  Caller headers (tokens) go only to the first hop's exact scheme+host+port;
  part requests go straight to the final URL, checked again. Messages and logs
  name URLs only redacted, with the host contacted, and requests' own
  exceptions (which quote URLs) are never chained; no body is ever quoted.
- Bounded: a ``urls.Scope`` carries the prediction's deadline and cancel (an
  abort shuts down every socket, so blocked reads end at once); ``max_bytes``
  stops a body of unknown size as it streams; bodies are asked for and
  accepted only without Content-Encoding (no decompression bomb).

This module knows nothing about the cache: ``cache.py`` decides where files go.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import logging
import math
import os
import random
import re
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, TypeVar
from urllib.parse import unquote, urlsplit

import requests
import urllib3

from ..errors import (
    CacheBudgetError,
    ChecksumMismatchError,
    UnsafeInputError,
    WeightDownloadError,
    WrapperError,
    redact,
    redacted_repr,
)
from ..filetypes import filename_from_disposition
from ..logs import get_logger
from ..sizes import human_bytes
from ..urls import MAX_REDIRECTS, PinnedSession, Scope, Target, UrlPolicy, new_session, next_hop

log = get_logger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024
MIN_PART_BYTES = 8 * MiB  # smallest ranged part; files under two of these use one stream
READ_BYTES = 1 * MiB  # one socket read / file write
HASH_BYTES = 4 * MiB  # one read-back by the hasher
BACKOFF_BASE_S = 0.5  # first retry waits about this long, doubling each time
BACKOFF_MAX_S = 20.0
RETRY_AFTER_MAX_S = 60.0  # longest Retry-After we honour
PROGRESS_EVERY_S = 0.5  # how often fetch() calls the progress callback
_RATE_WINDOW_S = 5.0

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)
_FATAL_STATUS_FIX = {
    401: "The file needs credentials: set HF_TOKEN (Hugging Face) or CIVITAI_API_TOKEN (Civitai).",
    403: (
        "The server refused access: the file may need a token (HF_TOKEN / CIVITAI_API_TOKEN) or "
        "accepting the model's licence on its web page, or the link has expired."
    ),
    404: "The file is not at this URL (any more): check the URL, or update the manifest entry.",
    410: "The file was removed from this URL: find a new source and update the manifest entry.",
}
_RETRY_STATUS = {408, 425, 429}
_TIMEOUT_FIX = "The server is slow or unreachable: check the URL, retry later, or raise CW_DOWNLOAD_TIMEOUT."
_BROKEN_FIX = "The connection kept failing: check the network and retry later."


# --- public types -------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One progress report; ``total`` and ``eta`` are None while the size is unknown."""

    name: str
    bytes_done: int
    total: int | None
    rate: float  # bytes per second over the last few seconds
    eta: float | None  # seconds left at that rate

    @property
    def finished(self) -> bool:
        return self.total is not None and self.bytes_done >= self.total


@redacted_repr
@dataclass(frozen=True)
class ProbeResult:
    url: str  # the final URL after redirects
    size: int | None  # Content-Range total or Content-Length; None if the server does not say
    accepts_ranges: bool
    filename_hint: str | None  # from Content-Disposition


@dataclass(frozen=True)
class Window:
    """The bytes of a response body that make the file: ``length`` bytes from ``offset`` (a tar member)."""

    offset: int
    length: int


class NoWindow(Exception):
    """Raised by a ``window`` callback: this body has no single byte range to keep (fetch gives up quietly)."""


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size: int
    sha256: str  # always computed, verified when one was given
    bytes_transferred: int  # bytes read from the network (more than size after a restart)
    seconds: float
    filename_hint: str | None  # from Content-Disposition, for URLs such as /api/download/models/N


# --- progress helpers ---------------------------------------------------------------


def _amount(count: float, unit: float) -> str:
    return f"{count / unit:.1f}"


def format_progress(p: Progress) -> str:
    """``name: 1.2/4.0 GB, 85 MB/s, ETA 33 s`` (decimal units, as download tools use)."""
    scale = max(p.total or 0, p.bytes_done)
    unit, label = (1e9, "GB") if scale >= 1e9 else (1e6, "MB")
    total = _amount(p.total, unit) if p.total is not None else "?"
    eta = f"ETA {p.eta:.0f} s" if p.eta is not None else "ETA ?"
    if p.finished:
        eta = "done"
    return f"{p.name}: {_amount(p.bytes_done, unit)}/{total} {label}, {p.rate / 1e6:.0f} MB/s, {eta}"


def log_progress(every_s: float = 10.0, *, logger: logging.Logger | None = None,
                 write: Callable[[str], None] | None = None, final: bool = True) -> Callable[[Progress], None]:
    """A progress callback that writes a line at most every ``every_s`` seconds (the one throttle).

    The first report is always written, and the final (complete) one unless ``final`` is
    False (the cache logs its own "ready" line). ``write`` replaces the logger.
    """
    target = logger or log
    emit = write or (lambda line: target.info("%s", line))
    last = [-math.inf]

    def report(p: Progress) -> None:
        if p.finished and not final:
            return
        now = time.monotonic()
        if p.finished or now - last[0] >= every_s:
            last[0] = now
            emit(format_progress(p))

    return report


def tqdm_progress(name: str | None = None) -> Callable[[Progress], None]:
    """A progress callback drawing a tqdm bar (for terminals); it closes itself when done."""
    from tqdm import tqdm

    bar: list[tqdm] = []

    def report(p: Progress) -> None:
        if not bar:
            bar.append(tqdm(total=p.total, desc=name or p.name, unit="B", unit_scale=True, unit_divisor=1000))
        b = bar[0]
        if p.total is not None and b.total != p.total:
            b.total = p.total
        b.update(p.bytes_done - b.n)
        if p.finished:
            b.close()

    return report


def default_progress(every_s: float = 10.0, *, write: Callable[[str], None] | None = None,
                     final: bool = True) -> Callable[[Progress], None]:
    """tqdm on a terminal, periodic log lines otherwise (Cog and Replicate logs)."""
    return tqdm_progress() if sys.stderr.isatty() else log_progress(every_s, write=write, final=final)


# --- small helpers --------------------------------------------------------------------




def _name_of(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return unquote(path.rsplit("/", 1)[-1]) or redact(url)


def _caller_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """The caller's headers (tokens), minus the ones this module must control itself."""
    return {k: v for k, v in (headers or {}).items() if k.lower() not in ("range", "accept-encoding", "if-range")}


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: many clients retrying do not march in step."""
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return min(RETRY_AFTER_MAX_S, float(value)) if value.isdigit() else None


class _Retryable(Exception):
    """A transient failure: a timeout, a dropped connection, a 5xx or 429."""

    def __init__(self, reason: str, *, retry_after: float | None = None, fix: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.fix = fix


class _Cancelled(Exception):
    """Another worker failed or the caller was interrupted: stop quietly."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to ``bytes=0-``: an empty file, or a server that dislikes open ranges."""


# --- one HTTP request -----------------------------------------------------------------


class _Requester:
    """Sends GETs for one download: redirect hops checked, auth only to the origin."""

    def __init__(self, name: str, url: str, policy: UrlPolicy, auth: dict[str, str], timeout_s: float,
                 scope: Scope | None = None, auth_origin: tuple[str, str, int] | None = None) -> None:
        self.name = name
        self.url = url
        self.policy = policy
        self.auth = auth
        self.timeout_s = timeout_s
        self.scope = scope if scope is not None else Scope()
        self.origin = auth_origin  # set by the first hop: the only origin the caller's headers go to

    def session(self) -> PinnedSession:
        return new_session(self.scope)

    def failure(self, reason: str, *, fix: str | None = None, url: str | None = None) -> WeightDownloadError:
        url = url or self.url
        return WeightDownloadError(
            f"Downloading {self.name} from {url} failed: {reason}.", fix=fix, filename=self.name, url=url,
        )

    def _check(self, session: requests.Session, url: str) -> Target:
        if not isinstance(session, PinnedSession):
            raise TypeError("downloads need a session from urls.new_session()")
        try:
            return session.checked(url, self.policy)
        except UnsafeInputError as exc:
            raise UnsafeInputError(
                f"Refused to download {self.name}: {exc.message}", fix=exc.fix, filename=self.name, url=url,
            ) from None
        except WrapperError as exc:  # DNS failure and the like
            raise self.failure(exc.message.rstrip("."), fix=exc.fix, url=url) from None

    def get(self, session: requests.Session, url: str, first: int | None, last: int | None = None) -> requests.Response:
        """GET ``url`` (bytes ``first``..``last`` when ``first`` is given); 200/206 or an error."""
        headers = {"Accept-Encoding": "identity"}
        if first is not None:
            headers["Range"] = f"bytes={first}-{'' if last is None else last}"
        current = self._check(session, url)
        if self.origin is None:
            self.origin = current.origin
        for _ in range(MAX_REDIRECTS + 1):
            self.scope.check()
            sent = dict(headers, **self.auth) if current.origin == self.origin else headers
            try:
                response = session.get(
                    current.raw_url, headers=sent, stream=True, allow_redirects=False,
                    timeout=(self.timeout_s, self.timeout_s),
                )
            except requests.Timeout:
                self.scope.check()
                raise _Retryable(f"no answer from {current.host} within {self.timeout_s:g} s", fix=_TIMEOUT_FIX) from None
            except requests.RequestException as exc:
                self.scope.check()
                raise _Retryable(f"connection to {current.host} failed ({type(exc).__name__})", fix=_BROKEN_FIX) from None
            if response.is_redirect and "location" in response.headers:
                response.close()
                current = self._check(session, next_hop(current, response))
                continue
            status = response.status_code
            if status in (200, 206):
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    response.close()
                    raise self.failure(
                        f"{current.host} sent the file with Content-Encoding {encoding[:20]!r} although an unencoded "
                        "file was asked for; encoded weights are refused (no unbounded decompression)",
                        fix="Use a source that serves the file as is.", url=current.shown)
                return response
            response.close()
            if status == 416 and first == 0 and last is None:
                raise _RangeNotSatisfiable()
            reason = f"HTTP {status} {response.reason or ''}".strip()
            if status >= 500 or status in _RETRY_STATUS:
                raise _Retryable(
                    reason, retry_after=_retry_after(response),
                    fix="The server is failing or busy: retry later; if it persists, use another source.",
                )
            raise self.failure(f"{reason} from {current.host}", fix=_FATAL_STATUS_FIX.get(status), url=current.shown)
        raise self.failure(f"more than {MAX_REDIRECTS} redirects")


_T = TypeVar("_T")


def _with_retries(
    requester: _Requester, retries: int, attempt: Callable[[], _T],
    cancelled: threading.Event | None = None,
) -> _T:
    """Run ``attempt`` until it answers, backing off between transient failures."""
    for failures in itertools.count(1):
        try:
            return attempt()
        except _Retryable as exc:
            if failures > retries:
                raise requester.failure(f"{exc.reason} (after {failures} attempts)", fix=exc.fix) from None
            delay = exc.retry_after if exc.retry_after is not None else _backoff(failures)
            log.warning("%s: %s; retrying in %.1f s (%d/%d)", requester.name, exc.reason, delay, failures, retries)
            if cancelled is not None:
                if cancelled.wait(delay):
                    raise _Cancelled() from None
            else:
                requester.scope.sleep(delay)
            requester.scope.check()
    raise AssertionError("unreachable")


def _parse_first(response: requests.Response) -> tuple[int | None, bool, bool]:
    """(size, accepts_ranges, must_decode) from the answer to ``Range: bytes=0-``."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    must_decode = encoding not in ("", "identity")
    if response.status_code == 206 and not must_decode:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and match.group(1) == "0" and match.group(3) != "*":
            return int(match.group(3)), True, False
    length = response.headers.get("Content-Length", "")
    if response.status_code == 200 and length.isdigit() and not must_decode:
        return int(length), False, False
    return None, False, must_decode


# --- the parts and the hasher -----------------------------------------------------------


class _Parts:
    """Hands out byte ranges and knows how far the file is written without a gap."""

    def __init__(self, size: int | None, connections: int, part_bytes: int, min_part: int, single: bool) -> None:
        self.cond = threading.Condition()
        self.size = size
        self.connections = connections
        self.part_bytes = part_bytes
        self.min_part = min_part
        self.single = single
        self.next = 0  # first byte not yet handed out
        self.inflight: dict[int, int] = {}  # part id -> next byte it will write
        self.ids = itertools.count()
        self.written = 0  # bytes on disk (progress)
        self.received = 0  # bytes read from the network (bytes_transferred)
        self.single_taken = False

    def take(self) -> tuple[int, int, int | None] | None:
        with self.cond:
            if self.single:
                if self.single_taken:
                    return None
                self.single_taken = True
                part = next(self.ids)
                self.inflight[part] = 0
                return part, 0, self.size
            assert self.size is not None
            remaining = self.size - self.next
            if remaining <= 0:
                return None
            span = min(self.part_bytes, max(self.min_part, -(-remaining // (2 * self.connections))))
            if remaining - span < self.min_part // 2:
                span = remaining  # no tiny last part
            part, start = next(self.ids), self.next
            self.next += span
            self.inflight[part] = start
            return part, start, start + span

    def advance(self, part: int, pos: int, written: int, received: int) -> None:
        with self.cond:
            self.inflight[part] = pos
            self.written += written
            self.received += received
            self.cond.notify_all()

    def position(self, part: int) -> int:
        with self.cond:
            return self.inflight[part]

    def count_received(self, received: int) -> None:
        with self.cond:
            self.received += received

    def finish(self, part: int, end: int) -> None:
        with self.cond:
            del self.inflight[part]
            if self.single:
                self.next = end
                if self.size is None:
                    self.size = end
            self.cond.notify_all()

    def prefix(self) -> int:
        """Every byte below this is written (call with ``cond`` held)."""
        return min(self.inflight.values(), default=self.next)


class _Hasher(threading.Thread):
    """sha256 of the file's contiguous written prefix, read back as it grows."""

    def __init__(self, fd: int, parts: _Parts, stop: threading.Event, done: threading.Event) -> None:
        super().__init__(name="download-hasher", daemon=True)
        self.fd = os.dup(fd)
        self.parts = parts
        self.stop = stop
        self.done = done  # set when all workers finished: the prefix is final
        self.sha = hashlib.sha256()
        self.hashed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        buffer = memoryview(bytearray(HASH_BYTES))
        try:
            while True:
                with self.parts.cond:
                    while not self.stop.is_set():
                        target = self.parts.prefix()
                        if target > self.hashed or self.done.is_set():
                            break
                        self.parts.cond.wait(1.0)
                if self.stop.is_set():
                    return
                while self.hashed < target:
                    view = buffer[: min(HASH_BYTES, target - self.hashed)]
                    count = os.preadv(self.fd, [view], self.hashed)
                    if count <= 0:
                        raise OSError(errno.EIO, "temporary file shorter than the bytes written to it")
                    self.sha.update(view[:count])
                    self.hashed += count
                if self.done.is_set() and self.hashed >= self.parts.prefix():
                    return
        except BaseException as exc:  # handed to the main thread, which raises it
            self.error = exc
        finally:
            os.close(self.fd)


# --- one download -------------------------------------------------------------------------


def _past_limit(requester: _Requester, name: str, limit: int, got: int, more: Callable[[int], int] | None) -> int:
    """A body passed ``limit`` with ``got`` bytes: the larger limit ``more`` grants, else CacheBudgetError."""
    if more is not None:
        granted = more(got)
        if granted >= got:
            return granted
        limit = max(limit, granted)
    raise CacheBudgetError(
        f"{name} from {requester.url} grew past {human_bytes(limit)}, the room left in the weights budget; the "
        "download was stopped and nothing was kept.",
        fix="Raise CW_WEIGHTS_BUDGET, or use a smaller file.", filename=name, budget_bytes=limit)


class _Download:
    """The state shared by the worker threads of one fetch()."""

    def __init__(
        self, requester: _Requester, fd: int, parts: _Parts, final_url: str, *,
        ranged: bool, decode: bool, retries: int, dest: Path,
        window: Window | None = None, body_size: int | None = None, preload: bytes = b"",
        max_bytes: int | None = None, more: Callable[[int], int] | None = None,
    ) -> None:
        # With a window, file byte ``i`` is body byte ``window.offset + i``; ``body_size`` is the whole
        # body's (a tar's) size, which range answers must keep stating; ``preload`` is what the first
        # response already gave from ``window.offset`` on (read to find the window).
        self.base = window.offset if window is not None else 0
        self.body_size = body_size if window is not None else parts.size
        self.preload = preload
        self.max_bytes = max_bytes
        self.more = more
        self.requester = requester
        self.fd = fd
        self.parts = parts
        self.final_url = final_url
        self.ranged = ranged
        self.decode = decode
        self.retries = retries
        self.dest = dest
        self.cancelled = threading.Event()
        self.workers_done = threading.Event()
        self.wake = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.active = 0

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None and not isinstance(exc, _Cancelled):
                self.error = exc
        self.cancelled.set()
        self._notify()

    def start(self, first_session: requests.Session, first: requests.Response, count: int) -> None:
        """Start ``count`` workers; the first one continues the first response.

        Daemon threads rather than a ThreadPoolExecutor: the executor's threads are
        joined at interpreter exit, so Ctrl-C could hang on a worker blocked in a
        read for up to ``timeout_s``.
        """
        self.active = count
        first_part = self.parts.take()  # part 0, taken here: the first response holds its bytes
        for index in range(count):
            # Each worker writes through its own dup of the descriptor, made here
            # before fetch() could close the original: if fetch() gives up early
            # (error, Ctrl-C) it closes its own and returns at once, while a
            # straggler blocked in a read finishes harmlessly into the unlinked file.
            fd = os.dup(self.fd)
            args = (fd, first_session, first_part, first) if index == 0 else (fd, self.requester.session(), None, None)
            threading.Thread(target=self._work, args=args, name="download-worker", daemon=True).start()

    def _work(
        self, fd: int, session: requests.Session, part: tuple[int, int, int | None] | None,
        first: requests.Response | None,
    ) -> None:
        try:
            while not self.cancelled.is_set():
                part = part or self.parts.take()
                if part is None:
                    break
                self._part(session, fd, *part, first)
                part, first = None, None
        except BaseException as exc:
            self.fail(exc)
        finally:
            if first is not None:
                first.close()
            session.close()
            os.close(fd)
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.workers_done.set()
            self._notify()

    def _notify(self) -> None:
        """Wake fetch()'s thread and the hasher: something finished or failed."""
        self.wake.set()
        with self.parts.cond:
            self.parts.cond.notify_all()

    def _open(self, session: requests.Session, pos: int, end: int | None) -> tuple[requests.Response, int]:
        """(response, skip): a response whose body, after ``skip`` bytes, continues at ``pos``."""
        requester = self.requester
        if not self.ranged:
            response = requester.get(session, self.final_url, None)
            length = response.headers.get("Content-Length", "")
            if self.body_size is not None and length.isdigit() and int(length) != self.body_size:
                response.close()
                raise requester.failure("the file changed on the server during the download")
            return response, self.base + pos  # the bytes before pos are on disk already: skip them
        first, last = self.base + pos, None if end is None else self.base + end - 1
        response = requester.get(session, self.final_url, first, last)
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        total = match and match.group(3)
        if response.status_code != 206 or not match or int(match.group(1)) != first or total != str(self.body_size):
            response.close()
            raise _Retryable(
                f"the server answered a range request with HTTP {response.status_code} "
                f"{response.headers.get('Content-Range', '(no Content-Range)')}",
                fix="The server does not serve byte ranges reliably: retry later, or use another source.",
            )
        return response, 0

    def _part(self, session: requests.Session, fd: int, part: int, start: int, end: int | None,
              response: requests.Response | None) -> None:
        pos, skip, failures = start, 0, 0
        if self.preload and response is not None:  # part 0: the bytes read to find the window come first
            pos = self._write_preload(fd, part, start, end)
            if end is not None and pos >= end:
                response.close()
        while end is None or pos < end:
            began_at = pos
            try:
                if response is None:
                    response, skip = _with_retries(
                        self.requester, self.retries, lambda: self._open(session, pos, end), self.cancelled,  # noqa: B023 (called now)
                    )
                self._copy(response, fd, part, pos, end, skip)
                pos = self.parts.position(part)
                if end is None:
                    break  # unknown size: the body ended cleanly
                if pos < end:
                    raise _Retryable("the connection closed before the part was complete", fix=_BROKEN_FIX)
            except _Retryable as exc:
                pos = self.parts.position(part)  # what reached the disk before the failure
                failures = 0 if pos > began_at else failures + 1
                if failures > self.retries:
                    raise self.requester.failure(f"{exc.reason} (after {failures} attempts)", fix=exc.fix) from None
                delay = _backoff(failures) if failures else 0.0
                log.warning(
                    "%s: %s at byte %d; resuming%s", self.requester.name, exc.reason, pos,
                    f" in {delay:.1f} s" if delay else "",
                )
                if self.cancelled.wait(delay):
                    raise _Cancelled() from None
            finally:
                if response is not None:
                    # After a complete read the connection is already back in the pool
                    # and this is a no-op; otherwise it drops a half-read connection.
                    response.close()
                    response = None
        self.parts.finish(part, pos)

    def _write_preload(self, fd: int, part: int, start: int, end: int | None) -> int:
        data = self.preload[: None if end is None else end - start]
        self.preload = b""
        self._write(fd, data, start)
        self.parts.advance(part, start + len(data), len(data), len(data))
        return start + len(data)

    def _copy(self, response: requests.Response, fd: int, part: int, pos: int, end: int | None, skip: int) -> None:
        """Copy the body (after ``skip`` bytes) to the file from ``pos`` until ``end`` or its end.

        Progress is recorded in ``parts`` after every write, so a failure midway
        loses nothing that reached the disk.
        """
        raw = response.raw
        while True:
            if self.cancelled.is_set():
                raise _Cancelled()
            want = READ_BYTES if end is None else min(READ_BYTES, end - pos + skip)
            if want <= 0:
                return
            try:
                data = raw.read(min(want, skip) if skip else want, decode_content=False)
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
                    raise _Retryable(f"no data for {self.requester.timeout_s:g} s", fix=_TIMEOUT_FIX) from None
                raise _Retryable(f"the connection broke ({type(exc).__name__})", fix=_BROKEN_FIX) from None
            if not data:
                return
            if skip:
                skip -= len(data)
                self.parts.count_received(len(data))
                continue
            self._write(fd, data, pos)
            pos += len(data)
            self.parts.advance(part, pos, len(data), len(data))
            if self.max_bytes is not None and self.parts.written > self.max_bytes:
                self.max_bytes = _past_limit(self.requester, self.dest.name, self.max_bytes, self.parts.written,
                                             self.more)

    def _write(self, fd: int, data: bytes, pos: int) -> None:
        view = memoryview(data)
        try:
            while view:
                count = os.pwrite(fd, view, pos)
                view, pos = view[count:], pos + count
        except OSError as exc:
            raise _disk_error(exc, self.dest, self.parts.size) from None


def _disk_error(exc: OSError, dest: Path, size: int | None) -> WrapperError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheBudgetError(
            f"The disk is full: {dest.name} ({human_bytes(size)}) does not fit in {dest.parent}.",
            fix="Free disk space or lower CW_WEIGHTS_BUDGET below the free space, then retry.",
            filename=dest.name, needed_bytes=size,
        )
    return WeightDownloadError(
        f"Could not write {dest.name} in {dest.parent}: {exc.strerror or exc}.",
        fix="Make sure the weights directory exists, is writable and is on a healthy disk.", filename=dest.name,
    )


def _reserve(fd: int, dest: Path, size: int) -> None:
    """Claim the disk space up front: a full disk fails now, not at 97 %."""
    if size <= 0:
        return
    free = shutil.disk_usage(dest.parent).free
    if size > free:
        raise CacheBudgetError(
            f"Not enough disk space for {dest.name}: it needs {human_bytes(size)}, {dest.parent} has {human_bytes(free)} free.",
            fix="Free disk space or lower CW_WEIGHTS_BUDGET below the free space, then retry.",
            filename=dest.name, needed_bytes=size, free_bytes=free,
        )
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_error(exc, dest, size) from None
        os.ftruncate(fd, size)  # file system without fallocate: a sparse file will do


def _temp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}.incomplete")


class _Rate:
    """Bytes per second over a sliding window, for the progress callback."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()

    def __call__(self, done: int) -> float:
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= _RATE_WINDOW_S:
            self.samples.popleft()
        then, before = self.samples[0]
        return (done - before) / (now - then) if now > then else 0.0


# --- the public functions -------------------------------------------------------------------


def probe(
    url: str, *, policy: UrlPolicy, headers: dict[str, str] | None = None, timeout_s: float = 30.0,
    scope: Scope | None = None,
) -> ProbeResult:
    """Size, range support, final URL and Content-Disposition name, without the body.

    Uses ``GET`` with ``Range: bytes=0-0`` rather than HEAD: pre-signed CDN URLs
    (where Hugging Face and Civitai redirect) are often signed for GET only.
    """
    requester = _Requester(_name_of(url), url, policy, _caller_headers(headers), timeout_s, scope)
    with requester.session() as session:
        def attempt() -> requests.Response:
            return requester.get(session, url, 0, 0)

        try:
            response = _with_retries(requester, 2, attempt)
        except _RangeNotSatisfiable:
            return ProbeResult(url=url, size=0, accepts_ranges=True, filename_hint=None)
        try:
            hint = filename_from_disposition(response.headers.get("Content-Disposition"))
            size, ranged = None, False
            if response.status_code == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match and match.group(3) != "*":
                    size, ranged = int(match.group(3)), True
            else:
                size = _parse_first(response)[0]
            return ProbeResult(url=response.url, size=size, accepts_ranges=ranged, filename_hint=hint)
        finally:
            response.close()




def fetch(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    policy: UrlPolicy = UrlPolicy(),
    headers: dict[str, str] | None = None,
    connections: int = 8,
    part_bytes: int = 64 * MiB,
    retries: int = 5,
    timeout_s: float = 30.0,
    progress: Callable[[Progress], None] | None = None,
    scope: Scope | None = None,
    max_bytes: int | None = None,
    admit: Callable[[int | None], int | None] | None = None,
    window: Callable[[Callable[[int], bytes], int | None], Window] | None = None,
    more: Callable[[int], int] | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest``, verified, or raise a WrapperError and leave nothing.

    ``size``/``sha256`` are checked when given (a size the server contradicts fails
    before any body is read). ``headers`` (tokens) go only to ``url``'s own
    scheme, host and port. ``timeout_s`` bounds every connect and every read.
    ``progress`` is called in this thread about every PROGRESS_EVERY_S seconds
    and once at the end; an exception it raises aborts the download cleanly.
    ``scope`` (deadline, cancel) stops it at once, and ``max_bytes`` as soon as
    more bytes than that arrived (CacheBudgetError); either way nothing is kept.

    ``admit(size)`` is called with the size the first answer states (None if
    it states none) before any body byte is read: it may raise to refuse the
    download (a budget), so no separate probe is needed, or return a new
    ``max_bytes`` (the room it made), None to keep it. ``more(got)`` is
    called when ``got`` bytes passed ``max_bytes`` (a body whose size no
    answer stated): it returns a larger limit, or raises to stop the download
    (without it, CacheBudgetError). ``window(read, size)``
    keeps only part of the body: it calls ``read(n)`` for up to the body's
    first ``n`` bytes (taken from the first response, which then goes on at
    that point), and returns the ``Window`` that becomes the file (a tar
    member: see tar_weights); the window is then fetched like a whole file,
    in parallel ranges, resumed and verified, and ``size``/``sha256`` are
    those of the window. It raises NoWindow when the body has none; fetch then
    raises NoWindow too, having read at most what the callback asked for.
    """
    dest = Path(dest)
    began = time.monotonic()
    requester = _Requester(dest.name, url, policy, _caller_headers(headers), timeout_s, scope)
    expected_sha = sha256.strip().lower() if sha256 else None
    temp = _temp_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise _disk_error(exc, dest, size) from None
    try:
        try:
            outcome = _run(requester, url, dest, fd, size, expected_sha, max(1, connections),
                           max(64 * 1024, part_bytes), max(0, retries), progress, began, max_bytes, admit, window,
                           more)
        finally:
            os.close(fd)
        try:
            os.replace(temp, dest)
        except OSError as exc:
            raise _disk_error(exc, dest, size) from None
    except BaseException:
        # Whatever went wrong (Ctrl-C included), no half-written file keeps a name.
        temp.unlink(missing_ok=True)
        raise
    final_size, digest, transferred, hint = outcome
    seconds = time.monotonic() - began
    log.debug("%s: %s in %.1f s from %s", dest.name, human_bytes(final_size), seconds, url)
    return FetchResult(
        path=dest, size=final_size, sha256=digest, bytes_transferred=transferred, seconds=seconds, filename_hint=hint,
    )


def _first_response(
    requester: _Requester, session: requests.Session, url: str, retries: int,
) -> tuple[requests.Response, int | None, bool, bool]:
    """The answer to ``Range: bytes=0-`` and what it says: (response, size, ranged, decode).

    An empty file (416), or a 206 without a usable Content-Range or with a
    Content-Encoding, is asked for again as a plain GET: one stream, no ranges.
    """
    try:
        response = _with_retries(requester, retries, lambda: requester.get(session, url, 0))
        size, ranged, decode = _parse_first(response)
        if response.status_code == 200 or ranged:
            return response, size, ranged, decode
        response.close()
    except _RangeNotSatisfiable:
        pass
    response = _with_retries(requester, retries, lambda: requester.get(session, url, None))
    size, _, decode = _parse_first(response)
    return response, size, False, decode


def _find_window(
    requester: _Requester, first: requests.Response, total: int | None,
    window: Callable[[Callable[[int], bytes], int | None], Window], decode: bool,
) -> tuple[Window, bytes]:
    """Ask ``window`` for the byte range to keep, feeding it the first response's first bytes.

    Returns the window and the bytes already read from its offset on (the
    first part writes them; the response goes on after them).
    """
    head = bytearray()

    def read(count: int) -> bytes:
        while len(head) < count:
            try:
                data = first.raw.read(min(READ_BYTES, count - len(head)), decode_content=False)
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                raise requester.failure(f"the connection broke in the first bytes ({type(exc).__name__})",
                                        fix=_BROKEN_FIX) from None
            if not data:
                break
            head.extend(data)
        return bytes(head[:count])

    span = window(read, total)
    if span.offset < 0 or span.length < 0 or (total is not None and span.offset + span.length > total):
        raise requester.failure(f"bytes {span.offset}+{span.length} lie outside the {total}-byte file")
    if span.offset > len(head):
        read(span.offset)
        if span.offset > len(head):
            raise requester.failure("the file ended before the bytes to keep")
    return span, bytes(head[span.offset:span.offset + span.length])


def _run(
    requester: _Requester, url: str, dest: Path, fd: int, size: int | None, expected_sha: str | None,
    connections: int, part_bytes: int, retries: int, progress: Callable[[Progress], None] | None, began: float,
    max_bytes: int | None = None,
    admit: Callable[[int | None], int | None] | None = None,
    window: Callable[[Callable[[int], bytes], int | None], Window] | None = None,
    more: Callable[[int], int] | None = None,
) -> tuple[int, str, int, str | None]:
    """Download into ``fd`` and verify; returns (size, sha256, bytes read, filename hint)."""
    name = dest.name
    session: requests.Session | None = requester.session()
    job: _Download | None = None
    first: requests.Response | None = None
    try:
        assert session is not None
        first, total, ranged, decode = _first_response(requester, session, url, retries)
        hint = filename_from_disposition(first.headers.get("Content-Disposition"))
        log.info("%s: downloading from host %s.", name, urlsplit(first.url).hostname)
        if admit is not None:
            allowed = admit(total)  # may refuse, or make room, before any body byte is read
            if allowed is not None:
                max_bytes = allowed
        span: Window | None = None
        preload = b""
        body_size = total
        if window is not None:
            span, preload = _find_window(requester, first, total, window, decode)
            total = span.length
        if size is not None and total is not None and total != size:
            raise ChecksumMismatchError(
                f"{name}: the server at {url} offers {total} bytes, but {size} were expected.",
                fix="The file at this URL is not the one the manifest describes: correct the URL or the "
                "manifest's size and sha256.",
                filename=name, url=url, expected_size=size, actual_size=total,
            )
        if total is not None and max_bytes is not None and total > max_bytes:
            raise CacheBudgetError(
                f"{name} from {url} is {human_bytes(total)}, more than the {human_bytes(max_bytes)} left in "
                "the weights budget.", fix="Raise CW_WEIGHTS_BUDGET, or use a smaller file.", filename=name,
                needed_bytes=total, budget_bytes=max_bytes)
        if total is not None:
            _reserve(fd, dest, total)
        min_part = min(MIN_PART_BYTES, part_bytes)
        parallel = ranged and total is not None and connections > 1 and total >= 2 * min_part
        parts = _Parts(total, connections, part_bytes, min_part, single=not parallel)
        job = _Download(requester, fd, parts, first.url, ranged=ranged, decode=decode, retries=retries, dest=dest,
                        window=span, body_size=body_size, preload=preload, max_bytes=max_bytes, more=more)
        requester.scope.on_abort(lambda: job.fail(_Cancelled()) if job is not None else None)
        hasher = _Hasher(fd, parts, job.cancelled, job.workers_done)
        hasher.start()
        workers = min(connections, -(-total // min_part)) if parallel and total else 1
        log.debug("%s: %s from %s over %d connection(s)", name, human_bytes(total), first.url, workers)
        job.start(session, first, workers)
        session = first = None  # the first worker owns them now

        rate = _Rate()
        report = _Reporter(name, parts, progress)
        report(rate)
        while True:
            job.wake.clear()
            requester.scope.check()
            if job.error is not None or job.workers_done.is_set():
                break
            job.wake.wait(PROGRESS_EVERY_S)
            report.maybe(rate)
        requester.scope.check()
        if job.error is not None:
            raise job.error
        last_byte = time.monotonic()
        while hasher.is_alive():  # only the last few MB are left to hash
            hasher.join(PROGRESS_EVERY_S)
        log.debug("%s: sha256 done %.3f s after the last byte", name, time.monotonic() - last_byte)
        if hasher.error is not None:
            error = hasher.error
            raise _disk_error(error, dest, total) if isinstance(error, OSError) else error

        final_size = parts.size or 0
        if parts.written != final_size or hasher.hashed != final_size:
            raise requester.failure(f"only {parts.written} of {final_size} bytes arrived")
        if size is not None and final_size != size:
            raise ChecksumMismatchError(
                f"{name}: {final_size} bytes arrived from {url}, but {size} were expected.",
                fix="The file at this URL is not the one the manifest describes: correct the URL or the "
                "manifest's size and sha256.",
                filename=name, url=url, expected_size=size, actual_size=final_size,
            )
        digest = hasher.sha.hexdigest()
        if expected_sha is not None and digest != expected_sha:
            raise ChecksumMismatchError(
                f"{name}: the sha256 of the {final_size} bytes from {url} is {digest}, "
                f"but {expected_sha} was expected.",
                fix="The server sent different bytes than the manifest promises: retry once; if it "
                "persists, the file changed upstream, so correct the URL or the manifest's sha256.",
                filename=name, url=url, expected_sha256=expected_sha, actual_sha256=digest,
            )
        report.final(time.monotonic() - began)
        return final_size, digest, parts.received, hint
    except BaseException:
        if job is not None:
            job.fail(_Cancelled())
        raise
    finally:
        if first is not None:
            first.close()
        if session is not None:
            session.close()


def stream(
    url: str,
    consume: Callable[[IO[bytes]], T],
    *,
    policy: UrlPolicy = UrlPolicy(),
    headers: dict[str, str] | None = None,
    retries: int = 5,
    timeout_s: float = 30.0,
    progress: Callable[[Progress], None] | None = None,
    admit: Callable[[int | None], int | None] | None = None,
    name: str | None = None,
    scope: Scope | None = None,
    max_bytes: int | None = None,
    more: Callable[[int], int] | None = None,
) -> tuple[T, int]:
    """Hand the body of ``url`` to ``consume`` as a file read front to back; (its result, bytes read).

    For what must be processed as it arrives, such as a tar extracted member by
    member: nothing is written here. One GET; a connection that breaks is
    resumed at the byte where it stopped (a range request, or the body read
    again and the bytes already consumed skipped), so ``consume`` sees one
    unbroken stream. ``admit``, ``scope``, ``max_bytes`` and ``more`` work as in fetch().
    Requests, redirects and tokens follow fetch()'s rules.
    """
    label = name or _name_of(url)
    requester = _Requester(label, url, policy, _caller_headers(headers), timeout_s, scope)
    with requester.session() as session:
        first, total, ranged, decode = _first_response(requester, session, url, max(0, retries))
        try:
            if admit is not None:
                allowed = admit(total)
                if allowed is not None:
                    max_bytes = allowed
            if total is not None and max_bytes is not None and total > max_bytes:
                raise CacheBudgetError(
                    f"{label} from {url} is {human_bytes(total)}, more than the {human_bytes(max_bytes)} "
                    "left in the weights budget.", fix="Raise CW_WEIGHTS_BUDGET, or use a smaller file.",
                    filename=label, needed_bytes=total, budget_bytes=max_bytes)
        except BaseException:
            first.close()
            raise
        body = _Body(requester, session, first, total, ranged and not decode, max(0, retries), progress, max_bytes,
                     more)
        try:
            result = consume(io.BufferedReader(body, READ_BYTES))
        finally:
            body.close()
        return result, body.received


class _Body(io.RawIOBase):
    """A response body as a file; a broken connection is resumed where it stopped."""

    def __init__(self, requester: _Requester, session: requests.Session, response: requests.Response,
                 size: int | None, ranged: bool, retries: int, progress: Callable[[Progress], None] | None,
                 max_bytes: int | None = None, more: Callable[[int], int] | None = None) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.more = more
        self.requester = requester
        self.session = session
        self.response: requests.Response | None = response
        self.final_url = response.url
        self.size = size
        self.ranged = ranged
        self.retries = retries
        self.pos = 0
        self.received = 0
        self.progress = progress
        self.rate = _Rate()
        self.last_report = -math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        failures = 0
        while True:
            self.requester.scope.check()
            try:
                if self.response is None:
                    self.response = _with_retries(self.requester, self.retries, self._reopen)
                data = b""
                if self.size is None or self.pos < self.size:
                    # read1: what one socket read gives (a slow server must not hold a deadline check
                    # until a whole buffer has arrived)
                    data = self.response.raw.read1(min(len(buffer), READ_BYTES), decode_content=False)
                count = len(data)
                buffer[:count] = data
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, _Retryable) as exc:
                self.requester.scope.check()  # a cancel or the deadline ends the read: not a failure to retry
                failures += 1
                reason = exc.reason if isinstance(exc, _Retryable) else f"the connection broke ({type(exc).__name__})"
                if failures > self.retries:
                    raise self.requester.failure(f"{reason} (after {failures} attempts)", fix=_BROKEN_FIX) from None
                log.warning("%s: %s at byte %d; resuming", self.requester.name, reason, self.pos)
                self._drop()
                self.requester.scope.sleep(_backoff(failures))
                continue
            if count == 0 and self.size is not None and self.pos < self.size:
                self._drop()  # closed early: resume
                failures += 1
                if failures > self.retries:
                    raise self.requester.failure(f"the body ended at byte {self.pos} of {self.size}", fix=_BROKEN_FIX)
                continue
            self.pos += count
            self.received += count
            if self.max_bytes is not None and self.pos > self.max_bytes:
                self.max_bytes = _past_limit(self.requester, self.requester.name, self.max_bytes, self.pos, self.more)
            self._report()
            return count

    def _reopen(self) -> requests.Response:
        """A response whose body continues at ``pos``."""
        if self.ranged:
            response = self.requester.get(self.session, self.final_url, self.pos)
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if response.status_code == 206 and match and int(match.group(1)) == self.pos \
                    and match.group(3) == str(self.size):
                return response
            response.close()
            raise _Retryable(f"the server answered a range request with HTTP {response.status_code}")
        response = self.requester.get(self.session, self.final_url, None)
        skip = self.pos
        while skip:
            data = response.raw.read(min(READ_BYTES, skip), decode_content=False)
            if not data:
                response.close()
                raise _Retryable("the body ended before the point to resume from")
            skip -= len(data)
            self.received += len(data)
        return response

    def _report(self) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self.last_report >= PROGRESS_EVERY_S:
            self.last_report = now
            speed = self.rate(self.pos)
            eta = (self.size - self.pos) / speed if self.size is not None and speed > 0 else None
            self.progress(Progress(self.requester.name, self.pos, self.size, speed, eta))

    def _drop(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None

    def close(self) -> None:
        self._drop()
        super().close()


class _Reporter:
    """Calls the caller's progress callback from fetch()'s own thread."""

    def __init__(self, name: str, parts: _Parts, callback: Callable[[Progress], None] | None) -> None:
        self.name = name
        self.parts = parts
        self.callback = callback
        self.last = time.monotonic()

    def __call__(self, rate: _Rate) -> None:
        if self.callback is None:
            return
        done, total = self.parts.written, self.parts.size
        speed = rate(done)
        eta = (total - done) / speed if total is not None and speed > 0 else None
        self.callback(Progress(self.name, done, total, speed, eta))

    def maybe(self, rate: _Rate) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self(rate)

    def final(self, seconds: float) -> None:
        if self.callback is not None:
            done = self.parts.written
            self.callback(Progress(self.name, done, done, done / seconds if seconds > 0 else 0.0, 0.0))
