"""Hostile and broken inputs for the bad-input matrix, built on the fly.

Each builder writes one file under a folder the test gives and returns its
path. Every archive also holds ``photos/a.png``, the file the matrix's
workflow loads, so the only thing wrong with it is the entry the builder is
named after (a good archive with the same workflow succeeds; see
``good_zip``). Nothing here is downloaded: tests must not depend on the
internet.
"""

from __future__ import annotations

import functools
import io
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from comfyui_wrapper.errors import InputFileError, InputTooLargeError, UnsafeInputError, WorkflowError

MEMBER = "photos/a.png"  # what the archive workflows load


def png_bytes(size: tuple[int, int] = (8, 8), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def good_zip(folder: Path) -> Path:
    path = folder / "good.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, png_bytes())
    return path


def zip_slip(folder: Path, entry: str = "../evil.png") -> Path:
    """A zip whose second entry climbs out of the folder it is unpacked into."""
    path = folder / "slip.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, png_bytes())
        archive.writestr(entry, png_bytes())
    return path


def _tar_with(path: Path, extra: tarfile.TarInfo) -> Path:
    image = png_bytes()
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(image)
        archive.addfile(info, io.BytesIO(image))
        archive.addfile(extra)
    return path


def tar_symlink_escape(folder: Path, target: str = "../../../../etc/passwd") -> Path:
    link = tarfile.TarInfo("photos/link.png")
    link.type = tarfile.SYMTYPE
    link.linkname = target
    return _tar_with(folder / "symlink.tar", link)


def tar_hardlink(folder: Path, target: str = "/etc/passwd") -> Path:
    link = tarfile.TarInfo("photos/hard.png")
    link.type = tarfile.LNKTYPE
    link.linkname = target
    return _tar_with(folder / "hardlink.tar", link)


def tar_device(folder: Path) -> Path:
    """A character device entry (major 1, minor 3 is /dev/null on Linux)."""
    device = tarfile.TarInfo("photos/null")
    device.type = tarfile.CHRTYPE
    device.devmajor, device.devminor = 1, 3
    return _tar_with(folder / "device.tar", device)


def zip_bomb(folder: Path, name: str, zero_bytes: int) -> Path:
    """A zip holding ``zero_bytes`` zeros: a thousandfold compression ratio."""
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(MEMBER, png_bytes())
        archive.writestr("photos/zeros.bin", bytes(zero_bytes))
    return path


def corrupt_zip(folder: Path) -> Path:
    """Starts like a zip (so it is treated as one) and then is garbage: a broken upload."""
    good = good_zip(folder).read_bytes()
    path = folder / "broken.zip"
    path.write_bytes(good[:30] + bytes(range(256)) * 4)
    return path


def html_page() -> bytes:
    """What a share link that is not a direct download returns."""
    filler = "".join(f"<p>paragraph {i}</p>" for i in range(40))
    return f"<!DOCTYPE html><html><head><title>Sign in</title></head><body>{filler}</body></html>".encode()


def big_png(path: Path, size: int) -> Path:
    """A file that starts like a PNG and is ``size`` bytes long."""
    head = png_bytes()
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


# --- the table of hostile cases -----------------------------------------------------------------
#
# One row per attack: what is tried, what is sent, and the refusal expected. The row shape is the
# one tests/support/hostile_urls.py uses for URL attacks, so the two tables read (and merge) as one.
# ``payload`` is data, or a callable that builds it (given a folder). ``where`` says which test
# drives the row: "unit" (tests/unit/inputs/test_hostile.py, no ComfyUI) or "e2e" (the bad-input
# matrix in tests/e2e/test_bad_inputs.py, which holds the first 44 rows, by its own ids).


@dataclass(frozen=True)
class HostileCase:
    attack: str  # short id: what the attacker tries
    payload: Any  # what is sent
    error: type  # the WrapperError subclass expected, exactly
    where: str = "unit"
    note: str = ""


def node(class_type: str, **inputs: Any) -> dict:
    """A one-node workflow: enough for the path check, which looks at values only."""
    return {"1": {"class_type": class_type, "inputs": inputs}}


def nested_list(depth: int) -> list:
    value: list = ["x.png"]
    for _ in range(depth):
        value = [value]
    return value


def _load3d(image: str) -> dict:
    return node("Load3D", model_file="cube.glb", image={"image": image, "mask": "m.png", "normal": "n.png"},
                width=64, height=64)


# Each payload is a workflow; every row must be refused by the path check before queueing.
HOSTILE_PATHS: list[HostileCase] = [
    # reading outside input/ (item 5)
    HostileCase("load-absolute", node("LoadImage", image="/etc/passwd"), UnsafeInputError),
    HostileCase("load-absolute-output-annotation", node("LoadImage", image="/etc/passwd [output]"), UnsafeInputError),
    HostileCase("load-dotdot-output-annotation", node("LoadImage", image="../../etc/passwd [output]"),
                UnsafeInputError),
    HostileCase("load-dotdot-temp-annotation", node("LoadImageMask", image="../x.png [temp]", channel="alpha"),
                UnsafeInputError),
    HostileCase("load-output-node-dotdot", node("LoadImageOutput", image="../../.cache/weights/x.png [output]"),
                UnsafeInputError),
    HostileCase("load-backslash-dotdot", node("LoadAudio", audio="..\\..\\secret.wav"), UnsafeInputError),
    HostileCase("load3d-dict-absolute", _load3d("/root/.ssh/id_rsa"), UnsafeInputError),
    HostileCase("load3d-dict-dotdot-annotated", _load3d("../../../etc/hostname [temp]"), UnsafeInputError),
    HostileCase("load3d-model-dotdot", node("Load3D", model_file="../../x.glb", image={}), UnsafeInputError),
    HostileCase("list-value-absolute", node("CWPackLoader", paths=["ok.png", ["/etc/shadow"]]), UnsafeInputError),
    HostileCase("pack-node-path-input", node("SomePackLoadFromPath", path="/proc/self/environ"), UnsafeInputError),
    HostileCase("home-tilde", node("SomePackLoadFromPath", path="~/.netrc"), UnsafeInputError),
    HostileCase("drive-letter", node("LoadImage", image="C:\\Windows\\win.ini"), UnsafeInputError),
    HostileCase("nul-byte", node("LoadImage", image="a.png\x00.txt"), UnsafeInputError),
    HostileCase("fullwidth-dotdot", node("SomePackLoadFromPath", path="\uff0e\uff0e\uff0fsecret.png"), UnsafeInputError),
    HostileCase("fullwidth-absolute", node("SomePackLoadFromPath", path="\uff0fetc\uff0fpasswd"), UnsafeInputError),
    HostileCase("file-url-any-input", node("SomePackLoadFromPath", path="file:///etc/passwd"), UnsafeInputError),
    # device files (item 6): refused as absolute before anything opens them
    HostileCase("dev-zero-output", node("LoadImage", image="/dev/zero [output]"), UnsafeInputError),
    HostileCase("dev-zero-mask", node("LoadImageMask", image="/dev/zero", channel="alpha"), UnsafeInputError),
    HostileCase("dev-urandom-audio", node("LoadAudio", audio="/dev/urandom"), UnsafeInputError),
    HostileCase("dev-zero-latent", node("LoadLatent", latent="../../../../dev/zero"), UnsafeInputError),
    # writing outside output/ (item 3)
    HostileCase("dataset-save-absolute", node("SaveImageDataSetToFolder", images=["2", 0], folder_name="/tmp/x",
                                              filename_prefix="image"), UnsafeInputError),
    HostileCase("dataset-save-dotdot", node("SaveImageDataSetToFolder", images=["2", 0],
                                            folder_name="../../.cache/weights/loras", filename_prefix="image"),
                UnsafeInputError),
    HostileCase("text-dataset-save-dotdot", node("SaveImageTextDataSetToFolder", images=["2", 0], texts=["3", 0],
                                                 folder_name="../input", filename_prefix="x"), UnsafeInputError),
    HostileCase("save-prefix-dotdot", node("SaveImage", images=["2", 0], filename_prefix="../../evil"),
                UnsafeInputError),
    HostileCase("save-prefix-absolute", node("SaveImage", images=["2", 0], filename_prefix="/src/predict"),
                UnsafeInputError),
    HostileCase("pack-save-output-path", node("SomePackSaver", images=["2", 0], output_path="/etc/cron.d"),
                UnsafeInputError),
    # nesting (item 12)
    HostileCase("value-nested-deep", node("SomePack", data=nested_list(100)), WorkflowError),
]

# Values that look a little like paths and must still pass (the check's false-positive guard).
ALLOWED_PATHS: list[HostileCase] = [
    HostileCase("relative-subfolder", node("LoadImage", image="photos/a.png"), type(None)),
    HostileCase("output-annotated-relative", node("LoadImageOutput", image="ComfyUI_00001_.png [output]"), type(None)),
    HostileCase("prefix-with-folder", node("SaveImage", images=["2", 0], filename_prefix="videos/%date:yyyy%/x"),
                type(None)),
    HostileCase("ellipsis-text", node("SomePack", text="wait... what.. ok"), type(None)),
    HostileCase("url", node("LoadImage", image="https://example.com/a/../b.png"), type(None)),
    HostileCase("multiline-prompt", node("CLIPTextEncode", clip=["4", 1], text="a ../../ map of /etc/passwd"),
                type(None)),
    HostileCase("link", node("SaveImage", images=["2", 0], filename_prefix="ComfyUI"), type(None)),
]


def deep_json(depth: int = 100_000) -> str:
    """A workflow_json nested ``depth`` levels: past the JSON parser's own recursion limit."""
    return '{"1": ' + "[" * depth + "]" * depth + "}"


# --- archive bombs of the second kind -------------------------------------------------------------


def tar_skip_bomb(folder: Path, declared: int = 32 * 1024**2) -> Path:
    """A .tar.gz whose only big member is clutter (``__MACOSX/``): skipped, yet decompressed to pass it."""
    path = folder / "skipbomb.tar.gz"
    image = png_bytes()
    with tarfile.open(path, "w:gz", compresslevel=9) as archive:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(image)
        archive.addfile(info, io.BytesIO(image))
        junk = tarfile.TarInfo("__MACOSX/photos/._zeros")
        junk.size = declared
        archive.addfile(junk, _Zeros(declared))
    return path


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read (no allocation of the whole)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def zip_deep_entry(folder: Path, depth: int = 2000) -> Path:
    path = folder / "deep.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, png_bytes())
        archive.writestr("d/" * depth + "x.png", png_bytes())
    return path


def zip_many_entries(folder: Path, count: int = 500_000) -> Path:
    """A real zip (stored, empty members, zip64 end records) listing ``count`` entries, written fast."""
    path = folder / "many.zip"
    path.write_bytes(_many_entries_zip(count))
    return path


@functools.lru_cache(maxsize=2)
def _many_entries_zip(count: int) -> bytes:
    """The bytes, built once per count and session (two tests list the same 500k entries).

    Every name has the same length, so every local record does too: each record is its constant
    header and its name, and each central record adds the local record's offset.
    """
    crc = zlib.crc32(b"")
    width = len(str(count))
    name_len = len(f"f{0:0{width}d}.png")
    local_header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, 0, 0, name_len, 0)
    central_header = struct.pack("<4s6H3L5HL", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, 0, 0, name_len, 0, 0, 0, 0, 0)
    # numpy writes the 500k records in milliseconds where a Python loop takes a second
    import numpy as np

    index = np.arange(count, dtype=np.int64)
    names = np.empty((count, name_len), np.uint8)
    names[:, 0] = ord("f")
    names[:, 1:1 + width] = index[:, None] // 10 ** np.arange(width - 1, -1, -1) % 10 + ord("0")
    names[:, 1 + width:] = np.frombuffer(b".png", np.uint8)
    records = np.empty((count, len(local_header) + name_len), np.uint8)
    records[:, :len(local_header)] = np.frombuffer(local_header, np.uint8)
    records[:, len(local_header):] = names
    entries = np.empty((count, len(central_header) + 4 + name_len), np.uint8)
    entries[:, :len(central_header)] = np.frombuffer(central_header, np.uint8)
    offsets = (index * records.shape[1]).astype("<u4")
    entries[:, len(central_header):len(central_header) + 4] = offsets.view(np.uint8).reshape(count, 4)
    entries[:, len(central_header) + 4:] = names
    local, central = records.tobytes(), entries.tobytes()
    cd_offset = len(local)
    zip64_end_offset = cd_offset + len(central)
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_end_offset, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + central + zip64_end + locator + end


