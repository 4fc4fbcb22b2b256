"""tar_weights: headers read from a prefix, member ranges, and streamed extraction (no network)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from comfyui_wrapper.errors import CacheBudgetError, UnsafeInputError, WeightDownloadError
from comfyui_wrapper.weights.tar import (
    END_PADDING_BYTES,
    MemberSpan,
    NeedMoreBytes,
    NotATar,
    extract_stream,
    find_extracted,
    first_member,
    matches,
)

URL = "http://127.0.0.1:1/w.tar"


def make_tar(entries: list[tuple[str, bytes | str | None]], fmt: int = tarfile.PAX_FORMAT, **options) -> bytes:
    """A tar in memory: bytes -> file, None -> directory, ("->", target) as str -> symlink."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, **options) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif isinstance(data, str):
                info.type = tarfile.SYMTYPE
                info.linkname = data
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def span_of(data: bytes, head_bytes: int = 512) -> MemberSpan:
    """first_member, reading on as a downloader would when told it needs more."""
    size = head_bytes
    while True:
        try:
            return first_member(data[:size])
        except NeedMoreBytes as more:
            assert more.needed > size
            size = more.needed


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_short_name_member_range_in_every_format(fmt: int) -> None:
    payload = os.urandom(3000)
    data = make_tar([("model.safetensors", payload)], fmt=fmt)
    span = span_of(data)
    assert span.name == "model.safetensors" and span.is_file and span.size == 3000
    assert data[span.offset:span.offset + span.size] == payload
    assert span.is_only_member(len(data))
    assert matches(span, "model.safetensors") and matches(span, "sub/model.safetensors")


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_use_extension_headers(fmt: int) -> None:
    name = "deep/" * 40 + "a-very-long-weight-name.safetensors"  # > 255 bytes: needs 'L' or pax 'x'
    payload = b"w" * 1234
    data = make_tar([(name, payload)], fmt=fmt)
    kind = data[156:157]
    assert kind == (b"L" if fmt == tarfile.GNU_FORMAT else b"x")
    with pytest.raises(NeedMoreBytes) as more:
        first_member(data[:512])
    assert more.value.needed > 512
    span = span_of(data)
    assert span.name == name and span.offset > 1024
    assert data[span.offset:span.offset + span.size] == payload


def test_global_pax_header_then_member() -> None:
    payload = b"g" * 700
    data = make_tar([("x.pt", payload)], pax_headers={"comment": "made by a test"})
    assert data[156:157] == b"g"
    span = span_of(data)
    assert span.name == "x.pt" and data[span.offset:span.offset + span.size] == payload


def test_pax_non_ascii_name() -> None:
    data = make_tar([("modèle-日本.safetensors", b"abc")])
    assert span_of(data).name == "modèle-日本.safetensors"


def test_several_members_are_not_only_member() -> None:
    data = make_tar([("a.pt", b"a" * 600), ("b.pt", b"b" * 50_000)])
    span = span_of(data)
    assert span.name == "a.pt" and not span.is_only_member(len(data))
    assert not span.is_only_member(None)
    # Padding after the last member is allowed, more is not.
    single = make_tar([("a.pt", b"a" * 600)])
    assert span_of(single).is_only_member(span_of(single).end + END_PADDING_BYTES)
    assert not span_of(single).is_only_member(span_of(single).end + END_PADDING_BYTES + 1)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_one_member_tar_of_any_size_is_only_member(fmt: int) -> None:
    for size in [0, 1, 511, 512, 513, *range(1000, 60_000, 997), 60_000]:  # every record padding
        data = make_tar([("w.pt", b"x" * size)], fmt=fmt)
        span = span_of(data)
        assert span.size == size and span.is_only_member(len(data)), (size, len(data) - span.end)


def test_directory_and_link_first_are_not_files() -> None:
    assert not span_of(make_tar([("antelopev2", None), ("antelopev2/a.onnx", b"x")])).is_file
    assert not span_of(make_tar([("l.pt", "elsewhere.pt")])).is_file


def test_not_a_tar() -> None:
    with pytest.raises(NotATar):
        first_member(b"\x1f\x8b" + bytes(510))  # gzip
    with pytest.raises(NotATar):
        first_member(os.urandom(512))
    with pytest.raises(NotATar, match="empty"):
        first_member(bytes(1024))
    with pytest.raises(NeedMoreBytes):
        first_member(b"short")


