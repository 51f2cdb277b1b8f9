"""The pipeline's errors: four kinds a user acts on differently, each with its own exit status.

| kind | exit | what the user does |
|---|---|---|
| `ConfigError` | 2 | edits the config file (or CONFIG=, DATA=, MODELS=, LANG=, SPLIT=) |
| `InputDataError` | 3 | fixes or supplies an input file (the message names it, and the line), or runs the stage that makes it |
| `CacheError` | 4 | removes the stale or corrupt cache or model folder the message names |
| `EnvironmentProblem` | 5 | changes the machine: Java, a GPU, a package |

Any other exception is a bug of the pipeline: exit 1, with its traceback in the stage's log. stages.cli's
run_stage turns each kind into its line (`<label>: <message>`) and its exit status.
"""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """An error the user can act on; `exit_status` and `label` say which kind (stages.cli prints them).

    Raised as itself only for a failure that was already reported in full (a nested make that stopped):
    exit 1 as for a crash, but without a traceback of ours, which would say nothing about it.
    """

    exit_status = 1
    label = "error"


class ConfigError(PipelineError, ValueError):
    """A configuration file or a make variable that does not fit the schema, or settings that do not fit together."""

    exit_status = 2
    label = "config error"


class InputDataError(PipelineError, ValueError):
    """Bad or missing input: names the file, the 1-based line number (when there is one) and what was expected.

    Also an output of an earlier stage that is not there yet (the message says which make target writes it),
    and data that holds nothing to work on. `path` is None where the message names its files itself (two of
    them, or the file within a sentence) or where no single file is at fault.
    """

    exit_status = 3
    label = "input error"

    def __init__(self, path: str | Path | None, line: int | None, message: str):
        self.path = None if path is None else Path(path)
        self.line = line
        self.message = message
        if self.path is None:
            super().__init__(message)
        else:
            where = f"{self.path}:{line}" if line is not None else f"{self.path}"
            super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Exceptions pickle by their args; ours has three, so a worker process could not send it back.
        return (type(self), (self.path, self.line, self.message))


class CacheError(PipelineError):
    """A cache, index, shard or model folder that is stale (made from other inputs) or corrupt; the message
    names it."""

    exit_status = 4
    label = "cache error"


class EnvironmentProblem(PipelineError):
    """The machine lacks what a stage needs: Java (or its data for a language), a GPU, a package's files."""

    exit_status = 5
    label = "environment error"
