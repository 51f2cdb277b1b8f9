"""Full-collection dense retrieval: every passage encoded by the trained bi-encoder, searched with faiss.

    python -m stages.dense --lang "sw yo" --split "dev test-a"     # runs/dense/run.dense.sw.dev.txt ...

For each language:
1. Encode the collection (skipped when done): passages (title and text, as the rerankers read them)
   in shards of `bi_encoder.dense.shard_size`, each stored as float16 vectors and a docid list under
   work/<collection>/dense/<model>/<lang>/ (shard-00000.f16.npy, shard-00000.docids.txt). A
   manifest.json names the model (its training.json hash) and the corpus files (name, size and
   modification time, as the BM25 stage checks them): an interrupted encoding resumes at the first missing shard; a changed model or corpus starts over.
2. Search each split's topics (queries encoded as queries) for the top `hits` passages by inner
   product, which is the model's own score (cosine models are normalised):
   - flat: exact, shard by shard (one shard in memory as float32 at a time), per-shard top-k merged;
   - any other `bi_encoder.dense.index` is a faiss index_factory string (IVF4096,PQ64; HNSW32;
     OPQ64,IVF16384_HNSW32,PQ64): the index is trained on `train_size` vectors sampled across the shards,
     holds them all, is saved beside the shards (index.<factory>.faiss) and reused while the collection,
     the factory string and the sample are unchanged; `search` sets its search-time parameters
     (nprobe=64).
Every split but the bi-encoder's training split (`bi_encoder.miracl.split`) is searched. A run is
written under a temporary name, so an interrupted stage keeps finished runs, and a rerun skips runs
whose inputs (topics, model, corpus, index parameters) are unchanged without loading the model.
On a host with GPUs (faiss.get_num_gpus() > 0) the searches run there, an index sharded over all GPUs
(each holds a slice), but for indexes faiss has no GPU implementation of (HNSW).

A maxsim student (a MultiVectorEncoder) retrieves as ColBERT v1 does end to end: every passage's token
vectors are stored (shard-00000.f16.npy holds a shard's tokens, passage after passage, and
shard-00000.lengths.npy each passage's token count) and indexed as above, each query token's top
`maxsim_token_hits` token hits name the candidate passages, and the candidates are scored exactly by
MaxSim. The token index is exact with `index: flat`; the candidate set is exact only when it holds
every passage that could rank (small corpora, or a large maxsim_token_hits), and all vectors stay on
disk at one per token, so this suits small collections.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from stages import console
from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.console import LanguageWork
from stages.retrieval.dense import Encoder, check_params, dense_batch, dense_languages, dense_splits, model_path

log = logging.getLogger("stages.dense")


def encoding_backend(config) -> str:
    """What `encode_precision` means for the dense model here: the choice rerank-bi recorded for the same
    model on this machine, or one calibrated now on BM25's shortlist (stages.retrieval.shortlist)."""
    from stages.models.bi_encoder import load_encoder
    from stages.retrieval.rerank_bi import scorer
    from stages.retrieval.shortlist import choose_backend

    path = model_path(config)
    setting = config.bi_encoder.encode_precision
    return choose_backend(config, setting, path, "bi-encoder", lambda: load_encoder(path), scorer(config))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.dense", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        check_params(config.bi_encoder.dense)
        encoder = Encoder(
            model_path(config),
            config.bi_encoder.encode_batch_size,
            precision=encoding_backend(config),
        )
        name, since = config.bi_encoder.dense.name, None
        batches = [
            dense_batch(config, lang, dense_splits(config, lang, args.split), encoder, LanguageWork(name, lang))
            for lang in config.select_languages(args.lang)
        ]
        for batch in dense_languages(config, batches, encoder):  # every language's shards in one pool of workers
            for path in batch.written:
                print(path)
            console.say(batch.work.line(since))
            since = time.perf_counter()

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
