"""What every stage's command line shares: output set up by stages.console, bad input reported as one line, exit 2."""

from __future__ import annotations

import logging
from collections.abc import Callable

from stages import console
from stages.config import ConfigError
from stages.formats import DataFormatError


def run_stage(log: logging.Logger, body: Callable[[], int | None], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a stage's body; a config or data error (or one of `errors`) is logged as its message, exit 2.

    Quiet (under make), any other exception is written whole to the stage's log file and named in one line
    on the terminal, exit 1; verbose, it propagates with its traceback as usual.
    """
    console.setup(log.name)
    try:
        return body() or 0
    except (ConfigError, DataFormatError, *errors) as err:
        log.error("%s", err)
        console.point_at_log()
        return 2
    except Exception as err:  # noqa: BLE001 (reported, not swallowed: exit 1 and the traceback in the log)
        if not console.quiet():
            raise
        console.report_crash(log.name, err)
        return 1
