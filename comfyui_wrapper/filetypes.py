"""What a file is, from its name or its first bytes: one table for inputs and weights.

Inputs and weights both meet files whose names lie or are missing (Cog hands
over temporary paths, CDNs serve ``/api/download/models/123``), so each
decision here reads magic numbers, never a parser: the same check must cover
video and audio, and must not parse untrusted content beyond a header.
"""

from __future__ import annotations

import mimetypes
import re
from email.message import Message
from pathlib import PurePosixPath
from urllib.parse import unquote

SNIFF_BYTES = 512  # enough for every signature below (tar's "ustar" sits at 257)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".heic"}
VIDEO_EXTENSIONS = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".mpg", ".mpeg"}
AUDIO_EXTENSIONS = {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac"}
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS

# ComfyUI's folder_paths.supported_pt_extensions, plus what popular packs load (GGUF, ONNX).
# A value ending in one of these names a weight: the plan looks it up, the cache keeps the
# name of a download that has one, and a weight given by URL gets one when it has none.
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft", ".gguf", ".onnx")

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
COMPRESSED_TAR_MAGICS = {b"\x1f\x8b": ".tar.gz", b"BZh": ".tar.bz2", b"\xfd7zXZ\x00": ".tar.xz"}

# MIME type -> extension for data: URIs and extension-less downloads. mimetypes
# is the fallback; this table fixes its odd picks (.jpe, .qt) for common types.
_MIME_EXTENSIONS = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/gif": ".gif",
    "image/webp": ".webp", "image/bmp": ".bmp", "image/x-ms-bmp": ".bmp", "image/tiff": ".tiff",
    "image/avif": ".avif", "image/heic": ".heic",
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm", "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi", "video/avi": ".avi",
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/flac": ".flac", "audio/x-flac": ".flac",
    "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac",
    "application/zip": ".zip", "application/x-zip-compressed": ".zip", "application/x-tar": ".tar",
    "application/gzip": ".tar.gz", "application/x-gzip": ".tar.gz", "application/x-bzip2": ".tar.bz2",
    "application/x-xz": ".tar.xz",
}
_FILENAME_STAR = re.compile(r"""filename\*\s*=\s*"?([\w!#$%&+^`{}~-]*)'[^']*'([^;"\s]+)""", re.I)
_TEXT_TYPES = {"application/json", "application/xml", "application/xhtml+xml", "application/javascript"}


def has_model_extension(name: str) -> bool:
    return name.lower().endswith(MODEL_EXTENSIONS)


def sniff_media(head: bytes) -> str | None:
    """The extension that a media file's first bytes announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": ".webp", b"WAVE": ".wav", b"AVI ": ".avi"}.get(head[8:12])
    bmp_header_sizes = (12, 40, 52, 56, 64, 108, 124)  # BM alone is too weak a signature
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in bmp_header_sizes:
        return ".bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return ".mov"
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return ".m4a"
        if brand in (b"avif", b"avis"):
            return ".avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return ".heic"
        return ".mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"pnot"):
        return ".mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"ID3"):
        return ".mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # AAC in ADTS frames
            return ".aac"
        if head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 0x3 == 0x1:  # MPEG audio layer III
            return ".mp3"
    return None


def sniff_archive(head: bytes) -> str | None:
    """'.zip', '.tar', '.tar.gz', '.tar.bz2' or '.tar.xz' from the first bytes, or None.

    A compressed stream is taken for a tar: that is the only compressed archive we unpack.
    """
    if head.startswith(ZIP_MAGICS):
        return ".zip"
    for magic, extension in COMPRESSED_TAR_MAGICS.items():
        if head.startswith(magic):
            return extension
    if len(head) >= 262 and head[257:262] == b"ustar":
        return ".tar"
    return None


def sniff_weights(head: bytes) -> str:
    """An extension for a weight file that has none (ComfyUI lists only model extensions in most folders)."""
    if head[:4] == b"GGUF":
        return ".gguf"
    if head[:2] == b"PK":
        return ".pt"  # torch.save's zip format
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return ".safetensors"
    return ".bin"


def looks_like_text(head: bytes) -> bool:
    """True for HTML, JSON, XML or plain text: what a broken link or a login page returns."""
    if not head:
        return False
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"<", b"{", b"["):
        return True
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a real decoding error, not a character cut by the sample
            return False
        text = head[: exc.start].decode("utf-8")
    return all(char.isprintable() or char in "\t\n\r\f" for char in text)


def is_text_type(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main.startswith("text/") or main in _TEXT_TYPES or main.endswith(("+json", "+xml"))


def extension_of(name: str) -> str:
    """'.png' for 'a.PNG', '.tar.gz' for 'x.tar.gz', '' when the name has no plausible extension."""
    lower = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if lower.endswith(double):
            return double
    suffix = PurePosixPath(lower).suffix
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""


def extension_for_mime(mime: str) -> str:
    mime = mime.split(";", 1)[0].strip().lower()
    return _MIME_EXTENSIONS.get(mime) or (mimetypes.guess_extension(mime) or "" if mime else "")


def filename_from_disposition(value: str | None) -> str | None:
    """The file name a Content-Disposition header gives, reduced to a safe base name (inputs and weights).

    ``filename*`` (RFC 5987/2231, percent-encoded UTF-8) wins over ``filename``.
    Path parts are dropped, so ``../../x`` becomes ``x``; nothing usable gives None.
    """
    if not value:
        return None
    extended = _FILENAME_STAR.search(value)
    if extended:
        try:
            name = unquote(extended.group(2), encoding=extended.group(1) or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            name = None
    else:
        message = Message()
        message["content-disposition"] = value
        try:
            name = message.get_filename()
        except Exception:  # a malformed header is treated as absent, never fails the download
            name = None
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return None if name in ("", ".", "..") else name
