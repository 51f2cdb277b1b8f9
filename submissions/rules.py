"""The leaderboard's rules for a run file, checked line by line: every problem is listed with its line.

Unparseable lines, a tag that changes, ranks not running 1..n, a docid twice in a query, scores rising down
a ranking, docids not in the corpus, qids not in the split, queries split into several blocks, more than
100 hits, topics without hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stages.formats import DataFormatError, ReleaseLayout, iter_corpus
from stages.formats.lines import iter_lines
from stages.formats.runs import parse_run_line

# MIRACL's leaderboard reads at most 100 hits a query: a fact about the leaderboard, not a setting of the config.
LEADERBOARD_HITS = 100


@dataclass
class Report:
    path: Path
    problems: list[str] = field(default_factory=list)
    queries: int = 0
    lines: int = 0
    # Stop listing after this many problems (a wholly broken file would print millions).
    limit: int = 50

    def add(self, line: int | None, message: str) -> None:
        if len(self.problems) < self.limit:
            where = f"{self.path}:{line}" if line else f"{self.path}"
            self.problems.append(f"{where}: {message}")
        elif len(self.problems) == self.limit:
            self.problems.append(f"{self.path}: ... more problems not listed")

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_run(
    path: str | Path,
    topics: dict[str, str] | None = None,
    docids: set[str] | None = None,
    max_hits: int = LEADERBOARD_HITS,
) -> Report:
    """Every check of a leaderboard run file; the report lists what fails, line by line."""
    report = Report(Path(path))
    if not report.path.is_file():  # one problem, not the empty-file and missing-topics ones that would follow
        report.add(None, "no such file")
        return report
    tag = None
    seen: dict[str, dict] = {}  # qid -> {"rank", "score", "docids"} of its last line
    finished: set[str] = set()
    previous_qid = None
    for row in _parsed_lines(path, report):
        report.lines += 1
        if tag is None:
            tag = row.tag
        elif row.tag != tag:
            report.add(row.line, f"tag {row.tag!r} differs from the file's first tag {tag!r}")
        if row.qid != previous_qid:
            if row.qid in finished or row.qid in seen:
                report.add(row.line, f"qid {row.qid} appears again after other queries (its lines must be contiguous)")
            if previous_qid is not None:
                finished.add(previous_qid)
            previous_qid = row.qid
        state = seen.setdefault(row.qid, {"rank": 0, "score": None, "docids": set()})
        if row.rank != state["rank"] + 1:
            report.add(
                row.line, f"qid {row.qid}: rank {row.rank} where {state['rank'] + 1} was expected (ranks run 1..n)"
            )
        if row.docid in state["docids"]:
            report.add(row.line, f"qid {row.qid}: docid {row.docid} listed twice")
        if state["score"] is not None and row.score > state["score"]:
            report.add(row.line, f"qid {row.qid}: score {row.score} is higher than the one above it ({state['score']})")
        if docids is not None and row.docid not in docids:
            report.add(row.line, f"docid {row.docid} is not in the corpus")
        if topics is not None and row.qid not in topics:
            report.add(row.line, f"qid {row.qid} is not a topic of this split")
        if len(state["docids"]) == max_hits:
            report.add(row.line, f"qid {row.qid}: more than {max_hits} hits")
        state["rank"], state["score"] = row.rank, row.score
        state["docids"].add(row.docid)
    report.queries = len(seen)
    if report.lines == 0:
        report.add(None, "the file holds no run lines")
    if topics is not None:
        missing = [qid for qid in topics if qid not in seen]
        if missing:
            report.add(
                None,
                f"{len(missing)} of {len(topics)} topics have no hits: {' '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else ""),
            )
    return report


def _parsed_lines(path, report: Report):
    """Every parseable line; an unparseable one is a problem, and checking goes on past it."""
    lines = iter_lines(path)
    while True:
        try:
            number, text = next(lines)
        except StopIteration:
            return
        except DataFormatError as err:  # not UTF-8 from here on: nothing further can be read
            report.add(err.line, err.message)
            return
        if not text.split():
            continue
        try:
            yield parse_run_line(path, number, text)
        except DataFormatError as err:
            report.add(number, err.message)


def corpus_docids(layout: ReleaseLayout, lang: str) -> set[str]:
    return {passage.docid for _, _, passage in iter_corpus(layout.corpus_dir(lang))}
