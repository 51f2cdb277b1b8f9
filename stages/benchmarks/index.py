"""Benchmark: faiss indexes side by side on one synthetic set (exact flat, IVF-Flat, IVF-PQ by default).

    python -m stages.benchmarks.index           (make bench-index)

`bench_index:` in the config sets the synthetic set (1,000,000 vectors of 384 dimensions by default) and
the indexes: faiss index_factory strings, as `bi_encoder.dense.index` takes them, each with the search
settings to try (faiss ParameterSpace strings such as `nprobe=16`). The vectors are clustered (a mixture of
Gaussians around random centres, normalised): on uniform random vectors nearest neighbours are barely
nearer than the rest, and every partitioned index looks worse than it does on embeddings. Queries are drawn
from the same mixture.

For each index: the build time (training on `train_size` sampled vectors, then adding all) and its memory
per million vectors (the serialised index's bytes); for each search setting: recall@`hits` against the
exact top `hits` (IndexFlatIP), and queries per second (all queries in one batch, faiss's threads; the best
of `repeats` rounds). Results: work/bench/index/report.md and report.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from stages.benchmarks import save_report
from stages.benchmarks.indexes import clustered_vectors, measure
from stages.config import IndexBenchParams, add_config_arguments, load_config
from stages.console import say, setup


def report(params: IndexBenchParams, results: dict, threads: int) -> str:
    lines = [
        f"faiss indexes on {params.vectors:,} clustered vectors of {params.dimension} dimensions "
        f"({params.clusters:,} clusters), {params.queries:,} queries, top {params.hits}, {threads} threads:",
        "",
        f"| index | search | recall@{params.hits} | queries/s | MB per million vectors | build s |",
        "|---|---|---|---|---|---|",
    ]
    for factory, result in results.items():
        for setting, row in result["search"].items():
            lines.append(
                f"| {factory} | {setting or '-'} | {row['recall']:.4f} | {row['qps']:,.0f} | "
                f"{result['mb_per_million']:,.0f} | {result['build_seconds']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.index", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--out", default=None, help="report folder (default: work/bench/index)")
    parser.add_argument("--vectors", type=int, default=None, help="override bench_index.vectors (a quick run)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.index")
    import dataclasses

    import faiss

    config = load_config(args.config)
    params = config.bench_index
    if args.vectors is not None:
        params = dataclasses.replace(params, vectors=args.vectors)
    root = Path(args.out) if args.out else config.work_root / "bench" / "index"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(params.seed + 1)
    say(f"bench-index: {params.vectors:,} x {params.dimension} clustered vectors")
    vectors, _ = clustered_vectors(params.vectors, params, rng)
    queries, _ = clustered_vectors(params.queries, params, rng)
    results = measure(params, vectors, queries)
    threads = faiss.omp_get_max_threads()
    record = {"params": dataclasses.asdict(params), "threads": threads, "faiss": faiss.__version__, "results": results}
    save_report(root, report(params, results, threads), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
