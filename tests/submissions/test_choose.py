"""submission.system: auto submits the system, fused or single, with the best dev estimate."""

import json
import math

import pytest
import yaml

from stages.config import load_config
from stages.errors import InputDataError
from stages.formats import write_run
from submissions.choose import choose_system
from submissions.package import package
from tests.helpers import TINY_LANGUAGES, make_release, write_config, write_lines

# The sample release's dev judgments: en 11 -> 1#0, 12 -> 2#0; sw 21 -> 7#0, 22 -> 9#0 (one relevant each).
AT_1, AT_2 = 1.0, 1 / math.log2(3)  # nDCG@10 of a query whose one relevant passage is at rank 1, or 2
BM25_DEV = {
    "en": {"11": {"1#1": 2.0, "1#0": 1.0}, "12": {"2#0": 2.0, "2#1": 1.0}},  # en: (AT_2 + AT_1) / 2
    "sw": {"21": {"7#0": 2.0, "9#0": 1.0}, "22": {"9#0": 2.0, "7#0": 1.0}},
}  # sw: 1
CE_DEV = {
    "en": {"11": {"1#0": 2.0, "1#1": 1.0}, "12": {"2#1": 2.0, "2#0": 1.0}},  # en: (AT_1 + AT_2) / 2
    "sw": {"21": {"9#0": 2.0, "7#0": 1.0}, "22": {"7#0": 2.0, "9#0": 1.0}},
}  # sw: AT_2


@pytest.fixture()
def config(tmp_path):
    layout = make_release(tmp_path / "rel")
    for lang, qids in (("en", ["31"]), ("sw", ["41"])):
        write_lines(layout.topics_path(lang, "test-a"), [f"{q}\tquery" for q in qids])
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            submission={"system": "auto"},
            fusion={"systems": ["bm25", "ce"], "tune": {"min_queries": 2}},
        )
    )
    for system, runs in (("bm25", BM25_DEV), ("ce", CE_DEV)):
        for lang, run in runs.items():
            write_run(run, config.run_path(system, lang, "dev"), tag=system)
    for system, docid in (
        ("bm25", {"en": "1#0", "sw": "7#0"}),
        ("ce", {"en": "2#0", "sw": "9#0"}),
        ("fusion", {"en": "1#1", "sw": "7#1"}),
    ):
        for lang, qid in (("en", "31"), ("sw", "41")):
            write_run({qid: {docid[lang]: 1.0}}, config.run_path(system, lang, "test-a"), tag=system)
    return config


def write_tuned(config, lang, entry):
    path = config.work_dir / "fusion" / "fusion" / f"params.{lang}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"method": "wsum", "params": {"weights": [0.5, 0.5]}} | entry))


def test_a_single_system_above_the_fused_estimate_is_submitted(config):
    write_tuned(config, "en", {"cross_validated": 0.8, "in_sample": 1.0})
    write_tuned(config, "sw", {"cross_validated": 0.8, "in_sample": 1.0})
    chosen, record = choose_system(config, ["en", "sw"])
    bm25 = ((AT_2 + AT_1) / 2 + AT_1) / 2  # 0.9077: above ce ((AT_1 + AT_2) / 2 + AT_2) / 2 = 0.7232 and fusion 0.8
    assert chosen == "bm25"
    assert record["candidates"] == {
        "fusion": 0.8,
        "bm25": pytest.approx(bm25, abs=1e-6),
        "ce": pytest.approx(((AT_1 + AT_2) / 2 + AT_2) / 2, abs=1e-6),
    }
    assert record["languages"] == ["en", "sw"] and "fusion does not pay" in record["reason"]


def test_the_fused_run_wins_on_its_cross_validated_score_not_its_in_sample_one(config):
    write_tuned(config, "en", {"cross_validated": 0.95, "in_sample": 0.95})
    write_tuned(config, "sw", {"cross_validated": 0.95, "in_sample": 0.95})
    assert choose_system(config, ["en", "sw"])[0] == "fusion"
    write_tuned(config, "sw", {"cross_validated": 0.5, "in_sample": 1.0})  # in sample 1.0 everywhere, but overfit
    assert choose_system(config, ["en", "sw"])[0] == "bm25"


def test_a_language_on_the_pooled_parameters_counts_the_pooled_held_out_scores_of_its_own_queries(config):
    write_tuned(config, "en", {"cross_validated": 1.0})
    write_tuned(config, "sw", {"fallback": "all", "reason": "too few"})
    write_tuned(config, "all", {"cross_validated": 0.9, "cross_validated_by_language": {"en": 0.95, "sw": 0.85}})
    chosen, record = choose_system(config, ["en", "sw"])
    assert record["per_language"]["fusion"] == {"en": 1.0, "sw": 0.85} and record["candidates"]["fusion"] == 0.925
    assert chosen == "fusion"  # 0.925 against bm25's 0.9077


def test_without_tuned_parameters_auto_says_what_to_run(config):
    with pytest.raises(InputDataError, match="make tune-fusion"):
        choose_system(config, ["en", "sw"])


def test_the_bundle_holds_the_chosen_systems_test_runs_and_the_manifest_says_why(config):
    write_tuned(config, "en", {"cross_validated": 0.8})
    write_tuned(config, "sw", {"cross_validated": 0.8})
    bundle = package(config, ["en", "sw"]).folder
    assert "31 Q0 1#0 1" in (bundle / "run.miracl.miracl-pipeline.en.test-a.txt").read_text()  # bm25's test run
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["system"] == "bm25" and manifest["choice"]["chosen"] == "bm25"
    assert set(manifest["choice"]["candidates"]) == {"fusion", "bm25", "ce"}


def test_the_tunings_record_of_each_input_score_is_read_while_it_read_the_same_run(config, monkeypatch):
    from ensemble import tune
    from stages.retrieval import evaluation as evaluate

    for lang in ("en", "sw"):
        entry = tune.tune_language(config, lang) | {"inputs": tune.tuning_inputs(config, [lang])}
        tune.write_params(tune.params_path(config, lang), entry, config, lang)
    scored = []
    real_evaluate = evaluate.evaluate_run
    monkeypatch.setattr(evaluate, "evaluate_run", lambda *a, **k: scored.append(a) or real_evaluate(*a, **k))
    _, record = choose_system(config, ["en", "sw"])
    assert scored == []  # every input score came from the tuning's record
    assert record["per_language"]["bm25"] == {"en": pytest.approx((AT_2 + AT_1) / 2, abs=1e-6), "sw": 1.0}
    assert record["per_language"]["ce"]["sw"] == pytest.approx(AT_2, abs=1e-6)

    write_run(BM25_DEV["sw"], config.run_path("ce", "sw", "dev"), tag="ce")  # ce's run changed after tuning
    _, record = choose_system(config, ["en", "sw"])
    assert len(scored) == 1 and record["per_language"]["ce"]["sw"] == 1.0  # scored again, from the new run
