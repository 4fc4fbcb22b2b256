"""A local HTTP server that stands in for a weights CDN or an image host.

Serves a directory on 127.0.0.1 with HTTP Range support (206 answers), an
optional per-connection rate cap (as CDNs impose), and a few switches tests use
to simulate bad servers: no Range support, a connection that drops after N
bytes, a server that never answers. Counts requests per path so tests can
assert "downloaded once".
"""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class ServerControl:
    root: Path
    rate_limit_bps: int | None = None  # per connection
    support_ranges: bool = True
    drop_after_bytes: int | None = None  # close the socket mid-body, once per path
    hang_paths: set[str] = field(default_factory=set)  # never answer these
    extra_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> headers
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location
    no_length_paths: set[str] = field(default_factory=set)  # whole body, no Content-Length, then close
    requests: Counter = field(default_factory=Counter)
    _dropped: set[str] = field(default_factory=set)
    base_url: str = ""


def _make_handler(control: ServerControl) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            control.requests[path] += 1
            if path in control.hang_paths:
                time.sleep(3600)
                return
            if path in control.redirects:
                self.send_response(302)
                self.send_header("Location", control.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            target = (control.root / path.lstrip("/")).resolve()
            if not target.is_file() or not target.is_relative_to(control.root.resolve()):
                body = b"not found"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return
            size = target.stat().st_size
            start, end = 0, size - 1
            status = 200
            range_header = self.headers.get("Range")
            if path in control.no_length_paths:
                self._send_unsized(target, path, head)
                return
            if range_header and control.support_ranges:
                match = _RANGE.match(range_header.strip())
                if match and (match.group(1) or match.group(2)):
                    if match.group(1):
                        start = int(match.group(1))
                        end = int(match.group(2)) if match.group(2) else size - 1
                    else:
                        start = max(0, size - int(match.group(2)))
                    end = min(end, size - 1)
                    if start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Content-Type", _content_type(target))
            if control.support_ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            for key, value in control.extra_headers.get(path, {}).items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            self._send_body(target, path, start, length)

        def _send_unsized(self, target: Path, path: str, head: bool) -> None:
            """The whole file with no stated size: the body ends when the connection closes."""
            self.send_response(200)
            self.send_header("Content-Type", _content_type(target))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not head:
                self._send_body(target, path, 0, target.stat().st_size)

        def _send_body(self, target: Path, path: str, start: int, length: int) -> None:
            drop_at = None
            if control.drop_after_bytes is not None and path not in control._dropped:
                control._dropped.add(path)
                drop_at = control.drop_after_bytes
            sent = 0
            chunk = 64 * 1024
            began = time.monotonic()
            with target.open("rb") as handle:
                handle.seek(start)
                while sent < length:
                    block = handle.read(min(chunk, length - sent))
                    if not block:
                        break
                    if drop_at is not None and sent + len(block) > drop_at:
                        self.wfile.write(block[: max(0, drop_at - sent)])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    try:
                        self.wfile.write(block)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(block)
                    if control.rate_limit_bps:
                        ahead = sent / control.rate_limit_bps - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)

    return Handler


def _content_type(path: Path) -> str:
    return {
        ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
        ".gif": "image/gif", ".mp4": "video/mp4", ".wav": "audio/wav", ".json": "application/json",
        ".txt": "text/plain", ".html": "text/html",
    }.get(path.suffix.lower(), "application/octet-stream")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


@contextmanager
def serve_directory(root: os.PathLike[str] | str, **options: object) -> Iterator[ServerControl]:
    """Serve ``root`` on 127.0.0.1 at a free port until the block ends.

    Yields the ServerControl; ``control.base_url`` is ``http://127.0.0.1:PORT``.
    Options are ServerControl's fields and may be changed while serving.
    """
    control = ServerControl(root=Path(root), **options)  # type: ignore[arg-type]
    server = _Server(("127.0.0.1", 0), _make_handler(control))
    control.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # shutdown() waits for serve_forever's next poll: the default 0.5 s was most of many tests' time.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="static-server", daemon=True)
    thread.start()
    try:
        yield control
    finally:
        server.shutdown()
        server.server_close()
