"""make plan-check: does the cost plan's arithmetic hold as a collection grows? BM25 indexing and search (our
stage's library functions in one process, the fastest of several runs) and exact faiss
search are measured on synthetic collections of growing sizes (`plan.check_passages`: 5,000, 100,000, 300,000
and 1,000,000 by default). The largest is projected from the others (a least-squares line through them, in
passages or, for BM25 search, in their logarithm: `project`) and measured; the projection holds when the two are
within `plan.check_tolerance` (25%). Those rates, and the BM25 index's bytes per passage, are what `make plan`
uses (work/bench/plan-check/report.json)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from stages.benchmarks import save_report
from stages.benchmarks.synthetic import LANG, bench_config, generate
from stages.config import Config, ConfigError, IndexBenchParams, load_config
from stages.console import say
from stages.formats.layout import ReleaseLayout
from stages.retrieval.bm25 import index_dir as bm25_index_dir
from stages.retrieval.dense import search_exact


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_size(config: Config, root: Path, passages: int, queries: int, repeats: int = 1, searches: int = 1) -> dict:
    """Seconds of BM25 indexing, BM25 search (`queries` queries) and exact vector search over `passages`
    synthetic passages. BM25 runs our stage's library functions (stages.retrieval.bm25: the corpus validated and
    counted, indexed, the count checked; the searcher opened, every query searched, the run written) in this
    process, whose JVM the first size warms up: the work of a long run, without a process's start-up. Each is
    the fastest of `repeats` runs (the least disturbed, as timeit reports), a search of `searches` per index built."""
    from stages.benchmarks.indexes import clustered_vectors
    from stages.retrieval.bm25 import build_index, search_language

    folder = root / f"{passages}"
    bench = dataclasses.replace(config.bench, passages=passages, queries=queries)
    generate(folder / "data", LANG, bench)
    synthetic = load_config(bench_config(folder, Path(config.source)))
    layout = ReleaseLayout(synthetic.data_root)
    index_seconds, search_seconds = [], []
    for _ in range(repeats):
        shutil.rmtree(synthetic.work_dir, ignore_errors=True)
        started = time.perf_counter()
        manifest = build_index(synthetic, LANG, layout)
        index_seconds.append(time.perf_counter() - started)
        for _ in range(searches):  # a search is cheap, and its growth small against the noise
            synthetic.run_path("bm25", LANG, "dev").unlink(missing_ok=True)
            started = time.perf_counter()
            search_language(synthetic, LANG, ["dev"], layout, manifest)
            search_seconds.append(time.perf_counter() - started)
    params = IndexBenchParams(vectors=passages, dimension=config.bench_index.dimension)
    rng = np.random.default_rng(params.seed)
    vectors, _ = clustered_vectors(passages, params, rng)
    vector_queries, _ = clustered_vectors(config.bench_index.queries, params, rng)
    search_exact(vector_queries[:8], [vectors], config.bench_index.hits)  # warm-up: faiss's threads, first touches
    started = time.perf_counter()
    search_exact(vector_queries, [vectors], config.bench_index.hits)
    vector_seconds = time.perf_counter() - started
    return {
        "passages": passages,
        "queries": len(layout.topics(LANG, "dev")),
        "bm25 index": min(index_seconds),
        "bm25 search": min(search_seconds),
        "vector search": vector_seconds,
        "bm25 runs": {"index": index_seconds, "search": search_seconds},
        "bm25 index bytes": folder_bytes(bm25_index_dir(synthetic, LANG)),
    }


# How each work grows with the collection: a least-squares line through every size measured below the checked
# one (measured in one process, whose JVM the first run warms up; the fastest of several runs at each size, as the
# time of a few seconds varies by 10-30% from run to run here):
#   bm25 index     linear in passages: every passage is analysed and its postings written once
#   bm25 search    linear in the logarithm of passages: most of a query's cost is the same on any collection
#                  (analysis, the Python-Java bridge, writing its hits), and Lucene's top-k pruning reads a
#                  shrinking share of the longer postings (2,000 queries: about 4.2 s at 5k passages, 5 s at
#                  100k and 300k, 6 s at 1M)
#   vector search  linear in passages: exact search reads every vector
GROWTH = {"bm25 index": "linear", "bm25 search": "log", "vector search": "linear"}


def project(below: list[dict], size: int, key: str, growth: str = "linear") -> tuple[float, float]:
    """(seconds of `key` at `size` passages, the growth rate): the least-squares line of the measured times
    against passages (`linear`; the rate per passage) or their logarithm (`log`; the rate per e-fold)."""
    scale = np.log if growth == "log" else np.asarray
    x = scale(np.array([m["passages"] for m in below], dtype=np.float64))
    rate, intercept = np.polyfit(x, np.array([m[key] for m in below], dtype=np.float64), 1)
    return float(intercept + rate * scale(np.float64(size))), float(rate)


def check(config: Config) -> int:
    params = config.plan
    sizes = list(params.check_passages)
    if len(sizes) < 3 or sizes != sorted(set(sizes)):
        raise ConfigError(f"plan.check_passages must be 3 or more sizes that grow, smallest first, got {sizes}")
    if min(params.check_repeats, params.check_searches) < 1:
        raise ConfigError(
            f"plan.check_repeats and plan.check_searches must be at least 1, got {params.check_repeats} and "
            f"{params.check_searches}"
        )
    root = config.work_root / "bench" / "plan-check"
    root.mkdir(parents=True, exist_ok=True)
    measured = []
    queries = min(config.bench.queries, min(sizes))  # the same number of queries at every size
    for passages in sizes:
        say(f"plan-check: {passages:,} synthetic passages")
        measured.append(measure_size(config, root, passages, queries, params.check_repeats, params.check_searches))
    *below, large = measured
    lines = [
        f"Projected from {', '.join(format(m['passages'], ',') for m in below)} passages, measured at "
        f"{large['passages']:,} ({large['queries']:,} queries; vectors of {config.bench_index.dimension} "
        f"dimensions; BM25 in one process, the fastest of {params.check_repeats} indexings and "
        f"{params.check_repeats * params.check_searches} searches):",
        "",
        "| work | "
        + " | ".join(f"s at {m['passages']:,}" for m in below)
        + " | growth (least squares through these sizes) | projected s | measured s"
        " | measured / projected |",
        "|---|" + "---|" * len(below) + "---|---|---|---|",
    ]
    rows, ok = {}, True
    for key, growth in GROWTH.items():
        projected, rate = project(below, large["passages"], key, growth)
        ratio = large[key] / projected
        rows[key] = {
            "growth": growth,
            "rate": rate,  # seconds per e-fold of passages (log), per passage (linear)
            "sizes": [m["passages"] for m in below],
            "seconds": [m[key] for m in below],
            "projected": projected,
            "ratio": ratio,
        }
        rate_text = f"{rate:.2f} s per e-fold" if growth == "log" else f"{rate * 1e5:.2f} s per 100k"
        ok &= abs(ratio - 1) <= params.check_tolerance
        lines.append(
            f"| {key} | "
            + " | ".join(f"{m[key]:.1f}" for m in below)
            + f" | {rate_text} | {projected:.1f} | {large[key]:.1f} | {ratio:.2f} |"
        )
    lines += ["", f"Within {params.check_tolerance:.0%}: {'yes' if ok else 'NO'}."]
    record = {
        "measured": measured,
        "rows": rows,
        "within_tolerance": ok,
        "bm25 bytes per passage": large["bm25 index bytes"] / large["passages"],
    }
    save_report(root, "\n".join(lines), record)
    return 0 if ok else 1
