"""Cog entry point: declares the model's inputs and hands each prediction to the runner.

Read this file as a table of contents: setup() boots ComfyUI once,
predict() maps Cog's types to plain values and calls WorkflowRunner.run().
Everything else lives in comfyui_wrapper/.
"""

from __future__ import annotations

from cog import BasePredictor, Input, Path

from comfyui_wrapper import RunRequest, Settings, WorkflowRunner
from comfyui_wrapper.server.progress import configure_logging

# The Cog CLI reads the inputs below statically (tree-sitter, before any build step): choices must be a
# list literal or a module-level name bound to one, each description one plain string literal, defaults
# and ge/le literals. scripts/check_cog_static.py applies those rules in the tests. This list must equal
# comfyui_wrapper.outputs.OUTPUT_FORMATS (a test checks it).
OUTPUT_FORMAT_CHOICES = ["webp", "jpg", "png"]


class Predictor(BasePredictor):
    def setup(self) -> None:
        configure_logging()
        self.runner = WorkflowRunner(Settings.from_env())
        self.runner.start()

    def predict(
        self,
        workflow_json: str = Input(
            description="Your ComfyUI workflow as JSON: in ComfyUI use Workflow > Export (API) and paste the file's contents (an http(s) URL to the JSON works too). Leave empty to run the built-in text-to-image example.",
            default="",
        ),
        input_file: Path | None = Input(
            description="An image, video or audio file, or a .zip/.tar of several, placed in ComfyUI's input folder: an upload, an http(s) URL or a data: URI (a path on the server is refused). A single file is available as input.<ext> and under its own name; an archive keeps its folders.",
            default=None,
        ),
        return_temp_files: bool = Input(
            description="Also return temporary files, such as PreviewImage results. Useful for debugging.",
            default=False,
        ),
        output_format: str = Input(
            description="Format of the returned images. Videos, GIFs, audio and other files are returned as they are.",
            choices=OUTPUT_FORMAT_CHOICES,
            default="webp",
        ),
        output_quality: int = Input(
            description="Quality of returned webp and jpg images, 0 to 100 (ignored for png).",
            default=95,
            ge=0,
            le=100,
        ),
        randomise_seeds: bool = Input(
            description="Give every literal seed input (seed, noise_seed, rand_seed) a new random value. The values used are in the logs.",
            default=True,
        ),
        force_reset_cache: bool = Input(
            description="Clear ComfyUI's cache of node results before running (downloaded weights are kept).",
            default=False,
        ),
        return_provenance: bool = Input(
            description="Also return provenance.json: the workflow as it actually ran (seeds, rewritten names), the ComfyUI version, custom node commits and weight hashes, to reproduce the result exactly.",
            default=False,
        ),
    ) -> list[Path]:
        result = self.runner.run(
            RunRequest(
                workflow_json=workflow_json,
                input_file=input_file,
                return_temp_files=return_temp_files,
                output_format=output_format,
                output_quality=output_quality,
                randomise_seeds=randomise_seeds,
                force_reset_cache=force_reset_cache,
                return_provenance=return_provenance,
            )
        )
        for phase, seconds in result.timings.items():
            self.record_metric(f"{phase}_seconds", round(seconds, 4))
        for name, value in result.stats.items():
            self.record_metric(name, value)
        return [Path(path) for path in result.files]
