"""Weights fetched during setup() (CW_WARM_WEIGHTS), so the first prediction finds them on disk.

A deployment that always runs one model family knows its weights in advance;
fetching them while ComfyUI boots hides the boot behind the download (or the
download behind the boot) instead of adding both to the first prediction.

Entries are manifest names (or synonyms), ``folder=URL`` pairs for weights
outside the manifest, or a bare URL that is some manifest entry's URL. They are
checked before anything starts, so a typo fails setup at once with
suggestions. A download that fails is logged as a warning and does not fail
setup: the first prediction that needs the weight fetches it again and reports
the error to its caller, as for any download.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable

from ..errors import UnknownWeightError, WrapperError
from ..logs import get_logger
from .cache import EnsureReport, WeightCache
from .manifest import Manifest, WeightSpec

log = get_logger(__name__)

_SETTING = "CW_WARM_WEIGHTS"


@dataclass(frozen=True)
class WarmList:
    specs: tuple[WeightSpec, ...] = ()
    urls: tuple[tuple[str, str], ...] = ()  # (url, folder)

    def __bool__(self) -> bool:
        return bool(self.specs or self.urls)


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def parse_warm_weights(entries: Iterable[str], manifest: Manifest) -> WarmList:
    """The weights a CW_WARM_WEIGHTS value names; UnknownWeightError for any it cannot place."""
    specs: dict[str, WeightSpec] = {}
    urls: dict[str, str] = {}
    by_url = {source: spec for spec in manifest for source, _ in spec.sources()}
    for entry in entries:
        folder, sep, rest = entry.partition("=")
        if sep and _is_url(rest.strip()) and folder.strip() and not _is_url(folder):
            folder, url = folder.strip(), rest.strip()
            if "/" in folder or folder.startswith("."):
                raise UnknownWeightError(
                    f"{_SETTING}: {folder!r} in {entry!r} is not a model folder name.",
                    fix="Write folder=URL with a ComfyUI model folder such as loras or checkpoints.", name=entry)
            urls[url] = folder
        elif _is_url(entry):
            spec = by_url.get(entry)
            if spec is None:
                raise UnknownWeightError(
                    f"{_SETTING}: the URL {entry!r} is not in the weights manifest, so its model folder is unknown.",
                    fix="Write it as folder=URL, e.g. loras=https://host/file.safetensors.", name=entry)
            specs[spec.key] = spec
        else:
            spec = manifest.resolve(entry)
            if spec is None:
                close = manifest.suggest(entry)
                hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
                raise UnknownWeightError(
                    f"{_SETTING}: no weight named {entry!r} in the manifest.{hint}",
                    fix="Use names from weights_manifest.json (see supported_weights.md), or folder=URL.", name=entry)
            specs[spec.key] = spec
    return WarmList(tuple(specs.values()), tuple(urls.items()))


class WarmUp:
    """The warm weights' download, on a thread that runs while ComfyUI boots."""

    def __init__(self, cache: WeightCache, warm: WarmList) -> None:
        self.cache = cache
        self.warm = warm
        self.report: EnsureReport | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def begin(cls, cache: WeightCache, entries: Iterable[str]) -> WarmUp:
        """Check the entries (raising for unknown ones) and start fetching; nothing to do is fine."""
        job = cls(cache, parse_warm_weights(entries, cache.manifest))
        if job.warm:
            names = [spec.name for spec in job.warm.specs] + [url for url, _ in job.warm.urls]
            log.info("Fetching %d warm weight(s) while ComfyUI starts: %s", len(names), ", ".join(names))
            job._thread = threading.Thread(target=job._run, name="warm-weights", daemon=True)
            job._thread.start()
        return job

    def _run(self) -> None:
        try:
            self.report = self.cache.ensure_all(self.warm.specs, urls=self.warm.urls)
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc

    def wait(self) -> EnsureReport | None:
        """Wait for the downloads; log what happened. Never raises for a failed download."""
        if self._thread is None:
            return None
        self._thread.join()
        if self.error is not None:
            text = str(self.error) if isinstance(self.error, WrapperError) else repr(self.error)
            log.warning("Warm weights: not all could be fetched during setup; a prediction that needs them "
                        "will try again. %s", text)
        elif self.report is not None:
            log.info("Warm weights ready: %d downloaded, %d already cached, in %.1f s.",
                     self.report.downloaded, self.report.hits, self.report.seconds)
        return self.report


__all__ = ["WarmList", "WarmUp", "parse_warm_weights"]
