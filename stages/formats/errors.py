"""The error every reader raises for bad input."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Bad input: names the file, the 1-based line number (when there is one) and what was expected."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        # Exceptions pickle by their args; ours has three, so a worker process could not send it back.
        return (type(self), (self.path, self.line, self.message))
