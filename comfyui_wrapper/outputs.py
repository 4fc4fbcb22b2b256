"""Collect the files a run wrote and hand them over in the requested format.

Order matters to users ("the second output is the upscaled one"): files come
in output-node order (node ids compared as tuples of integer parts, so
``9 < 12 < 12:3 < 13``), then in the order each node wrote them — never
alphabetically. Files a node wrote without reporting them (some custom nodes
do) follow, oldest first. Images are converted to webp/jpg/png; videos, gifs,
animated images, audio and anything else pass through unchanged.

Metadata. ComfyUI runs with --disable-metadata, because what it embeds is
the prompt as queued: our per-run cache tokens (which would let whoever holds
the image address that run's cached results) and absolute container paths.
Instead ``deliver`` writes the user's workflow as it ran (seeds included,
paths relative to input/, no tokens; see provenance.shareable_workflow) into
PNGs (a ``prompt`` text chunk, as ComfyUI writes it, so dragging the image
into ComfyUI restores the graph) and webp images (EXIF 0x0110 ``prompt:...``,
ComfyUI's own convention), or nothing when CW_OUTPUT_METADATA=none. JPEG
results carry no metadata (ComfyUI cannot read a workflow from a JPEG). A
PNG is always re-encoded (losslessly) so that whatever a custom node
embedded is replaced; any other file that still contains a run token is
re-encoded without metadata if it is an image, or reported in the log.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, get_args

from PIL import Image, PngImagePlugin

from .errors import OutputFormatError
from .logs import get_logger
from .workflow import node_order_key

log = get_logger(__name__)

OutputFormat = Literal["webp", "jpg", "png"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)
FileKind = Literal["output", "temp"]  # the ComfyUI folder a file was written to
CONVERTIBLE = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
_PIL_FORMAT = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
_SAME = {"webp": {".webp"}, "jpg": {".jpg", ".jpeg"}, "png": {".png"}}
_EXIF_MODEL = 0x0110  # where ComfyUI puts "prompt:<json>" in a webp's EXIF


@dataclass(frozen=True)
class ProducedFile:
    """One file a run left behind: where it is and who wrote it."""

    path: Path
    node_id: str | None  # None: found on disk, not reported by any node
    kind: FileKind


def check_format(output_format: str, output_quality: int) -> OutputFormat:
    fmt = (output_format or "").strip().lower()
    fmt = "jpg" if fmt == "jpeg" else fmt
    known = next((f for f in OUTPUT_FORMATS if f == fmt), None)
    if known is None:
        raise OutputFormatError(f"output_format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}.")
    if isinstance(output_quality, bool) or not isinstance(output_quality, int) or not 0 <= output_quality <= 100:
        raise OutputFormatError(f"output_quality {output_quality!r} must be a whole number from 0 to 100.")
    return known


def _reported(ui_output: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every file entry in a node's UI output (images, gifs, audio, video, 3d...)."""
    for value in ui_output.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("filename"), str):
                    yield item


def collect(
    outputs: dict[str, dict[str, Any]], output_dir: Path, temp_dir: Path, *, include_temp: bool
) -> list[ProducedFile]:
    roots = {"output": output_dir, "temp": temp_dir}
    files: list[ProducedFile] = []
    seen: set[Path] = set()
    for node_id in sorted(outputs, key=node_order_key):
        for item in _reported(outputs[node_id] or {}):
            kind = item.get("type", "output")
            if kind not in roots or (kind == "temp" and not include_temp):
                continue
            root = roots[kind].resolve()
            path = (root / item.get("subfolder", "") / item["filename"]).resolve()
            if not path.is_relative_to(root) or not path.is_file() or path in seen:
                continue
            seen.add(path)
            files.append(ProducedFile(path, node_id, kind))
    for kind in ("output", "temp") if include_temp else ("output",):
        root = roots[kind].resolve()
        # A link a node left in output/ may point anywhere: only files really inside the folder count,
        # or deliver() would move the link's target (a cached weight, a system file) into the results.
        unreported = [p for p in roots[kind].rglob("*")
                      if p.is_file() and p.resolve().is_relative_to(root) and p.resolve() not in seen]
        for path in sorted(unreported, key=lambda p: (p.stat().st_mtime_ns, str(p))):
            files.append(ProducedFile(path.resolve(), None, kind))
    return files


