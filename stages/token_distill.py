"""Token-level representation distillation over cross-lingual alignments (DR.DECR, arXiv 2112.08185).

    python -m stages.token_distill     # compute (and cache) the alignments; print a few, to look at them

It is one more task of the kd step (stages.train_bi), switched on by `distillation.token.weight`. The
method (alignment, teacher targets, loss) is told and done in stages.training.token_task.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.caches.alignments import open_alignment_cache
from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.data.parallel_text import parallel_texts
from stages.models.bi_encoder import load_encoder
from stages.models.tokens import query_encoder, tokens_of
from stages.training.bi import parallel_queries, previous_model
from stages.training.token_task import alignments

log = logging.getLogger("stages.token_distill")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.token_distill", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        params = config.bi_encoder.distillation.token
        aligner = previous_model(config, "kd")
        student = load_encoder(aligner)
        texts = parallel_texts(params, parallel_queries(config))
        pairs = alignments(
            student,
            texts,
            params.alignment,
            open_alignment_cache(config.work_dir, aligner, params.alignment),
            config.bi_encoder.encode_batch_size,
        )
        tokenizer, shown = query_encoder(student).tokenizer, list(zip(texts, pairs))[: args.show]
        for text, aligned in shown:
            target, english = tokens_of(student, [text.target, text.english])
            words = [
                f"{tokenizer.convert_ids_to_tokens(target.input_ids[i])}->"
                f"{tokenizer.convert_ids_to_tokens(english.input_ids[j])}"
                for i, j in aligned
            ]
            print(f"[{text.source}] {text.target} | {text.english}\n  {' '.join(words)}")
        print(f"{len(texts)} parallel texts, {sum(map(len, pairs))} aligned tokens")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
