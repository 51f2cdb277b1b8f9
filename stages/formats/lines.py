"""Numbered text lines of a (possibly gzipped) UTF-8 file: the base of every reader."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from stages.formats.errors import DataFormatError

BOM = "\ufeff"


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its end-of-line) for every line.

    A UTF-8 byte-order mark on the first line and Windows line ends are removed; bytes that are not
    UTF-8 are an error naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataFormatError(path, number, f"not valid UTF-8 ({err.reason} at byte {err.start})") from None
                if number == 1 and line.startswith(BOM):
                    line = line[1:]
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError) as err:
        if isinstance(err, DataFormatError):
            raise
        raise DataFormatError(path, None, f"cannot read: {err}") from err
