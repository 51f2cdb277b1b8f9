"""Topics: `qid<TAB>query`, one per line. Qids stay strings (`0` and `10020#0` alike)."""

from __future__ import annotations

from pathlib import Path

from stages.formats.atomic import atomic_write
from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines


def read_topics(path: str | Path) -> dict[str, str]:
    """Read a topics file into {qid: query}, in file order.

    Blank lines are ignored; surrounding whitespace is removed from qid and query. A line without a
    tab, an empty qid or query, or a qid seen before is an error naming the line.
    """
    return read_id_text(path, "qid", "query")


def read_id_text(path: str | Path, id_name: str, text_name: str) -> dict[str, str]:
    """Any `id<TAB>text` file (topics, MS MARCO queries and collections) into {id: text}, in file order."""
    entries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataFormatError(path, number, f"expected '{id_name}<TAB>{text_name}', found no tab in {line[:80]!r}")
        key, text = (part.strip() for part in line.split("\t", 1))
        if not key:
            raise DataFormatError(path, number, f"empty {id_name}; expected '{id_name}<TAB>{text_name}'")
        if not text:
            raise DataFormatError(path, number, f"empty {text_name} for {id_name} {key!r}")
        if key in entries:
            raise DataFormatError(path, number, f"duplicate {id_name} {key!r} (first on line {first_line[key]})")
        entries[key] = text
        first_line[key] = number
    return entries


def write_topics(topics: dict[str, str], path: str | Path) -> None:
    with atomic_write(path) as out:
        for qid, query in topics.items():
            if "\t" in qid or "\n" in query or "\t" in query:
                raise ValueError(f"qid {qid!r}: tabs and newlines cannot be written to a topics file")
            out.write(f"{qid}\t{query}\n")
