"""Safe extraction of uploaded zips and tars: real archives built in tmp_path.

Every hostile case checks the same three things: the right error class, no
file anywhere outside input/, and input/ exactly as it was before.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_wrapper.errors import (
    InputFileError,
    InputTooLargeError,
    PredictionTimeoutError,
    UnsafeInputError,
    WrapperError,
)
from comfyui_wrapper.inputs.archives import (
    InputLimits,
    archive_kind,
    extract_archive,
    is_junk,
    member_path,
)
from comfyui_wrapper.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

LIMITS = InputLimits(max_input_bytes=50 * 1024**2, max_archive_files=100, max_compression_ratio=200.0)


# --- builders --------------------------------------------------------------------


def make_zip(path: Path, entries: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if name.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
            archive.writestr(info, data)
    return path


def add_zip_symlink(path: Path, name: str, target: str) -> Path:
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its content (None for folders); links are recorded too."""
    result: dict[str, bytes | None] = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                result[rel] = b"LINK->" + os.readlink(path).encode()
            elif path.is_dir():
                result[rel] = None
            else:
                result[rel] = path.read_bytes()
    return result


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    """tmp_path/runtime/input (with one sentinel file), and tmp_path/src for archives."""
    input_dir = tmp_path / "runtime" / "input"
    input_dir.mkdir(parents=True)
    (input_dir / "already.txt").write_text("kept")
    src = tmp_path / "src"
    src.mkdir()
    return {"root": tmp_path, "input": input_dir, "src": src}


def assert_untouched(work: dict[str, Path], archive: Path) -> None:
    """input/ holds only its sentinel, runtime/ holds nothing else, and no stray file appeared."""
    assert snapshot(work["input"]) == {"already.txt": b"kept"}
    assert sorted(p.name for p in work["input"].parent.iterdir()) == ["input"]  # no staging left
    everything = {p.relative_to(work["root"]).as_posix() for p in work["root"].rglob("*")}
    assert everything == {"runtime", "runtime/input", "runtime/input/already.txt", "src",
                          f"src/{archive.name}"}


# --- ordinary archives ---------------------------------------------------------------


def test_zip_with_nested_folders_is_extracted_and_clutter_skipped(work):
    archive = make_zip(work["src"] / "inputs.zip", [
        ("photos/", b""),
        ("photos/cat.png", b"cat"),
        ("photos/2024/dog.jpg", b"dog"),
        ("top.wav", b"wav"),
        ("__MACOSX/photos/._cat.png", b"apple"),
        ("photos/.DS_Store", b"ds"),
        ("photos/Thumbs.db", b"thumbs"),
        ("._top.wav", b"apple"),
    ])
    result = extract_archive(archive, work["input"], LIMITS)
    assert sorted(result.files) == ["photos/2024/dog.jpg", "photos/cat.png", "top.wav"]
    assert "photos" in result.directories and "photos/2024" in result.directories
    assert len(result.skipped) == 4
    assert result.total_bytes == 9
    assert snapshot(work["input"]) == {
        "already.txt": b"kept", "photos": None, "photos/2024": None,
        "photos/cat.png": b"cat", "photos/2024/dog.jpg": b"dog", "top.wav": b"wav",
    }
    assert sorted(p.name for p in work["input"].parent.iterdir()) == ["input"]


@pytest.mark.parametrize("mode,suffix", [("w:gz", ".tar.gz"), ("w:gz", ".tgz"), ("w:bz2", ".tar.bz2"),
                                         ("w:xz", ".tar.xz"), ("w", ".tar")])
def test_tar_variants_with_nested_folders(work, mode, suffix):
    archive = make_tar(work["src"] / f"inputs{suffix}", [("frames/a/001.png", b"1"), ("frames/a/002.png", b"22"),
                                                          ("./readme.png", b"333")], mode)
    assert archive_kind(archive) == "tar"
    result = extract_archive(archive, work["input"], LIMITS)
    assert sorted(result.files) == ["frames/a/001.png", "frames/a/002.png", "readme.png"]
    assert (work["input"] / "frames/a/002.png").read_bytes() == b"22"


