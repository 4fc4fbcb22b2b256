"""Command line: run a workflow file through the same runner Cog uses.

    python -m comfyui_wrapper run WORKFLOW.json [--input-file FILE] [--output-dir DIR] ...

Output paths go to stdout (one per line), progress to stderr; a failure
prints the clear error message and exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from .errors import WrapperError
from .logs import get_logger
from .outputs import OUTPUT_FORMATS
from .runner import RunRequest, WorkflowRunner
from .server.process import COMFYUI_CHANNEL
from .server.progress import configure_logging
from .settings import Settings

log = get_logger(__name__)


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
        input_file=args.input_file or None,
        input_file_is_local=True,  # the command line names its own files
        return_temp_files=args.return_temp_files,
        output_format=args.output_format,
        output_quality=args.output_quality,
        randomise_seeds=not args.no_randomise_seeds,
        force_reset_cache=args.force_reset_cache,
        return_provenance=args.provenance,
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


def _load_object_info(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WrapperError(f"Could not read the /object_info dump {path!r}: {exc}.",
                           fix="Save it with: curl http://127.0.0.1:8188/object_info > object_info.json") from None


def _workflow_for(runner: WorkflowRunner, text: str, object_info: dict | None) -> tuple[dict, dict, bool, list]:
    """Parse and (if needed) convert; returns (API workflow, object_info used, converted?, embedded models)."""
    if object_info is None:
        runner.start()
        assert runner.client is not None
        object_info = runner.client.object_info()
    loaded = runner.load_workflow(text, object_info)
    return loaded.workflow, object_info, loaded.converted, loaded.embedded


def cmd_convert(args: argparse.Namespace) -> int:
    runner = WorkflowRunner(Settings.from_env())
    try:
        api, _, converted, _ = _workflow_for(runner, _read_workflow(args.workflow), _load_object_info(args.object_info))
    finally:
        runner.stop()
    text = json.dumps(api, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}" + ("" if converted else " (the input was already in API format)"), file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    runner = WorkflowRunner(Settings.from_env())
    try:
        object_info = _load_object_info(args.object_info)
        api, object_info, converted, embedded = _workflow_for(runner, _read_workflow(args.workflow), object_info)
        plan = runner.plan(api, object_info=object_info, input_file=args.input_file,
                           converted_from_ui=converted, embedded=embedded)
    finally:
        runner.stop()
    if args.json:
        print(json.dumps(plan.as_dict(), indent=2))
    else:
        print(plan.report())
    return 0 if plan.can_run else 2


def cmd_new_model(args: argparse.Namespace) -> int:
    from . import new_model
    from .urls import fetch_text

    flags = [new_model.parse_input_flag(text) for text in args.input]
    new_model.check_names(flags)  # before anything slow: a bad name fails at once
    runner = WorkflowRunner(Settings.from_env())
    try:
        text = _read_workflow(args.workflow)
        if text.lower().startswith(("http://", "https://")):
            text = fetch_text(text, runner.url_policy)
        object_info = _load_object_info(args.object_info)
        api, object_info, converted, embedded = _workflow_for(runner, text, object_info)
        result = new_model.generate(
            api, Path(args.out), flags, object_info=object_info, packs=runner.packs, catalogue=runner.catalogue,
            plan_for=lambda workflow: runner.plan(workflow, object_info=object_info, randomise_seeds=False,
                                                  converted_from_ui=converted, embedded=embedded),
            bake_weights=args.bake_weights, source=Path(args.workflow).name if args.workflow not in ("", "example") else "the built-in example",
        )
    finally:
        runner.stop()
    print(new_model.summary(result), file=sys.stderr)
    print(result.out)
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
    run.add_argument("--provenance", action="store_true", help="also write provenance.json (workflow as run, versions, hashes)")
    run.set_defaults(func=cmd_run)

    convert = commands.add_parser("convert", help="convert a UI-format workflow to API format")
    convert.add_argument("workflow", help="UI-format (or API-format) workflow JSON file, or '-' for stdin")
    convert.add_argument("--object-info", help="a raw dump of ComfyUI's /object_info; without it ComfyUI is started")
    convert.add_argument("-o", "--output", help="write the API JSON here (default: stdout)")
    convert.set_defaults(func=cmd_convert)

    plan = commands.add_parser("plan", help="say everything a workflow needs, without running it")
    plan.add_argument("workflow", help="workflow JSON file (API or UI format), '-' for stdin")
    plan.add_argument("--input-file", help="the input_file the prediction would get (path, URL or data: URI)")
    plan.add_argument("--object-info", help="a raw dump of ComfyUI's /object_info; without it ComfyUI is started")
    plan.add_argument("--json", action="store_true", help="machine-readable output (schema in the README)")
    plan.set_defaults(func=cmd_plan)

    model = commands.add_parser("new-model", help="turn a workflow into its own typed Cog model (a folder)")
    model.add_argument("workflow", help="workflow JSON file (API or UI format), a URL, or 'example'")
    model.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    model.add_argument("--input", action="append", default=[], metavar="NAME=NODE_ID.INPUT[:description]",
                       help="expose one literal node input as a typed model input (repeat); none = suggest a set")
    model.add_argument("--object-info", help="a raw dump of ComfyUI's /object_info; without it ComfyUI is started")
    model.add_argument("--bake-weights", action="store_true",
                       help="fetch the weights at build time into the image (bake_weights.py) instead of in setup()")
    model.set_defaults(func=cmd_new_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    if args.verbose:
        logging.getLogger(COMFYUI_CHANNEL).setLevel(logging.DEBUG)
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
