"""What every stage's command line shares: one log format, and bad input reported as one line, exit 2."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from stages.config import ConfigError
from stages.formats import DataFormatError


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def run_stage(log: logging.Logger, body: Callable[[], int | None], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a stage's body; a config or data error (or one of `errors`) is logged as its message, exit 2."""
    setup_logging()
    try:
        return body() or 0
    except (ConfigError, DataFormatError, *errors) as err:
        log.error("%s", err)
        return 2
