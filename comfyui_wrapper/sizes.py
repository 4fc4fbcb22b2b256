"""Byte counts as people read them, in decimal units as download tools and disks report them."""

from __future__ import annotations


def human_bytes(size: int | None, unknown: str = "unknown size") -> str:
    """``1.23 GB``, ``450.97 MB``, ``150.00 KB``, ``12 B``; ``unknown`` for None."""
    if size is None:
        return unknown
    for unit, factor in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= factor:
            return f"{size / factor:.2f} {unit}"
    return f"{size} B"
