"""What a full run will cost before it starts: time and disk per stage for 1, 8 and 32 workers, from the
release's own counts and the rates the benchmarks measured on this machine.

    python -m stages.cost_plan --config configs/miracl-v1.0.yaml --data /data/miracl-v1.0      (make plan)
    python -m stages.cost_plan --check                                                          (make plan-check)

Counts: each language's passages (corpus lines, counted once and kept in work/<collection>/plan/counts.json
while the corpus files are unchanged) and each configured split's queries. Rates, per worker:
  BM25 indexing and search      make plan-check (passages/s past the JVM's warm-up; a query's cost growing with
                                the log of the collection), else make bench-bm25 (at one size, start-up
                                included; a query's cost in proportion to the collection)
  encoding (dense, rerank bi)   make bench-encode (the fastest backend's passages/s)
  reranking (ce)                make bench-rerank (the fastest backend's pairs/s)
  index build and search        make bench-index (the configured index; flat: exact search)
  teacher scoring               make bench-teacher (the configured teacher's pairs/s; named, as it may not be
                                the plan's)
A rate entered in `plan.entered_rates` (a GPU's, say) is used in place of the measured one and is marked
"entered, not measured". A stage without any rate prints "no rate" and which benchmark gives one.

Workers: the work of a stage is cut into units (a language for BM25 indexing, a (language, split) for
search and reranking, a shard for encoding, a chunk of pairs for the teacher), every language's in one pool;
W workers take time max(all / W, the largest unit), a reranker's models one after another. Disk:
dense shards (float16), the faiss index (bench-index's bytes per vector), BM25 indexes (bytes per passage
of plan-check's or bench-bm25's index). `--check` measures BM25 indexing and search, and faiss flat search, on
synthetic collections of growing sizes and compares the time at the largest (1M) with its projection from the
others (stages.benchmarks.plan_check).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass

from stages.config import Config, ConfigError, add_config_arguments, config_from_args
from stages.console import say, setup
from stages.formats import atomic_write
from stages.formats.corpus import corpus_files, count_passages, describe_files
from stages.formats.jsonfile import read_json, write_json
from stages.formats.layout import ReleaseLayout
from stages.retrieval.dense import is_exact
from stages.table import stage_table

log = logging.getLogger("stages.cost_plan")


@dataclass(frozen=True)
class Rate:
    per_second: float | None  # units of work per second for one worker; None: no rate known
    source: str  # where it comes from: measured (which report), entered, or what would measure it


@dataclass(frozen=True)
class QueryCost:
    """One worker's seconds per BM25 query on a collection of n passages: `seconds` at `passages`, plus `step`
    for each e-fold more passages (`log`: make plan-check's least-squares line through its sizes below the
    checked one), or for each passage more (`linear`: a single size, make bench-bm25's, or an entered rate,
    makes the cost proportional to the collection). Never below 0."""

    seconds: float
    passages: int
    growth: str  # log or linear
    step: float
    source: str

    def at(self, passages: int) -> float:
        more = math.log(max(passages, 1) / self.passages) if self.growth == "log" else passages - self.passages
        return max(self.seconds + self.step * more, 0.0)

    def describe(self) -> str:
        step = (
            f"{self.step * 1e3:.2f} ms per e-fold more"
            if self.growth == "log"
            else f"{self.step * 1e8:.2f} ms per 100k more"
        )
        return f"{self.seconds * 1e3:.2f} ms a query at {self.passages:,} passages, {step}, {self.source}"


@dataclass(frozen=True)
class StageCost:
    stage: str
    unit: str  # what the work counts: passages, queries, pairs
    # (work, its largest unit) of each batch the stage runs one after another (a language, a model): a batch's
    # units are spread over the workers, and one worker does the largest alone. (work, work): not spread.
    batches: tuple[tuple[float, float], ...]
    rate: Rate
    disk_bytes: float = 0.0
    work_text: str = ""  # the work column, where the batches count seconds rather than the work itself

    @property
    def amount(self) -> float:
        return sum(work for work, _ in self.batches)

    def seconds(self, workers: int) -> float | None:
        if self.rate.per_second is None:
            return None
        return sum(max(work / workers, largest) for work, largest in self.batches) / self.rate.per_second


# ---------------------------------------------------------------- counts


def release_counts(config: Config) -> dict[str, dict]:
    """{lang: {"passages": n, "counted": bool, "queries": {split: n}}} of every configured language: passages
    counted in the corpus (once; kept while its files are unchanged), else `plan.passages`' entered count."""
    layout = ReleaseLayout(config.data_root)
    cache_path = config.work_dir / "plan" / "counts.json"
    cache = read_json(cache_path) or {}
    counts = {}
    for lang, language in config.languages.items():
        corpus = layout.corpus_dir(lang)
        files = describe_files(corpus_files(corpus)) if corpus.is_dir() else []
        cached = cache.get(lang, {})
        if files:
            passages = cached["passages"] if cached.get("files") == files else count_passages(corpus)
        else:
            passages = config.plan.passages.get(lang, 0)
        queries = {}
        for split in language.splits:
            path = layout.topics_path(lang, split)
            if path.is_file():
                queries[split] = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        counts[lang] = {"passages": passages, "counted": bool(files), "files": files, "queries": queries}
    write_json(cache_path, counts)
    return {lang: {k: v for k, v in c.items() if k != "files"} for lang, c in counts.items()}


