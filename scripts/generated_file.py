"""Write a generated file, or (``--check``) fail when the committed copy is stale.

Shared by the scripts that generate committed files from their sources
(weights manifest, supported_weights.md, requirements/cog.txt, the OpenAPI
schema), so "regenerate or check" works the same everywhere and tests can
call every script with --check.
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, *, check: bool, script: str, summary: str = "") -> int:
    """Exit status: 0 when written or up to date, 1 when ``check`` finds the file stale."""
    if check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run python scripts/{script}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}{': ' + summary if summary else ''}")
    return 0
