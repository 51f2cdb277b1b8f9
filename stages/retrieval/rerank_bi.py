"""Reranking BM25's candidates with a bi-encoder student (`python -m stages.rerank_bi` runs it).

Queries and the shortlisted passages are encoded once each (queries with the query prefix and tower,
passages with the passage ones) and scored by inner product: the model's dot product, or its cosine
for a model saved with cosine similarity (stages.models.bi_encoder.encode normalises those). A multi-vector
(maxsim) student is scored by MaxSim instead: each query's token vectors against each candidate's.
The run keeps exactly BM25's candidate set, written and resumed like the cross-encoder's
(stages.retrieval.shortlist).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from stages.config import Config
from stages.formats import Run
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
    """{qid: {docid: query·passage}} over exactly the shortlisted candidates of each topic (MaxSim for a
    multi-vector model)."""
    from stages.models.bi_encoder import encode, is_multi_vector

    qids = [qid for qid in shortlist if qid in topics]
    docids = sorted({d for qid in qids for d in shortlist[qid]})
    if is_multi_vector(model):
        return rerank_maxsim(model, qids, docids, topics, shortlist, texts, batch_size, desc, precision)
    query_vectors = encode(model, [topics[q] for q in qids], "query", batch_size, precision=precision)
    passage_vectors = encode(model, [texts[d] for d in docids], "document", batch_size, desc=desc, precision=precision)
    row = {d: i for i, d in enumerate(docids)}
    run: Run = {}
    for qid, vector in zip(qids, query_vectors):
        rows = np.array([row[d] for d in shortlist[qid]], dtype=np.int64)
        scores = passage_vectors[rows] @ vector if len(rows) else np.zeros(0)
        run[qid] = {d: float(s) for d, s in zip(shortlist[qid], scores)}
    return run


def rerank_maxsim(
    model,
    qids: list[str],
    docids: list[str],
    topics: dict[str, str],
    shortlist: dict[str, list[str]],
    texts: dict[str, str],
    batch_size: int,
    desc: str,
    precision: str = "fp32",
) -> Run:
    """{qid: {docid: MaxSim(query tokens, passage tokens)}}, each passage encoded once."""
    from stages.models.bi_encoder import encode_tokens, maxsim_scores

    query_tokens = encode_tokens(model, [topics[q] for q in qids], "query", batch_size, precision=precision)
    passage_tokens = dict(
        zip(
            docids,
            encode_tokens(model, [texts[d] for d in docids], "document", batch_size, desc=desc, precision=precision),
        )
    )
    run: Run = {}
    for qid, tokens in zip(qids, query_tokens):
        scores = maxsim_scores(tokens, [passage_tokens[d] for d in shortlist[qid]])
        run[qid] = {d: float(s) for d, s in zip(shortlist[qid], scores)}
    return run


def scorer(config: Config):
    """The student's scoring of a shortlist with the configured batch size, as `backend_reranker` and the
    dense stage's calibration call it: (model, topics, shortlist, texts, desc, precision) -> Run; it pickles
    (Ray workers get a copy)."""
    return partial(score_shortlist, rerank, config.bi_encoder.encode_batch_size)


def rerank_batch(
    config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict, work=None
) -> RerankBatch:
    """What reranking `lang`'s `splits` with the model `model_name` asks for (stages.retrieval.shortlist's
    rerank_batches runs the stage's batches together); the model is loaded into `model_cache` only to choose
    its backend the first time on this machine."""
    from stages.models.bi_encoder import load_encoder

    bi = config.bi_encoder
    model_path, training = trained_model(config, model_name, "train-bi")
    precision, load_reranker = backend_reranker(
        config,
        bi.encode_precision,
        model_path,
        "bi-encoder",
        partial(load_encoder, model_path),
        scorer(config),
        model_cache,
    )

    record = {
        k: training.get(k) for k in ("step", "collection", "base_model", "sources", "teacher", "train_loss", "steps")
    }
    return language_batch(
        config,
        model_name,
        model_path,
        lang,
        splits,
        bi.rerank_depth,
        {"precision": precision},
        load_reranker,
        record,
        work,
    )


def rerank_language(
    config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict, work=None
) -> list[Path]:
    """One language reranked on its own: the paths of its runs."""
    return rerank_now(config, rerank_batch(config, model_name, lang, splits, model_cache, work))
