"""Benchmark: cross-encoder reranking with every inference backend, beside sentence-transformers in float32.

    python -m stages.benchmarks.rerank          (make bench-rerank)

The model is the collection's trained cross-encoder (work/<collection>/models/ce; `--model` names another
folder). The work is every language's dev BM25 shortlist at `cross_encoder.rerank_depth`, what the
reranking stage scores. The baseline is sentence-transformers' `CrossEncoder.predict` in float32 over all
pairs; each backend of stages.models.backends scores the same pairs through the stage's own `score_pairs`,
and its runs' dev nDCG@10 are compared with float32's per language (stages.benchmarks.backends explains the
columns). Results: work/bench/rerank/report.md and report.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stages.benchmarks.backends import (
    ShapeLog,
    compare,
    flops_fit,
    peaks,
    timed,
    write_report,
)
from stages.config import add_config_arguments, config_from_args
from stages.console import setup
from stages.training.curve import dev_sets


def main(argv: list[str] | None = None) -> int:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.models.backends import use_backend
    from stages.models.cross_encoder import score_pairs

    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.rerank", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--model", default=None, help="a cross-encoder folder (default: the collection's models/ce)")
    parser.add_argument("--out", default=None, help="results folder (default: work/bench/rerank)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.rerank")
    config = config_from_args(args)
    ce = config.cross_encoder
    root = Path(args.out) if args.out else config.work_root / "bench" / "rerank"
    root.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else config.models_dir / "ce"
    if not (model_path / "config.json").is_file():
        raise SystemExit(f"no cross-encoder at {model_path}: `make train-ce` trains it, or pass --model")

    sets = dev_sets(config, ce.rerank_depth)
    keys = [(lang, q, d) for lang, s in sets.items() for q, docids in s.shortlist.items() for d in docids]
    pairs = [(sets[lang].topics[q], sets[lang].texts[d]) for lang, q, d in keys]

    def as_runs(scores) -> dict:
        runs = {lang: {q: {} for q in s.shortlist} for lang, s in sets.items()}
        for (lang, q, d), score in zip(keys, scores):
            runs[lang][q][d] = float(score)
        return runs

    baseline = CrossEncoder(str(model_path), num_labels=1, max_length=ce.max_length)
    identity = torch.nn.Identity()
    baseline.predict(pairs[: ce.rerank_batch_size], batch_size=ce.rerank_batch_size, show_progress_bar=False)
    # counted now, on torch as loaded: the exported backends below put a stand-in where baseline.model was
    fit = flops_fit(baseline.model, baseline.tokenizer(["a"], ["b"]))
    shapes = ShapeLog(baseline.model)

    def run_baseline():
        scores, seconds = timed(
            lambda: baseline.predict(
                pairs, batch_size=ce.rerank_batch_size, activation_fn=identity, show_progress_bar=False
            )
        )
        shapes.close()
        return as_runs(scores), seconds

    model = baseline  # the backends swap its transformer; the baseline runs first, on torch as loaded

    def run_backend(backend: str):
        precision = use_backend(model, model_path, backend)
        score_pairs(model, pairs[: ce.rerank_batch_size], ce.rerank_batch_size, "warm-up", precision)
        scores, seconds = timed(lambda: score_pairs(model, pairs, ce.rerank_batch_size, backend, precision))
        return as_runs(scores), seconds

    results = compare(config.work_root, run_backend, run_baseline, sets)
    flops = shapes.flops(fit)
    peak = peaks("seconds" in results.get("bf16", {}))
    write_report(root, "Cross-encoder reranking", "pairs", len(pairs), model_path, sets, results, flops, peak, fit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
