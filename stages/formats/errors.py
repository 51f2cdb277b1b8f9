"""The error every reader raises for bad input."""

from __future__ import annotations

from stages.errors import InputDataError


class DataFormatError(InputDataError):
    """Bad input: names the file, the 1-based line number (when there is one) and what was expected.

    An InputDataError (exit 3) under the name the readers and their callers have always used.
    """
