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
    topics: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataFormatError(path, number, f"expected 'qid<TAB>query', found no tab in {line[:80]!r}")
        qid, query = (part.strip() for part in line.split("\t", 1))
        if not qid:
            raise DataFormatError(path, number, "empty qid; expected 'qid<TAB>query'")
        if not query:
            raise DataFormatError(path, number, f"empty query for qid {qid!r}")
        if qid in topics:
            raise DataFormatError(path, number, f"duplicate qid {qid!r} (first on line {first_line[qid]})")
        topics[qid] = query
        first_line[qid] = number
    return topics


def write_topics(topics: dict[str, str], path: str | Path) -> None:
    with atomic_write(path) as out:
        for qid, query in topics.items():
            if "\t" in qid or "\n" in query or "\t" in query:
                raise ValueError(f"qid {qid!r}: tabs and newlines cannot be written to a topics file")
            out.write(f"{qid}\t{query}\n")
