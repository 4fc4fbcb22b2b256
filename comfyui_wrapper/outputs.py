"""Collect the files a run wrote and hand them over in the requested format.

Order matters to users ("the second output is the upscaled one"): files come
in output-node order (node ids compared as tuples of integer parts, so
``9 < 12 < 12:3 < 13``), then in the order each node wrote them — never
alphabetically. Files a node wrote without reporting them (some custom nodes
do) follow, oldest first. Images are converted to webp/jpg/png; videos, gifs,
animated images, audio and anything else pass through unchanged.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from .errors import OutputFormatError
from .workflow import node_order_key

log = logging.getLogger("comfyui_wrapper")

OUTPUT_FORMATS = ("webp", "jpg", "png")
CONVERTIBLE = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
_PIL_FORMAT = {"webp": "WEBP", "jpg": "JPEG", "png": "PNG"}
_SAME = {"webp": {".webp"}, "jpg": {".jpg", ".jpeg"}, "png": {".png"}}


@dataclass(frozen=True)
class ProducedFile:
    """One file a run left behind: where it is and who wrote it."""

    path: Path
    node_id: str | None  # None: found on disk, not reported by any node
    kind: str  # "output" | "temp"


def check_format(output_format: str, output_quality: int) -> str:
    fmt = (output_format or "").strip().lower()
    fmt = "jpg" if fmt == "jpeg" else fmt
    if fmt not in OUTPUT_FORMATS:
        raise OutputFormatError(f"output_format {output_format!r} is not one of webp, jpg, png.")
    if isinstance(output_quality, bool) or not isinstance(output_quality, int) or not 0 <= output_quality <= 100:
        raise OutputFormatError(f"output_quality {output_quality!r} must be a whole number from 0 to 100.")
    return fmt


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


def deliver(files: list[ProducedFile], dest_dir: Path, output_format: str, output_quality: int) -> list[Path]:
    """Move or convert each file into ``dest_dir``; returns the new paths in order."""
    fmt = check_format(output_format, output_quality)
    dest_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    delivered: list[Path] = []
    for produced in files:
        source = produced.path
        target_name = source.name
        convert = source.suffix.lower() in CONVERTIBLE and source.suffix.lower() not in _SAME[fmt]
        if convert and _is_animated(source):
            convert = False
        if convert:
            target = dest_dir / _unique(f"{source.stem}.{fmt}", taken)
            try:
                _convert(source, target, fmt, output_quality)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                # E.g. webp stops at 16383 pixels a side, and Pillow refuses huge images: a result the
                # run took minutes to make is returned as it is rather than lost to a traceback.
                taken.discard(target.name)
                log.warning("Could not convert %s to %s (%s); returning it unchanged.", source.name, fmt, exc)
            else:
                delivered.append(target)
                continue
        target = dest_dir / _unique(target_name, taken)
        shutil.move(str(source), target)
        delivered.append(target)
    return delivered


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


def _convert(source: Path, target: Path, fmt: str, quality: int) -> None:
    """Write ``source`` as ``fmt``; temp name + rename so a failure leaves nothing."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        with Image.open(source) as image:
            if fmt == "jpg" and image.mode not in ("RGB", "L"):
                image = _flatten(image)
            options: dict[str, Any] = {}
            if fmt in ("jpg", "webp"):
                options["quality"] = quality
            if fmt == "png":
                options["optimize"] = False
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