# ---------------------------------------------------------------- rates


def _report(config: Config, name: str) -> tuple[dict | None, str]:
    path = config.work_root / "bench" / name / "report.json"
    return read_json(path), os.path.relpath(path)


def fastest(report: dict, keeps_scores: float) -> tuple[float, str] | None:
    """(items per second, backend) of the fastest of our backends a bench-encode or bench-rerank report timed
    (not sentence-transformers' baseline) whose dev nDCG@10 stayed within `keeps_scores` of float32's."""
    items, changes = report.get("items", 0), report.get("largest_ndcg_change", {})
    timed = {
        name: items / r["seconds"]
        for name, r in report.get("results", {}).items()
        if isinstance(r, dict)
        and r.get("seconds")
        and name != "sentence-transformers"
        and changes.get(name, 0.0) <= keeps_scores
    }
    if not timed:
        return None
    name = max(timed, key=timed.get)
    return timed[name], name


def measured_rates(config: Config) -> dict[str, Rate]:
    """Every rate the plan needs: entered ones first, then what this machine's benchmark reports hold."""
    rates: dict[str, Rate] = {}
    bm25, where = _report(config, "bm25")
    if bm25:  # whole commands at one size: start-up included
        passages, queries = bm25["passages"], bm25["queries"]
        rates["bm25 index"] = Rate(passages / bm25["median"]["ours index"], f"measured: {where}")
        per_query = bm25["median"]["ours search"] / queries
        rates["bm25 query"] = QueryCost(per_query, passages, "linear", per_query / passages, f"measured: {where}")
    check, where = _report(config, "plan-check")
    if check and "rate" not in check["rows"]["bm25 index"]:
        log.warning("%s was written by an older make plan-check: run make plan-check again for its rates", where)
    elif check:  # least-squares growth through its sizes below the checked one, in one warmed-up process
        from stages.benchmarks.plan_check import project

        *below, _ = check["measured"]
        per_passage = check["rows"]["bm25 index"]["rate"]
        if per_passage <= 0:
            raise ConfigError(f"{where}: BM25 indexing did not take longer on more passages; run make plan-check again")
        rates["bm25 index"] = Rate(1 / per_passage, f"measured: {where}")
        largest, queries = below[-1]["passages"], below[-1]["queries"]
        seconds, per_e_fold = project(below, largest, "bm25 search", "log")
        rates["bm25 query"] = QueryCost(seconds / queries, largest, "log", per_e_fold / queries, f"measured: {where}")
        rates["bm25 bytes"] = Rate(check["bm25 bytes per passage"], f"measured: {where}")
    teacher, where = _report(config, "teacher")
    if teacher:  # the teacher a bench config names; the plan's may be another (its rate then a stand-in)
        measured_with = f"{teacher['kind']} {teacher['model']}"
        planned = f"{config.bi_encoder.teacher.kind} {config.bi_encoder.teacher.model}"
        source = f"measured: {where} ({measured_with})" + (
            f"; the plan's teacher is {planned}" if planned != measured_with else ""
        )
        rates["teacher"] = Rate(teacher["pairs"] / teacher["seconds"], source)
    for name, key in (("encode", "encode"), ("rerank", "rerank ce")):
        report, where = _report(config, name)
        best = fastest(report, config.plan.keeps_scores) if report else None
        if best:
            rates[key] = Rate(best[0], f"measured: {where} ({best[1]})")
    index, where = _report(config, "index")
    factory = "Flat" if is_exact(config.bi_encoder.dense.index) else config.bi_encoder.dense.index.strip()
    measured = (index or {}).get("results", {}).get(factory)
    if measured:
        vectors = index["params"]["vectors"]
        setting = "" if is_exact(config.bi_encoder.dense.index) else config.bi_encoder.dense.search.strip()
        search = measured["search"].get(setting)
        if search:  # queries/s at `vectors`: per query, the work grows with the collection (exact, or a fixed nprobe)
            rates["index search"] = Rate(
                search["qps"] * vectors, f"measured: {where} ({' '.join(filter(None, (factory, setting)))})"
            )
        rates["index build"] = Rate(vectors / max(measured["build_seconds"], 1e-9), f"measured: {where} ({factory})")
        rates["index bytes"] = Rate(measured["bytes"] / vectors, f"measured: {where} ({factory})")
    for key, value in config.plan.entered_rates.items():
        if value <= 0:
            raise ConfigError(f"plan.entered_rates.{key} must be above 0, got {value}")
        if key == "bm25 search":  # query x passage/s: in proportion to the collection
            rates["bm25 query"] = QueryCost(1 / value, 1, "linear", 1 / value, "entered, not measured")
        else:
            rates[key] = Rate(value, "entered, not measured")
    return rates


