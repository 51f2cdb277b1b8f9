"""make plan-check: does the cost plan's arithmetic hold as a collection grows? BM25 indexing and search (whole
commands of our stage) and exact faiss search are measured on synthetic collections of three sizes
(`plan.check_passages`: 5,000, 100,000 and 1,000,000 by default). The smallest gives each command's fixed
cost (start-up: Python, the JVM, reading the config), the middle one its rate per passage; the largest is
then projected (fixed + rate x passages) and measured. The projection holds when the two are within
`plan.check_tolerance` (25%). The measured rates, and the BM25 index's bytes per passage, are what `make
plan` uses (work/bench/plan-check/report.json).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from stages.benchmarks.synthetic import LANG, bench_config, generate, timed
from stages.config import Config, ConfigError, IndexBenchParams, load_config
from stages.console import say
from stages.formats import atomic_write
from stages.formats.layout import ReleaseLayout
from stages.retrieval.bm25 import index_dir as bm25_index_dir
from stages.retrieval.dense import search_exact


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_size(config: Config, root: Path, passages: int, queries: int) -> dict:
    """Seconds of BM25 indexing, BM25 search (`queries` queries) and exact vector search over `passages`
    synthetic passages."""
    from stages.benchmarks.indexes import clustered_vectors
    from stages.java import find_java

    folder = root / f"{passages}"
    bench = dataclasses.replace(config.bench, passages=passages, queries=queries)
    generate(folder / "data", LANG, bench)
    cfg = bench_config(folder, Path(config.source))
    work = load_config(cfg).work_dir
    shutil.rmtree(work, ignore_errors=True)
    env = dict(os.environ, JAVA_HOME=str(find_java().home))
    command = [sys.executable, "-m", "stages.bm25", "--config", str(cfg), "--lang", LANG, "--split", "dev"]
    log = folder / "commands.log"
    index_seconds = timed([*command, "--index-only"], env, log)
    search_seconds = timed(command, env, log)
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
        "queries": len(ReleaseLayout(folder / "data").topics(LANG, "dev")),
        "bm25 index": index_seconds,
        "bm25 search": search_seconds,
        "vector search": vector_seconds,
        "bm25 index bytes": folder_bytes(bm25_index_dir(load_config(cfg), LANG)),
    }


def project(small: dict, middle: dict, size: int, key: str) -> float:
    """Seconds at `size` passages: the fixed cost seen at the smallest size, plus the middle size's rate."""
    fixed = small[key]
    rate = (middle[key] - fixed) / (middle["passages"] - small["passages"])
    return fixed + rate * (size - small["passages"])


def check(config: Config) -> int:
    params = config.plan
    if not params.check_passages[0] < params.check_passages[1] < params.check_passages[2]:
        raise ConfigError(f"plan.check_passages must grow, smallest first, got {list(params.check_passages)}")
    root = config.work_root / "bench" / "plan-check"
    root.mkdir(parents=True, exist_ok=True)
    measured = []
    queries = min(config.bench.queries, min(params.check_passages))  # the same queries at every size
    for passages in params.check_passages:
        say(f"plan-check: {passages:,} synthetic passages")
        measured.append(measure_size(config, root, passages, queries))
    small, middle, large = measured
    lines = [
        f"Projected from {small['passages']:,} and {middle['passages']:,} passages, measured at "
        f"{large['passages']:,} ({large['queries']:,} queries; vectors of {config.bench_index.dimension} dimensions):",
        "",
        "| work | fixed s | s per 100k passages | projected s | measured s | measured / projected |",
        "|---|---|---|---|---|---|",
    ]
    rows, ok = {}, True
    for key in ("bm25 index", "bm25 search", "vector search"):
        projected = project(small, middle, large["passages"], key)
        ratio = large[key] / projected
        per_100k = (middle[key] - small[key]) / (middle["passages"] - small["passages"]) * 100_000
        rows[key] = {"fixed": small[key], "per_passage": per_100k / 100_000, "projected": projected, "ratio": ratio}
        ok &= abs(ratio - 1) <= params.check_tolerance
        lines.append(
            f"| {key} | {small[key]:.1f} | {per_100k:.2f} | {projected:.1f} | {large[key]:.1f} | {ratio:.2f} |"
        )
    lines += ["", f"Within {params.check_tolerance:.0%}: {'yes' if ok else 'NO'}."]
    text = "\n".join(lines) + "\n"
    with atomic_write(root / "report.md") as out:
        out.write(text)
    with atomic_write(root / "report.json") as out:
        json.dump(
            {
                "measured": measured,
                "rows": rows,
                "within_tolerance": ok,
                "bm25 bytes per passage": large["bm25 index bytes"] / large["passages"],
            },
            out,
            indent=1,
        )
    say(text.rstrip("\n"))
    say(f"saved {root / 'report.md'}")
    return 0 if ok else 1
