"""Train the bi-encoder: cross-lingual distillation from an English teacher, then fine-tuning on MIRACL.

    python -m stages.train_bi --step init     # base model + pooling      -> models/bi-init/ (the student before training)
    python -m stages.train_bi --step kd       # bi-init, teacher targets  -> models/bi-kd/
    python -m stages.train_bi --step miracl   # bi-kd, MIRACL train       -> models/bi/
(`bi` is `bi_encoder.name`: a recipe with another name trains beside this one.)

Distillation (DR.DECR, Translate-Distill): for each parallel query the English teacher scored the
candidates for the English query (stages.teacher, cached); the student scores the same candidates for
the target-language query. One batch gives three weighted losses, each sentence-transformers' own:
- rank: DistillKLDivLoss, KL(softmax(teacher/T) || softmax(student/T)) * T^2 over the candidates;
- representation: MSELoss between the student's embedding of the target-language query and the
  teacher's embedding of the English one (a learned projection when the widths differ);
- contrastive (optional): MultipleNegativesRankingLoss with the teacher's top candidate as the
  positive, the other candidates as hard negatives, and the batch's other passages.
Token-level distillation (optional, `distillation.token`, DR.DECR; stages.training.token_task): a task whose
batches are target-language texts of parallel text, each aligned token learning the teacher's vector of
its English token (MSE or L1 times its weight).
Query alignment (optional, `distillation.query_alignment`, arXiv 2303.14991; stages.training.query_alignment): a
second task whose batches pair each target-language query with the query a generator wrote (in English
by default) from the teacher's best candidate, under MultipleNegativesRankingLoss times its weight.
Fine-tuning: MultipleNegativesRankingLoss (InfoNCE) over the judged positive, BM25 hard negatives and
in-batch negatives. Training runs in sentence-transformers' SentenceTransformerTrainer (the Hugging Face
Trainer), so mixed precision, checkpoints and resume, seeds and multi-GPU (`torchrun`) come from there.
A maxsim student (`bi_encoder.student.scoring: maxsim`, a MultiVectorEncoder) trains the same way with
the multi-vector counterparts: MultiVectorDistillKLDivLoss and MultiVectorMultipleNegativesRankingLoss
over MaxSim scores, in MultiVectorEncoderTrainer; it has no sentence embedding, so the representation
loss must be off (token-level distillation is its equivalent).
Each model folder holds training.json; a step whose recorded inputs are unchanged is skipped. The steps are
stages.training.bi, the losses stages.losses.bi_encoder.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.training import print_result
from stages.training.bi import STEPS, build_init, train_kd, train_miracl

log = logging.getLogger("stages.train_bi")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_bi", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--step", choices=list(STEPS), required=True)
    args = parser.parse_args(argv)
    steps = {"init": build_init, "kd": train_kd, "miracl": train_miracl}
    return run_stage(log, lambda: print_result(steps[args.step](config_from_args(args))))


if __name__ == "__main__":
    sys.exit(main())
