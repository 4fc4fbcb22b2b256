"""Command line: run a workflow file through the same runner Cog uses.

    python -m comfyui_wrapper run WORKFLOW.json [--input-file FILE] [--output-dir DIR] ...

Output paths go to stdout (one per line), progress to stderr; a failure
prints the clear error message and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from .errors import WrapperError
from .outputs import OUTPUT_FORMATS
from .runner import RunRequest, WorkflowRunner
from .settings import Settings

log = logging.getLogger("comfyui_wrapper")


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    # urllib3's debug lines print request paths, query tokens included: keep them out.
    logging.getLogger("urllib3").setLevel(logging.INFO)


def _read_workflow(value: str) -> str:
    """A path to a JSON file, '-' for stdin, '' for the built-in example, or a URL / data: URI."""
    if value in ("", "example"):
        return ""
    if value == "-":
        return sys.stdin.read()
    if value.lower().startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        raise WrapperError(f"Workflow file {value!r} does not exist.", fix="Give the path of an API-format workflow JSON file.")
    return path.read_text()


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    runner = WorkflowRunner(settings)
    request = RunRequest(
        workflow_json=_read_workflow(args.workflow),
        input_file=Path(args.input_file) if args.input_file else None,
        return_temp_files=args.return_temp_files,
        output_format=args.output_format,
        output_quality=args.output_quality,
        randomise_seeds=not args.no_randomise_seeds,
        force_reset_cache=args.force_reset_cache,
    )
    try:
        runner.start()
        result = runner.run(request)
        out_dir = Path(args.output_dir).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in result.files:
            target = out_dir / path.name
            shutil.move(str(path), target)
            print(target)
    finally:
        runner.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m comfyui_wrapper", description="Run ComfyUI workflows as an API.")
    parser.add_argument("-v", "--verbose", action="store_true", help="also show ComfyUI's own log lines")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a workflow and write its outputs to a folder")
    run.add_argument("workflow", nargs="?", default="",
                     help="API-format workflow JSON file, '-' for stdin, a URL, or empty for the built-in example")
    run.add_argument("--input-file", help="an image/video/audio file or a zip/tar of inputs (a path, URL or data: URI)")
    run.add_argument("--output-dir", default="outputs", help="where to put the results (default: ./outputs)")
    run.add_argument("--output-format", choices=OUTPUT_FORMATS, default="webp")
    run.add_argument("--output-quality", type=int, default=95)
    run.add_argument("--no-randomise-seeds", action="store_true", help="keep the seeds written in the workflow")
    run.add_argument("--return-temp-files", action="store_true", help="also return PreviewImage and other temp files")
    run.add_argument("--force-reset-cache", action="store_true", help="clear ComfyUI's node cache first")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    if args.verbose:
        logging.getLogger("comfyui_wrapper.comfyui").setLevel(logging.DEBUG)
    try:
        return args.func(args)
    except WrapperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
