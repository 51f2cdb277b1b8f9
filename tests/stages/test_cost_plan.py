"""make plan: the release's counts, the rates the benchmarks measured (or entered ones, marked), and the
arithmetic of time per stage for several workers, on numbers small enough to check by hand."""

import json
import math

import pytest

from stages.benchmarks.plan_check import project
from stages.config import ConfigError, load_config
from stages.cost_plan import QueryCost, Rate, StageCost, main, measured_rates, plan_costs, release_counts
from tests.helpers import make_release, write_config


def test_a_stage_takes_its_share_of_the_work_but_never_less_than_its_largest_unit():
    cost = StageCost("BM25 indexing", "passages", ((1000, 600),), Rate(10, "measured"))
    assert cost.seconds(1) == 100  # 1000 / 10
    assert cost.seconds(2) == 60  # half is 500, but one language holds 600
    assert cost.seconds(32) == 60
    # batches run one after another: 4 workers take max(800 / 4, 100) + max(200 / 4, 200) = 400 units
    assert StageCost("encoding", "passages", ((800, 100), (200, 200)), Rate(10, "m")).seconds(4) == 40
    assert StageCost("teacher", "pairs", ((10, 10),), Rate(None, "no rate")).seconds(8) is None


COUNTS = {
    "aa": {"passages": 1000, "counted": True, "queries": {"dev": 10, "train": 5}},
    "bb": {"passages": 3000, "counted": True, "queries": {"dev": 30}},
}
RATES = {
    "bm25 index": Rate(100, "measured"),
    "bm25 query": QueryCost(0.01, 1000, "linear", 1e-6, "measured"),  # 10 ms a query at 1,000 passages, +1 µs each
    "encode": Rate(50, "measured"),
    "rerank ce": Rate(20, "measured"),
}


def test_each_stage_s_work_follows_from_the_counts(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "w"))
    costs = {c.stage: c for c in plan_costs(config, COUNTS, RATES)}
    assert costs["BM25 indexing"].seconds(1) == 40  # 4,000 passages at 100/s
    assert costs["BM25 indexing"].seconds(8) == 30  # bb's index alone: 3,000 at 100/s
    # a query costs 10 ms on aa's 1,000 passages, 2 ms more on bb's 3,000; a split is a unit
    bb_dev = 30 * 0.012
    ((search, largest),) = costs["BM25 search"].batches
    assert search == pytest.approx((10 + 5) * 0.01 + bb_dev) and largest == pytest.approx(bb_dev)
    assert costs["BM25 search"].seconds(8) == pytest.approx(bb_dev)
    shard = config.bi_encoder.dense.shard_size
    assert costs["encoding (dense)"].seconds(1) == 4000 / 50
    # every language's shards in one pool of workers: an eighth each, unless a shard is bigger
    assert costs["encoding (dense)"].seconds(8) == max(4000 / 8, min(shard, 3000)) / 50
    assert costs["encoding (dense)"].disk_bytes == 4000 * config.plan.dimension * 2  # float16 shards
    depth = config.cross_encoder.rerank_depth
    # ce-nmt and ce each rerank every split but the training one
    assert costs["reranking (ce)"].amount == 2 * (10 + 30) * depth
    assert costs["reranking (ce)"].seconds(1) == 2 * (10 + 30) * depth / 20
    # both languages' dev splits in one pool, model after model: bb's split (30 queries) is the largest unit
    assert costs["reranking (ce)"].seconds(8) == 2 * 30 * depth / 20
    assert costs["reranking (bi)"].amount == 3 * (10 + 30) * config.bi_encoder.rerank_depth  # bi-init, bi-kd, bi
    assert costs["dense search"].seconds(8) == costs["dense search"].seconds(1)  # one process: not spread
    assert costs["teacher scoring"].seconds(1) is None and "no rate" in costs["teacher scoring"].rate.source
    teacher = {c.stage: c for c in plan_costs(config, COUNTS, RATES | {"teacher": Rate(10, "entered")})}[
        "teacher scoring"
    ]
    # chunks of 4,096 pairs spread over the workers: fewer pairs are one chunk, for one worker
    assert teacher.amount < 4096 and teacher.batches == ((teacher.amount, teacher.amount),)
    assert StageCost("t", "pairs", ((10_000, 4096),), Rate(10, "entered")).seconds(8) == 409.6


def test_counts_come_from_the_corpus_or_for_a_missing_corpus_from_the_entered_numbers(tmp_path):
    layout = make_release(tmp_path / "rel")
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            work_root=tmp_path / "w",
            data_root=tmp_path / "rel",
            plan={"passages": {"ja": 1234}},
        )
    )
    counts = release_counts(config)
    en_corpus = (layout.corpus_dir("en") / "docs-0.jsonl").read_text().splitlines()
    assert counts["en"]["passages"] == len(en_corpus) and counts["en"]["counted"]
    en_dev = layout.topics_path("en", "dev").read_text().splitlines()
    assert counts["en"]["queries"]["dev"] == len(en_dev)
    assert counts["ja"] == {"passages": 1234, "counted": False, "queries": {}}  # no corpus, no topics here
    assert counts["ar"]["passages"] == 0


