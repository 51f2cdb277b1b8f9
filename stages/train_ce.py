"""Train the cross-encoder: first on translated MS MARCO (mMARCO), then fine-tuned on MIRACL train.

    python -m stages.train_ce --step nmt       # base model -> work/<collection>/models/ce-nmt/
    python -m stages.train_ce --step miracl    # ce-nmt     -> work/<collection>/models/ce/

Training is sentence-transformers' CrossEncoderTrainer (the Hugging Face Trainer underneath), so mixed
precision, gradient accumulation, checkpoints, multi-GPU through `torchrun` or `accelerate launch`,
and seeds come from there. Losses: `pointwise` is binary cross-entropy on each (query, passage) pair;
`listwise` is softmax cross-entropy over a query's group (its positive and n negatives):
sentence-transformers' MultipleNegativesRankingLoss with scale 1, no activation, and its in-batch
negatives turned off. Checkpoints go to `<model>.checkpoints/`; a run that died resumes from the last one.
The finished model directory holds `training.json`: config, data, base model, loss curve, versions.
The steps are stages.training.ce, the losses stages.losses.cross_encoder.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.training import print_result
from stages.training.ce import STEPS, train_step

log = logging.getLogger("stages.train_ce")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_ce", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--step", choices=list(STEPS), required=True)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print_result(train_step(config_from_args(args), args.step)))


if __name__ == "__main__":
    sys.exit(main())
