"""ComfyUI's own lines in our log: made printable, graded, and the log file bounded."""

from __future__ import annotations

import logging

from comfyui_wrapper.errors import printable
from comfyui_wrapper.server.process import _RotatingFile
from comfyui_wrapper.server.progress import ComfyLogClassifier, comfy_display_line


def test_printable_escapes_control_characters_and_line_breaks():
    assert printable("plain text, ünïcode ✓") == "plain text, ünïcode ✓"
    forged = "ok\n[ComfyUI] Output: /etc/passwd\r\x1b[2Jdone\u2028x\x00"
    out = printable(forged)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out and "\u2028" not in out and "\x00" not in out
    assert out == "ok\\n[ComfyUI] Output: /etc/passwd\\r\\x1b[2Jdone\\u2028x\\x00"


def test_progress_bars_keep_their_last_drawing():
    assert comfy_display_line(" 10%|#  | 2/20\r 50%|##  | 10/20\r100%|####| 20/20\r\n") == "100%|####| 20/20"


def test_lines_are_graded_errors_and_tracebacks_warnings_model_loads_and_the_rest():
    classifier = ComfyLogClassifier()
    lines = ["got prompt", "Requested to load SD1ClipModel", "loaded completely 9.5 159.6 True",
             "Traceback (most recent call last):", '  File "x.py", line 1, in <module>', "    boom()",
             "RuntimeError: boom", "some chatter", "WARNING: this is deprecated", "Prompt executed in 1.20 seconds",
             "Cannot import /x/custom_nodes/pack module for custom nodes: No module named 'y'"]
    graded = [classifier.level(line) for line in lines]
    assert graded == [logging.INFO, logging.INFO, logging.INFO, logging.ERROR, logging.ERROR, logging.ERROR,
                      logging.ERROR, logging.DEBUG, logging.WARNING, logging.INFO, logging.ERROR]


def test_the_comfyui_log_is_rotated_at_its_size_bound(tmp_path):
    path = tmp_path / "comfyui.log"
    log_file = _RotatingFile(path.open("ab"), path, max_bytes=100)
    for index in range(50):
        log_file.write(f"line {index:04d} of ComfyUI output\n".encode())
    log_file.close()
    assert path.stat().st_size <= 100 and (tmp_path / "comfyui.log.1").stat().st_size <= 100
    assert path.read_text().splitlines()[-1] == "line 0049 of ComfyUI output"
    assert not (tmp_path / "comfyui.log.2").exists()
