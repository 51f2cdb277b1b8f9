"""Benchmark: BM25 indexing and retrieval throughput, our stage beside Pyserini's command line.

    python -m stages.benchmarks.bm25            (make bench-bm25)

On a synthetic collection (`bench:` in the config; 200,000 passages by default) each round runs, in
turn and with the same Java runtime and thread counts:
  indexing   `python -m pyserini.index.lucene ...`  and  `python -m stages.bm25 --index-only`
  retrieval  `python -m pyserini.search.lucene ...` and  `python -m stages.bm25` (index up to date)
Whole commands are timed (what a user waits for: start-up, validation, the work). The report gives the
median of the rounds, passages/s and queries/s, and the ratio ours / Pyserini (>= 0.95 is the target:
our stage must add no measurable overhead). It also checks that both runs hold the same hits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

from stages.benchmarks import save_report
from stages.benchmarks.synthetic import LANG, bench_config, timed
from stages.config import add_config_arguments, load_config
from stages.console import say, setup
from stages.formats import read_run


def same_hits(ours: Path, theirs: Path) -> tuple[bool, str]:
    a, b = read_run(ours), read_run(theirs)
    if set(a) != set(b):
        return False, f"query sets differ ({len(a)} vs {len(b)})"
    for qid in a:
        order_a = sorted(a[qid].items(), key=lambda kv: (-kv[1], kv[0]))
        order_b = sorted(b[qid].items(), key=lambda kv: (-kv[1], kv[0]))
        if [d for d, _ in order_a] != [d for d, _ in order_b]:
            return False, f"query {qid}: different docids or order"
        if any(abs(a[qid][d] - b[qid][d]) > 1e-4 for d in a[qid]):
            return False, f"query {qid}: scores differ by more than 1e-4"
    return True, f"{len(a)} queries: same docids, same order, same scores (to 1e-4)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.bm25", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--out", default=None, help="benchmark folder (default: work/bench/bm25)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.bm25")
    config = load_config(args.config)
    params, bm25 = config.bench, config.bm25
    root = Path(args.out) if args.out else config.work_root / "bench" / "bm25"
    root.mkdir(parents=True, exist_ok=True)

    from stages.benchmarks.synthetic import generate
    from stages.formats.layout import ReleaseLayout
    from stages.java import find_java

    generate(root / "data", LANG, params)
    layout = ReleaseLayout(root / "data")
    topics_file = layout.topics_path(LANG, "dev")
    queries = sum(1 for line in topics_file.read_text(encoding="utf-8").splitlines() if line.strip())
    runtime = find_java()
    env = dict(os.environ, JAVA_HOME=str(runtime.home), OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY", "unused"))
    cfg = bench_config(root, Path(args.config))
    ours_work = load_config(cfg).work_dir
    their_index, their_run = root / "pyserini-index", root / "pyserini-run.txt"
    ours_run = ours_work / "runs" / "bm25" / f"run.bm25.{LANG}.dev.txt"
    log = root / "bench.log"
    log.write_text("", encoding="utf-8")
    py = sys.executable
    index_cmd = [
        py,
        "-m",
        "pyserini.index.lucene",
        "--collection",
        "MrTyDiCollection",
        "--input",
        str(layout.corpus_dir(LANG)),
        "--index",
        str(their_index),
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        str(bm25.index_threads),
        "--storePositions",
        "--storeDocvectors",
        "--storeRaw",
    ]
    search_cmd = [
        py,
        "-m",
        "pyserini.search.lucene",
        "--index",
        str(their_index),
        "--topics",
        str(topics_file),
        "--output",
        str(their_run),
        "--bm25",
        "--k1",
        str(bm25.k1),
        "--b",
        str(bm25.b),
        "--hits",
        str(bm25.hits),
        "--threads",
        str(bm25.search_threads),
        "--batch-size",
        str(bm25.batch_size),
    ]
    ours_cmd = [py, "-m", "stages.bm25", "--config", str(cfg), "--lang", LANG, "--split", "dev"]

    times = {"pyserini index": [], "ours index": [], "pyserini search": [], "ours search": []}
    say(
        f"{params.passages} passages, {queries} queries, {runtime.describe()}, "
        f"{bm25.index_threads} indexing / {bm25.search_threads} search threads; commands logged in {log}"
    )
    for round_number in range(1, params.repeats + 1):
        shutil.rmtree(their_index, ignore_errors=True)
        shutil.rmtree(ours_work, ignore_errors=True)
        times["pyserini index"].append(timed(index_cmd, env, log))
        times["ours index"].append(timed(ours_cmd + ["--index-only"], env, log))
        their_run.unlink(missing_ok=True)
        times["pyserini search"].append(timed(search_cmd, env, log))
        ours_run.unlink(missing_ok=True)
        times["ours search"].append(timed(ours_cmd, env, log))
        say(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))

    median = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        ("indexing", "passages/s", params.passages / median["ours index"], params.passages / median["pyserini index"]),
        ("retrieval", "queries/s", queries / median["ours search"], queries / median["pyserini search"]),
    ]
    parity_ok, parity = same_hits(ours_run, their_run)
    lines = [
        f"BM25 benchmark: {params.passages} synthetic passages, {queries} queries, top {bm25.hits}; "
        f"{runtime.describe()}; median of {params.repeats} rounds of whole commands.",
        "",
        "| work | unit | ours | Pyserini CLI | ours / Pyserini |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {work} | {unit} | {o:,.0f} | {p:,.0f} | {o / p:.3f} |" for work, unit, o, p in rows]
    lines += [
        "",
        f"Same results as Pyserini: {'yes' if parity_ok else 'NO'}, {parity}.",
        "",
        "Seconds per round: " + "; ".join(f"{k}: {', '.join(f'{t:.1f}' for t in v)}" for k, v in times.items()),
    ]
    record = {
        "times": times,
        "median": median,
        "passages": params.passages,
        "queries": queries,
        "ratio": {work: o / p for work, _, o, p in rows},
        "parity": parity_ok,
        "java": runtime.describe(),
    }
    save_report(root, "\n".join(lines), record)
    return 0 if parity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
