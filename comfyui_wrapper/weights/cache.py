"""The weights cache: fetch each weight once, verify it once, keep it under a byte budget.

Cache tree (``settings.weights_dir``, outside the ComfyUI tree)::

    <weights_dir>/
    ├── checkpoints/
    │   └── sd_xl_base_1.0.safetensors       a weight, exactly where ComfyUI looks for it
    ├── ultralytics/
    │   └── bbox/face_yolov8m.pt             names may hold subfolders
    ├── insightface/
    │   └── antelopev2/                      a tar entry can be a directory
    ├── loras/
    │   └── 3f9a1c2e5d7b8a90/my_lora.safetensors  a weight given by URL: <16 hex of its key>/<file name>
    └── .cache/                              never shown to ComfyUI
        ├── index.sqlite                     one row per verified weight: size, sha256, last use
        ├── locks/<hash>.lock                fcntl.flock per weight; budget.lock while evicting
        └── staging/<pid>-<random>/          downloads and tar extraction; renamed into place

ComfyUI reads the folders through an ``extra_model_paths`` YAML written by
``write_extra_model_paths`` (every folder name -> its cache subfolder, passed
with ``--extra-model-paths-config``), so nothing is copied or linked.

Why it works this way:

- A hit is "the row in index.sqlite exists and the file has that size". The row
  is written only after the bytes were verified (sha256 computed, and compared
  when the manifest gives one), so a prediction never re-hashes gigabytes;
  ``verify(name)`` re-hashes on demand. Sizes and sha256 the manifest does not
  give are learned at the first download and checked on later ``verify``.
- Every byte is written under ``.cache/staging`` and moved into place with one
  ``os.replace`` on the same file system: a weight's name never points at a
  partial file, and a failed download leaves nothing behind.
- ``fcntl.flock`` on a per-weight lock file stops two processes from fetching
  the same file; the second waits, then finds it cached. The lock only avoids
  duplicate work: the rename is what keeps the cache correct.
- Room is made before anything is downloaded (scan -> plan -> evict): least
  recently used weights go first, never one the current request needs, and a
  request that cannot fit fails with CacheBudgetError before any download. The
  last-use times live in index.sqlite, so a restart keeps the LRU order.
- Within a process, the records plus the reservations of the downloads in
  flight never exceed the budget: each download reserves what it may write
  (its known size when planned, the size its first answer states when
  admitted), is stopped as it streams past that, and releases it when its
  record is written or it fails, is cancelled or runs out of time. So two
  weights of unknown size downloading at once are never both admitted into the
  same room: the second makes room around the first, or is refused.
- Tokens: ``hf_token`` goes only to https://huggingface.co and https://hf.co,
  ``civitai_token`` only to https://civitai.com (exact hosts, port 443, decided
  by ``urls.token_header`` from the client's own parse), as an Authorization
  header that download.fetch never sends past the first hop's origin; URLs
  are shown only through errors.redact.
- A URL weight's folder is a hash of the URL as the client sends it. A URL
  without a user credential is shared by every requester (the operator's own
  tokens do not count: they are the container's). A URL that carries one
  (``?token=``, ``?sig=``... the secrets ``errors.redact`` hides) is keyed on
  the whole URL, credential included, so user B never gets the file user A
  fetched with A's token; only the redacted URL and a hash reach the index
  and the logs.
- Bounded: ``ensure_all(scope=...)`` stops every download at the scope's
  deadline or cancel (nothing kept, locks and reservations released); a weight
  whose first answer states no size reserves room in steps (a 64th of the
  budget, at most 64 MiB) as it streams, and is stopped when the budget has
  none left.

- Tar weights (every CDN entry) never land as archives: a tar holding one
  file is fetched as the byte range of that file (found from the first
  answer's first bytes, see tar_weights), other tars are extracted as they
  stream in. A weight of unknown size is not probed: the first answer of its
  download states the size and ``_admitter`` makes room (or refuses) before the
  body is read.

Known gaps: two processes downloading at the same moment may together exceed
the budget by what they download concurrently (each plan holds the budget lock,
but reservations live in one process: another's downloads in flight are not
seen). A compressed tar is counted by the bytes it downloads; its extracted
size, checked only against the free disk, is recorded at the end.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote, urlsplit

from ..errors import (
    CacheBudgetError,
    ChecksumMismatchError,
    PredictionInterruptedError,
    PredictionTimeoutError,
    UnsafeInputError,
    WeightDownloadError,
    redact,
    redacted_repr,
)
from ..filetypes import has_model_extension, sniff_weights
from ..logs import get_logger
from ..settings import Settings
from ..sizes import human_bytes
from ..urls import Scope, UrlPolicy, parse_target, token_header
from . import download
from . import tar as tar_weights
from .manifest import Manifest, WeightSpec

_logger = get_logger(__name__)

CACHE_DIR = ".cache"
PROGRESS_EVERY_S = 5.0
HASH_CHUNK = 8 * 1024 * 1024
URL_HASH_CHARS = 16  # 64 bits: no one can search for a URL whose folder collides with another's
# Names ComfyUI lists as model files (folder_paths.supported_pt_extensions, plus gguf and onnx).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS weights (
    key TEXT PRIMARY KEY,         -- folder/name: the path under weights_dir
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,            -- where it came from (redacted)
    size INTEGER NOT NULL,        -- bytes (a directory: the sum of its files)
    sha256 TEXT NOT NULL,         -- of the file (a directory: of its listing, see _hash_tree)
    is_dir INTEGER NOT NULL,
    verified_at REAL NOT NULL,
    last_used REAL NOT NULL
);
"""