# ---------------------------------------------------------------- the plan


def plan_costs(config: Config, counts: dict[str, dict], rates: dict[str, Rate]) -> list[StageCost]:
    missing = {
        "bm25 index": "make bench-bm25",
        "bm25 search": "make bench-bm25 or make plan-check",
        "encode": "make bench-encode",
        "rerank ce": "make bench-rerank",
        "index build": "make bench-index",
        "index search": "make bench-index",
        "teacher": "make bench-teacher",
    }

    def rate(key: str) -> Rate:
        return rates.get(key) or Rate(None, f"no rate: {missing[key]}")

    passages = {lang: c["passages"] for lang, c in counts.items()}
    searches = {(lang, s): n for lang, c in counts.items() for s, n in c["queries"].items()}
    bi, dense = config.bi_encoder, config.bi_encoder.dense
    total, largest = sum(passages.values()), max(passages.values(), default=0)
    bm25_bytes = rates.get("bm25 bytes")
    costs = [
        # make -j: a process per language (indexing) or per language and split (search), on one host
        StageCost(
            "BM25 indexing",
            "passages",
            ((total, largest),),
            rate("bm25 index"),
            total * bm25_bytes.per_second if bm25_bytes else 0.0,
        ),
        bm25_search(searches, passages, rates["bm25 query"])
        if "bm25 query" in rates
        else StageCost("BM25 search", "queries", ((sum(searches.values()), 0),), rate("bm25 search")),
    ]
    data = bi.distillation.data
    teacher_pairs = data.candidates * (
        sum(data.mmarco.values()) + sum(c["queries"].get(data.miracl_split, 0) for c in counts.values())
    )
    # chunks of missing pairs on the executor's workers
    chunk = min(bi.teacher.chunk_pairs, teacher_pairs)
    costs.append(StageCost("teacher scoring", "pairs", ((teacher_pairs, chunk),), rate("teacher")))
    # every language's shards through one pool of the executor's workers (stages.executors.run_batches)
    encoding = ((total, min(dense.shard_size, largest)),) if total else ()
    shards_bytes = total * config.plan.dimension * 2  # float16
    costs.append(StageCost("encoding (dense)", "passages", encoding, rate("encode"), shards_bytes))
    index_bytes = rates.get("index bytes")
    if not is_exact(dense.index):
        # built in the stage's process, language after language; bytes per vector as bench-index measured them
        built = total * index_bytes.per_second if index_bytes else 0.0
        costs.append(StageCost("index build", "passages", ((total, total),), rate("index build"), built))
    # a query's search touches its whole language collection, in the stage's process
    dense_work = sum(n * passages[lang] for (lang, split), n in searches.items() if split != bi.miracl.split)
    costs.append(StageCost("dense search", "query x passage", ((dense_work, dense_work),), rate("index search")))
    costs.append(rerank_cost(config, "reranking (ce)", "pairs", "stages.rerank_ce", searches, rate("rerank ce")))
    costs.append(rerank_cost(config, "reranking (bi)", "passages", "stages.rerank_bi", searches, rate("encode")))
    return costs


