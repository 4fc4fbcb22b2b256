"""Benchmark: comfyui_wrapper.weights.download.fetch against a single-stream curl, and tar weights against plain files.

Prints times and ratios measured side by side in one run:

(a) a per-connection rate cap (as CDNs impose): fetch with N connections and
    sha256 verification vs one curl stream; goal >= 4x.
(b) no cap: fetch (verifying) vs an unhashed single-stream curl; goal >= 0.8x.
(c) cold start of one weight through WeightCache.ensure_all, size unknown (as
    every CDN entry): the same bytes served as ``w.safetensors.tar`` vs plain
    ``w.safetensors``, alternated. Time to ready (goal: tar <= 1.05x plain),
    time to first byte (from ensure_all's call to the first byte of the
    weight's data leaving the server; the server's and our clocks are the same
    CLOCK_MONOTONIC), requests, and peak extra disk (the cache folder's
    allocated blocks sampled every few ms, minus the weight; goal <= 1 % of
    the weight). For reference, the previous ways: a probe before the
    download, and the whole archive downloaded then extracted.

The server is this script run as a separate process (``--serve``): Range
support, per-connection pacing, and ``socket.sendfile`` so the kernel does the
copying and the server is not the bottleneck; its CPU time is printed per run.
A separate process also keeps its threads from competing with fetch() for the
GIL. The test file is random bytes in a temporary directory, deleted at the end.

    .venv/bin/python bench/download.py [--size-mb 1024] [--cap-mbps 25] [--connections 8] [--only tar]
                                       [--latency-ms 20]
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
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_SLICE = 256 * 1024


# --- the server (runs in its own process) ---------------------------------------------


def serve(root: Path, cap_bps: int, latency_s: float = 0.0) -> None:
    """Serve ``root``; paths under /capped/ are paced to ``cap_bps`` per connection.

    ``latency_s`` delays every answer, as a distant CDN's round trip does.
    """
    stats: dict = {"connections": 0, "requests": 0, "bodies": []}  # bodies: [monotonic, range] per answer
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
            if latency_s:
                time.sleep(latency_s)
            stats["bodies"].append([time.monotonic(), self.headers.get("Range", "")])
            stats["bodies"] = stats["bodies"][-1000:]
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


# --- (c) tar weights vs plain files, through the cache ---------------------------------------


class DiskPeak(threading.Thread):
    """The most bytes allocated under a folder at any sample (files' st_blocks, the index excluded)."""

    def __init__(self, root: Path, every_s: float = 0.003) -> None:
        super().__init__(daemon=True)
        self.root, self.every_s = root, every_s
        self.peak = 0
        self.stop_event = threading.Event()

    def measure(self) -> int:
        total = 0
        for folder, _, files in os.walk(self.root):
            for name in files:
                if name.startswith("index.sqlite") or name.endswith(".lock"):
                    continue
                try:
                    total += os.lstat(os.path.join(folder, name)).st_blocks * 512
                except FileNotFoundError:
                    pass  # renamed or removed between the listing and the stat
        return total

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.peak = max(self.peak, self.measure())
            self.stop_event.wait(self.every_s)

    def stop(self) -> int:
        self.stop_event.set()
        self.join()
        return max(self.peak, self.measure())


class ColdStart:
    """One weight made ready through WeightCache from a fresh cache folder, measured."""

    def __init__(self, base: str, work: Path, connections: int, weight_size: int, sha: str) -> None:
        self.base, self.work, self.connections = base, work, connections
        self.weight_size, self.sha = weight_size, sha

    def run(self, label: str, path: str, archive: str, how: str = "now", expect: int | None = None) -> dict:
        import dataclasses

        from comfyui_wrapper.settings import Settings
        from comfyui_wrapper.weights.cache import WeightCache
        from comfyui_wrapper.weights.manifest import Manifest, WeightSpec

        root = self.work / "cache"
        shutil.rmtree(root, ignore_errors=True)
        spec = WeightSpec("w.safetensors", "checkpoints", self.base + path, archive)
        settings = dataclasses.replace(Settings.from_env({}), weights_dir=root, allow_private_urls=True,
                                       download_connections=self.connections)
        cache = WeightCache(settings, Manifest([spec]), log=lambda line: None)
        before = _stats(self.base)
        sampler = DiskPeak(root)
        sampler.start()
        began = time.monotonic()
        if how == "probe first":
            from comfyui_wrapper.weights import download
            download.probe(spec.url, policy=cache.policy)
            cache.ensure_all([spec])
        elif how == "archive then extract":
            self._archive_then_extract(cache, spec)
        else:
            cache.ensure_all([spec])
        seconds = time.monotonic() - began
        peak = sampler.stop()
        after = _stats(self.base)
        final = root / "checkpoints" / "w.safetensors"
        assert final.stat().st_size == (expect or self.weight_size), f"{label}: wrong size"
        if how != "archive then extract" and expect is None:
            assert cache.record_sha256(spec) == self.sha, f"{label}: wrong sha256"
        bodies = after["bodies"][len(before["bodies"]):] if len(after["bodies"]) < 1000 else after["bodies"]
        data = [t for t, rng in bodies if t >= began and rng != "bytes=0-0"]
        ttfb = (min(data) - began) if data else float("nan")
        extra = max(0, peak - self.weight_size)
        cache.close()
        shutil.rmtree(root, ignore_errors=True)
        figures = {"seconds": seconds, "ttfb": ttfb, "requests": after["requests"] - before["requests"],
                   "extra": extra}
        print(f"  {label:<40} {seconds:6.2f} s | first byte {ttfb * 1000:7.1f} ms | "
              f"{figures['requests']:3d} request(s) | peak extra disk {extra / 1e6:8.1f} MB "
              f"({extra / self.weight_size:6.2%})", flush=True)
        return figures

    def _archive_then_extract(self, cache, spec) -> None:  # type: ignore[no-untyped-def]
        """The way tar weights were fetched before: the whole archive, then tarfile.extractall."""
        import tarfile as tarlib

        from comfyui_wrapper.weights import download

        staging = cache.staging / f"{os.getpid()}-bench"
        staging.mkdir(parents=True)
        archive = download.fetch(spec.url, staging / "w.tar", policy=cache.policy, connections=self.connections).path
        with tarlib.open(archive) as tar:
            tar.extractall(staging / "x", filter="data")
        archive.unlink()
        final = cache.root / spec.key
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / "x" / "w.safetensors", final)
        shutil.rmtree(staging)


