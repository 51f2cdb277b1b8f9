"""Qrels: `qid Q0 docid relevance`, separated by tabs or spaces. Relevance-0 judgments are kept."""

from __future__ import annotations

from pathlib import Path

from stages.formats.atomic import atomic_write
from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines

Qrels = dict[str, dict[str, int]]


def read_qrels(path: str | Path) -> Qrels:
    """Read qrels into {qid: {docid: relevance}}, qids in file order.

    A docid equal to its qid is an ordinary judgment (it happens in MIRACL yo, es, fa, ...). A line
    without four fields, a relevance that is not an integer, or a judgment given twice is an error.
    """
    qrels: Qrels = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise DataFormatError(
                path, number, f"expected 4 fields 'qid Q0 docid relevance', found {len(fields)}: {line[:80]!r}"
            )
        qid, _, docid, relevance = fields
        try:
            rel = int(relevance)
        except ValueError:
            raise DataFormatError(path, number, f"relevance must be an integer, found {relevance!r}") from None
        judged = qrels.setdefault(qid, {})
        if docid in judged:
            raise DataFormatError(
                path, number, f"qid {qid!r} judges docid {docid!r} twice (first on line {first_line[qid, docid]})"
            )
        judged[docid] = rel
        first_line[qid, docid] = number
    return qrels


def write_qrels(qrels: Qrels, path: str | Path) -> None:
    with atomic_write(path) as out:
        for qid, judged in qrels.items():
            for docid, rel in judged.items():
                out.write(f"{qid}\tQ0\t{docid}\t{rel}\n")
