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
from pathlib import Path

from stages.cli import run_stage
from stages.config import KNOWN_SPLITS, ConfigError, add_config_arguments, config_from_args
from stages.console import option, say
from stages.formats import ReleaseLayout
from submissions.rules import LEADERBOARD_HITS, Report, corpus_docids, validate_run

log = logging.getLogger("submissions.validate")

NAME = re.compile(r"run\..+\.(?P<lang>[a-z]{2})\.(?P<split>" + "|".join(KNOWN_SPLITS) + r")\.txt")


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
