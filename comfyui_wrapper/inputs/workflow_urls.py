"""Media URLs named inside a workflow, fetched into input/ and the workflow rewritten to name the files.

``fetch_workflow_urls`` downloads each http(s) media URL once (several in
parallel, through ``fetch.download``: the URL policy on every hop, one byte
budget for the whole prediction) and returns a rewritten copy of the workflow.
Which inputs count as loaders comes from ``references.KNOWN_LOADERS``.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..errors import UnsafeInputError, WrapperError, redacted_repr
from ..filetypes import MEDIA_EXTENSIONS, extension_of
from ..urls import PinnedSession, Scope, UrlPolicy, check_url, is_http_url, new_session
from ..workflow import NodeInput, meta_title
from .archives import InputLimits
from .fetch import OTHER_SCHEME, Budget, Cancelled, download, with_prefix
from .references import KNOWN_LOADERS, iter_string_inputs, original_key

__all__ = ["FetchedUrl", "fetch_workflow_urls"]

MAX_PARALLEL_DOWNLOADS = 4


@redacted_repr
@dataclass(frozen=True)
class FetchedUrl:
    """One URL downloaded into input/, and the workflow inputs that now name it."""

    url: str
    local_name: str  # relative to input/, what input-relative loaders now say
    path: Path
    size: int
    uses: tuple[tuple[str, str], ...]  # (node_id, input_name)



@dataclass(frozen=True)
class _Use:
    """One input naming a URL: where it is, and how its loader opens the file (see KNOWN_LOADERS)."""

    where: NodeInput
    relative_to: str


def _url_is_media(url: str) -> bool:
    return extension_of(PurePosixPath(urlsplit(url).path).name) in MEDIA_EXTENSIONS


def fetch_workflow_urls(
    workflow: dict[str, Any], input_dir: Path, policy: UrlPolicy, limits: InputLimits, *,
    session: PinnedSession | None = None, scope: Scope | None = None,
) -> tuple[dict[str, Any], list[FetchedUrl]]:
    """Download media URLs named in the workflow into input/; return a rewritten copy.

    A string input is fetched when it is an http(s) URL in a known loader
    input (KNOWN_LOADERS) or any URL whose path ends in a media extension.
    Each distinct URL is fetched once (several in parallel) and saved as
    ``<8 hex of sha256(url)>_<name>``, so two URLs ending in the same name
    never collide; every input naming it is rewritten (to that name, or to its
    absolute path for loaders that open paths from the working directory).
    Non-http schemes (file:, ftp:, data:) in such inputs are refused. On any
    failure the files this call downloaded are removed and the first error in
    workflow order is raised, naming node, input and (redacted) URL.
    """
    input_dir = Path(input_dir)
    uses: dict[str, list[_Use]] = {}
    for node_id, node, name, value in iter_string_inputs(workflow):
        text = value.strip()
        class_type = str(node.get("class_type", ""))
        loader = KNOWN_LOADERS.get((class_type, name))
        use = _Use(NodeInput(node_id, class_type, meta_title(node) or "", name),
                   loader.relative_to if loader else "input")
        if is_http_url(text):
            if loader or _url_is_media(text):
                uses.setdefault(text, []).append(use)
        elif text[:5].lower() == "data:" and loader:
            raise UnsafeInputError(
                f"{use.where.describe()}: data: URIs are accepted only for input_file, not inside the workflow.",
                fix="Pass the file as input_file (a data: URI works there) and name it in the workflow.",
                node_id=node_id, input_name=name,
            )
        elif OTHER_SCHEME.match(text) and (loader or _url_is_media(text)):
            try:
                check_url(text, policy)
            except WrapperError as error:
                raise with_prefix(error, use.where.describe(), node_id=node_id, input_name=name) from None
    if not uses:
        return copy.deepcopy(workflow), []

    # Refuse unsafe URLs before any request is made.
    for url, url_uses in uses.items():
        try:
            check_url(url, policy)
        except WrapperError as error:
            first = url_uses[0].where
            raise with_prefix(error, first.describe(), node_id=first.node_id,
                              input_name=first.input_name, url=url) from None

    input_dir.mkdir(parents=True, exist_ok=True)
    budget = Budget(limits.max_input_bytes)
    stop = threading.Event()
    if scope is not None:
        scope.on_abort(stop.set)

    def fetch_one(url: str) -> tuple[Path, int]:
        own = session is None
        http = session or new_session(scope)
        try:
            return download(http, url, input_dir, policy, budget, stop=stop,
                             prefix=hashlib.sha256(url.encode()).hexdigest()[:8] + "_")
        except BaseException:
            stop.set()
            raise
        finally:
            if own:
                http.close()

    urls = list(uses)
    outcomes: dict[str, tuple[Path, int] | BaseException] = {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_DOWNLOADS, len(urls)), thread_name_prefix="input-url") as pool:
        futures = {url: pool.submit(fetch_one, url) for url in urls}
        for url, future in futures.items():
            try:
                outcomes[url] = future.result()
            except BaseException as exc:  # collected; raised below in workflow order
                outcomes[url] = exc
                for other in futures.values():
                    other.cancel()
    failures = [(url, outcome) for url, outcome in outcomes.items() if isinstance(outcome, BaseException)]
    if failures or len(outcomes) < len(urls):
        for outcome in outcomes.values():
            if isinstance(outcome, tuple):
                outcome[0].unlink(missing_ok=True)
        real = [(url, exc) for url, exc in failures if not isinstance(exc, (Cancelled, CancelledError))]
        url, failure = (real or failures)[0]
        first = uses[url][0].where
        if isinstance(failure, WrapperError):
            others = f" (also used by {len(uses[url]) - 1} more input(s))" if len(uses[url]) > 1 else ""
            raise with_prefix(failure, first.describe() + others, node_id=first.node_id,
                              input_name=first.input_name, url=url) from None
        raise failure

    new_workflow = copy.deepcopy(workflow)
    fetched: list[FetchedUrl] = []
    for url in urls:
        path, size = outcomes[url]  # type: ignore[misc]
        for use in uses[url]:
            node = new_workflow[original_key(workflow, use.where.node_id)]
            node["inputs"][use.where.input_name] = str(path) if use.relative_to == "cwd" else path.name
        fetched.append(FetchedUrl(url=url, local_name=path.name, path=path, size=size,
                                  uses=tuple((u.where.node_id, u.where.input_name) for u in uses[url])))
    return new_workflow, fetched