def write_report(config, name, record):
    path = config.work_root / "bench" / name / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_rates_come_from_this_machine_s_reports_and_an_entered_one_is_marked(tmp_path):
    config = load_config(
        write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", plan={"entered_rates": {"rerank ce": 999.0}})
    )
    write_report(config, "bm25", {"passages": 2000, "queries": 10, "median": {"ours index": 4.0, "ours search": 2.0}})
    items = 100
    encode = {
        "items": items,
        "results": {
            "sentence-transformers": {"seconds": 1.0},  # the baseline, not ours
            "fp32": {"seconds": 4.0},
            "openvino-fp32": {"seconds": 3.0},
            "onnx-int8": {"seconds": 2.0},  # fastest, but moved the dev scores
        },
        "largest_ndcg_change": {"fp32": 0.0, "openvino-fp32": 0.0, "onnx-int8": 0.2},
    }
    write_report(config, "encode", encode)
    write_report(config, "rerank", {"items": items, "results": {"fp32": {"seconds": 5.0}, "bf16": {"error": "x"}}})
    rates = measured_rates(config)
    assert rates["bm25 index"].per_second == 500 and rates["bm25 index"].source.startswith("measured: ")
    assert rates["bm25 query"].at(4000) == 2 * 2.0 / 10  # in proportion to the collection: an upper bound
    assert rates["encode"].per_second == 100 / 3 and "(openvino-fp32)" in rates["encode"].source
    assert rates["rerank ce"] == Rate(999.0, "entered, not measured")
    assert "teacher" not in rates
    zero = load_config(
        write_config(tmp_path / "z.yaml", work_root=tmp_path / "w", plan={"entered_rates": {"encode": 0}})
    )
    with pytest.raises(ConfigError, match=r"plan\.entered_rates\.encode must be above 0"):
        measured_rates(zero)


def test_the_projection_follows_the_least_squares_line_in_passages_or_their_logarithm():
    on_a_line = [{"passages": n, "t": n / 10_000} for n in (100_000, 200_000, 300_000)]  # 10 s per 100k
    assert project(on_a_line, 1_000_000, "t") == pytest.approx((100.0, 1e-4))
    # 2 s at 1,000 passages and 1 s more per e-fold: 2 + ln 1000 at 1M
    on_a_log_line = [{"passages": n, "t": 2 + math.log(n / 1000)} for n in (1_000, 10_000, 100_000)]
    assert project(on_a_log_line, 1_000_000, "t", "log") == pytest.approx((2 + math.log(1000), 1.0))
    noisy = [{"passages": 100_000, "t": 11.0}, {"passages": 200_000, "t": 19.0}, {"passages": 300_000, "t": 31.0}]
    assert project(noisy, 1_000_000, "t")[1] == pytest.approx(
        1e-4
    )  # (31 - 11) / 200,000: the middle one's noise cancels


def test_plan_check_s_fitted_lines_become_the_plan_s_rates(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "w"))
    # 2,000 queries: 6 s at 100,000 passages, 1 s more per e-fold (the sizes on the line)
    measured = [
        {"passages": n, "queries": 2000, "bm25 search": 6 + math.log(n / 100_000)} for n in (10_000, 100_000, 300_000)
    ] + [{"passages": 1_000_000, "queries": 2000, "bm25 search": 9.0}]
    rows = {"bm25 index": {"rate": 4e-5}, "bm25 search": {"rate": 1.0}}
    report = {"rows": rows, "measured": measured, "bm25 bytes per passage": 700.0}
    write_report(config, "plan-check", report)
    rates = measured_rates(config)
    assert rates["bm25 index"].per_second == pytest.approx(25_000)  # 4 s per 100k passages
    query = rates["bm25 query"]  # 3 ms a query at 100,000 passages, 0.5 ms more per e-fold
    assert query.at(100_000) == pytest.approx(0.003) and query.at(300_000) == pytest.approx(0.003 + math.log(3) / 2000)
    assert query.at(100_000 * math.e**2) == pytest.approx(0.004)
    assert query.at(1) == 0.0  # never below nothing
    assert rates["bm25 bytes"].per_second == 700.0


def test_make_plan_writes_the_table_with_every_stage(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w")
    assert main(["--config", str(config)]) == 0
    table = (tmp_path / "w" / "miracl-mini" / "plan" / "plan.md").read_text()
    for stage in ("BM25 indexing", "BM25 search", "teacher scoring", "encoding (dense)", "reranking (ce)"):
        assert f"| {stage} |" in table
    assert "no rate: make bench-bm25" in table and "| 1 worker | 8 workers | 32 workers |" in table


def test_the_check_s_sizes_must_grow(tmp_path):
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", plan={"check_passages": [100, 50, 200]})
    with pytest.raises(
        ConfigError, match=r"plan\.check_passages must be 3 or more sizes that grow, .* \[100, 50, 200\]"
    ):
        main(["--config", str(config), "--check"])
    two = write_config(tmp_path / "two.yaml", work_root=tmp_path / "w", plan={"check_passages": [100, 200]})
    with pytest.raises(ConfigError, match=r"3 or more sizes .*got \[100, 200\]"):
        main(["--config", str(two), "--check"])


@pytest.mark.slow
def test_the_check_measures_each_size_and_compares_the_largest_with_its_projection(tmp_path, jvm):
    config = write_config(
        tmp_path / "c.yaml",
        work_root=tmp_path / "w",
        bench={"queries": 20, "vocabulary": 2000},
        bench_index={"dimension": 16, "queries": 20},
        plan={"check_passages": [300, 1500, 3000]},
    )
    status = main(["--config", str(config), "--check"])
    report = json.loads((tmp_path / "w" / "bench" / "plan-check" / "report.json").read_text())
    assert [m["passages"] for m in report["measured"]] == [300, 1500, 3000]
    assert all(m["queries"] == 20 for m in report["measured"])
    assert set(report["rows"]) == {"bm25 index", "bm25 search", "vector search"}
    within = all(abs(row["ratio"] - 1) <= 0.25 for row in report["rows"].values())
    assert report["within_tolerance"] == within and status == (0 if within else 1)
    assert report["bm25 bytes per passage"] > 0