def bm25_search(searches: dict, passages: dict[str, int], query: QueryCost) -> StageCost:
    """A (language, split)'s search is one make process: its queries, each costing what a query costs on the
    language's collection."""
    queries = sum(searches.values())
    seconds = [n * query.at(passages[lang]) for (lang, _), n in searches.items()]
    return StageCost(
        "BM25 search",
        "s of one worker",
        ((sum(seconds), max(seconds, default=0)),),
        Rate(1.0, query.describe()),
        work_text=f"{queries:,} queries",
    )


def rerank_cost(config: Config, stage: str, unit: str, module: str, searches: dict, rate: Rate) -> StageCost:
    """Every system the stage table reranks with `module` (ce-nmt and ce; bi-init, bi-kd and bi), one after
    another, each spreading every language's splits (but the model's training split) over one pool of the
    executor's workers."""
    rows = [row for row in stage_table(config).values() if row.command.startswith(module + " ")]
    depth, train_split = (
        (config.cross_encoder.rerank_depth, config.cross_encoder.miracl.split)
        if module == "stages.rerank_ce"
        else (config.bi_encoder.rerank_depth, config.bi_encoder.miracl.split)
    )
    splits = [n * depth for (_, split), n in searches.items() if split != train_split]
    batches = [(sum(splits), max(splits))] * len(rows) if splits else []
    return StageCost(stage, unit, tuple(batches), rate)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def size(nbytes: float) -> str:
    if not nbytes:
        return "-"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e3:.0f} kB"


def plan_table(costs: list[StageCost], workers: tuple[int, ...]) -> list[str]:
    lines = [
        "| stage | work | "
        + " | ".join(f"{w} worker{'s' if w > 1 else ''}" for w in workers)
        + " | disk | rate (one worker) |",
        "|---|---|" + "---|" * len(workers) + "---|---|",
    ]
    for cost in costs:
        rate = (
            f"{cost.rate.per_second:,.1f} {cost.unit}/s, {cost.rate.source}"
            if cost.rate.per_second and not cost.work_text
            else cost.rate.source
        )
        work = cost.work_text or f"{cost.amount:,.0f} {cost.unit}"
        times = " | ".join(duration(cost.seconds(w)) for w in workers)
        lines.append(f"| {cost.stage} | {work} | {times} | {size(cost.disk_bytes)} | {rate} |")
    known = [c for c in costs if c.rate.per_second is not None]
    totals = " | ".join(duration(sum(c.seconds(w) for c in known)) for w in workers)
    lines.append(f"| all with a rate | | {totals} | {size(sum(c.disk_bytes for c in costs))} | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.cost_plan", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--check", action="store_true", help="measure 100k and 1M synthetic passages instead")
    args = parser.parse_args(argv)
    setup("stages.cost_plan")
    config = config_from_args(args)
    if args.check:
        from stages.benchmarks.plan_check import check

        return check(config)
    started = time.perf_counter()
    counts = release_counts(config)
    rates = measured_rates(config)
    costs = plan_costs(config, counts, rates)
    passages = sum(c["passages"] for c in counts.values())
    queries = sum(n for c in counts.values() for n in c["queries"].values())
    entered = [lang for lang, c in counts.items() if not c["counted"]]
    lines = [
        f"Cost plan for {config.data_root} ({len(counts)} languages, {passages:,} passages, {queries:,} queries "
        f"in the configured splits), config {config.source}"
        + (f"; passages entered, not counted (no corpus at hand): {' '.join(entered)}" if entered else "")
        + ":",
        "",
        *plan_table(costs, config.plan.workers),
        "",
        f"Counted in {time.perf_counter() - started:.0f} s. A stage spreads its units (a language's BM25 index, "
        "a split's search or reranking, a shard, a chunk of teacher pairs) over the workers, every language's "
        "in one pool, a unit never shared; a reranker's models go one after another; index building and dense "
        "search run in one process. BM25's workers are make -j's processes on one host; the others, Ray's "
        "(EXECUTOR=ray).",
    ]
    out = config.work_dir / "plan" / "plan.md"
    with atomic_write(out) as handle:
        handle.write("\n".join(lines) + "\n")
    with atomic_write(out.with_suffix(".json")) as handle:
        json.dump(
            {"counts": counts, "costs": [c.__dict__ | {"rate": c.rate.__dict__} for c in costs]}, handle, indent=1
        )
    say("\n".join(lines))
    say(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