def test_kind_is_detected_by_content_not_name(work):
    tar = make_tar(work["src"] / "upload", [("x.png", b"x")])  # gzip content, no extension
    zipped = make_zip(work["src"] / "data.bin", [("y.png", b"y")])
    old_tar = make_tar(work["src"] / "old.tar", [("z.png", b"z")], mode="w")
    renamed = work["src"] / "noname"
    renamed.write_bytes(old_tar.read_bytes())
    assert archive_kind(tar) == "tar"
    assert archive_kind(zipped) == "zip"
    assert archive_kind(renamed) == "tar"  # ustar magic at offset 257
    npz = make_zip(work["src"] / "weights.npz", [("arr.npy", b"n")])
    assert archive_kind(npz) is None  # a zip-based single file stays whole
    png = work["src"] / "fake.zip.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert archive_kind(png) is None
    assert extract_archive(tar, work["input"], LIMITS).files == ["x.png"]
    assert extract_archive(zipped, work["input"], LIMITS).files == ["y.png"]


def test_existing_files_are_merged_and_replaced(work):
    (work["input"] / "sub").mkdir()
    (work["input"] / "sub" / "old.png").write_bytes(b"old")
    (work["input"] / "same.png").write_bytes(b"before")
    archive = make_zip(work["src"] / "a.zip", [("sub/new.png", b"new"), ("same.png", b"after")])
    extract_archive(archive, work["input"], LIMITS)
    assert snapshot(work["input"]) == {"already.txt": b"kept", "sub": None, "sub/old.png": b"old",
                                       "sub/new.png": b"new", "same.png": b"after"}


def test_missing_input_dir_is_created(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("p/q.png", b"q")])
    target = tmp_path / "fresh" / "input"
    extract_archive(archive, target, LIMITS)
    assert (target / "p" / "q.png").read_bytes() == b"q"


def test_empty_archives_place_nothing(work):
    empty_zip = make_zip(work["src"] / "empty.zip", [])
    empty_tar = make_tar(work["src"] / "empty.tar.gz", [])
    only_clutter = make_zip(work["src"] / "mac.zip", [("__MACOSX/._x", b"a"), (".DS_Store", b"b")])
    for archive in (empty_zip, empty_tar, only_clutter):
        result = extract_archive(archive, work["input"], LIMITS)
        assert result.files == []
    assert snapshot(work["input"]) == {"already.txt": b"kept"}


# --- hostile archives ------------------------------------------------------------------


HOSTILE_ZIP_NAMES = [
    "../evil.png",
    "../../evil.png",
    "/tmp/evil.png",
    "ok/../../evil.png",
    "..\\..\\evil.png",
    "ok\\..\\..\\evil.png",
    "C:/evil.png",
    "C:\\evil.png",
    "\\\\server\\share\\evil.png",
]


@pytest.mark.parametrize("name", HOSTILE_ZIP_NAMES)
def test_zip_slip_names_are_refused_and_nothing_written(work, name):
    # a good entry first: it must not survive the refusal either
    archive = make_zip(work["src"] / "slip.zip", [("good.png", b"good"), (name, b"evil")])
    with pytest.raises(UnsafeInputError) as caught:
        extract_archive(archive, work["input"], LIMITS)
    assert "How to fix:" in str(caught.value)
    assert_untouched(work, archive)


def test_zip_symlink_is_refused(work):
    archive = add_zip_symlink(make_zip(work["src"] / "link.zip", [("good.png", b"good")]), "escape", "../../../etc")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_zip_device_mode_is_refused(work):
    archive = work["src"] / "dev.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("fifo")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    with pytest.raises(UnsafeInputError, match="device file, FIFO"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


