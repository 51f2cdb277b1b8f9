"""Parallel sentences: `english<TAB>target-language`, one pair per line (the file names the language)."""

from __future__ import annotations

from pathlib import Path

from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines


def read_parallel(path: str | Path) -> list[tuple[str, str]]:
    """(english, target) pairs in file order; blank lines are skipped, anything else needs exactly one tab."""
    pairs = []
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataFormatError(
                path,
                number,
                f"expected 'english<TAB>target', found {len(fields)} tab-separated field(s) in {line[:80]!r}",
            )
        english, target = (f.strip() for f in fields)
        if not english or not target:
            raise DataFormatError(
                path, number, f"empty {'english' if not english else 'target'} side; expected 'english<TAB>target'"
            )
        pairs.append((english, target))
    return pairs
