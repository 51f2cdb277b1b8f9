"""Runs: TREC lines `qid Q0 docid rank score tag`, one file per language, split and system.

In memory a run is {qid: {docid: score}}, the form ranx takes. Every run file gets a metadata
sidecar (`<run>.meta.json`: config, inputs, versions) so it can be traced to what produced it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stages.formats.atomic import atomic_write
from stages.formats.errors import DataFormatError
from stages.formats.jsonfile import read_json, write_json
from stages.formats.lines import iter_lines

Run = dict[str, dict[str, float]]


@dataclass(frozen=True, slots=True)
class RunLine:
    line: int
    qid: str
    docid: str
    rank: int
    score: float
    tag: str


def iter_run(path: str | Path) -> Iterator[RunLine]:
    """Parse every line of a TREC run; a line that does not have the six fields is an error."""
    for number, text in iter_lines(path):
        if text.split():
            yield parse_run_line(path, number, text)


def parse_run_line(path: str | Path, number: int, text: str) -> RunLine:
    """One TREC run line, or a DataFormatError naming the file, the line and what was expected."""
    fields = text.split()
    if len(fields) != 6:
        raise DataFormatError(
            path, number, f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}: {text[:80]!r}"
        )
    qid, _, docid, rank, score, tag = fields
    try:
        rank_value = int(rank)
    except ValueError:
        raise DataFormatError(path, number, f"rank must be an integer, found {rank!r}") from None
    try:
        score_value = float(score)
    except ValueError:
        raise DataFormatError(path, number, f"score must be a number, found {score!r}") from None
    return RunLine(number, qid, docid, rank_value, score_value, tag)


def read_run(path: str | Path) -> Run:
    """Read a TREC run into {qid: {docid: score}}; a docid listed twice for a query is an error."""
    run: Run = {}
    for row in iter_run(path):
        hits = run.setdefault(row.qid, {})
        if row.docid in hits:
            raise DataFormatError(path, row.line, f"docid {row.docid!r} appears twice for qid {row.qid!r}")
        hits[row.docid] = row.score
    return run


def ranked(hits: dict[str, float]) -> list[tuple[str, float]]:
    """Hits by descending score; equal scores ordered by docid, so output never depends on dict order."""
    return sorted(hits.items(), key=lambda item: (-item[1], item[0]))


def write_run(run: Run, path: str | Path, tag: str, depth: int | None = None, metadata: dict | None = None) -> None:
    """Write a TREC run atomically (ranks from 1, at most `depth` hits a query), then its metadata."""
    if not tag or any(ch.isspace() for ch in tag):
        raise ValueError(f"run tag must be a non-empty word without spaces, got {tag!r}")
    path = Path(path)
    with atomic_write(path) as out:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(ranked(hits)[:depth], start=1):
                out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    if metadata is not None:
        # When the run's lines were written (touching an up-to-date run leaves it): what a bundle dates itself by.
        write_metadata(path, metadata | {"written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def metadata_path(run_path: str | Path) -> Path:
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + ".meta.json")


def write_metadata(run_path: str | Path, metadata: dict) -> None:
    write_json(metadata_path(run_path), metadata)


def read_metadata(run_path: str | Path) -> dict | None:
    return read_json(metadata_path(run_path))
