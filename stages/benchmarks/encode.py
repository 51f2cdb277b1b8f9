"""Benchmark: passage encoding with every inference backend beside sentence-transformers in float32, and
exact vector search beside numpy.

    python -m stages.benchmarks.encode          (make bench-encode)

Encoding: the collection's trained student (work/<collection>/models/<bi_encoder.name>; `--model` names
another single-vector model folder) encodes the passages of every language's dev BM25 shortlist at
`bi_encoder.rerank_depth`, as the bi-encoder reranker does. The baseline is sentence-transformers'
`encode_document` in float32; each backend of stages.models.backends encodes the same passages through the
stage's own `encode` (timed), the queries untimed, and the runs' dev nDCG@10 are compared with float32's
per language (stages.benchmarks.backends explains the columns).

Search: `--vectors` random float32 vectors (200,000 x 384 by default) and `--queries` queries, top `--k`:
  ours       stages.retrieval.dense.search_exact (faiss IndexFlatIP; on the GPU where faiss has one)
  baseline   numpy: the full score matrix `queries @ vectors.T`, np.argpartition, then a sort
with the share of identical top-k ids (position by position), best of `--repeats` rounds.
Results: work/bench/encode/report.md and report.json (search: search.md, search.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from stages.benchmarks.backends import ShapeLog, compare, flops_fit, peaks, timed, write_report
from stages.config import add_config_arguments, config_from_args
from stages.console import say, setup
from stages.formats import atomic_write
from stages.training.curve import dev_sets

log = logging.getLogger("stages.benchmarks.encode")


# ---------------------------------------------------------------- encoding


def compare_encoding(config, model_path: Path, root: Path) -> None:
    """The backend table for the student at `model_path`, written under `root`."""
    from stages.models.backends import transformers_of, use_backend
    from stages.models.bi_encoder import encode, is_multi_vector, load_encoder

    bi = config.bi_encoder
    sets = dev_sets(config, bi.rerank_depth)
    docs = [(lang, d) for lang, s in sets.items() for d in sorted({d for ds in s.shortlist.values() for d in ds})]
    passages = [sets[lang].texts[d] for lang, d in docs]
    queries = [(lang, q) for lang, s in sets.items() for q in s.shortlist]
    query_texts = [sets[lang].topics[q] for lang, q in queries]

    def as_runs(query_vectors: np.ndarray, passage_vectors: np.ndarray) -> dict:
        row = {key: i for i, key in enumerate(docs)}
        runs = {lang: {} for lang in sets}
        for (lang, q), vector in zip(queries, query_vectors):
            docids = sets[lang].shortlist[q]
            scores = passage_vectors[[row[(lang, d)] for d in docids]] @ vector
            runs[lang][q] = {d: float(x) for d, x in zip(docids, scores)}
        return runs

    baseline = load_encoder(model_path)
    if is_multi_vector(baseline):
        raise SystemExit(
            f"{model_path} is a multi-vector (maxsim) model: the encoding benchmark times single-vector ones"
        )
    cosine = baseline.similarity_fn_name == "cosine"

    def baseline_encode(texts: list[str], kind: str) -> np.ndarray:
        method = baseline.encode_query if kind == "query" else baseline.encode_document
        return method(texts, batch_size=bi.encode_batch_size, normalize_embeddings=cosine, show_progress_bar=False)

    baseline_encode(passages[: bi.encode_batch_size], "document")
    towers = transformers_of(baseline)  # one, or a query and a passage tower: the passages' is the one timed
    # counted now, on torch as loaded: the exported backends below put a stand-in where each auto_model was
    fits = [flops_fit(tower.auto_model, tower.tokenizer(["a"])) for tower in towers]
    shapes = [ShapeLog(tower.auto_model) for tower in towers]

    def run_baseline():
        vectors, seconds = timed(lambda: baseline_encode(passages, "document"))
        for log_ in shapes:
            log_.close()
        return as_runs(baseline_encode(query_texts, "query"), vectors), seconds

    model = baseline  # the backends swap its transformer(s); the baseline runs first, on torch as loaded

    def run_backend(backend: str):
        precision = use_backend(model, model_path, backend)
        encode(model, passages[: bi.encode_batch_size], "document", bi.encode_batch_size, precision=precision)
        vectors, seconds = timed(
            lambda: encode(model, passages, "document", bi.encode_batch_size, desc=backend, precision=precision)
        )
        return as_runs(encode(model, query_texts, "query", bi.encode_batch_size, precision=precision), vectors), seconds

    results = compare(config.work_root, run_backend, run_baseline, sets)
    flops = sum(log_.flops(fit) for log_, fit in zip(shapes, fits))
    fit = fits[-1]
    peak = peaks("seconds" in results.get("bf16", {}))
    write_report(root, "Passage encoding", "passages", len(passages), model_path, sets, results, flops, peak, fit)


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


def search_report(device: str, args, search: dict) -> str:
    srch = search["rate"]
    return "\n".join(
        [
            f"# Exact search, {device}",
            "",
            f"Best of {args.repeats} rounds: {args.vectors:,} x {args.dimension} random float32 vectors, "
            f"{args.queries} queries, top {args.k}.",
            "",
            "| work | unit | ours | baseline | ours / baseline |",
            "|---|---|---|---|---|",
            f"| exact search (ours: dense.search_exact, faiss IndexFlatIP; baseline: numpy matmul + argpartition) | "
            f"queries/s | {srch['ours']:,.1f} | {srch['baseline']:,.1f} | {srch['ours'] / srch['baseline']:.2f} |",
            "",
            f"Same top-{args.k} ids: {search['same_ids']:.2%} (position by position); largest score difference "
            f"{search['max_abs_score_difference']:.2e}.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.encode", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--model", default=None, help="a student folder (default: the collection's trained student)")
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None, help="default: bench.repeats")
    parser.add_argument("--out", default=None, help="results folder (default: work/bench/encode)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.encode")
    config = config_from_args(args)
    args.repeats = args.repeats or config.bench.repeats
    root = Path(args.out) if args.out else config.work_root / "bench" / "encode"
    root.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"

    model_path = Path(args.model) if args.model else config.models_dir / config.bi_encoder.name
    if not (model_path / "config.json").is_file():
        raise SystemExit(f"no student at {model_path}: `make train-bi` trains it, or pass --model")
    compare_encoding(config, model_path, root)

    log.info("searching %d x %d vectors with %d queries", args.vectors, args.dimension, args.queries)
    search = time_search(args.vectors, args.dimension, args.queries, args.k, args.repeats, config.bench.seed)
    text = search_report(device, args, search)
    with atomic_write(root / "search.md") as out:
        out.write(text)
    with atomic_write(root / "search.json") as out:
        json.dump(
            {"device": device, "options": vars(args), "search": search, "date": time.strftime("%F %T")},
            out,
            indent=2,
            default=str,
        )
    say(text.rstrip("\n"))
    say(f"saved {root / 'search.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
