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

import argparse
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from stages.ce_data import passage_text
from stages.cli import run_stage
from stages.config import Config, ConfigError, add_config_arguments, load_config
from stages.formats import ReleaseLayout, Run, iter_corpus, read_run, write_run
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json
from stages.formats.runs import read_metadata

log = logging.getLogger("stages.rerank_ce")


def load_model(path: Path, max_length: int):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    kwargs = {"torch_dtype": torch.bfloat16} if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else {}
    return CrossEncoder(str(path), num_labels=1, max_length=max_length, model_kwargs=kwargs)


def candidates(run: Run, depth: int) -> dict[str, list[str]]:
    """Each query's top `depth` docids in rank order (score descending, docid ascending on ties)."""
    return {qid: [d for d, _ in sorted(hits.items(), key=lambda h: (-h[1], h[0]))[:depth]] for qid, hits in run.items()}


def fetch_passages(corpus_dir: Path, docids: set[str]) -> dict[str, str]:
    """The text the model reads for each docid, streaming the corpus once; a missing docid is an error."""
    texts = {p.docid: passage_text(p) for _, _, p in iter_corpus(corpus_dir) if p.docid in docids}
    missing = sorted(docids - set(texts))
    if missing:
        raise ConfigError(f"{len(missing)} docids of the run are not in the corpus {corpus_dir}: {' '.join(missing[:10])}")
    return texts


def score_pairs(model, pairs: list[tuple[str, str]], batch_size: int, desc: str = "rerank") -> list[float]:
    """Model scores in the order of `pairs`, computed in batches of similar length."""
    import torch

    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    scores = [0.0] * len(pairs)
    with torch.inference_mode(), tqdm(total=len(pairs), desc=desc, unit=" pairs", mininterval=2, disable=None) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            values = model.predict([pairs[i] for i in batch], batch_size=len(batch), activation_fn=torch.nn.Identity(),
                                   show_progress_bar=False, convert_to_numpy=True)
            for i, value in zip(batch, values):
                scores[i] = float(value)
            bar.update(len(batch))
    return scores


def rerank(model, topics: dict[str, str], shortlist: dict[str, list[str]], texts: dict[str, str],
           batch_size: int, desc: str = "rerank") -> Run:
    """{qid: {docid: score}} over exactly the shortlisted candidates of each topic."""
    keys = [(qid, docid) for qid, docids in shortlist.items() if qid in topics for docid in docids]
    scores = score_pairs(model, [(topics[qid], texts[docid]) for qid, docid in keys], batch_size, desc)
    run: Run = {qid: {} for qid in shortlist if qid in topics}
    for (qid, docid), score in zip(keys, scores):
        run[qid][docid] = score
    return run


def rerank_language(config: Config, model_name: str, lang: str, splits: list[str], model_cache: dict) -> list[Path]:
    ce = config.cross_encoder
    layout = ReleaseLayout(config.data_root)
    model_path = config.work_dir / "models" / model_name
    if not (model_path / "training.json").is_file():
        raise ConfigError(f"no trained model at {model_path}; `make train-ce` trains it")
    training = read_json(model_path / "training.json")
    written = []
    for split in splits:
        bm25_path, out = config.run_path("bm25", lang, split), config.run_path(model_name, lang, split)
        inputs = {"bm25_run": str(bm25_path), "bm25_sha256": file_sha256(bm25_path),
                  "topics_sha256": file_sha256(layout.topics_path(lang, split)),
                  "model": str(model_path), "model_sha256": file_sha256(model_path / "training.json"),
                  "depth": ce.rerank_depth, "max_length": ce.max_length}
        previous = read_metadata(out)
        if out.is_file() and previous and previous.get("inputs") == inputs:
            log.info("%s %s: %s run up to date at %s", lang, split, model_name, out)
            os.utime(out)
            written.append(out)
            continue
        topics = layout.topics(lang, split)
        shortlist = candidates(read_run(bm25_path), ce.rerank_depth)
        texts = fetch_passages(layout.corpus_dir(lang), {d for docids in shortlist.values() for d in docids})
        if "model" not in model_cache:
            model_cache["model"] = load_model(model_path, ce.max_length)
        run = rerank(model_cache["model"], topics, shortlist, texts, ce.rerank_batch_size, f"{lang} {split}")
        write_run(run, out, tag=f"{model_name}-{training.get('step', '')}", metadata={
            "system": model_name, "language": lang, "split": split, "config": str(config.source),
            "collection": config.collection, "inputs": inputs, "model_training": {
                k: training.get(k) for k in ("step", "base_model", "base_model_sha256", "loss", "groups", "sources",
                                             "train_loss", "steps")}})
        log.info("%s %s: %d queries reranked by %s -> %s", lang, split, len(run), model_name, out)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.rerank_ce", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--model", default="ce", help="model folder under work/<collection>/models (ce, ce-nmt)")
    args = parser.parse_args(argv)

    def body():
        config = load_config(args.config, args.data)
        layout, cache = ReleaseLayout(config.data_root), {}
        for lang in config.select_languages(args.lang):
            splits = [s for s in config.select_splits(lang, args.split) if layout.topics_path(lang, s).is_file()]
            for path in rerank_language(config, args.model, lang, splits, cache):
                print(path)

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
