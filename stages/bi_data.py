"""Distillation data for the bi-encoder: parallel queries with the candidates teacher and student both score.

One `ParallelQuery` is a query in the target language, its English version (same id), and a fixed
list of candidate passages. The student reads the target-language query and `passages`; the English
teacher reads the English query and `teacher_passages`. Two sources:
- mMARCO: one qid across languages, so the English queries and passages are parallel by id; the
  candidates are the triples' positive and negatives; the teacher reads the English passages.
- MIRACL: queries of `distillation.data.miracl_split` whose language has an English side file
  (topics-en.*; English topics are their own English version); candidates are BM25's top hits,
  and the teacher reads the same (target-language) passages, as in the UMass WSDM Cup entry.

    python -m stages.bi_data --lang sw       # print a few parallel queries, to look at the data
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.training.bi import parallel_queries

log = logging.getLogger("stages.bi_data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.bi_data", description=__doc__.splitlines()[0])
    add_config_arguments(parser, split=False)
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        queries = parallel_queries(config, config.select_languages(args.lang))
        for q in [q for q in queries if q.source.startswith("miracl")][: args.show] + queries[: args.show]:
            print(f"[{q.source} {q.qid}] {q.query}  |  {q.english}")
            for docid, text in zip(q.docids, q.passages):
                print(f"  {docid}: {text[:90]}")
        print(f"{len(queries)} parallel queries")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
