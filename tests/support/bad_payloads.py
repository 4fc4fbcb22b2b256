"""Hostile and broken inputs for the bad-input matrix, built on the fly.

Each builder writes one file under a folder the test gives and returns its
path. Every archive also holds ``photos/a.png``, the file the matrix's
workflow loads, so the only thing wrong with it is the entry the builder is
named after (a good archive with the same workflow succeeds; see
``good_zip``). Nothing here is downloaded: tests must not depend on the
internet.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from PIL import Image

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
