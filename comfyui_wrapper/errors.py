"""One family of errors, each saying what went wrong and how to fix it.

Every error a user can cause is a ``WrapperError``. ``str(error)`` is the whole
message a user sees: what happened, then a line starting ``How to fix:``. Each
class also subclasses the matching builtin (``FileNotFoundError``,
``TimeoutError``, ``ValueError``...) so callers that only know the standard
library can still catch them sensibly. Extra fields (``node_id``, ``url``,
``filename``...) are kept as attributes for programs that want them.
"""

from __future__ import annotations

import logging
import re
from pathlib import PurePath
from typing import Any, Callable, TypeVar

# Any query parameter whose name mentions a secret (token, hf_token, X-Amz-Security-Token, api_key, sig...).
# The value runs to the next parameter or the end of the URL: white space, or a quote that closes it
# (followed by white space, the end, or the , ; ) ] } of the text around it: a message's or a repr's
# own quotes around a URL are kept; a URL's own quote is not followed by those).
_SECRET_QUERY = re.compile(
    r"(?i)([?&][^=&#\s]*(?:token|key|secret|sig|auth|password|passwd|credential|session)[^=&#\s]*=)"
    r"[^&#\s]+?(?=['\"](?:[\s,;)\]}]|$)|\s|$|[&#])"
)
# Userinfo of any scheme (ftp://user:password@, https://token@): everything before the '@' of the authority.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s?#]+@")


def redact(text: str) -> str:
    """Hide secrets that URLs carry (query tokens, user:password@).

    Errors (message, fix, ``url``) and log lines (PrintableArgs) call it
    themselves; call it by hand only for text that leaves by another way: what
    is written to disk (the cache index, provenance.json) or returned (the plan).
    """
    text = _SECRET_QUERY.sub(r"\1***", text)
    return _USERINFO.sub(r"\1***@", text)


_C = TypeVar("_C", bound=type)


def redacted_repr(cls: _C) -> _C:
    """Class decorator (after @dataclass): repr() and str() with URL secrets hidden.

    For the values that hold a raw URL (they must, to send it): formatting one
    into a message, a log line or a debugger never shows its token.
    """
    shown: Callable[[object], str] = getattr(cls, "__repr__")  # noqa: B009 - the unbound method

    def __repr__(self: object) -> str:
        return redact(shown(self))

    cls.__repr__ = __repr__  # type: ignore[assignment]
    return cls


# Bidirectional overrides and isolates reorder what a terminal shows (a name can
# display as something it is not); str.isprintable() lets them through.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(value: object, limit: int = 300) -> str:
    """``value`` as one line of plain text: the only way user-chosen text reaches a log or message.

    Node ids, titles, archive entry names, filename prefixes and returned file
    names are the user's; written raw, a newline forges a log line
    ("Output: /etc/shadow") and an ANSI escape rewrites the terminal. Every
    character that is not printable (controls, newlines, escapes, bidi
    overrides, unpaired surrogates) becomes its backslash escape, and very long
    values are cut with a marker, so the result is exactly one visible line.
    """
    text = str(value)
    cut = len(text) > limit
    text = text[:limit]
    out = []
    for char in text:
        if char.isprintable() and char not in _BIDI and not 0xD800 <= ord(char) <= 0xDFFF:
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii") if ord(char) > 0xFF else repr(char)[1:-1])
    return "".join(out) + ("...[cut]" if cut else "")


