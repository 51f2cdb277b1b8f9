"""Rerank each language's BM25 candidates with a trained cross-encoder.

    python -m stages.rerank_ce --model ce --lang sw --split "dev test-a"     # runs/ce/run.ce.sw.dev.txt ...
    python -m stages.rerank_ce --model ce-nmt ...                           # the model before MIRACL

For each language and split: the BM25 run's top `rerank_depth` hits, each passage's title and text,
scored in batches sorted by length (little padding), with no gradients and in bfloat16 on a GPU.
The run keeps exactly the BM25 candidate set; ties are broken by docid. A candidate missing from the
corpus is an error naming it. Each run is written under a temporary name, so an interrupted stage
keeps the languages and splits it finished, and a rerun skips runs whose inputs are unchanged.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from stages import console
from stages.config import Config
from stages.formats import Run
from stages.shortlist import rerank_main, rerank_splits, trained_model

log = logging.getLogger("stages.rerank_ce")


def load_model(path: Path, max_length: int):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    kwargs = {"torch_dtype": torch.bfloat16} if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else {}
    return CrossEncoder(str(path), num_labels=1, max_length=max_length, model_kwargs=kwargs)


def score_pairs(
    model, pairs: list[tuple[str, str]], batch_size: int, desc: str = "rerank", precision: str = "fp32"
) -> list[float]:
    """Model scores in the order of `pairs`, computed in batches of similar length under `precision`."""
    import torch

    from stages.precision import autocast

    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    scores = [0.0] * len(pairs)
    with (
        torch.inference_mode(),
        autocast(precision),
        console.progress(total=len(pairs), desc=desc, unit=" pairs", mininterval=2) as bar,
    ):
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            values = model.predict(
                [pairs[i] for i in batch],
                batch_size=len(batch),
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            for i, value in zip(batch, values):
                scores[i] = float(value)
            bar.update(len(batch))
    return scores


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


def rerank_language(
    config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict, work=None
) -> list[Path]:
    from stages.precision import resolve

    ce = config.cross_encoder
    model_path, training = trained_model(config, model_name, "train-ce")
    precision = resolve(ce.rerank_precision, config.work_root)

    def load_reranker():
        if "model" not in model_cache:
            model_cache["model"] = load_model(model_path, ce.max_length)
        return lambda topics, shortlist, texts, desc: rerank(
            model_cache["model"], topics, shortlist, texts, ce.rerank_batch_size, desc, precision
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
    return rerank_splits(
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


def main(argv: list[str] | None = None) -> int:
    return rerank_main(argv, sys.modules[__name__], "ce", "ce, ce-nmt")


if __name__ == "__main__":
    sys.exit(main())
