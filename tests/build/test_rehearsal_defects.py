"""The build rehearsal fails on each defect it guards against (the ones caught before any install).

The full rehearsal (scripts/rehearse_build.py, a CI step of its own) takes about two
minutes; the defects that surface in its later steps (pep668, tuple, src) are checked
by hand with `--inject` (README, "Building the image"). These fail in its first seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.node_packs import load_script

rehearsal = load_script("rehearse_build")


@pytest.mark.parametrize(("defect", "message"), [
    ("choices", "choices expression cannot be statically resolved"),
    ("description", "concatenated string"),
    ("secrets", "build secret"),
    ("sdk", "no build.sdk_version"),
    ("cli", "accepted Cog 0.22.0"),
    ("lock", ".cog/cog.lock"),
])
def test_the_rehearsal_fails_on_the_defect(tmp_path: Path, defect: str, message: str) -> None:
    with pytest.raises(rehearsal.RehearsalFailed) as failure:
        rehearsal.rehearse(tmp_path, inject=defect)
    assert message in str(failure.value)


def test_every_defect_of_the_issue_has_an_injection() -> None:
    assert set(rehearsal.DEFECTS) == {"choices", "description", "pep668", "secrets", "src", "sdk", "tuple", "cli", "lock"}


@pytest.mark.parametrize("defect", sorted(rehearsal.DEFECTS))
def test_every_injection_still_applies_to_the_project(tmp_path: Path, defect: str) -> None:
    """An injection whose target text moved would exit instead of demonstrating the defect."""
    rehearsal.copy_context(rehearsal.REPO_ROOT, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rehearsal.DEFECTS[defect][1](tmp_path)
    if defect == "tuple":
        rehearsal._drop_probe_guard(tmp_path)
    assert any(p.read_bytes() != data for p, data in before.items())
