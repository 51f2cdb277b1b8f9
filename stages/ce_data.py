"""Training groups for the cross-encoder: one query, one positive passage, n negatives.

Two sources, one shape:
- translated MS MARCO (mMARCO): per configured language, the id triples grouped by query, texts
  taken from that language's collection and queries (the ids are shared by all languages);
- MIRACL train: per query, a judged positive; negatives are the judged non-relevant passages first,
  then the BM25 run's top hits, never a passage judged relevant.

    python -m stages.ce_data --source miracl --lang sw     # print a few groups, to look at the data
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.training.ce import step_groups

log = logging.getLogger("stages.ce_data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.ce_data", description=__doc__.splitlines()[0])
    add_config_arguments(parser, split=False)
    parser.add_argument("--source", choices=["nmt", "miracl"], default="miracl")
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        groups = step_groups(config, args.source, config.select_languages(args.lang))
        for g in groups[: args.show]:
            print(f"[{g.source} {g.qid}] {g.query}\n  + {g.positive[:100]}")
            for negative in g.negatives:
                print(f"  - {negative[:100]}")
        print(f"{len(groups)} groups")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