class _Abandoned(Exception):
    """Another weight of the same request failed: this one stops quietly (nothing kept)."""


@dataclass(frozen=True)
class EnsureReport:
    """What ensure_all did, for logs and metrics."""

    paths: dict[str, Path]  # requested name -> path on disk
    hits: int  # already cached (including ones another process fetched while we waited)
    downloaded: int  # fetched by this call
    bytes: int  # bytes read from the network by this call
    seconds: float
    evicted: tuple[str, ...] = ()  # keys removed to make room
    url_names: dict[str, str] = field(default_factory=dict)  # URL -> name to put in the workflow


@dataclass(frozen=True)
class CacheUsage:
    bytes: int
    weights: int
    budget: int  # 0 = unlimited
    free_disk: int


@dataclass(frozen=True)
class _Record:
    key: str
    folder: str
    name: str
    url: str
    size: int
    sha256: str
    is_dir: bool
    last_used: float


@redacted_repr
@dataclass
class _Item:
    """One weight this call needs: a manifest spec, or a URL turned into one."""

    spec: WeightSpec
    requested: str  # the name or URL the caller asked for
    lock_key: str
    url_dir: str | None = None  # for URL weights: "<folder>/<hash16>", the name is decided later
    estimate: int | None = None
    also: list[str] = field(default_factory=list)  # other spellings of the same URL (same key)
    protected: frozenset[str] = frozenset()  # keys this request uses: never evicted to make room for it
    abandon: threading.Event | None = None  # set when another weight of the same request failed
    scope: Scope | None = None  # the caller's deadline and cancel
    max_bytes: int | None = None  # the bytes this download may write: its reservation in the budget
    evicted: list[str] = field(default_factory=list)  # keys removed to make room once it was under way

    @property
    def urls(self) -> list[str]:
        return [self.requested, *self.also] if self.url_dir is not None else []


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_files(root: Path) -> list[tuple[str, Path]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in filenames:
            full = Path(dirpath) / filename
            found.append((full.relative_to(root).as_posix(), full))
    return sorted(found)


def _tree_size(root: Path) -> int:
    return sum(p.lstat().st_size for _, p in _tree_files(root) if not p.is_symlink())


def _hash_tree(root: Path) -> str:
    """A directory's sha256: of the sorted lines ``<relative path>\\0<file sha256>``."""
    digest = hashlib.sha256()
    for rel, full in _tree_files(root):
        content = "link:" + os.readlink(full) if full.is_symlink() else _hash_file(full)
        digest.update(f"{rel}\0{content}\n".encode())
    return digest.hexdigest()


def _measure(path: Path) -> tuple[int, str, bool]:
    """(size, sha256, is_dir) of a weight on disk."""
    if path.is_dir():
        return _tree_size(path), _hash_tree(path), True
    return path.stat().st_size, _hash_file(path), False


def _grow_step(budget: int) -> int:
    """How much more a download of unstated size reserves each time it passes its reservation."""
    return min(64 * 1024 * 1024, max(4 * 1024, budget // 64))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def url_key(url: str) -> str:
    """The folder a URL weight is kept in: shared when the URL carries no user credential, else per credential.

    Raises UnsafeInputError for a URL the client could read two ways.
    """
    target = parse_target(url)
    material = target.shown if target.shown == target.raw_url else "with-credential\0" + target.raw_url
    return hashlib.sha256(material.encode()).hexdigest()[:URL_HASH_CHARS]


def _url_filename(url: str) -> str:
    """The last path part of a URL, decoded, as a safe base name ("" if there is none).

    Decoding can produce separators ("a%2F..%2Fx"), so the base name is taken after it.
    """
    name = unquote(urlsplit(url).path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return "" if name in (".", "..") else name


def _set_wal(db: sqlite3.Connection, attempts: int = 200) -> None:
    """Switch to WAL; SQLite answers "locked" at once (no busy wait) while another process
    opens the same file, so retry briefly. WAL is persistent: later opens find it set."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class WeightCache:
    """Weights on local disk, fetched on demand; see the module docstring for the layout."""

    def __init__(self, settings: Settings, manifest: Manifest, *, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.manifest = manifest
        self.log = log if log is not None else _logger.info
        self.root = Path(settings.weights_dir)
        self.meta = self.root / CACHE_DIR
        self.locks = self.meta / "locks"
        self.staging = self.meta / "staging"
        self.db_path = self.meta / "index.sqlite"
        self.policy = UrlPolicy(allow_private=settings.allow_private_urls, timeout_s=settings.download_timeout_s)
        self._connection: sqlite3.Connection | None = None
        self._db_lock = threading.RLock()
        # Bytes of downloads in flight in this process (admitted, not yet recorded in the index), by id of
        # their _Item: counted as used when room is made, so concurrent downloads never share the same room.
        self._reservations: dict[int, int] = {}
        self._reservations_lock = threading.Lock()
        self._prepared = False  # folders, schema, staging sweep: on first use, not here (a plan writes nothing)

    def _prepare(self) -> None:
        """On first use: the cache's folders, the index's schema, and what killed processes left in staging."""
        with self._db_lock:
            if self._prepared:
                return
            for directory in (self.root, self.meta, self.locks, self.staging):
                directory.mkdir(parents=True, exist_ok=True)
            self._prepared = True
            with self._db() as db:
                db.executescript(_SCHEMA)
            self._sweep_staging()

    def _has_index(self) -> bool:
        """Whether there is an index to read: reading an absent one returns nothing and creates nothing."""
        return self._prepared or self.db_path.exists()

    # --- paths and records --------------------------------------------------------------

    def path_for(self, spec: WeightSpec) -> Path:
        return self.root / spec.folder / spec.name

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The index connection (WAL, busy timeout), one at a time within this process.

        Kept open, because closing the last connection makes SQLite checkpoint and
        fsync, which would cost every cache hit several milliseconds.
        """
        with self._db_lock:
            if self._connection is None:
                self._prepare()
            if self._connection is None:
                db = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None, check_same_thread=False)
                _set_wal(db)
                db.execute("PRAGMA synchronous=NORMAL")
                self._connection = db
            yield self._connection

    def close(self) -> None:
        """Close the index connection (it reopens on demand)."""
        with self._db_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _records(self, keys: Iterable[str] | None = None) -> dict[str, _Record]:
        query = "SELECT key, folder, name, url, size, sha256, is_dir, last_used FROM weights"
        if not self._has_index():
            return {}
        with self._db() as db:
            if keys is None:
                rows = db.execute(query).fetchall()
            else:
                wanted = list(keys)
                rows = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    rows += db.execute(f"{query} WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return {row[0]: _Record(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7]) for row in rows}

    def _url_record(self, url_dir: str) -> _Record | None:
        if not self._has_index():
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT key, folder, name, url, size, sha256, is_dir, last_used FROM weights "
                "WHERE key LIKE ? ESCAPE '\\' ORDER BY last_used DESC LIMIT 1",
                (url_dir.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%",),
            ).fetchone()
        return _Record(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7]) if row else None

    def _write_record(self, spec: WeightSpec, url: str, size: int, sha256: str, is_dir: bool) -> None:
        now = time.time()
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO weights (key, folder, name, url, size, sha256, is_dir, verified_at, last_used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.key, spec.folder, spec.name, redact(url), size, sha256, int(is_dir), now, now),
            )

    def _touch(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE weights SET last_used = ? WHERE key = ?", [(now, key) for key in keys])
            db.execute("COMMIT")

    def _forget(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM weights WHERE key = ?", (key,))

    def _is_hit(self, spec: WeightSpec, record: _Record | None) -> bool:
        """Fast: a verified record and a file of that size; no hashing."""
        if record is None:
            return False
        if spec.size is not None and record.size != spec.size:
            return False
        if spec.sha256 is not None and record.sha256 != spec.sha256:
            return False  # the manifest now pins other bytes than the ones we have
        path = self.path_for(spec)
        try:
            if record.is_dir:
                return path.is_dir() and _tree_size(path) == record.size
            stat = path.stat()
        except OSError:
            return False
        return stat.st_size == record.size and not path.is_dir()

    # --- locks and staging ----------------------------------------------------------------

    @contextmanager
    def _lock(self, key: str, *, wait_message: str | None = None) -> Iterator[None]:
        self._prepare()
        path = self.locks / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if wait_message:
                    self.log(wait_message)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def _staging_dir(self) -> Iterator[Path]:
        self._prepare()
        path = self.staging / f"{os.getpid()}-{os.urandom(6).hex()}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _sweep_staging(self) -> None:
        """Remove what killed processes left in staging (their pid is in the name)."""
        for entry in self.staging.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def _remove_path(self, path: Path) -> None:
        """Remove a file or directory so that it vanishes at once (renamed away, then deleted)."""
        if not path.exists() and not path.is_symlink():
            return
        if path.is_dir() and not path.is_symlink():
            trash = self.staging / f"{os.getpid()}-trash-{os.urandom(6).hex()}"
            os.replace(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    # --- the public operations ----------------------------------------------------------------

    def ensure(self, spec: WeightSpec) -> Path:
        return self.ensure_all([spec]).paths[spec.name]

    def ensure_url(self, url: str, folder: str, *, keep: Iterable[WeightSpec] = ()) -> str:
        """Download ``url`` into ``<folder>/<hash8>/<file name>``; return the name for the workflow.

        ``keep``: other weights of the same workflow, protected from eviction.
        """
        return self.ensure_all(keep, urls=[(url, folder)]).url_names[url]

    def ensure_all(self, specs: Iterable[WeightSpec], *, urls: Iterable[tuple[str, str]] = (),
                   scope: Scope | None = None) -> EnsureReport:
        """Make every weight present and verified; return where they are and what it cost.

        ``urls`` are (url, folder) pairs for weights given by URL; their names for
        the workflow come back in ``report.url_names``. ``scope`` (the
        prediction's deadline and cancel) stops every download at once.
        """
        began = time.monotonic()
        items = self._items(specs, urls)
        for item in items:
            item.scope = scope
        records = self._records(item.spec.key for item in items if item.url_dir is None)
        hits: list[_Item] = []
        missing: list[_Item] = []
        for item in items:
            if item.url_dir is not None:
                record = self._url_record(item.url_dir)
                if record is not None:
                    item.spec = self._url_spec(item, record.name.split("/", 1)[1])
                    if self._is_hit(item.spec, record):
                        hits.append(item)
                        continue
            elif self._is_hit(item.spec, records.get(item.spec.key)):
                hits.append(item)
                continue
            missing.append(item)
        self._touch(item.spec.key for item in hits)
        paths = {item.requested: self.path_for(item.spec) for item in hits}
        url_names = {url: item.spec.name for item in hits for url in item.urls}
        if not missing:
            return EnsureReport(paths, len(hits), 0, 0, time.monotonic() - began, (), url_names)

        try:
            return self._fetch_missing(items, hits, missing, paths, url_names, began)
        finally:
            for item in missing:
                self._release(item)  # each download releases its own; this covers any path that skipped one

    def _fetch_missing(self, items: list[_Item], hits: list[_Item], missing: list[_Item], paths: dict[str, Path],
                       url_names: dict[str, str], began: float) -> EnsureReport:
        """Make room for the missing weights, fetch them in parallel; the first failure stops the others."""
        evicted: list[str] = []
        workers = max(1, self.settings.download_parallel_files)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="weights") as pool:
            self._estimate(missing)
            protected = frozenset({item.spec.key for item in items} | {item.url_dir for item in items if item.url_dir})
            for item in missing:
                item.protected = protected
            evicted = self._make_room(missing, protected=set(protected))
            # No probe tells a bad URL before the downloads start, so the first failure stops the
            # others (within a progress interval): a request that fails still fails fast, and
            # fetches nothing it will not use.
            failed = threading.Event()
            for item in missing:
                item.abandon = failed
            futures = [(item, pool.submit(self._obtain_or_abandon, item)) for item in missing]
            errors: list[BaseException] = []
            downloaded, transferred, extra_hits = 0, 0, 0
            for item, future in futures:
                try:
                    spec, got_bytes = future.result()
                except _Abandoned:
                    continue
                except BaseException as exc:  # noqa: BLE001 - collected, the first is raised below
                    errors.append(exc)
                    continue
                item.spec = spec
                paths[item.requested] = self.path_for(spec)
                url_names.update((url, spec.name) for url in item.urls)
                if got_bytes is None:
                    extra_hits += 1
                else:
                    downloaded += 1
                    transferred += got_bytes
        evicted += [key for item in missing for key in item.evicted]  # while under way (a size learned late)
        if errors:
            for extra in errors[1:]:
                self.log(f"Also failed: {str(extra).splitlines()[0]}")
            raise errors[0]
        seconds = time.monotonic() - began
        if downloaded:
            rate = transferred / seconds if seconds > 0 else 0.0
            self.log(f"Weights: {downloaded} downloaded ({human_bytes(transferred)} in {seconds:.1f} s, "
                     f"{rate / 1e6:.0f} MB/s), {len(hits) + extra_hits} already cached.")
        return EnsureReport(paths, len(hits) + extra_hits, downloaded, transferred, seconds, tuple(evicted), url_names)

    def cached_names(self, specs: Iterable[WeightSpec]) -> set[str]:
        """Names among ``specs`` that are present and verified now (no hashing, no network)."""
        specs = list(specs)
        records = self._records(spec.key for spec in specs)
        return {spec.name for spec in specs if self._is_hit(spec, records.get(spec.key))}

    def record_sha256(self, spec: WeightSpec) -> str | None:
        """The sha256 recorded when ``spec`` was verified (for provenance)."""
        record = self._records([spec.key]).get(spec.key)
        return record.sha256 if record is not None else spec.sha256

    def verify(self, name: str, folder: str | None = None) -> bool:
        """Re-hash a cached weight and compare with its record (and the manifest's sha256)."""
        record = self._find_record(name, folder)
        if record is None:
            return False
        path = self.root / record.folder / record.name
        if not path.exists():
            return False
        with self._lock(record.key):
            size, sha256, _ = _measure(path)
        spec = self.manifest.get(record.name)
        expected = spec.sha256 if spec is not None and spec.folder == record.folder and spec.sha256 else record.sha256
        ok = size == record.size and sha256 == expected
        if not ok:
            self.log(f"{record.key}: verification failed (size {size} vs {record.size}, "
                     f"sha256 {sha256[:12]}... vs {expected[:12]}...).")
        return ok

    def invalidate(self, name: str, folder: str | None = None) -> bool:
        """Remove a weight (e.g. ComfyUI could not load it) so the next request fetches it again."""
        record = self._find_record(name, folder)
        spec = self.manifest.resolve(name)
        key = record.key if record else (spec.key if spec else None)
        if key is None:
            return False
        path = self.root / key
        with self._lock(key):
            existed = path.exists() or path.is_symlink()
            self._remove_path(path)
            self._forget(key)
        self.log(f"{key}: removed from the cache; it will be downloaded again when next needed.")
        return existed or record is not None

    def usage(self) -> CacheUsage:
        self._prepare()
        records = self._records()
        return CacheUsage(sum(r.size for r in records.values()), len(records),
                          self.settings.weights_budget_bytes, shutil.disk_usage(self.root).free)

    def write_extra_model_paths(self, path: Path | str, folders: Iterable[str] = ()) -> Path:
        """Write the YAML that shows ComfyUI every cache folder (pass it with --extra-model-paths-config).

        Covers the manifest's folders, any folder already in the cache, and ``folders``.
        """
        self._prepare()
        names = set(self.manifest.folders) | set(folders)
        names |= {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}
        lines = [
            "# Written by comfyui_wrapper.weights.cache: ComfyUI reads the weights cache from here.",
            "comfyui_wrapper_weights:",
            f"  base_path: {json.dumps(str(self.root.resolve()))}",
            "  is_default: false",
        ]
        for folder in sorted(names, key=str.lower):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            lines.append(f"  {json.dumps(folder)}: {json.dumps(folder)}")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temp.write_text("\n".join(lines) + "\n")
        os.replace(temp, target)
        return target

    # --- planning -------------------------------------------------------------------------------

    def _items(self, specs: Iterable[WeightSpec], urls: Iterable[tuple[str, str]]) -> list[_Item]:
        items: dict[str, _Item] = {}
        for spec in specs:
            items.setdefault(spec.key, _Item(spec, spec.name, spec.key))
        for url, folder in urls:
            if not folder or "/" in folder or folder.startswith("."):
                raise ValueError(f"Cannot store a weight from {redact(url)} in folder {folder!r}: "
                                 "name a ComfyUI model folder such as loras or checkpoints.")
            url_hash = url_key(url)
            url_dir = f"{folder}/{url_hash}"
            placeholder = WeightSpec(name=f"{url_hash}/{_url_filename(url) or 'download'}", folder=folder, url=url)
            existing = items.setdefault(url_dir, _Item(placeholder, url, url_dir, url_dir=url_dir))
            if existing.requested != url and url not in existing.also:
                existing.also.append(url)
        return list(items.values())

    def _url_spec(self, item: _Item, filename: str) -> WeightSpec:
        url_hash = item.url_dir.rsplit("/", 1)[1] if item.url_dir else ""
        return WeightSpec(name=f"{url_hash}/{filename}", folder=item.spec.folder, url=item.spec.url)

    def _headers(self, url: str) -> dict[str, str]:
        """The operator's token for the URL's exact host (https only), and no other; from the client's parse."""
        try:
            target = parse_target(url)
        except UnsafeInputError:
            return {}  # the fetch refuses it anyway
        return token_header(target, hf_token=self.settings.hf_token, civitai_token=self.settings.civitai_token)

    @staticmethod
    def _estimate(missing: list[_Item]) -> None:
        """Bytes each missing weight will take, as far as known without asking the server.

        The manifest's size, else its approximate size, else nothing: a weight of
        unknown size is measured by the first answer of its own download, which
        ``_admitter`` checks against the budget before any body byte is read (no
        separate probe round trip).
        """
        for item in missing:
            item.estimate = item.spec.size if item.spec.size is not None else item.spec.approx_size

    def _admitter(self, item: _Item) -> Callable[[int | None], int | None]:
        """download.fetch's ``admit``: reserve the size the server states (making room), or refuse.

        Returns the download's byte limit, which is its reservation (None: no
        budget). A size no larger than the reservation only shrinks it; a larger
        one makes room again under the budget lock, counting every other
        reservation. An answer that states no size keeps the planned estimate,
        and ``_grower`` adds room as the body streams past it.
        """
        def admit(size: int | None) -> int | None:
            self._check_abandon(item)
            if self.settings.weights_budget_bytes <= 0 or size is None:
                return item.max_bytes
            if item.max_bytes is not None and size <= item.max_bytes:
                item.estimate = item.max_bytes = size
                self._reserve(item, size)
                return size
            item.estimate = size
            item.evicted += self._make_room([item], set(item.protected))
            return item.max_bytes

        return admit

    def _grower(self, item: _Item) -> Callable[[int], int]:
        """download.fetch's ``more``: a body of unstated size passed its reservation; reserve a step more.

        Steps (a 64th of the budget, within 4 KiB..64 MiB) make room like any
        admission; when a whole step does not fit, the last of the room does.
        So such a download holds at most one step it may not use, which another
        download of the same moment cannot have. Returning less than ``got``
        stops the download (CacheBudgetError).
        """
        def more(got: int) -> int:
            item.estimate = got + _grow_step(self.settings.weights_budget_bytes)
            try:
                item.evicted += self._make_room([item], set(item.protected), least=got)
            except CacheBudgetError:
                pass  # the reservation is unchanged: the download stops at it
            return item.max_bytes if item.max_bytes is not None else got

        return more

    # --- reservations: downloads in flight in this process -------------------------------------

    def _reserve(self, item: _Item, size: int) -> None:
        with self._reservations_lock:
            self._reservations[id(item)] = size

    def _release(self, item: _Item) -> None:
        with self._reservations_lock:
            self._reservations.pop(id(item), None)

    def _reserved_by_others(self, items: list[_Item]) -> int:
        mine = {id(item) for item in items}
        with self._reservations_lock:
            return sum(size for key, size in self._reservations.items() if key not in mine)

    def reserved_bytes(self) -> int:
        """Bytes held by this process's downloads in flight (0 when none runs)."""
        return self._reserved_by_others([])

    def _make_room(self, missing: list[_Item], protected: set[str], *, least: int | None = None) -> list[str]:
        """Evict least recently used weights until the missing ones fit; or fail before downloading.

        Each missing item then reserves its estimate. ``least`` (one growing
        download, with that many bytes already on disk): take whatever room is
        left when the estimate does not fit, if that is more than ``least``.
        """
        need = sum(item.estimate or 0 for item in missing)
        # A tar weight is extracted as it arrives: never the archive and its copy at once.
        need_disk = need - (least or 0)
        budget = self.settings.weights_budget_bytes
        evicted: list[str] = []
        with self._lock("budget"):
            records = self._records()
            in_use = {key for key in records if key in protected or key.rsplit("/", 1)[0] in protected}
            used = sum(r.size for key, r in records.items() if key not in {i.spec.key for i in missing})
            in_flight = self._reserved_by_others(missing)  # other downloads in flight in this process
            used += in_flight
            pinned = sum(records[key].size for key in in_use if key in records)
            free = shutil.disk_usage(self.root).free
            candidates = sorted((r for key, r in records.items() if key not in in_use), key=lambda r: r.last_used)
            plan: list[_Record] = []
            for record in candidates:
                over_budget = budget > 0 and used + need > budget
                over_disk = need_disk > free
                if not (over_budget or over_disk):
                    break
                plan.append(record)
                used -= record.size
                free += record.size
            if least is not None:  # the last of the room, to a growing download
                room = min(budget - used if budget > 0 else need, least + free)
                if least < room < need:
                    missing[0].estimate = need = room
                    need_disk = need - least
            if budget > 0 and used + need > budget:
                raise CacheBudgetError(
                    f"The weights this workflow needs do not fit in the cache budget: {human_bytes(need)} to "
                    f"download ({self._list(missing)}) plus {human_bytes(pinned)} already cached and used by this "
                    f"workflow{self._in_flight_note(in_flight)}, but CW_WEIGHTS_BUDGET is {human_bytes(budget)}.",
                    needed_bytes=need + pinned + in_flight, budget_bytes=budget,
                )
            if need_disk > free:
                raise CacheBudgetError(
                    f"Not enough disk space in {self.root} for this workflow's weights: {human_bytes(need_disk)} "
                    f"needed ({self._list(missing)}), {human_bytes(free)} free even after evicting every cached "
                    "weight this workflow does not use.",
                    needed_bytes=need_disk, free_bytes=free,
                )
            if budget > 0:
                # Each download reserves what it may write, and is stopped as it streams past it: its
                # estimate, then the size its first answer states (_admitter), or, when none does, more
                # as it arrives (_grower).
                for item in missing:
                    item.max_bytes = item.estimate or 0
                    self._reserve(item, item.max_bytes)
            for record in plan:
                with self._lock(record.key):
                    self._remove_path(self.root / record.key)
                    self._forget(record.key)
                evicted.append(record.key)
                self.log(f"Evicted {record.key} ({human_bytes(record.size)}, least recently used) to make room.")
        return evicted

    @staticmethod
    def _in_flight_note(in_flight: int) -> str:
        return f" plus {human_bytes(in_flight)} being downloaded now" if in_flight else ""

    @staticmethod
    def _list(items: list[_Item], limit: int = 5) -> str:
        shown = ", ".join(f"{item.spec.name} {human_bytes(item.estimate)}" for item in items[:limit])
        return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")

    # --- fetching ---------------------------------------------------------------------------------

    def _progress(self, item: _Item) -> Callable[[download.Progress], None]:
        """A line when a download starts and every few seconds (bytes, rate, ETA); the end is
        logged by _download's "ready" line. On a terminal (the CLI), a tqdm bar instead.
        Raising _Abandoned stops the download (another weight of the request failed)."""
        show = download.default_progress(PROGRESS_EVERY_S, write=self.log, final=False)

        def report(p: download.Progress) -> None:
            self._check_abandon(item)
            show(p)

        return report

    def _obtain_or_abandon(self, item: _Item) -> tuple[WeightSpec, int | None]:
        """_obtain, unless another weight of the request failed; a failure here stops the others."""
        try:
            self._check_abandon(item)
            return self._obtain(item)
        except _Abandoned:
            raise
        except BaseException:
            if item.abandon is not None:
                item.abandon.set()
            raise
        finally:
            self._release(item)  # recorded by now (the record counts instead), or failed: nothing kept

    @staticmethod
    def _check_abandon(item: _Item) -> None:
        if item.abandon is not None and item.abandon.is_set():
            raise _Abandoned(item.spec.key)

    def _obtain(self, item: _Item) -> tuple[WeightSpec, int | None]:
        """Download one weight under its lock; (spec, bytes) or (spec, None) if another process did."""
        wait = f"{item.spec.key}: another process is downloading it; waiting."
        with self._lock(item.lock_key, wait_message=wait):
            if item.url_dir is not None:
                record = self._url_record(item.url_dir)
                if record is not None:
                    spec = self._url_spec(item, record.name.split("/", 1)[1])
                    if self._is_hit(spec, record):
                        self._touch([spec.key])
                        return spec, None
            elif self._is_hit(item.spec, self._records([item.spec.key]).get(item.spec.key)):
                self._touch([item.spec.key])
                return item.spec, None
            return self._download(item)

    def _download(self, item: _Item) -> tuple[WeightSpec, int]:
        spec = item.spec
        failures: list[BaseException] = []
        for url, archive in spec.sources():
            began = time.monotonic()
            try:
                with self._staging_dir() as staging:
                    if archive == "tar":
                        entry, transferred, size, sha256, is_dir = self._fetch_tar(item, url, staging)
                    else:
                        entry, transferred, size, sha256 = self._fetch_file(item, url, staging)
                        is_dir = False
                        if item.url_dir is not None:
                            spec = self._url_spec(item, entry.name)
                    self._check(spec, url, size, sha256)
                    final = self.path_for(spec)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self._remove_path(final)  # a stale or corrupt copy
                    os.replace(entry, final)
                # Recorded only now: the record is what makes it a hit.
                self._write_record(spec, url, size, sha256, is_dir)
                seconds = time.monotonic() - began
                self.log(f"{spec.key}: ready, {human_bytes(size)} in {seconds:.1f} s "
                         f"({transferred / max(seconds, 1e-6) / 1e6:.0f} MB/s).")
                return spec, transferred
            except (CacheBudgetError, UnsafeInputError, PredictionTimeoutError, PredictionInterruptedError):
                raise  # a full disk, a refused URL, the deadline or a cancel: no mirror will do better
            except (WeightDownloadError, OSError, tarfile.TarError) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise CacheBudgetError(
                        f"The disk filled up while storing {spec.key} from {url}.",
                        filename=spec.name, url=url) from None
                failures.append(exc)
                if len(spec.sources()) > 1:
                    self.log(f"{spec.key}: {str(exc).splitlines()[0]}")
        raise self._all_failed(spec, failures)

    def _fetch_file(self, item: _Item, url: str, staging: Path) -> tuple[Path, int, int, str]:
        """(path in staging, bytes transferred, size, sha256) of a URL that serves the weight itself."""
        spec = item.spec
        filename = PurePosixPath(spec.name).name
        result = download.fetch(
            url, staging / filename, size=spec.size, sha256=spec.sha256, policy=self.policy,
            headers=self._headers(url), connections=self.settings.download_connections,
            timeout_s=self.settings.download_timeout_s, progress=self._progress(item), scope=item.scope,
            max_bytes=item.max_bytes, admit=self._admitter(item), more=self._grower(item),
        )
        path = result.path
        if item.url_dir is not None:
            wanted = result.filename_hint or filename
            if not has_model_extension(wanted):
                with path.open("rb") as handle:
                    wanted += sniff_weights(handle.read(16))
            if wanted != path.name:
                path = path.rename(path.with_name(wanted))
        return path, result.bytes_transferred, result.size, result.sha256

    def _fetch_tar(self, item: _Item, url: str, staging: Path) -> tuple[Path, int, int, str, bool]:
        """(path in staging, bytes transferred, size, sha256, is_dir) of the weight inside a tar at ``url``.

        A tar holding just the file: its byte range, found from the first
        answer's first bytes, is fetched like a plain file (parallel ranges,
        resumed, hashed as it lands) straight into the weight's own file.
        Anything else (a directory, several members, a compressed tar) is
        extracted member by member as one stream arrives. Either way the
        archive itself never reaches the disk.
        """
        spec = item.spec
        basename = PurePosixPath(spec.name).name
        common: dict[str, Any] = dict(policy=self.policy, headers=self._headers(url), timeout_s=self.settings.download_timeout_s,
                      progress=self._progress(item), admit=self._admitter(item), scope=item.scope,
                      max_bytes=item.max_bytes, more=self._grower(item))
        try:
            result = download.fetch(url, staging / basename, size=spec.size, sha256=spec.sha256,
                                    connections=self.settings.download_connections,
                                    window=tar_weights.member_window(spec.name), **common)
            return result.path, result.bytes_transferred, result.size, result.sha256, False
        except download.NoWindow:
            pass
        out = staging / "x"
        self.log(f"{spec.key}: the archive is not a single file; extracting it as it arrives.")
        common.update(max_bytes=item.max_bytes)  # the room the first answer's admission made, if it made some
        _, transferred = download.stream(
            url, lambda body: tar_weights.extract_stream(body, out, weight=spec.key, url=url),
            name=f"{basename}.tar", **common)
        entry = tar_weights.find_extracted(out, spec.name)
        if entry is None:
            raise WeightDownloadError(
                f"The archive for {spec.key} from {url} does not contain {spec.name!r}; "
                f"it holds {tar_weights.listing(out) or 'nothing'}.",
                fix="Correct the manifest entry's name or URL.", filename=spec.name, url=url,
            )
        size, sha256, is_dir = _measure(entry)
        return entry, transferred, size, sha256, is_dir

    def _check(self, spec: WeightSpec, url: str, size: int, sha256: str) -> None:
        """The manifest's size and sha256, when it gives them, for the weight itself."""
        if spec.size is not None and size != spec.size:
            raise ChecksumMismatchError(
                f"{spec.key} from {url} is {size} bytes, but the manifest says {spec.size}.",
                fix="The file changed upstream or the manifest is wrong: correct the manifest entry.",
                filename=spec.name, url=url, expected_size=spec.size, actual_size=size)
        if spec.sha256 is not None and sha256 != spec.sha256:
            raise ChecksumMismatchError(
                f"{spec.key} from {url} has sha256 {sha256}, but the manifest says {spec.sha256}.",
                fix="Retry once; if it persists, the file changed upstream: correct the manifest entry.",
                filename=spec.name, url=url, expected_sha256=spec.sha256, actual_sha256=sha256)

    def _all_failed(self, spec: WeightSpec, failures: list[BaseException]) -> BaseException:
        if len(failures) == 1:
            return failures[0]
        lines = "\n".join(f"- {str(f).splitlines()[0]}" for f in failures)
        first = failures[0]
        return WeightDownloadError(
            f"Could not download {spec.key} from any of its {len(failures)} sources:\n{lines}",
            fix=getattr(first, "fix", None), filename=spec.name, url=spec.url)

    def _find_record(self, name: str, folder: str | None) -> _Record | None:
        spec = self.manifest.resolve(name)
        keys = [f"{folder}/{name}"] if folder else []
        if spec is not None:
            keys.append(spec.key)
        records = self._records(keys)
        for key in keys:
            if key in records:
                return records[key]
        if folder is None and self._has_index():
            with self._db() as db:
                row = db.execute("SELECT key FROM weights WHERE name = ? LIMIT 1", (name,)).fetchone()
            if row:
                return self._records([row[0]]).get(row[0])
        return None


__all__ = ["WeightCache", "EnsureReport", "CacheUsage"]
