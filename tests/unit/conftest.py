"""Fixtures for every unit test."""

from __future__ import annotations

import pytest

from comfyui_wrapper.weights import download


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries still happen, as many and in the same order, but the first waits ~50 ms, not ~0.5 s:
    every fetcher that meets a retryable failure (a probe, a dropped range) would otherwise sleep for seconds."""
    monkeypatch.setattr(download, "BACKOFF_BASE_S", 0.05)
