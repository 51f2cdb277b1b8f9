"""The English teacher's targets for distillation, computed once and cached on disk.

    python -m stages.teacher        # fill the cache for the configured distillation data (train-bi does it too)

The teacher is an English retriever: a bi-encoder (`kind: bi-encoder`, scores are its query-passage
similarity, and it also gives the English query embeddings the representation loss needs), a
cross-encoder (`kind: cross-encoder`, scores are its logits), or a query generator
(`kind: query-generator`, scores are log p(query | "english query: " + passage), the generator's
prompt naming English; stages.train_qgen trains one; stages.models.teachers). It reads the English version of each
query against the candidates; it is only ever run under `torch.inference_mode`, so it gets no gradient.

On real data the teacher's scores are most of distillation's cost, so they are kept in
work/<collection>/teacher/<teacher>/: `scores.tsv` (`qid docid key score`, where key hashes the exact
query and passage text the teacher read) and `query_embeddings.npy` with its keys. A score is reused
whenever the same teacher read the same texts, so a second training run, or a run with more data, only
scores what is new. The missing pairs are scored chunk by chunk, each chunk a work unit of the executor
(EXECUTOR=ray: on Ray workers, each loading the teacher once; stages.executors), and this process appends
each finished chunk to the cache: a run that dies keeps what it finished (stages.caches.teacher).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from stages.caches.teacher import open_cache, teacher_targets
from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args, plain
from stages.training.bi import parallel_queries

log = logging.getLogger("stages.teacher")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.teacher", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        cache, load = open_cache(config)
        queries = parallel_queries(config)
        with_embeddings = config.bi_encoder.distillation.representation_weight > 0
        teacher_targets(queries, cache, load, with_embeddings, config.executor, config.bi_encoder.teacher.chunk_pairs)
        print(cache.folder)
        print(json.dumps(plain(config.bi_encoder.teacher)))

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