def deliver(files: list[ProducedFile], dest_dir: Path, output_format: str, output_quality: int, *,
            workflow: dict[str, Any] | None = None, secrets: Iterable[str] = ()) -> list[Path]:
    """Move or convert each file into ``dest_dir``; returns the new paths in order.

    ``workflow``: embedded in PNG and webp images (None: no metadata).
    ``secrets``: strings (run tokens) no returned file may contain.
    """
    fmt = check_format(output_format, output_quality)
    dest_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    delivered: list[Path] = []
    prompt_text = json.dumps(workflow) if workflow is not None else None
    needles = [secret.encode() for secret in secrets if secret]
    for produced in files:
        source = produced.path
        suffix = source.suffix.lower()
        convert = suffix in CONVERTIBLE and (suffix not in _SAME[fmt] or suffix == ".png")
        if convert and _is_animated(source):
            convert = False
        if convert:
            target_fmt = fmt if suffix not in _SAME[fmt] else "png"
            target = dest_dir / _unique(f"{source.stem}.{target_fmt}", taken)
            try:
                _convert(source, target, target_fmt, output_quality, prompt_text)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                # E.g. webp stops at 16383 pixels a side, and Pillow refuses huge images: a result the
                # run took minutes to make is returned as it is rather than lost to a traceback.
                taken.discard(target.name)
                log.warning("Could not convert %s to %s (%s); returning it unchanged.", source.name, target_fmt, exc)
            else:
                delivered.append(target)
                continue
        target = dest_dir / _unique(source.name, taken)
        shutil.move(str(source), target)
        if needles and _contains(target, needles):
            target = _scrub(target, output_quality)
        delivered.append(target)
    return delivered


def _contains(path: Path, needles: list[bytes]) -> bool:
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return any(data.find(needle) != -1 for needle in needles)
    except (OSError, ValueError):
        return False


def _scrub(path: Path, quality: int) -> Path:
    """A returned file still holds a run token (a node embedded ComfyUI's prompt despite
    --disable-metadata): images are re-encoded without metadata, anything else is reported."""
    suffix = path.suffix.lower()
    fmt = {".png": "png", ".webp": "webp", ".jpg": "jpg", ".jpeg": "jpg"}.get(suffix)
    if fmt is not None:
        scrubbed = path.with_name(f".{path.name}.scrubbed")
        try:
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                options: dict[str, Any] = {"quality": quality} if fmt in ("jpg", "webp") else {}
                if frames > 1:
                    options.update(save_all=True)
                image.save(scrubbed, _PIL_FORMAT[fmt], **options)
            os.replace(scrubbed, path)
            return path
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            scrubbed.unlink(missing_ok=True)
            log.warning("Could not remove the embedded metadata of %s (%s).", path.name, exc)
            return path
    log.warning("%s embeds ComfyUI's internal prompt (a custom node ignored --disable-metadata).", path.name)
    return path


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate, n = name, 1
    while candidate in taken:
        candidate = f"{stem}_{n}.{suffix}" if dot else f"{stem}_{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _is_animated(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def _convert(source: Path, target: Path, fmt: str, quality: int, prompt_text: str | None = None) -> None:
    """Write ``source`` as ``fmt``; temp name + rename so a failure leaves nothing.

    Only the pixels are kept (and ``prompt_text`` where the format has a place for it).
    """
    partial = target.with_name(f".{target.name}.partial")
    try:
        with Image.open(source) as opened:
            image: Image.Image = opened
            if fmt == "jpg" and image.mode not in ("RGB", "L"):
                image = _flatten(image)
            options: dict[str, Any] = {}
            if fmt in ("jpg", "webp"):
                options["quality"] = quality
            if fmt == "png":
                options["optimize"] = False
                if prompt_text is not None:
                    info = PngImagePlugin.PngInfo()
                    info.add_text("prompt", prompt_text)
                    options["pnginfo"] = info
            if fmt == "webp" and prompt_text is not None:
                exif = Image.Exif()
                exif[_EXIF_MODEL] = f"prompt:{prompt_text}"
                options["exif"] = exif
            image.save(partial, _PIL_FORMAT[fmt], **options)
        os.replace(partial, target)
        source.unlink()
    finally:
        partial.unlink(missing_ok=True)


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no alpha: composite onto white rather than letting transparent pixels go black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
