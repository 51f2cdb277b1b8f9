"""make bench-teacher: the configured teacher times scoring English (topic, passage) pairs of the release, and
make plan takes its rate, naming the teacher it was measured with."""

import json

from stages.benchmarks.teacher import bench_pairs, main
from stages.config import load_config
from stages.cost_plan import measured_rates
from stages.formats.mmarco import MMarcoLayout
from tests.helpers import write_config


def test_the_pairs_are_the_distillation_s_english_pairs_each_once(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "w"))
    nmt = config.cross_encoder.nmt
    english = set(MMarcoLayout(nmt.root, nmt.translation).queries("english").values())
    pairs = bench_pairs(config, 10_000)
    assert len(pairs) == len(set(pairs)) and {query for query, _ in pairs} <= english
    # mMARCO's translations share the English side: far fewer pairs than translated queries x candidates
    data = config.bi_encoder.distillation.data
    assert len(pairs) < sum(data.mmarco.values()) * data.candidates
    assert bench_pairs(config, 5) == pairs[:5]


def test_a_small_run_writes_the_rate_and_the_plan_names_the_teacher_it_was_measured_with(tmp_path):
    config_path = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", bench={"teacher_pairs": 12, "repeats": 2})
    assert main(["--config", str(config_path)]) == 0
    report = json.loads((tmp_path / "w" / "bench" / "teacher" / "report.json").read_text())
    config = load_config(config_path)
    assert report["pairs"] == 12 and len(report["rounds"]) == 2 and report["seconds"] == min(report["rounds"]) > 0
    assert (report["kind"], report["model"]) == (config.bi_encoder.teacher.kind, config.bi_encoder.teacher.model)
    rate = measured_rates(config)["teacher"]
    assert rate.per_second == 12 / report["seconds"]
    assert f"({report['kind']} {report['model']})" in rate.source and "the plan's teacher" not in rate.source
    other = load_config(
        write_config(
            tmp_path / "o.yaml",
            work_root=tmp_path / "w",
            bi_encoder={"teacher": {"kind": "cross-encoder", "model": "cross-encoder/ms-marco-MiniLM-L6-v2"}},
        )
    )
    assert (
        "the plan's teacher is cross-encoder cross-encoder/ms-marco-MiniLM-L6-v2"
        in measured_rates(other)["teacher"].source
    )
