"""The package's loggers: each one makes its lines safe before any handler sees them.

Why on the logger and not only on our stderr handler: the package is also used
as a library (tests, another program's handlers, Cog's), where configure_logging
never runs; a filter on each logger holds whoever handles the records. Every
module takes its logger from here (``log = get_logger(__name__)``), ComfyUI's
own channel included; a unit test checks that no package logger lacks it.
"""

from __future__ import annotations

import logging

from .errors import PrintableArgs

_FILTER = PrintableArgs()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with PrintableArgs installed (user text escaped, URL secrets redacted)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, PrintableArgs) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger
