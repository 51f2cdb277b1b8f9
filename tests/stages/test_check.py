"""`make check`: the table of expected scores, and the sample's BM25 scores against it."""

import pytest

from stages.check import summary
from stages.config import ConfigError
from stages.evaluate import evaluate_systems
from stages.expected import compare, load_expected, measured_tolerances, record, width_factor

RESULT = {
    "collection": "c",
    "split": "dev",
    "metrics": ["ndcg@10"],
    "scores": {"bm25": {"sw": {"ndcg@10": 0.50004}, "yo": {"ndcg@10": 0.4}}},
}


def test_compare_flags_scores_outside_the_tolerance_and_missing_ones():
    expected = {
        "tolerance": 0.0001,
        "scores": {"bm25": {"dev": {"sw": {"ndcg@10": 0.5}, "yo": {"ndcg@10": 0.41}, "de": {"ndcg@10": 0.3}}}},
    }
    rows = {r["language"]: r["ok"] for r in compare(expected, RESULT, ["sw", "yo", "de"])}
    assert rows == {"sw": True, "yo": False, "de": False}
    assert [r["language"] for r in compare(expected, RESULT, ["sw"])] == ["sw"]


def test_record_then_compare_round_trips(tmp_path):
    record(tmp_path / "e.yaml", RESULT, None)
    expected = load_expected(tmp_path / "e.yaml")
    assert all(r["ok"] for r in compare(expected, RESULT, ["sw", "yo"]))


@pytest.mark.slow
def test_sample_bm25_matches_the_expected_table_and_no_language_scores_zero(
    sample_bm25, supported_languages, sample_config
):
    result = evaluate_systems(sample_bm25, supported_languages, "dev")
    assert all(result["scores"]["bm25"][lang]["ndcg@10"] > 0 for lang in supported_languages)
    expected = load_expected(sample_config.expected_scores)  # the sample's table (the fixture's tiny config has none)
    expected["scores"] = {"bm25": expected["scores"]["bm25"]}  # this fixture builds BM25 runs only
    rows = compare(expected, result, supported_languages)
    assert len(rows) == 2 * len(supported_languages)
    assert [r for r in rows if not r["ok"]] == []


def test_trained_systems_are_held_to_their_measured_tolerance_and_the_average_row_too():
    expected = {
        "tolerance": 0.0001,
        "tolerances": {"ce": {"ndcg@10": {"language": 0.05, "avg": 0.01}}},
        "scores": {
            "bm25": {"dev": {"sw": {"ndcg@10": 0.5}}},
            "ce": {"dev": {"sw": {"ndcg@10": 0.6}, "yo": {"ndcg@10": 0.4}, "avg": {"ndcg@10": 0.5}}},
        },
    }
    result = {
        "split": "dev",
        "metrics": ["ndcg@10"],
        "scores": {"bm25": {"sw": {"ndcg@10": 0.5002}}, "ce": {"sw": {"ndcg@10": 0.64}, "yo": {"ndcg@10": 0.34}}},
        "average": {"ce": {"ndcg@10": 0.49}},
    }
    rows = {
        (r["system"], r["language"]): (r["ok"], r["tolerance"])
        for r in compare(expected, result, ["sw", "yo"], ["sw", "yo"])
    }
    # bm25 is exact: 0.0002 off fails; ce's sw is 0.04 off (within 0.05), yo 0.06 off (outside), avg 0.01 off (within)
    assert rows == {
        ("bm25", "sw"): (False, 0.0001),
        ("ce", "sw"): (True, 0.05),
        ("ce", "yo"): (False, 0.05),
        ("ce", "avg"): (True, 0.01),
    }
    # the average is a statement about every language: a selection of some leaves it out
    assert ("ce", "avg") not in {(r["system"], r["language"]) for r in compare(expected, result, ["sw"], ["sw", "yo"])}


def test_the_summary_names_every_row_that_failed():
    rows = [
        {
            "system": "ce",
            "language": "fa",
            "metric": "ndcg@10",
            "expected": 0.4562,
            "measured": 0.4201,
            "tolerance": 0.01,
            "ok": False,
        },
        {
            "system": "bm25",
            "language": "fa",
            "metric": "ndcg@10",
            "expected": 0.8,
            "measured": 0.8,
            "tolerance": 0.0001,
            "ok": True,
        },
        {
            "system": "dense",
            "language": "yo",
            "metric": "ndcg@10",
            "expected": 0.5,
            "measured": None,
            "tolerance": 0.0001,
            "ok": False,
        },
    ]
    assert summary(rows, "e.yaml") == [
        "1 of 3 expected scores hold (e.yaml)",
        "  FAIL ce fa ndcg@10: 0.4201, expected 0.4562 ± 0.01",
        "  FAIL dense yo ndcg@10: missing, expected 0.5000 ± 0.0001",
    ]


def test_tolerances_are_the_widest_spread_over_the_runs_and_deterministic_systems_keep_the_exact_one():
    def run(ce_sw, ce_yo):
        return {
            "split": "dev",
            "metrics": ["ndcg@10"],
            "scores": {
                "bm25": {"sw": {"ndcg@10": 0.5}, "yo": {"ndcg@10": 0.3}},
                "ce": {"sw": {"ndcg@10": ce_sw}, "yo": {"ndcg@10": ce_yo}},
            },
        }

    # ce: sw spans 0.60..0.66 (0.06), yo 0.40..0.42 (0.02); averages 0.50, 0.53, 0.52 -> 0.03; three runs: x 2
    tolerances = measured_tolerances([run(0.60, 0.40), run(0.66, 0.40), run(0.62, 0.42)], "dev", ["sw", "yo"])
    assert tolerances == {"ce": {"ndcg@10": {"language": 0.12, "avg": 0.06}}}


def test_the_width_factor_is_the_unbiased_width_of_a_bounded_spread_from_its_range():
    import random

    assert width_factor(2) == 3 and width_factor(3) == 2 and width_factor(5) == 1.5
    # uniform draws of width 1: the mean range of n, times the factor, comes back to 1
    rng = random.Random(7)
    for n in (3, 5):
        ranges = [max(d) - min(d) for d in ([rng.random() for _ in range(n)] for _ in range(20000))]
        assert abs(sum(ranges) / len(ranges) * width_factor(n) - 1) < 0.01
    with pytest.raises(ConfigError):
        width_factor(1)


def test_record_keeps_the_average_only_for_a_result_over_every_language(tmp_path):
    result = dict(RESULT, average={"bm25": {"ndcg@10": 0.45002}})
    record(tmp_path / "e.yaml", result, None, ["sw", "yo"])
    assert load_expected(tmp_path / "e.yaml")["scores"]["bm25"]["dev"]["avg"] == {"ndcg@10": 0.45}
    record(tmp_path / "f.yaml", result, None, ["sw", "yo", "de"])
    assert "avg" not in load_expected(tmp_path / "f.yaml")["scores"]["bm25"]["dev"]
