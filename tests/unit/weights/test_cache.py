"""The weights cache against a local HTTP server: hits, downloads, budget, locks, tars, URLs."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from comfyui_wrapper.errors import (
    CacheBudgetError,
    ChecksumMismatchError,
    PredictionTimeoutError,
    UnsafeInputError,
    WeightDownloadError,
    WrapperError,
)
from comfyui_wrapper.settings import Settings
from comfyui_wrapper.urls import Scope
from comfyui_wrapper.weights.cache import WeightCache
from comfyui_wrapper.weights.manifest import Manifest, WeightSpec
from tests.support.static_server import serve_directory

REPO = Path(__file__).resolve().parents[3]
KB = 1000


def make_settings(tmp_path: Path, **changes: object) -> Settings:
    base = Settings.from_env({})
    return dataclasses.replace(base, weights_dir=tmp_path / "weights", allow_private_urls=True,
                               download_timeout_s=5.0, **changes)


def write_blob(path: Path, size: int, seed: str) -> bytes:
    """Deterministic bytes, so the server root and the expectations agree."""
    data = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    data = data[:size]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def add_to_tar(tar_path: Path, entries: dict[str, bytes]) -> None:
    with tarfile.open(tar_path, "w") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Logs(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def text(self) -> str:
        return "\n".join(self)


def leftovers(weights: Path) -> list[str]:
    """Files other than the index and lock files: staging must be empty after any outcome."""
    found = []
    for path in weights.rglob("*"):
        rel = path.relative_to(weights).as_posix()
        if path.is_file() and not rel.startswith((".cache/locks/", ".cache/index.sqlite")):
            found.append(rel)
    return sorted(found)


@pytest.fixture()
def served(tmp_path: Path):
    root = tmp_path / "srv"
    root.mkdir()
    with serve_directory(root) as control:
        yield control


def test_download_then_hits_download_nothing(tmp_path: Path, served) -> None:
    a = write_blob(served.root / "a.safetensors", 300 * KB, "a")
    b = write_blob(served.root / "b.pt", 200 * KB, "b")
    manifest = Manifest([
        WeightSpec("a.safetensors", "checkpoints", f"{served.base_url}/a.safetensors", "file", size=len(a)),
        WeightSpec("b.pt", "loras", f"{served.base_url}/b.pt", "file"),  # size learned at download
    ])
    logs = Logs()
    cache = WeightCache(make_settings(tmp_path), manifest, log=logs)
    report = cache.ensure_all(list(manifest))
    assert (report.hits, report.downloaded, report.bytes) == (0, 2, len(a) + len(b))
    assert report.paths["a.safetensors"].read_bytes() == a
    assert report.paths["b.pt"] == tmp_path / "weights" / "loras" / "b.pt"
    assert report.paths["b.pt"].read_bytes() == b
    assert "loras/b.pt: ready" in logs.text()
    requests_after_download = sum(served.requests.values())

    again = cache.ensure_all(list(manifest))
    assert (again.hits, again.downloaded, again.bytes) == (2, 0, 0)
    # A restarted process finds them too: the records are on disk.
    restarted = WeightCache(make_settings(tmp_path), manifest, log=logs).ensure_all(list(manifest))
    assert (restarted.hits, restarted.downloaded) == (2, 0)
    assert sum(served.requests.values()) == requests_after_download
    assert cache.verify("b.pt") and cache.verify("a.safetensors")
    assert leftovers(tmp_path / "weights") == ["checkpoints/a.safetensors", "loras/b.pt"]


def test_ten_hits_are_fast(tmp_path: Path, served) -> None:
    specs = []
    for i in range(10):
        write_blob(served.root / f"w{i}.safetensors", 10 * KB, f"w{i}")
        specs.append(WeightSpec(f"w{i}.safetensors", "loras", f"{served.base_url}/w{i}.safetensors", "file"))
    cache = WeightCache(make_settings(tmp_path), Manifest(specs), log=Logs())
    assert cache.ensure_all(specs).downloaded == 10
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        report = cache.ensure_all(specs)
        timings.append(time.perf_counter() - began)
        assert report.hits == 10
    best = min(timings)
    print(f"10 cache hits: best {best * 1000:.2f} ms, worst {max(timings) * 1000:.2f} ms")
    assert sorted(timings)[2] <= 0.050


def test_tar_entries_file_directory_and_subfolder(tmp_path: Path, served) -> None:
    model = write_blob(tmp_path / "x", 150 * KB, "model")
    add_to_tar(served.root / "model.safetensors.tar", {"model.safetensors": model})
    onnx1, onnx2 = b"first onnx" * 100, b"second onnx" * 100
    add_to_tar(served.root / "antelopev2.tar", {"antelopev2/a.onnx": onnx1, "antelopev2/sub/b.onnx": onnx2})
    face = b"yolo" * 1000
    add_to_tar(served.root / "face.pt.tar", {"face.pt": face})  # the tar holds the base name
    manifest = Manifest([
        WeightSpec("model.safetensors", "checkpoints", f"{served.base_url}/model.safetensors.tar", "tar",
                   sha256=sha(model)),
        WeightSpec("antelopev2", "insightface", f"{served.base_url}/antelopev2.tar", "tar"),
        WeightSpec("bbox/face.pt", "ultralytics", f"{served.base_url}/face.pt.tar", "tar", size=len(face)),
    ])
    cache = WeightCache(make_settings(tmp_path), manifest, log=Logs())
    report = cache.ensure_all(list(manifest))
    weights = tmp_path / "weights"
    assert report.paths["model.safetensors"].read_bytes() == model
    assert (weights / "insightface/antelopev2/sub/b.onnx").read_bytes() == onnx2
    assert (weights / "ultralytics/bbox/face.pt").read_bytes() == face
    assert sorted(leftovers(weights)) == [
        "checkpoints/model.safetensors", "insightface/antelopev2/a.onnx", "insightface/antelopev2/sub/b.onnx",
        "ultralytics/bbox/face.pt"]
    records = cache._records()
    assert records["checkpoints/model.safetensors"].sha256 == sha(model)  # of the file, not of the tar
    assert records["insightface/antelopev2"].is_dir and records["insightface/antelopev2"].size == 2100
    assert cache.ensure_all(list(manifest)).hits == 3
    assert cache.verify("antelopev2")
    (weights / "insightface/antelopev2/a.onnx").write_bytes(b"FIRST onnx" * 100)  # same size, other bytes
    assert not cache.verify("antelopev2")


def test_wrong_sha256_or_size_leaves_nothing(tmp_path: Path, served) -> None:
    data = write_blob(served.root / "c.safetensors", 100 * KB, "c")
    add_to_tar(served.root / "c.safetensors.tar", {"c.safetensors": data})
    bad_sha = WeightSpec("c.safetensors", "checkpoints", f"{served.base_url}/c.safetensors", "file", sha256="0" * 64)
    bad_size = WeightSpec("c.safetensors", "vae", f"{served.base_url}/c.safetensors", "file", size=len(data) + 1)
    bad_tar = WeightSpec("c.safetensors", "loras", f"{served.base_url}/c.safetensors.tar", "tar", sha256="1" * 64)
    for spec in (bad_sha, bad_size, bad_tar):
        cache = WeightCache(make_settings(tmp_path), Manifest([spec]), log=Logs())
        with pytest.raises(ChecksumMismatchError) as info:
            cache.ensure_all([spec])
        assert "c.safetensors" in str(info.value) and served.base_url in str(info.value)
        assert leftovers(tmp_path / "weights") == []
        assert cache._records() == {}


def test_truncated_transfer_never_becomes_a_weight(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    data = write_blob(root / "t.safetensors", 400 * KB, "t")
    with serve_directory(root, support_ranges=False, drop_after_bytes=100 * KB) as served:
        spec = WeightSpec("t.safetensors", "loras", f"{served.base_url}/t.safetensors", "file")
        cache = WeightCache(make_settings(tmp_path), Manifest([spec]), log=Logs())
        report = cache.ensure_all([spec])
        # The server dropped the first transfer and cannot resume: it was read again from the start.
        assert report.paths["t.safetensors"].read_bytes() == data
        assert cache._records()["loras/t.safetensors"].sha256 == sha(data)
        assert leftovers(tmp_path / "weights") == ["loras/t.safetensors"]


def test_404_names_file_and_url_and_mirrors_are_tried(tmp_path: Path, served) -> None:
    data = write_blob(served.root / "mirror/m.safetensors", 50 * KB, "m")
    gone = WeightSpec("gone.safetensors", "checkpoints", f"{served.base_url}/gone.safetensors.tar?token=SECRET",
                      "tar")
    cache = WeightCache(make_settings(tmp_path), Manifest([gone]), log=Logs())
    with pytest.raises(WeightDownloadError) as info:
        cache.ensure_all([gone])
    message = str(info.value)
    assert "gone.safetensors" in message and "404" in message and served.base_url in message
    assert "SECRET" not in message
    assert leftovers(tmp_path / "weights") == []

    mirrored = WeightSpec("m.safetensors", "checkpoints", f"{served.base_url}/missing/m.safetensors.tar", "tar",
                          mirrors=(f"{served.base_url}/mirror/m.safetensors",))
    logs = Logs()
    cache = WeightCache(make_settings(tmp_path), Manifest([mirrored]), log=logs)
    report = cache.ensure_all([mirrored])
    assert report.paths["m.safetensors"].read_bytes() == data
    assert cache._records()["checkpoints/m.safetensors"].url.endswith("/mirror/m.safetensors")


def test_budget_evicts_least_recently_used_never_the_request(tmp_path: Path, served) -> None:
    specs = {}
    for name in "abcd":
        data = write_blob(served.root / f"{name}.safetensors", 100 * KB, name)
        specs[name] = WeightSpec(f"{name}.safetensors", "loras", f"{served.base_url}/{name}.safetensors", "file",
                                 size=len(data))
    manifest = Manifest(list(specs.values()))
    settings = make_settings(tmp_path, weights_budget_bytes=250 * KB)
    logs = Logs()
    cache = WeightCache(settings, manifest, log=logs)
    cache.ensure_all([specs["a"]])
    time.sleep(0.01)
    cache.ensure_all([specs["b"]])
    time.sleep(0.01)
    cache.ensure_all([specs["a"]])  # a is now more recently used than b
    # A new process: the LRU order comes from disk.
    cache = WeightCache(settings, manifest, log=logs)
    report = cache.ensure_all([specs["c"]])
    assert report.evicted == ("loras/b.safetensors",)
    assert "Evicted loras/b.safetensors" in logs.text()
    weights = tmp_path / "weights" / "loras"
    assert sorted(p.name for p in weights.iterdir()) == ["a.safetensors", "c.safetensors"]
    # a (cached) and d (new) are both needed: c goes, a stays although it is older.
    time.sleep(0.01)
    cache.ensure_all([specs["c"]])
    report = cache.ensure_all([specs["a"], specs["d"]])
    assert report.evicted == ("loras/c.safetensors",) and report.hits == 1 and report.downloaded == 1
    assert sorted(p.name for p in weights.iterdir()) == ["a.safetensors", "d.safetensors"]
    assert cache.usage().bytes == 200 * KB


def test_a_workflow_that_cannot_fit_fails_before_any_request(tmp_path: Path, served) -> None:
    for name in "ab":
        write_blob(served.root / f"{name}.safetensors", 100 * KB, name)
    a = WeightSpec("a.safetensors", "loras", f"{served.base_url}/a.safetensors", "file", size=100 * KB)
    b = WeightSpec("b.safetensors", "loras", f"{served.base_url}/b.safetensors", "file", size=100 * KB)
    big = WeightSpec("big.safetensors", "checkpoints", f"{served.base_url}/big.safetensors", "file", size=10**6)
    cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=150 * KB), Manifest([a, b, big]), log=Logs())
    with pytest.raises(CacheBudgetError) as info:
        cache.ensure_all([big])
    assert sum(served.requests.values()) == 0
    assert "1.00 MB to download" in str(info.value) and "150.00 KB" in str(info.value)
    assert "big.safetensors" in str(info.value)
    cache.ensure_all([a])
    requests = sum(served.requests.values())
    with pytest.raises(CacheBudgetError, match="plus 100.00 KB already cached and used by this workflow"):
        cache.ensure_all([a, b])  # a is pinned by the request, so b cannot fit
    assert sum(served.requests.values()) == requests
    assert (tmp_path / "weights/loras/a.safetensors").exists()


def test_free_disk_check_uses_the_real_disk(tmp_path: Path, served) -> None:
    huge = WeightSpec("huge.safetensors", "checkpoints", f"{served.base_url}/huge.safetensors", "file",
                      size=1 << 60)
    cache = WeightCache(make_settings(tmp_path), Manifest([huge]), log=Logs())
    with pytest.raises(CacheBudgetError, match="Not enough disk space"):
        cache.ensure_all([huge])
    assert sum(served.requests.values()) == 0


_TWO_PROCESS_SCRIPT = r"""
import dataclasses, json, sys, time
from pathlib import Path
from comfyui_wrapper.weights.cache import WeightCache
from comfyui_wrapper.weights.manifest import Manifest, WeightSpec
from comfyui_wrapper.settings import Settings
weights, url, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = dataclasses.replace(Settings.from_env({}), weights_dir=Path(weights), allow_private_urls=True)
spec = WeightSpec("shared.safetensors", "checkpoints", url, "file", size=size)
logs = []
cache = WeightCache(settings, Manifest([spec]), log=logs.append)
print("ready", flush=True)
sys.stdin.readline()  # both processes start together, whenever the slower one is ready
report = cache.ensure_all([spec])
print(json.dumps({"hits": report.hits, "downloaded": report.downloaded, "logs": logs}))
"""


def test_two_processes_download_a_file_once(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    data = write_blob(root / "shared.safetensors", 600 * KB, "shared")
    with serve_directory(root, rate_limit_bps=600 * KB) as served:  # about one second per download
        args = [sys.executable, "-c", _TWO_PROCESS_SCRIPT, str(tmp_path / "weights"),
                f"{served.base_url}/shared.safetensors", str(len(data))]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        procs = [subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=30)[1]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        assert served.requests["/shared.safetensors"] == 1
    assert sorted((r["downloaded"], r["hits"]) for r in results) == [(0, 1), (1, 0)]
    waited = [r for r in results if r["hits"] == 1][0]
    assert any("another process is downloading it; waiting" in line for line in waited["logs"])
    assert (tmp_path / "weights/checkpoints/shared.safetensors").read_bytes() == data


def test_ensure_url_keeps_same_named_files_apart(tmp_path: Path, served) -> None:
    one = write_blob(served.root / "x/lora.safetensors", 20 * KB, "one")
    two = write_blob(served.root / "y/lora.safetensors", 30 * KB, "two")
    civitai_like = write_blob(served.root / "api/download/models/123", 10 * KB, "civ")
    served.extra_headers["/api/download/models/123"] = {
        "Content-Disposition": 'attachment; filename="cool_style.safetensors"'}
    header = (len(b'{"a":1}')).to_bytes(8, "little") + b'{"a":1}'
    write_blob(served.root / "raw/456", 0, "")
    (served.root / "raw/456").write_bytes(header + b"\0" * 100)
    cache = WeightCache(make_settings(tmp_path), Manifest([]), log=Logs())
    name_one = cache.ensure_url(f"{served.base_url}/x/lora.safetensors", "loras")
    name_two = cache.ensure_url(f"{served.base_url}/y/lora.safetensors", "loras")
    assert name_one != name_two
    assert name_one.endswith("/lora.safetensors") and name_two.endswith("/lora.safetensors")
    loras = tmp_path / "weights" / "loras"
    assert (loras / name_one).read_bytes() == one and (loras / name_two).read_bytes() == two
    # The name comes from Content-Disposition when the URL path has none...
    cool = cache.ensure_url(f"{served.base_url}/api/download/models/123", "loras")
    assert cool.endswith("/cool_style.safetensors") and (loras / cool).read_bytes() == civitai_like
    # ...or, failing that, the extension from the file's first bytes (ComfyUI lists only model files).
    raw = cache.ensure_url(f"{served.base_url}/raw/456", "checkpoints")
    assert raw.endswith("/456.safetensors")
    # Hits need no network at all.
    before = sum(served.requests.values())
    report = cache.ensure_all([], urls=[(f"{served.base_url}/x/lora.safetensors", "loras"),
                                        (f"{served.base_url}/api/download/models/123", "loras")])
    assert report.hits == 2 and report.url_names[f"{served.base_url}/x/lora.safetensors"] == name_one
    assert sum(served.requests.values()) == before
    # Two URLs with the same file name and the same folder stay distinct after invalidating one.
    assert cache.invalidate(name_one)
    assert not (loras / name_one).exists() and (loras / name_two).exists()
    assert cache.ensure_url(f"{served.base_url}/x/lora.safetensors", "loras") == name_one


def test_invalidate_then_fetched_again_once(tmp_path: Path, served) -> None:
    data = write_blob(served.root / "v.safetensors", 50 * KB, "v")
    spec = WeightSpec("v.safetensors", "vae", f"{served.base_url}/v.safetensors", "file")
    cache = WeightCache(make_settings(tmp_path), Manifest([spec]), log=Logs())
    path = cache.ensure(spec)
    path.write_bytes(b"\0" * len(data))  # corrupted in place, same size: still a (fast) hit...
    assert cache.ensure_all([spec]).hits == 1
    assert not cache.verify("v.safetensors")  # ...until verified
    assert cache.invalidate("v.safetensors")
    report = cache.ensure_all([spec])
    assert report.downloaded == 1 and path.read_bytes() == data
    assert not cache.invalidate("unknown.safetensors")


def test_tokens_go_only_to_their_own_host(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, hf_token="hf_SECRET", civitai_token="civ_SECRET")
    cache = WeightCache(settings, Manifest([]), log=Logs())
    assert cache._headers("https://huggingface.co/org/repo/resolve/main/x.safetensors") == {
        "Authorization": "Bearer hf_SECRET"}
    assert cache._headers("https://civitai.com/api/download/models/1") == {"Authorization": "Bearer civ_SECRET"}
    assert cache._headers("https://huggingface.co.evil.com/x") == {}
    assert cache._headers("https://weights.replicate.delivery/default/x.tar") == {}
    assert "SECRET" not in repr(settings)


def test_unsafe_tar_is_refused_and_nothing_kept(tmp_path: Path, served) -> None:
    add_to_tar(served.root / "evil.pt.tar", {"../../evil.pt": b"x" * 10})
    spec = WeightSpec("evil.pt", "loras", f"{served.base_url}/evil.pt.tar", "tar")
    cache = WeightCache(make_settings(tmp_path), Manifest([spec]), log=Logs())
    with pytest.raises(UnsafeInputError, match="unsafe entry"):
        cache.ensure_all([spec])
    assert leftovers(tmp_path / "weights") == []
    assert not (tmp_path / "evil.pt").exists()
    add_to_tar(served.root / "other.pt.tar", {"unrelated.pt": b"x" * 10})
    spec = WeightSpec("other.pt", "loras", f"{served.base_url}/other.pt.tar", "tar")
    with pytest.raises(WeightDownloadError, match=r"does not contain 'other.pt'; it holds \['unrelated.pt'\]"):
        WeightCache(make_settings(tmp_path), Manifest([spec]), log=Logs()).ensure_all([spec])
    assert leftovers(tmp_path / "weights") == []


def test_parallel_downloads(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    specs = []
    with serve_directory(root, rate_limit_bps=400 * KB) as served:
        for i in range(4):
            data = write_blob(root / f"p{i}.safetensors", 200 * KB, f"p{i}")
            specs.append(WeightSpec(f"p{i}.safetensors", "loras", f"{served.base_url}/p{i}.safetensors", "file",
                                    size=len(data)))
        cache = WeightCache(make_settings(tmp_path, download_parallel_files=4), Manifest(specs), log=Logs())
        report = cache.ensure_all(specs)
    # Each file alone takes ~0.5 s at the server's per-connection cap; one after another would take ~2 s.
    assert report.downloaded == 4 and report.seconds < 1.5, report.seconds


def test_extra_model_paths_yaml_is_read_by_comfyui(tmp_path: Path, served) -> None:
    write_blob(served.root / "l.safetensors", 1 * KB, "l")
    spec = WeightSpec("sub/l.safetensors", "loras", f"{served.base_url}/l.safetensors", "file")
    manifest = Manifest([spec, WeightSpec("face.pt", "ultralytics", "https://example.com/face.pt.tar", "tar")])
    cache = WeightCache(make_settings(tmp_path), manifest, log=Logs())
    cache.ensure(spec)
    yaml_path = cache.write_extra_model_paths(tmp_path / "extra_model_paths.yaml", folders=["upscale_models"])
    probe = (
        "import sys; sys.argv = ['main.py']; sys.path.insert(0, sys.argv[0] if False else 'ComfyUI');"
        "import folder_paths; from utils.extra_config import load_extra_path_config;"
        f"load_extra_path_config({str(yaml_path)!r});"
        "print(folder_paths.get_full_path('loras', 'sub/l.safetensors'));"
        "print(folder_paths.get_folder_paths('ultralytics')[-1]);"
        "print(folder_paths.get_folder_paths('upscale_models')[-1])"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()[-3:]
    weights = (tmp_path / "weights").resolve()
    assert lines == [str(weights / "loras/sub/l.safetensors"), str(weights / "ultralytics"),
                     str(weights / "upscale_models")]


def test_staging_left_by_a_killed_process_is_swept(tmp_path: Path) -> None:
    staging = tmp_path / "weights" / ".cache" / "staging"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = staging / f"{dead.stdout.strip()}-abc123"
    leftover.mkdir(parents=True)
    (leftover / "x.safetensors.tar").write_bytes(b"partial")
    mine = staging / f"{os.getpid()}-def456"
    mine.mkdir()
    cache = WeightCache(make_settings(tmp_path), Manifest([]), log=Logs())
    assert leftover.exists(), "constructing a cache touches nothing"
    cache.usage()  # first use: folders, index, sweep
    assert not leftover.exists() and mine.exists()


def test_bad_url_folder_is_refused(tmp_path: Path) -> None:
    cache = WeightCache(make_settings(tmp_path), Manifest([]), log=Logs())
    with pytest.raises(ValueError, match="folder"):
        cache.ensure_url("https://example.com/x.safetensors", "../etc")
    assert issubclass(CacheBudgetError, WrapperError)


# --- the budget with downloads in flight: reservations ------------------------------------------------


def unsized(served, name: str, size: int, folder: str = "loras") -> WeightSpec:
    """A weight the manifest gives no size for: its first answer (or its stream) tells."""
    write_blob(served.root / name, size, name)
    return WeightSpec(name, folder, f"{served.base_url}/{name}", "file")


def assert_within_budget(cache: WeightCache, weights: Path, budget: int) -> None:
    assert cache.usage().bytes <= budget
    assert cache.reserved_bytes() == 0
    on_disk = sum(p.stat().st_size for p in weights.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert on_disk <= budget


def test_two_unknown_sizes_in_flight_never_share_the_room(tmp_path: Path, served) -> None:
    """Each fits alone, both do not: before reservations both were admitted and the cache ended over budget."""
    served.rate_limit_bps = 300 * KB  # half a second each, so both are in flight together
    one, two = unsized(served, "one.safetensors", 150 * KB), unsized(served, "two.safetensors", 150 * KB)
    logs = Logs()
    cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=250 * KB), Manifest([one, two]), log=logs)
    with pytest.raises(CacheBudgetError, match="do not fit in the cache budget") as info:
        cache.ensure_all([one, two])
    assert "150.00 KB to download" in str(info.value)
    weights = tmp_path / "weights"
    assert_within_budget(cache, weights, 250 * KB)
    assert set(leftovers(weights)) <= {"loras/one.safetensors", "loras/two.safetensors"}
    assert len(leftovers(weights)) <= 1 and not list((weights / ".cache/staging").iterdir())


@pytest.mark.parametrize("stated", [True, False], ids=["content-length", "no-content-length"])
def test_unknown_sizes_in_flight_evict_older_weights_to_fit(tmp_path: Path, served, stated: bool) -> None:
    old = unsized(served, "old.safetensors", 100 * KB)
    one, two = unsized(served, "one.safetensors", 150 * KB), unsized(served, "two.safetensors", 150 * KB)
    if not stated:
        served.no_length_paths.update({"/one.safetensors", "/two.safetensors"})
    cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=350 * KB), Manifest([old, one, two]),
                        log=Logs())
    cache.ensure_all([old])
    served.rate_limit_bps = 300 * KB
    report = cache.ensure_all([one, two])
    assert report.downloaded == 2 and report.evicted == ("loras/old.safetensors",)
    assert leftovers(tmp_path / "weights") == ["loras/one.safetensors", "loras/two.safetensors"]
    assert_within_budget(cache, tmp_path / "weights", 350 * KB)


@pytest.mark.parametrize("stated", [True, False], ids=["content-length", "no-content-length"])
def test_a_large_and_a_small_unknown_size_that_fit_both_download(tmp_path: Path, served, stated: bool) -> None:
    """No even split of the room: without a stated size, each download reserves more as it streams."""
    served.rate_limit_bps = 500 * KB
    large, small = unsized(served, "large.safetensors", 250 * KB), unsized(served, "small.safetensors", 40 * KB)
    if not stated:
        served.no_length_paths.update({"/large.safetensors", "/small.safetensors"})
    cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=300 * KB), Manifest([large, small]), log=Logs())
    report = cache.ensure_all([large, small])
    assert report.downloaded == 2
    assert report.paths["large.safetensors"].read_bytes() == (served.root / "large.safetensors").read_bytes()
    assert cache.usage().bytes == 290 * KB
    assert_within_budget(cache, tmp_path / "weights", 300 * KB)


def test_reservations_are_released_after_errors_and_deadlines(tmp_path: Path, served) -> None:
    budget = 250 * KB
    data = write_blob(served.root / "w.safetensors", 200 * KB, "w")
    wrong = WeightSpec("w.safetensors", "loras", f"{served.base_url}/w.safetensors", "file", size=len(data),
                       sha256="0" * 64)
    right = dataclasses.replace(wrong, folder="vae", sha256=sha(data))
    endless = unsized(served, "endless.safetensors", 400 * KB, folder="checkpoints")  # past the budget
    served.no_length_paths.add("/endless.safetensors")
    cache = WeightCache(make_settings(tmp_path, weights_budget_bytes=budget), Manifest([wrong, endless]),
                        log=Logs())
    with pytest.raises(ChecksumMismatchError):
        cache.ensure_all([wrong])
    assert cache.reserved_bytes() == 0
    with pytest.raises(CacheBudgetError, match="grew past"):
        cache.ensure_all([endless])  # stopped as it streams past the room, with no size stated
    assert cache.reserved_bytes() == 0
    served.rate_limit_bps = 100 * KB  # two seconds: the deadline comes first
    with pytest.raises(PredictionTimeoutError):
        cache.ensure_all([right], scope=Scope.within(0.3))
    assert cache.reserved_bytes() == 0 and leftovers(tmp_path / "weights") == []
    served.rate_limit_bps = None
    assert cache.ensure_all([right]).downloaded == 1  # the room the failures held is free again
    assert_within_budget(cache, tmp_path / "weights", budget)
