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


def _load_images(paths):
    """Files -> one IMAGE batch (the first image's size; others resized), as a pack loader would."""
    import numpy as np
    import torch
    from PIL import Image

    frames, size = [], None
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            size = size or image.size
            frames.append(np.asarray(image.resize(size), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(frames))


def _input_dir():
    import folder_paths

    return folder_paths.get_input_directory()


class CWTestLoadImageNoHash:
    """Loads an input file chosen from a list, WITHOUT IS_CHANGED (as many pack loaders do)."""

    @classmethod
    def INPUT_TYPES(cls):
        import os

        files = sorted(f for f in os.listdir(_input_dir()) if os.path.isfile(os.path.join(_input_dir(), f)))
        return {"required": {"image": (files,)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, image):
        import os

        return (_load_images([os.path.join(_input_dir(), image)]),)


class CWTestLoadFolderNoHash:
    """Loads every image of an input subfolder, WITHOUT IS_CHANGED."""

    @classmethod
    def INPUT_TYPES(cls):
        import os

        folders = sorted(f for f in os.listdir(_input_dir()) if os.path.isdir(os.path.join(_input_dir(), f)))
        return {"required": {"folder": (folders,)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, folder):
        import os

        root = os.path.join(_input_dir(), folder)
        return (_load_images([os.path.join(root, f) for f in sorted(os.listdir(root))]),)


class CWTestLoadPathString:
    """Loads the image a STRING names (absolute, or relative to input/), WITHOUT IS_CHANGED."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, path):
        import os

        return (_load_images([path if os.path.isabs(path) else os.path.join(_input_dir(), path)]),)


class CWTestHangWhileBroadcasting:
    """Makes no progress for ``seconds`` while a thread broadcasts events to every client,
    as a pack's system monitor does (the stall watchdog must not count them)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "seconds": ("FLOAT", {"default": 30.0, "min": 0.0, "max": 3600.0})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, image, seconds):
        import threading

        import comfy.model_management
        from server import PromptServer

        done = threading.Event()

        def broadcast():
            while not done.wait(0.2):
                PromptServer.instance.send_sync("cw_test.monitor", {"cpu": 1.0})
                PromptServer.instance.send_sync("progress", {"value": 1, "max": 2, "prompt_id": "someone-else",
                                                             "node": "1"})

        threading.Thread(target=broadcast, daemon=True).start()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                comfy.model_management.throw_exception_if_processing_interrupted()
                time.sleep(0.1)
        finally:
            done.set()
        return (image,)


class CWTestRememberFirst:
    """Keeps the first image it is given on ``self`` and returns that one ever after, as a pack node
    that caches its last input on its object would: ComfyUI keeps the object between prompts."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "cw_test"

    def run(self, image):
        if not hasattr(self, "first"):
            self.first = image
        return (self.first,)


NODE_CLASS_MAPPINGS = {"CWTestRaise": CWTestRaise, "CWTestSleep": CWTestSleep, "CWTestSaveNothing": CWTestSaveNothing,
                       "CWTestLoadImageNoHash": CWTestLoadImageNoHash, "CWTestLoadFolderNoHash": CWTestLoadFolderNoHash,
                       "CWTestLoadPathString": CWTestLoadPathString,
                       "CWTestHangWhileBroadcasting": CWTestHangWhileBroadcasting,
                       "CWTestRememberFirst": CWTestRememberFirst}