# Archive rows: payload builds the archive in a folder; the unit driver unpacks it with ARCHIVE_LIMITS.
ARCHIVE_LIMITS = dict(max_input_bytes=2 * 1024**2, max_archive_files=100, max_compression_ratio=200.0)

HOSTILE_ARCHIVES: list[HostileCase] = [
    HostileCase("zip-slip", zip_slip, UnsafeInputError),
    HostileCase("zip-slip-backslash", lambda d: zip_slip(d, "..\\..\\evil.png"), UnsafeInputError),
    HostileCase("zip-slip-absolute", lambda d: zip_slip(d, "/etc/cron.d/x"), UnsafeInputError),
    HostileCase("zip-drive-letter", lambda d: zip_slip(d, "C:/x.png"), UnsafeInputError),
    HostileCase("tar-symlink-escape", tar_symlink_escape, UnsafeInputError),
    HostileCase("tar-hardlink", tar_hardlink, UnsafeInputError),
    HostileCase("tar-hardlink-inside", lambda d: tar_hardlink(d, MEMBER), UnsafeInputError),
    HostileCase("tar-device-file", tar_device, UnsafeInputError),
    HostileCase("zip-bomb-size", lambda d: zip_bomb(d, "bomb.zip", 64 * 1024**2), InputTooLargeError),
    HostileCase("zip-bomb-ratio", lambda d: zip_bomb(d, "dense.zip", 1024**2 + 300_000), InputTooLargeError),
    HostileCase("corrupt-zip", corrupt_zip, InputFileError),
    HostileCase("tar-skip-bomb", tar_skip_bomb, InputTooLargeError),
    HostileCase("zip-entry-2000-deep", zip_deep_entry, InputFileError),
    HostileCase("zip-500k-entries", zip_many_entries, InputTooLargeError),
]


