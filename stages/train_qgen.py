"""Train the query generator, a teacher for the bi-encoder (Query generator as teacher, arXiv 2303.14991).

    python -m stages.train_qgen        # -> work/<collection>/models/qgen/

A sequence-to-sequence model (mT5-style) learns to write a query for a passage from (passage, query)
pairs: each mMARCO query with its positive passage (`query_generator.mmarco` languages; with
`mmarco_cross_languages`, also the same query in another language, the ids being parallel) and each
MIRACL query with its judged positives (`query_generator.miracl_split`). The generator reads
`prompt` with the query's language filled in, then the passage ("english query: <passage>"), so one
generator writes queries in any language it was trained on; `generator_input` builds that text for
training, scoring and generation alike. As a teacher (`bi_encoder.teacher.kind: query-generator`),
its relevance score for a candidate is the log-likelihood of the English query given the prompted
passage, the sum over the query's tokens of log p(token | passage, earlier tokens), distilled into
the student with the same KL loss as the other teachers and cached the same way. For the alignment
enhancement (`bi_encoder.distillation.query_alignment`, stages.training.query_alignment) it writes a query
(`generate_queries`, greedy decoding) from each distillation query's best passage. Training is the
Hugging Face Seq2SeqTrainer. Offline, the starting point is a small T5 over the project's own
vocabulary (the tiny XLM-R's tokenizer), seeded. The model's code is stages.models.generator, the pairs
stages.data.generator_pairs, the training stages.training.qgen.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.training import print_result
from stages.training.qgen import train

log = logging.getLogger("stages.train_qgen")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_qgen", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print_result(train(config_from_args(args))))


if __name__ == "__main__":
    sys.exit(main())
