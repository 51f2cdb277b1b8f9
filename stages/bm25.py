"""BM25 first stage: one Lucene index per language, a top-k run for every split with topics.

    python -m stages.bm25 --lang "ja yo" [--split dev] [--config configs/sample.yaml] [--data DIR]

For each language: check that the Java runtime can analyse it, validate and count the corpus, index
it with the language's analyzer (skipped when an index of the same corpus exists), check the index
holds exactly the corpus' passages, then search each split's topics and write
`<work>/<collection>/runs/bm25/run.bm25.<lang>.<split>.txt` (TREC) with a `.meta.json` sidecar.
Everything is written under a temporary name and renamed, so a crash leaves finished languages and
splits in place and a rerun continues with the rest.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages import console
from stages.cli import run_stage
from stages.config import ConfigError, add_config_arguments, config_from_args
from stages.retrieval.bm25 import RM3_SYSTEM, SYSTEM, run_languages

log = logging.getLogger("stages.bm25")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.bm25", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--index-only", action="store_true", help="build the indexes, do not search")
    parser.add_argument(
        "--systems", default=SYSTEM, help=f"runs to write, space-separated: {SYSTEM}, {RM3_SYSTEM} (default: {SYSTEM})"
    )
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        langs = config.select_languages(args.lang)
        systems = tuple(args.systems.split())
        unknown = set(systems) - {SYSTEM, RM3_SYSTEM}
        if unknown:
            raise ConfigError(
                f"--systems: unknown {' '.join(sorted(unknown))}; this stage writes {SYSTEM} and {RM3_SYSTEM}"
            )
        runs = run_languages(config, langs, args.split, args.index_only, systems)
        failed = {lang: err for lang, err in runs.items() if isinstance(err, Exception)}
        for lang, outcome in runs.items():
            if lang not in failed:
                console.say(outcome.report(systems))
                for path in outcome.paths:
                    print(path)
        for lang, err in failed.items():
            log.error("%s failed: %s: %s", lang, err.label, err)
        # the first failed language's kind: one exit status can name only one
        return next(iter(failed.values())).exit_status if failed else 0

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