class PrintableArgs:
    """A logging filter: the one place log lines are made safe to show.

    Log calls pass user-chosen values as arguments (``log.info("Output: %s",
    path)``): every text argument (and an exception's message) goes through
    printable(), so it stays one line without escapes; the format string itself
    is ours and keeps its newlines. Then the whole line, and a traceback if the
    record carries one, goes through redact(): a URL's query token or
    ``user:password@`` never reaches a log, however the URL got into the line
    (an argument, an f-string, a requests exception's text). So log calls pass
    raw values and never redact by hand. Installed on every logger of the
    package by logs.get_logger().
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_printable_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _printable_arg(v) for k, v in args.items()}
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call (arguments that do not fit): still one safe line
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def _printable_arg(value: object) -> object:
    if isinstance(value, (str, PurePath, BaseException)):
        return printable(value, 2000)
    return value


# An absolute POSIX path not inside a URL or a relative name: what a traceback or an
# exception message from ComfyUI's process shows of the server's file system.
_SERVER_PATH = re.compile(r"(?<![\w.:/\\-])/(?:[^\s'\"/:,;()\[\]<>]+/)+([^\s'\"/:,;()\[\]<>]+)")


def hide_server_paths(text: str) -> str:
    """Absolute paths in text from the server side shortened to their last part ("…/x.png").

    For exception messages that ComfyUI passes through (a node's
    FileNotFoundError names the full path): the user learns the file, not how
    the container is laid out. Not for values the user sent, which are theirs.
    """
    return _SERVER_PATH.sub(lambda m: "\u2026/" + m.group(1), text)


class WrapperError(Exception):
    """Base of every error the wrapper raises on purpose.

    Each class declares its fields as annotated class attributes (default None); the
    constructor takes only declared ones, so a misspelt field fails where it is raised,
    and a reader gets ``error.weights`` rather than ``getattr(error, "weights", [])``.
    Where the problem is (``node_id``, ``input_name``, ``url``) any error may carry. URL
    secrets (query tokens, ``user:password@``) are hidden here, in the message, the fix
    and ``url``: raise with raw URLs, never redact by hand.
    """

    default_fix = "See the message above."

    node_id: str | None = None
    input_name: str | None = None
    url: str | None = None

    def __init__(self, message: str, *, fix: str | None = None, **fields: Any) -> None:
        unknown = sorted(set(fields) - self.declared_fields())
        if unknown:
            raise TypeError(f"{type(self).__name__} declares no field {', '.join(unknown)}")
        if fields.get("url") is not None:
            fields["url"] = redact(str(fields["url"]))  # a str, or a value that holds one (urls.Target)
        self.message = redact(message)
        self.fix = redact(fix or self.default_fix)
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        super().__init__(self.message)

    @classmethod
    def declared_fields(cls) -> frozenset[str]:
        """The field names this class and its WrapperError bases annotate."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if isinstance(klass, type) and issubclass(klass, WrapperError):
                names.update(vars(klass).get("__annotations__", {}))
        return frozenset(names)

    def __str__(self) -> str:
        return f"{self.message}\nHow to fix: {self.fix}"


# --- the workflow itself -------------------------------------------------------


class WorkflowError(WrapperError, ValueError):
    """The workflow JSON is unusable as given."""

    default_fix = (
        "Pass the workflow in ComfyUI's API format: in ComfyUI, open Settings, enable "
        "'Dev mode', then use Workflow > Export (API) and send that file's contents as workflow_json."
    )


class UIFormatError(WorkflowError):
    """A UI-format workflow (nodes + links) that we cannot convert."""

    class_type: str | None = None
    missing_classes: list[str] | None = None


class GraphError(UIFormatError):
    """The UI graph breaks a rule the frontend throws on (a link to a missing node, a subgraph that
    contains itself...). Raised inside ui/ with the bare reason and the graph node it concerns;
    ui/convert.py raises it again with the whole message, naming the node."""

    default_fix = (
        "Repair the connection in ComfyUI and save again, or export it in API format instead "
        "(Workflow > Export (API)) and send that file."
    )

    node: Any = None  # the ui.graph Node the reason is about, while inside ui/ (node_id names it after)

    def __init__(self, message: str, node: Any = None, **fields: Any) -> None:
        super().__init__(message, node=node, **fields)


class UnknownNodeError(WorkflowError):
    """The workflow uses node classes this ComfyUI does not have."""

    default_fix = (
        "Use only nodes this container provides, or ask for the custom node pack to be added "
        "(custom_nodes.json)."
    )

    class_types: list[str] | None = None
    node_ids: list[str] | None = None
    problems: list[Any] | None = None  # nodes.packs.NodeProblem, one per missing class


class PromptValidationError(WorkflowError):
    """ComfyUI refused the prompt (HTTP 400): wrong input values, missing links."""

    default_fix = "Correct the inputs named above; each line names the node, the input and ComfyUI's reason."

    error_type: str | None = None
    node_errors: dict[str, Any] | None = None


# --- inputs ---------------------------------------------------------------------


class InputFileError(WrapperError, ValueError):
    """input_file or a workflow media URL is unusable."""

    default_fix = "Upload a single image, video or audio file, or a .zip/.tar of them."

    archive: str | None = None
    entry: str | None = None
    filename: str | None = None


class MissingInputError(WrapperError, FileNotFoundError):
    """Files or folders the workflow loads from input/ are not there."""

    default_fix = (
        "Upload the files with input_file (a zip or tar keeps folder names), give an http(s) URL "
        "in the workflow, or change the names in the workflow to the ones listed as present."
    )

    filename: str | None = None
    missing: list[str] | None = None
    present: list[str] | None = None


class UnsafeInputError(WrapperError, PermissionError):
    """An archive entry, path or URL tried to reach outside what is allowed."""

    default_fix = "Remove the offending entry or URL; inputs must stay inside input/ and URLs must be public http(s)."

    entry: str | None = None
    filename: str | None = None
    value: str | None = None


class InputTooLargeError(WrapperError, ValueError):
    """An input exceeds a size, count or compression-ratio limit."""

    default_fix = "Send a smaller input, or raise the limit named above through its setting."

    limit: int | None = None