def test_runaway_extension_headers_are_refused() -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = 10 * 1024 * 1024
    block = header.tobuf(format=tarfile.GNU_FORMAT)
    with pytest.raises(NotATar, match="extension headers"):
        first_member(block)


# --- streamed extraction ------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read and cannot seek (like a socket)."""

    def __init__(self, data: bytes, step: int = 777) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self.data[self.pos:self.pos + min(self.step, len(buffer))]
        buffer[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_stream_extracts_a_directory_weight(tmp_path: Path) -> None:
    files = {"antelopev2/1k3d68.onnx": os.urandom(5000), "antelopev2/sub/glintr100.onnx": os.urandom(9000)}
    data = make_tar([("antelopev2", None), *files.items()], fmt=tarfile.GNU_FORMAT)
    out = tmp_path / "x"
    written = extract_stream(Trickle(data), out, weight="antelopev2", url=URL)
    assert written == sum(len(v) for v in files.values())
    for name, payload in files.items():
        assert (out / name).read_bytes() == payload
    assert find_extracted(out, "antelopev2") == out / "antelopev2"
    assert find_extracted(out, "insightface/antelopev2") == out / "antelopev2"
    assert find_extracted(out, "other") is None


def test_stream_extracts_compressed_tar(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("m.pt")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    extract_stream(Trickle(buffer.getvalue()), tmp_path / "x", weight="m.pt", url=URL)
    assert (tmp_path / "x" / "m.pt").read_bytes() == b"abc"


@pytest.mark.parametrize("entries", [
    [("../../evil.pt", b"x")],
    [("a/../../evil.pt", b"x")],
    [("ok", None), ("ok/link", "../../../etc/passwd")],
    [("link", "/etc")],
])
def test_stream_refuses_what_the_data_filter_refuses(tmp_path: Path, entries) -> None:
    out = tmp_path / "stage" / "x"
    with pytest.raises(UnsafeInputError, match="unsafe entry") as info:
        extract_stream(Trickle(make_tar(entries)), out, weight="evil.pt", url=URL)
    assert info.value.filename == "evil.pt"
    assert not (tmp_path / "evil.pt").exists() and not (tmp_path / "abs").exists()


def test_stream_strips_a_leading_slash_as_today(tmp_path: Path) -> None:
    extract_stream(Trickle(make_tar([("/abs/w.pt", b"x")])), tmp_path / "x", weight="w.pt", url=URL)
    assert (tmp_path / "x/abs/w.pt").read_bytes() == b"x"


def test_stream_refuses_devices(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("fifo")
        info.type = tarfile.FIFOTYPE
        archive.addfile(info)
    with pytest.raises(UnsafeInputError):
        extract_stream(Trickle(buffer.getvalue()), tmp_path / "x", weight="w", url=URL)


def test_stream_keeps_inside_links_as_today(tmp_path: Path) -> None:
    data = make_tar([("d", None), ("d/a.onnx", b"abc"), ("d/b.onnx", "a.onnx")])
    extract_stream(Trickle(data), tmp_path / "x", weight="d", url=URL)
    assert (tmp_path / "x/d/b.onnx").read_bytes() == b"abc"


def test_stream_checks_free_disk_before_writing(tmp_path: Path) -> None:
    data = make_tar([("small.pt", b"s" * 100), ("big.pt", b"b" * 5000)])
    with pytest.raises(CacheBudgetError, match="big.pt needs"):
        extract_stream(Trickle(data), tmp_path / "x", weight="w", url=URL, free_bytes=lambda path: 1000)
    assert not (tmp_path / "x" / "big.pt").exists()


def test_stream_damaged_archive_names_the_weight(tmp_path: Path) -> None:
    data = make_tar([("a.pt", os.urandom(20_000))])
    with pytest.raises(WeightDownloadError, match="w.pt .* not a readable tar"):
        extract_stream(Trickle(data[:5000]), tmp_path / "x", weight="w.pt", url=URL)
    with pytest.raises(WeightDownloadError, match="not a readable tar"):
        extract_stream(Trickle(os.urandom(4096)), tmp_path / "y", weight="w.pt", url=URL)
