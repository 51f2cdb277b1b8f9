"""Reranking BM25's candidates with a trained cross-encoder (`python -m stages.rerank_ce` runs it).

For each language and split: the BM25 run's top `rerank_depth` hits, each passage's title and text,
scored in batches sorted by length (little padding), with no gradients and in bfloat16 on a GPU.
The run keeps exactly the BM25 candidate set; ties are broken by docid. A candidate missing from the
corpus is an error naming it. Each run is written under a temporary name, so an interrupted stage
keeps the languages and splits it finished, and a rerun skips runs whose inputs are unchanged.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from stages.config import Config
from stages.formats import Run
from stages.models.cross_encoder import load_model, score_pairs
from stages.retrieval.shortlist import (
    RerankBatch,
    backend_reranker,
    language_batch,
    rerank_now,
    score_shortlist,
    trained_model,
)


def rerank(
    model,
    topics: dict[str, str],
    shortlist: dict[str, list[str]],
    texts: dict[str, str],
    batch_size: int,
    desc: str = "rerank",
    precision: str = "fp32",
) -> Run:
    """{qid: {docid: score}} over exactly the shortlisted candidates of each topic."""
    keys = [(qid, docid) for qid, docids in shortlist.items() if qid in topics for docid in docids]
    scores = score_pairs(model, [(topics[qid], texts[docid]) for qid, docid in keys], batch_size, desc, precision)
    run: Run = {qid: {} for qid in shortlist if qid in topics}
    for (qid, docid), score in zip(keys, scores):
        run[qid][docid] = score
    return run


def rerank_batch(
    config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict, work=None
) -> RerankBatch:
    """What reranking `lang`'s `splits` with the model `model_name` asks for (stages.retrieval.shortlist's
    rerank_batches runs the stage's batches together); the model is loaded into `model_cache` only to choose
    its backend the first time on this machine."""
    ce = config.cross_encoder
    model_path, training = trained_model(config, model_name, "train-ce")
    precision, load_reranker = backend_reranker(
        config,
        ce.rerank_precision,
        model_path,
        "cross-encoder",
        partial(load_model, model_path, ce.max_length),
        partial(score_shortlist, rerank, ce.rerank_batch_size),
        model_cache,
    )

    record = {
        k: training.get(k)
        for k in (
            "step",
            "collection",
            "base_model",
            "base_model_sha256",
            "loss",
            "groups",
            "sources",
            "train_loss",
            "steps",
        )
    }
    return language_batch(
        config,
        model_name,
        model_path,
        lang,
        splits,
        ce.rerank_depth,
        {"max_length": ce.max_length, "precision": precision},
        load_reranker,
        record,
        work,
    )


def rerank_language(
    config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict, work=None
) -> list[Path]:
    """One language reranked on its own: the paths of its runs."""
    return rerank_now(config, rerank_batch(config, model_name, lang, splits, model_cache, work))
