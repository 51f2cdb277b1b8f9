"""Append-only tables of computed values keyed by what they were computed from (caches of model output).

A row is tab-separated fields, one of which is the key. Rows are appended and synced chunk by chunk,
so a run that dies keeps what it finished; an unfinished last line (no newline: the process died while
writing it) is dropped with a warning, and any other malformed line is an error naming the line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines

log = logging.getLogger("stages.formats.keyed")


def read_keyed(
    path: Path, key_field: int, fields: int, expected: str, parse: Callable[[list[str]], object] = list
) -> dict[str, object]:
    """{key: parse(row fields)} of a table whose rows have `fields` fields; `expected` describes a row.

    `parse` turns a row into its value; a ValueError it raises is reported against that line.
    """
    rows: dict[str, object] = {}
    if not path.is_file():
        return rows
    complete = path.read_bytes().endswith(b"\n")
    lines = list(iter_lines(path))
    for number, line in lines:
        if not complete and number == lines[-1][0]:
            log.warning("%s: dropping the unfinished last line %d (an interrupted run)", path, number)
            continue
        row = line.split("\t")
        if len(row) != fields or not row[key_field]:
            raise DataFormatError(path, number, f"expected {expected!r}")
        try:
            rows[row[key_field]] = parse(row)
        except ValueError as err:
            raise DataFormatError(path, number, f"expected {expected!r} ({err})") from None
    return rows


def append_keyed(path: Path, rows: list[list[str]]) -> None:
    """Append rows (their fields must hold no tab or newline) and sync them to disk.

    An unfinished last line (a run died while writing it) is cut off first, so the new rows start a line.
    """
    drop_unfinished_tail(path)
    with open(path, "a", encoding="utf-8") as out:
        out.write("".join("\t".join(row) + "\n" for row in rows))
        out.flush()
        os.fsync(out.fileno())


def drop_unfinished_tail(path: Path, block: int = 1 << 16) -> None:
    """Truncate `path` after its last newline (reading back from the end, a block at a time)."""
    if not path.is_file():
        return
    with open(path, "r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            newline = handle.read(position - start).rfind(b"\n")
            if newline >= 0:
                if start + newline + 1 < end:
                    handle.truncate(start + newline + 1)
                return
            position = start
        handle.truncate(0)
