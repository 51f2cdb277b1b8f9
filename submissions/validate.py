"""Check a run file the way the leaderboard will read it, before anyone uploads it.

    python -m submissions.validate work/miracl-mini/submissions/<tag>/run.miracl.<tag>.sw.test-a.txt
    make validate FILE=...

The language and split come from the file name (`run.<...>.<lang>.<split>.txt`) unless given with
--lang/--split; with them, every topic of the split must appear and every docid must be in the
corpus. Every problem found is listed with its line; the exit status is 1 if there is any.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stages.cli import run_stage
from stages.config import KNOWN_SPLITS, ConfigError, add_config_arguments, config_from_args
from stages.console import option, say
from stages.formats import DataFormatError, ReleaseLayout, iter_corpus
from stages.formats.lines import iter_lines
from stages.formats.runs import parse_run_line

log = logging.getLogger("submissions.validate")

# MIRACL's leaderboard reads at most 100 hits a query: a fact about the leaderboard, not a setting of the config.
LEADERBOARD_HITS = 100
NAME = re.compile(r"run\..+\.(?P<lang>[a-z]{2})\.(?P<split>" + "|".join(KNOWN_SPLITS) + r")\.txt")


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


def validate_file(config, path: Path, lang: str | None = None, split: str | None = None) -> Report:
    """Validate against the topics and corpus of the language and split named by the file (or given)."""
    if lang is None or split is None:
        match = NAME.fullmatch(path.name)
        if not match:
            raise ConfigError(
                f"{path}: cannot tell language and split from the name (run.<...>.<lang>.<split>.txt); "
                f"give {option('lang')}<code> and {option('split')}<split>"
            )
        lang, split = lang or match["lang"], split or match["split"]
    if lang not in config.languages:
        raise ConfigError(
            f"{path}: language {lang!r} is not configured in {config.source} "
            f"({option('lang')} one of {' '.join(config.languages)})"
        )
    if split not in config.languages[lang].splits:
        raise ConfigError(
            f"{path}: split {split!r} is not configured for {lang} "
            f"({option('split')} one of {' '.join(config.languages[lang].splits)})"
        )
    layout = ReleaseLayout(config.data_root)
    return validate_run(path, layout.topics(lang, split), corpus_docids(layout, lang), LEADERBOARD_HITS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m submissions.validate", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="run files to check")
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        failed = 0
        for path in args.files:
            lang = None if args.lang in ("", "all") else args.lang
            report = validate_file(config, path, lang, args.split)
            if report.ok:
                say(f"ok  {path}: {report.queries} queries, {report.lines} lines")
            else:
                failed += 1
                say("\n  ".join([f"BAD {path}:", *report.problems]))
        return 1 if failed else 0

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
