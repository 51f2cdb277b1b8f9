"""A training step's learning curve: its dev nDCG@10, reranking BM25's candidates, every few steps of training.

    python -m stages.learning_curve --model bi-kd --every 4    # -> work/<collection>/reports/curve.bi-kd.{md,csv,png}

`make eval` shows each step's model after training; where a step lowers the score, the curve shows how:
from the first step on, or after a rise. The step is trained again, exactly as its make target trains it
(same data, settings and seed), into a scratch folder (work/<collection>/curves/<model>/, removed at the
end; the pipeline's own model is not touched), with a trainer callback that scores the model in training
at step 0, every `--every` steps and at the end. Scoring is the reranking stage's own code and metric
(rerank_bi / rerank_ce over the reranker's depth of BM25's dev run, ranx nDCG@10 per language, averaged),
so the first point equals the previous model's `make eval` score and the last this model's, up to the
floating-point noise that evaluating in the middle of training can add. Points are appended to
`points.jsonl` as they come, so an interrupted curve resumes (the trainer resumes from its checkpoint)
and keeps the points it had.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.console import say
from stages.training.curve import learning_curve

log = logging.getLogger("stages.learning_curve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.learning_curve", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument(
        "--model", required=True, help="the step's model: ce-nmt, ce, bi-kd or bi (or a recipe's names)"
    )
    parser.add_argument("--every", type=int, default=4, help="training steps between two scorings")
    args = parser.parse_args(argv)

    def body():
        paths = learning_curve(config_from_args(args), args.model, args.every)
        say(paths["md"].read_text(encoding="utf-8").rstrip("\n"))

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
