"""Custom ComfyUI nodes that misbehave on purpose, for the reliability tests.

Loaded through an extra_model_paths YAML with a ``custom_nodes`` entry, never
installed into ComfyUI's own tree.
"""

import time


class CWTestRaise:
    """Raises with a message the tests look for."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "message": ("STRING", {"default": "boom"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, image, message):
        raise ValueError(f"CWTestRaise says {message}")


class CWTestSleep:
    """Sleeps, then passes its image on; reports progress every second."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3600.0}),
                             "report_progress": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, image, seconds, report_progress):
        import comfy.model_management
        import comfy.utils

        steps = max(1, int(seconds * 10))
        bar = comfy.utils.ProgressBar(steps) if report_progress else None
        for _ in range(steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(seconds / steps)
            if bar is not None:
                bar.update(1)
        return (image,)


class CWTestSaveNothing:
    """An output node that writes no file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "cw_test"

    def run(self, image):
        return {}


NODE_CLASS_MAPPINGS = {"CWTestRaise": CWTestRaise, "CWTestSleep": CWTestSleep, "CWTestSaveNothing": CWTestSaveNothing}