def bench_tar(base: str, work: Path, connections: int, size: int, sha: str, repeats: int) -> None:
    cold = ColdStart(base, work, connections, size, sha)
    print(f"(c) cold start of one {size / 1e6:.0f} MB weight through the cache, size unknown, "
          f"{repeats} runs each, alternated")
    cold.run("warm-up (not counted)", "/file.bin", "file")
    plain, tar, control = [], [], []
    tar_size = (work / "srv" / "file.bin.tar").stat().st_size
    for _ in range(repeats):
        plain.append(cold.run("plain file", "/file.bin", "file"))
        tar.append(cold.run("tar, member range (now)", "/file.bin.tar", "tar"))
        control.append(cold.run("tar file fetched as plain bytes", "/file.bin.tar", "file", expect=tar_size))
    probed = cold.run("plain file, probe first (before)", "/file.bin", "file", how="probe first")
    whole = cold.run("tar, archive then extract (before)", "/file.bin.tar", "tar", how="archive then extract")

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ratio = median(tar, "seconds") / median(plain, "seconds")
    extra = max(run["extra"] for run in tar) / size
    print()
    control_ratio = median(tar, "seconds") / median(control, "seconds")
    print(f"(c) tar weight: time to ready {ratio:.3f}x the plain file by median (goal <= 1.05); "
          f"peak extra disk {extra:.3%} of the weight (goal <= 1 %)")
    print(f"    {control_ratio:.3f}x the same tar file fetched whole as plain bytes (same server file: isolates the "
          "client; the server's sendfile of a 512-byte-shifted range can cost a little more)")
    print(f"    time to first byte: plain {median(plain, 'ttfb') * 1000:.1f} ms, tar {median(tar, 'ttfb') * 1000:.1f} ms,"
          f" with a probe first {probed['ttfb'] * 1000:.1f} ms")
    print(f"    before: archive then extract took {whole['seconds'] / median(plain, 'seconds'):.2f}x the plain file, "
          f"peak extra disk {whole['extra'] / size:.0%} of the weight")



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
    parser.add_argument("--only", choices=["fetch", "tar"], help="run only (a)+(b) or only (c)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="delay every answer by this much, as a CDN's round trip (default 0)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cap-bps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.cap_bps, args.latency_ms / 1000)
        return
    if args.only != "tar" and not shutil.which("curl"):
        sys.exit("curl is needed (apt-get install curl)")

    size = args.size_mb * 1024 * 1024
    cap = int(args.cap_mbps * 1e6)
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        (work / "srv").mkdir()
        began = time.perf_counter()
        sha = _make_file(work / "srv" / "file.bin", size)
        if args.only != "fetch":
            with tarfile.open(work / "srv" / "file.bin.tar", "w") as tar:
                tar.add(work / "srv" / "file.bin", arcname="w.safetensors")
        print(f"{args.size_mb} MiB of random bytes written in {time.perf_counter() - began:.1f} s; "
              f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}", flush=True)
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "srv"), "--cap-bps", str(cap),
             "--latency-ms", str(args.latency_ms)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None
            base = f"http://127.0.0.1:{int(server.stdout.readline())}"
            if args.only == "tar":
                bench_tar(base, work, args.connections, size, sha, args.repeats)
                return
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
            if args.only is None:
                bench_tar(base, work, args.connections, size, sha, args.repeats)
        finally:
            server.terminate()
            server.wait(10)

    print()
    print(f"(a) capped:   fetch is {ratio_a:.2f}x one curl stream (goal >= 4)")
    print(f"(b) uncapped: fetch is {ratio_b:.2f}x curl by median, {ratio_b_best:.2f}x best vs best (goal >= 0.8)")


if __name__ == "__main__":
    main()