class DownloadError(WrapperError, ConnectionError):
    """A URL could not be fetched."""

    default_fix = "Check that the URL is public and answers (open it in a browser), then try again."

    status: int | None = None
    filename: str | None = None


# --- weights --------------------------------------------------------------------


class ManifestError(WrapperError, ValueError):
    """weights_manifest.json is malformed."""

    default_fix = "Fix the manifest entry named above, or rebuild it with scripts/build_weights_manifest.py."

    entry: str | None = None
    field: str | None = None
    path: str | None = None


class UnknownWeightError(WrapperError, LookupError):
    """The workflow names model files that are neither cached nor in the manifest."""

    default_fix = (
        "Use one of the suggested names, give the weight as an http(s) URL in the loader's input, "
        "or add it to weights_manifest.json (see supported_weights.md for the full list)."
    )

    filename: str | None = None
    name: str | None = None  # the CW_WARM_WEIGHTS entry that names no weight
    weights: list[str] | None = None


class WeightDownloadError(DownloadError):
    """A weight could not be fetched or failed verification."""

    default_fix = "Retry; if it keeps failing, check the URL and the manifest's size/sha256 for this file."


class ChecksumMismatchError(WeightDownloadError):
    """The bytes fetched are not the ones the manifest promises."""

    actual_sha256: str | None = None
    actual_size: int | None = None
    expected_sha256: str | None = None
    expected_size: int | None = None


class CacheBudgetError(WrapperError, OSError):
    """The weights this workflow needs do not fit in the cache budget or on disk."""

    default_fix = "Raise CW_WEIGHTS_BUDGET, free disk space, or use fewer or smaller models."

    budget_bytes: int | None = None
    filename: str | None = None
    free_bytes: int | None = None
    needed_bytes: int | None = None


# --- outputs --------------------------------------------------------------------


class OutputFormatError(WrapperError, ValueError):
    default_fix = "Use output_format webp, jpg or png and output_quality between 0 and 100."


class NoOutputsError(WrapperError, RuntimeError):
    """The workflow ran but saved no files."""

    default_fix = (
        "Add a node that saves files (SaveImage, SaveAnimatedWEBP, VHS_VideoCombine...), or set "
        "return_temp_files to get files from preview nodes."
    )


# --- ComfyUI, the process and the run --------------------------------------------


class ComfyUIStartError(WrapperError, RuntimeError):
    """ComfyUI did not come up."""

    default_fix = "Read the ComfyUI log lines above; reinstall with scripts/install_comfyui.py if files are missing."


class ConnectionLost(WrapperError, ConnectionError):
    """ComfyUI stopped answering (the caller decides whether it died)."""

    default_fix = "The next prediction restarts ComfyUI."


class ComfyUICrashedError(WrapperError, RuntimeError):
    """ComfyUI died while a prediction was running."""

    default_fix = (
        "The next prediction restarts ComfyUI. If it happens again with this workflow, lower the "
        "resolution, batch size or frame count (the usual cause is running out of memory)."
    )


class ExecutionError(WrapperError, RuntimeError):
    """A node raised while the workflow ran."""

    default_fix = "Check the failing node's inputs named above; the traceback lines show where it failed."

    exception_type: str | None = None


class PredictionInterruptedError(WrapperError, RuntimeError):
    """The run was interrupted (cancelled by the caller or by ComfyUI)."""

    default_fix = "Run the prediction again."


class PredictionTimeoutError(WrapperError, TimeoutError):
    """The run took longer than its deadline or stopped making progress."""

    default_fix = (
        "Lower steps, resolution or frame count, or raise CW_PREDICTION_TIMEOUT / CW_STALL_TIMEOUT."
    )

    limit: float | None = None
    seconds: float | None = None


class CustomNodeInstallError(WrapperError, RuntimeError):
    """A custom node pack could not be installed as pinned."""

    default_fix = "Fix the pack entry in custom_nodes.json, or pin a requirement that fits our constraints."


class ModelFolderMapError(WrapperError, RuntimeError):
    """model_folder_map.json (which model folder each loader input reads) is missing or malformed."""

    default_fix = (
        "Rebuild it after installing ComfyUI and custom nodes: "
        "python scripts/build_model_folder_map.py --comfyui-dir <ComfyUI folder>."
    )

    path: str | None = None


class PreflightError(WrapperError, ValueError):
    """Several kinds of problem found before running; ``errors`` holds each one."""

    default_fix = "Fix each problem listed above; they are all reported at once."

    errors: list[WrapperError] | None = None


# --- new-model ------------------------------------------------------------------


class ModelInputError(WrapperError, ValueError):
    """A --input given to new-model cannot be exposed as a typed model input."""

    default_fix = (
        "Use --input NAME=NODE_ID.INPUT[:description] with a Python identifier as NAME and a literal "
        "input of a node in the workflow; run new-model without --input to see suggestions."
    )

    flag: str | None = None
    name: str | None = None
    out: str | None = None