HOSTILE_TAR_MEMBERS = {
    "dotdot": ("../evil.png", None),
    "deep_dotdot": ("a/b/../../../evil.png", None),
    "absolute": ("/tmp/evil.png", None),
    "symlink_escape": tar_special("escape", tarfile.SYMTYPE, "../../.."),
    "symlink_absolute": tar_special("escape", tarfile.SYMTYPE, "/etc"),
    "symlink_inside": tar_special("inside", tarfile.SYMTYPE, "good.png"),  # refused too: links are never made
    "hardlink": tar_special("hard", tarfile.LNKTYPE, "../../../etc/passwd"),
    "hardlink_inside": tar_special("hard", tarfile.LNKTYPE, "good.png"),
    "char_device": tar_special("null", tarfile.CHRTYPE),
    "block_device": tar_special("disk", tarfile.BLKTYPE),
    "fifo": tar_special("pipe", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TAR_MEMBERS))
def test_hostile_tar_members_are_refused_and_nothing_written(work, case):
    member = HOSTILE_TAR_MEMBERS[case]
    hostile = (member[0], b"evil") if isinstance(member, tuple) else member
    archive = make_tar(work["src"] / "hostile.tar.gz", [("good.png", b"good"), hostile])
    with pytest.raises(UnsafeInputError):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_tar_symlink_then_write_through_it_is_refused(work):
    # The classic two-step: a link to outside, then a file "through" the link.
    archive = make_tar(work["src"] / "two_step.tar", [
        tar_special("dir", tarfile.SYMTYPE, str(work["root"])), ("dir/evil.png", b"evil"),
    ], mode="w")
    with pytest.raises(UnsafeInputError):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_nul_and_too_long_names(work):
    with pytest.raises(UnsafeInputError):
        member_path("a\x00b.png")
    with pytest.raises(InputFileError, match="longer than 255"):
        member_path("x" * 300 + ".png")
    # a too-long entry in a real tar (tar stores it with a PAX header)
    archive = make_tar(work["src"] / "long.tar", [("good.png", b"good"), ("d/" + "y" * 300, b"y")], mode="w")
    with pytest.raises(InputFileError):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_path_too_deep_for_the_file_system_is_an_input_error(work):
    deep = "/".join(["d" * 200] * 30) + "/x.png"  # each part fine, the whole beyond PATH_MAX
    archive = make_zip(work["src"] / "deep.zip", [("ok.png", b"ok"), (deep, b"x")])
    with pytest.raises(InputFileError, match="bytes long"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_file_and_folder_with_the_same_name_is_an_input_error(work):
    archive = make_zip(work["src"] / "clash.zip", [("a", b"file"), ("a/b.png", b"inner")])
    with pytest.raises(InputFileError, match="conflicting entries"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_clash_with_existing_input_folder_changes_nothing(work):
    (work["input"] / "frames").mkdir()
    archive = make_zip(work["src"] / "clash.zip", [("ok.png", b"ok"), ("frames", b"not a folder")])
    with pytest.raises(InputFileError, match="clashes"):
        extract_archive(archive, work["input"], LIMITS)
    assert snapshot(work["input"]) == {"already.txt": b"kept", "frames": None}


# --- bombs -------------------------------------------------------------------------------


def test_high_compression_ratio_is_refused(work):
    archive = make_zip(work["src"] / "bomb.zip", [("zeros.bmp", b"\0" * (20 * 1024**2))])
    assert archive.stat().st_size < 100_000  # ratio ~1000:1
    with pytest.raises(InputTooLargeError, match="zip bomb") as caught:
        extract_archive(archive, work["input"], LIMITS)
    assert "CW_MAX_COMPRESSION_RATIO" in str(caught.value)
    assert_untouched(work, archive)


def test_tar_gz_bomb_is_refused(work):
    archive = make_tar(work["src"] / "bomb.tar.gz", [("zeros.raw", b"\0" * (20 * 1024**2))])
    with pytest.raises(InputTooLargeError, match="zip bomb"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_small_compressible_files_are_within_the_grace(work):
    archive = make_zip(work["src"] / "flat.zip", [("flat.bmp", b"\0" * 500_000)])  # ratio ~500, below 1 MiB
    assert extract_archive(archive, work["input"], LIMITS).files == ["flat.bmp"]


def test_total_bytes_are_counted_as_written(work):
    # Plain tar: sizes are honest, nothing is checked up front, so this proves the
    # running count on written bytes stops it.
    limits = InputLimits(max_input_bytes=100_000, max_archive_files=100, max_compression_ratio=1e9)
    payload = os.urandom(60_000)
    archive = make_tar(work["src"] / "big.tar", [("a.bin", payload), ("b.bin", payload)], mode="w")
    with pytest.raises(InputTooLargeError, match="more than 100000 bytes") as caught:
        extract_archive(archive, work["input"], limits)
    assert "CW_MAX_INPUT_BYTES" in str(caught.value)
    assert_untouched(work, archive)


def test_zip_whose_headers_understate_sizes_is_still_capped(work):
    """Patch the central directory to claim a 10-byte file: it cannot sneak 150 kB past the cap
    (zipfile stops at the declared size and the CRC then fails, or the byte count trips)."""
    limits = InputLimits(max_input_bytes=100_000, max_archive_files=100, max_compression_ratio=1e9)
    archive = make_zip(work["src"] / "liar.zip", [("a.bin", os.urandom(150_000))], compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # uncompressed size in the central directory
    archive.write_bytes(bytes(data))
    with pytest.raises((InputTooLargeError, InputFileError)):
        extract_archive(archive, work["input"], limits)
    assert_untouched(work, archive)


def test_too_many_files_is_refused(work):
    limits = InputLimits(max_input_bytes=10**9, max_archive_files=10, max_compression_ratio=200)
    fine = make_zip(work["src"] / "ten.zip", [(f"f{i}.png", b"x") for i in range(10)])
    assert len(extract_archive(fine, work["input"], limits).files) == 10
    for path in work["input"].glob("f*.png"):
        path.unlink()
    archive = make_zip(work["src"] / "many.zip", [(f"f{i}.png", b"x") for i in range(11)])
    with pytest.raises(InputTooLargeError, match="more than 10 files") as caught:
        extract_archive(archive, work["input"], limits)
    assert "CW_MAX_ARCHIVE_FILES" in str(caught.value)
    fine.unlink()
    assert_untouched(work, archive)


def test_many_empty_folders_are_bounded_too(work):
    limits = InputLimits(max_input_bytes=10**9, max_archive_files=10, max_compression_ratio=200)
    archive = make_tar(work["src"] / "dirs.tar", [tar_special(f"d{i}", tarfile.DIRTYPE) for i in range(25)], mode="w")
    with pytest.raises(InputTooLargeError):
        extract_archive(archive, work["input"], limits)
    assert_untouched(work, archive)


# --- damaged archives -----------------------------------------------------------------------


def test_truncated_zip_is_damaged(work):
    good = make_zip(work["src"] / "good.zip", [("a.png", os.urandom(5000))])
    archive = work["src"] / "cut.zip"
    archive.write_bytes(good.read_bytes()[:2000])
    good.unlink()
    with pytest.raises(InputFileError, match="damaged"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_zip_with_flipped_byte_fails_crc(work):
    archive = make_zip(work["src"] / "crc.zip", [("a.bin", b"A" * 1000 + os.urandom(1000))],
                       compression=zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    data[100] ^= 0xFF  # inside the stored file's data
    archive.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="damaged"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_garbage_named_zip_or_tar_is_damaged(work):
    for name in ("junk.zip", "junk.tar.gz", "junk.tar"):
        archive = work["src"] / name
        archive.write_bytes(os.urandom(3000))
        with pytest.raises(InputFileError, match="damaged"):
            extract_archive(archive, work["input"], LIMITS)
        archive.unlink()
    assert snapshot(work["input"]) == {"already.txt": b"kept"}


def test_truncated_tar_gz_is_damaged(work):
    good = make_tar(work["src"] / "good.tar.gz", [("a.bin", os.urandom(50_000)), ("b.bin", os.urandom(50_000))])
    archive = work["src"] / "cut.tar.gz"
    archive.write_bytes(good.read_bytes()[:60_000])
    good.unlink()
    with pytest.raises(InputFileError, match="damaged"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


# --- small pieces ---------------------------------------------------------------------------


def test_member_path_and_junk_rules():
    assert member_path("a/./b//c.png") == "a/b/c.png"
    assert member_path("dir\\file.png") == "dir/file.png"
    assert member_path("./") is None
    assert member_path("été/写真.png") == "été/写真.png"
    assert is_junk("__MACOSX/a/._b.png") and is_junk("x/.DS_Store") and is_junk("Thumbs.db") and is_junk("._a")
    assert not is_junk("photos/a.png") and not is_junk(".hidden_but_real/a.png")


def test_limits_from_settings():
    settings = Settings.from_env({"CW_MAX_INPUT_BYTES": "5M", "CW_MAX_ARCHIVE_FILES": "7",
                                  "CW_MAX_COMPRESSION_RATIO": "12.5"})
    assert InputLimits.from_settings(settings) == InputLimits(5 * 1024**2, 7, 12.5)


# --- property test: nothing ever lands outside input/ ---------------------------------------

_PART = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "..\\..", "C:", "/", "\\", "__MACOSX", "._x", "é", "写真",
                     "x" * 260, " ", "~", "$HOME", "\u202e", "a\\..\\..\\b"]),
    st.text(min_size=1, max_size=12),
)
_NAME = st.lists(_PART, min_size=1, max_size=5).map("/".join)
_ENTRY = st.tuples(
    st.sampled_from(["file", "dir", "symlink", "hardlink"]),
    _NAME,
    st.one_of(_NAME, st.sampled_from(["../../..", "/etc/passwd", "/", ".."])),
)


def _check_contained(root: Path) -> None:
    """Only the archive and input/'s own tree exist under root, with no links anywhere."""
    input_dir = root / "runtime" / "input"
    for path in root.rglob("*"):
        assert not path.is_symlink(), path
        rel = path.relative_to(root)
        assert rel.parts[0] in ("runtime", "archive.zip", "archive.tar"), rel
        if rel.parts[0] == "runtime" and len(rel.parts) > 1:
            assert rel.parts[1] == "input", rel  # no staging folder left behind
            assert path.resolve().is_relative_to(input_dir.resolve())


def _build_tar(path: Path, entries: list[tuple[str, str, str]]) -> bool:
    try:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
            for kind, name, target in entries:
                info = tarfile.TarInfo(name)
                if kind == "file":
                    info.size = 4
                    archive.addfile(info, io.BytesIO(b"data"))
                    continue
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
                info.linkname = target
                archive.addfile(info)
    except (ValueError, UnicodeError):
        return False  # a name tarfile itself cannot store
    return True


def _build_zip(path: Path, entries: list[tuple[str, str, str]]) -> bool:
    with zipfile.ZipFile(path, "w") as archive:
        for kind, name, target in entries:
            if kind == "dir" and not name.endswith("/"):
                name += "/"
            info = zipfile.ZipInfo(name)
            if kind in ("symlink", "hardlink"):
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, target)
            else:
                archive.writestr(info, b"data" if kind == "file" else b"")
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(_ENTRY, min_size=1, max_size=6), use_tar=st.booleans())
def test_no_member_name_ever_escapes_input_dir(entries, use_tar):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        input_dir = root / "runtime" / "input"
        input_dir.mkdir(parents=True)
        archive = root / ("archive.tar" if use_tar else "archive.zip")
        if not (_build_tar if use_tar else _build_zip)(archive, entries):
            return
        try:
            result = extract_archive(archive, input_dir, LIMITS)
        except WrapperError:
            assert list(input_dir.iterdir()) == []  # refused: nothing placed
        else:
            for rel in result.files:
                assert (input_dir / rel).is_file()
                assert ".." not in Path(rel).parts and not rel.startswith("/")
        _check_contained(root)


# --- bombs of the second kind (issue 12: items 9, 12, 13) ---------------------------------------------


def test_skipped_clutter_counts_against_the_byte_cap(work):
    """A tar whose huge member is __MACOSX clutter: skipped, but tar decompresses it to pass it."""
    from tests.support import bad_payloads as bad

    archive = bad.tar_skip_bomb(work["src"], declared=32 * 1024**2)
    limits = InputLimits(max_input_bytes=2 * 1024**2, max_archive_files=100, max_compression_ratio=1e9)
    began = time.monotonic()
    with pytest.raises(InputTooLargeError, match="clutter counts too"):
        extract_archive(archive, work["input"], limits)
    assert time.monotonic() - began < 2
    assert_untouched(work, archive)


def test_skipped_clutter_counts_against_the_ratio(work):
    from tests.support import bad_payloads as bad

    archive = bad.tar_skip_bomb(work["src"], declared=32 * 1024**2)
    limits = InputLimits(max_input_bytes=10**10, max_archive_files=100, max_compression_ratio=20)
    with pytest.raises(InputTooLargeError, match="zip bomb"):
        extract_archive(archive, work["input"], limits)


def test_decompression_is_bounded_below_tarfile(work):
    """tarfile reads a GNU long name whole into memory inside next(); the stream cap stops it first."""
    path = work["src"] / "longname.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("n" * 3_000_000)
        archive.addfile(info, io.BytesIO(b""))
    limits = InputLimits(max_input_bytes=100_000, max_archive_files=1, max_compression_ratio=1e9)
    with pytest.raises(InputTooLargeError, match="decompresses to more than"):
        extract_archive(path, work["input"], limits)
    assert_untouched(work, path)


def test_unpacking_stops_at_the_deadline(work):
    archive = make_tar(work["src"] / "slow.tar", [(f"f{i}.raw", b"x" * 10) for i in range(5)])
    limits = InputLimits(max_input_bytes=10**9, max_archive_files=100, max_compression_ratio=1e9, max_seconds=0)
    with pytest.raises(PredictionTimeoutError, match="Unpacking archive"):
        extract_archive(archive, work["input"], limits)
    assert_untouched(work, archive)


def test_an_entry_2000_folders_deep_is_a_typed_error(work):
    from tests.support import bad_payloads as bad

    archive = bad.zip_deep_entry(work["src"])
    with pytest.raises(InputFileError, match="nested 2001 folders deep"):
        extract_archive(archive, work["input"], LIMITS)
    assert_untouched(work, archive)


def test_500k_entries_refused_from_the_end_record_before_listing(work):
    import tracemalloc

    from tests.support import bad_payloads as bad

    archive = bad.zip_many_entries(work["src"], 500_000)
    limits = InputLimits(max_input_bytes=10**9, max_archive_files=10_000, max_compression_ratio=200)
    tracemalloc.start()
    began = time.monotonic()
    try:
        with pytest.raises(InputTooLargeError, match="lists 500000 entries"):
            extract_archive(archive, work["input"], limits)
        took = time.monotonic() - began
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < 0.5 and peak < 5 * 1024**2, (took, peak)
    assert_untouched(work, archive)


def test_the_many_entries_builder_makes_a_real_zip(work):
    import zipfile

    from tests.support import bad_payloads as bad

    archive = bad.zip_many_entries(work["src"], 70_000)  # past 65535: zip64 end records
    assert len(zipfile.ZipFile(archive).infolist()) == 70_000
