"""Benchmark: comfyui_wrapper.weights.download.fetch against a single-stream curl.

Prints times and ratios measured side by side in one run:

(a) a per-connection rate cap (as CDNs impose): fetch with N connections and
    sha256 verification vs one curl stream; goal >= 4x.
(b) no cap: fetch (verifying) vs an unhashed single-stream curl; goal >= 0.8x.

The server is this script run as a separate process (``--serve``): Range
support, per-connection pacing, and ``socket.sendfile`` so the kernel does the
copying and the server is not the bottleneck; its CPU time is printed per run.
A separate process also keeps its threads from competing with fetch() for the
GIL. The test file is random bytes in a temporary directory, deleted at the end.

    .venv/bin/python bench/download.py [--size-mb 1024] [--cap-mbps 25] [--connections 8]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_SLICE = 256 * 1024


# --- the server (runs in its own process) ---------------------------------------------


def serve(root: Path, cap_bps: int) -> None:
    """Serve ``root``; paths under /capped/ are paced to ``cap_bps`` per connection."""
    stats = {"connections": 0, "requests": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with lock:
                stats["connections"] += 1

        def do_GET(self) -> None:
            if self.path == "/_stats":
                body = json.dumps(stats).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            with lock:
                stats["requests"] += 1
            capped = self.path.startswith("/capped/")
            target = root / self.path.removeprefix("/capped/").lstrip("/")
            size = target.stat().st_size
            start, end, status = 0, size - 1, 200
            match = _RANGE.match(self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
                status = 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            try:
                with target.open("rb") as handle:
                    self._send(handle, start, end - start + 1, cap_bps if capped else 0)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _send(self, handle: object, offset: int, length: int, cap: int) -> None:
            if not cap:
                self.connection.sendfile(handle, offset, length)  # type: ignore[arg-type]
                return
            began, sent = time.monotonic(), 0
            while sent < length:
                count = min(_SLICE, length - sent)
                self.connection.sendfile(handle, offset + sent, count)  # type: ignore[arg-type]
                sent += count
                ahead = sent / cap - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the client side --------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client_cpu() -> float:
    """CPU seconds of this process (fetch's threads) plus its finished children (curl)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _stats(base: str) -> dict[str, int]:
    with urllib.request.urlopen(base + "/_stats", timeout=10) as answer:
        return json.load(answer)


class Bench:
    def __init__(self, base: str, server_pid: int, work: Path, expected_sha: str, size: int) -> None:
        self.base = base
        self.pid = server_pid
        self.work = work
        self.sha = expected_sha
        self.size = size

    def measure(self, label: str, run: "callable") -> float:  # type: ignore[valid-type]
        dest = self.work / "out.bin"
        before_cpu, before = _cpu_seconds(self.pid), _stats(self.base)
        client_before = _client_cpu()
        began = time.perf_counter()
        run(dest)
        seconds = time.perf_counter() - began
        client = _client_cpu() - client_before
        cpu, after = _cpu_seconds(self.pid) - before_cpu, _stats(self.base)
        assert dest.stat().st_size == self.size, f"{label}: wrong size"
        dest.unlink()
        print(
            f"  {label:<32} {seconds:6.2f} s {self.size / seconds / 1e6:6.0f} MB/s | client CPU {client:5.2f} s"
            f" | server CPU {cpu:4.2f} s ({cpu / seconds:3.0%} of a core), "
            f"{after['connections'] - before['connections'] - 1} connection(s), "
            f"{after['requests'] - before['requests']} request(s)",
            flush=True,
        )
        return seconds

    def curl(self, path: str) -> "callable":  # type: ignore[valid-type]
        def run(dest: Path) -> None:
            subprocess.run(["curl", "-s", "-f", "-o", str(dest), self.base + path], check=True)
        return run

    def fetch(self, path: str, connections: int) -> "callable":  # type: ignore[valid-type]
        from comfyui_wrapper.urls import UrlPolicy
        from comfyui_wrapper.weights.download import fetch

        def run(dest: Path) -> None:
            result = fetch(self.base + path, dest, size=self.size, sha256=self.sha,
                           policy=UrlPolicy(allow_private=True), connections=connections)
            assert result.sha256 == self.sha
        return run


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left:
            block = os.urandom(min(16 * 1024 * 1024, left))
            digest.update(block)
            handle.write(block)
            left -= len(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="test file size in MiB (default 1024)")
    parser.add_argument("--cap-mbps", type=float, default=25.0, help="per-connection cap in MB/s for (a)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="uncapped runs of each (median is used)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cap-bps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.cap_bps)
        return
    if not shutil.which("curl"):
        sys.exit("curl is needed (apt-get install curl)")

    size = args.size_mb * 1024 * 1024
    cap = int(args.cap_mbps * 1e6)
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        (work / "srv").mkdir()
        began = time.perf_counter()
        sha = _make_file(work / "srv" / "file.bin", size)
        print(f"{args.size_mb} MiB of random bytes written in {time.perf_counter() - began:.1f} s; "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "srv"), "--cap-bps", str(cap)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None
            base = f"http://127.0.0.1:{int(server.stdout.readline())}"
            bench = Bench(base, server.pid, work, sha, size)

            print(f"(a) capped at {args.cap_mbps:g} MB/s per connection")
            single = bench.measure("curl, one stream", bench.curl("/capped/file.bin"))
            ours = bench.measure(f"fetch, {args.connections} connections + sha256",
                                 bench.fetch("/capped/file.bin", args.connections))
            ratio_a = single / ours

            print(f"(b) uncapped, {args.repeats} runs each, alternating")
            curls, fetches = [], []
            for _ in range(args.repeats):
                curls.append(bench.measure("curl, one stream, no hash", bench.curl("/file.bin")))
                fetches.append(bench.measure(f"fetch, {args.connections} connections + sha256",
                                             bench.fetch("/file.bin", args.connections)))
            ratio_b = statistics.median(curls) / statistics.median(fetches)
            ratio_b_best = min(curls) / min(fetches)
        finally:
            server.terminate()
            server.wait(10)

    print()
    print(f"(a) capped:   fetch is {ratio_a:.2f}x one curl stream (goal >= 4)")
    print(f"(b) uncapped: fetch is {ratio_b:.2f}x curl by median, {ratio_b_best:.2f}x best vs best (goal >= 0.8)")


if __name__ == "__main__":
    main()
