"""A loopback HTTP server that misbehaves on purpose: trickles, lies, encodes, redirects anywhere.

Each path is a Route; every request is recorded with its headers (to check
where a token went). Trickling routes stop as soon as the client hangs up and
count the connections still open, so a test can assert that a cancelled
download really let go of its socket.
"""

from __future__ import annotations

import http.server
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle_bps: float | None = None  # send ``body`` (repeated forever when ``forever``) this slowly
    forever: bool = False
    chunk: int = 1
    slow_headers: bool = False  # never finish the header block: one byte of a header every 0.1 s


@dataclass
class HostileServer:
    base_url: str = ""
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    open_trickles: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [headers for seen_path, headers in self.seen if seen_path == path]


def _handler(server: HostileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server.seen.append((path, {k.lower(): v for k, v in self.headers.items()}))
            route = server.routes.get(path, Route(404, b"not found"))
            if route.slow_headers:
                self._slow_headers()
                return
            self.send_response(route.status)
            for key, value in route.headers.items():
                self.send_header(key, value)
            if route.trickle_bps is None:
                if "Content-Length" not in route.headers:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
                return
            self.send_header("Connection", "close")
            self.end_headers()
            with server.lock:
                server.open_trickles += 1
            try:
                data, pos = route.body or b"\0", 0
                while route.forever or pos < len(data):
                    piece = bytes(data[(pos + i) % len(data)] for i in range(route.chunk))
                    self.wfile.write(piece)
                    self.wfile.flush()
                    pos += route.chunk
                    time.sleep(route.chunk / route.trickle_bps)
            except OSError:
                pass  # the client hung up
            finally:
                with server.lock:
                    server.open_trickles -= 1
                self.close_connection = True

        def _slow_headers(self) -> None:
            with server.lock:
                server.open_trickles += 1
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while True:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            finally:
                with server.lock:
                    server.open_trickles -= 1
                self.close_connection = True

    return Handler


@contextmanager
def hostile_server(host: str = "127.0.0.1") -> Iterator[HostileServer]:
    state = HostileServer()
    httpd = http.server.ThreadingHTTPServer((host, 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    state.base_url = f"http://{host}:{state.port}"
    # shutdown() waits for serve_forever's next poll: the default 0.5 s was most of many tests' time.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