# input_file values a Cog request may send (as the str coglet passes for anything but a URL).
HOSTILE_INPUT_FILES: list[HostileCase] = [
    HostileCase("input-file-server-path", "/etc/hostname", UnsafeInputError),
    HostileCase("input-file-missing-server-path", "/etc/no-such-file.png", UnsafeInputError),
    HostileCase("input-file-relative-server-path", "../runtime/output/x.png", UnsafeInputError),
    HostileCase("input-file-dev-zero", "/dev/zero", UnsafeInputError),
    HostileCase("input-file-file-url", "file:///etc/hostname", UnsafeInputError),
    HostileCase("input-file-proc", "/proc/self/environ", UnsafeInputError),
]

# workflow_json texts.
HOSTILE_WORKFLOW_TEXTS: list[HostileCase] = [
    HostileCase("workflow-100k-levels-deep", deep_json(100_000), WorkflowError),
    HostileCase("workflow-100-levels-deep", deep_json(100), WorkflowError),
    HostileCase("workflow-100k-deep-object", '{"a":' * 100_000 + "1" + "}" * 100_000, WorkflowError),
]


def all_tables() -> dict[str, list[HostileCase]]:
    """Every unit-driven table of hostile cases, by name: this module's and the URL table
    (tests/support/hostile_urls.py, exercised by tests/unit/test_urls.py)."""
    from tests.support.hostile_urls import HOSTILE_URLS

    urls = [HostileCase(attack, url, error, note="tests/unit/test_urls.py") for attack, url, error in HOSTILE_URLS]
    return {"paths": HOSTILE_PATHS, "archives": HOSTILE_ARCHIVES, "input_files": HOSTILE_INPUT_FILES,
            "workflow_texts": HOSTILE_WORKFLOW_TEXTS, "urls": urls}
