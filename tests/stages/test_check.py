"""`make check`: the table of expected scores, and the sample's BM25 scores against it."""

import json

import pytest
import yaml

from stages.check import main, summary
from stages.config import ConfigError, load_config
from stages.expected import (
    compare,
    config_corpus_sizes,
    corpus_sizes,
    left_out,
    load_expected,
    measured_tolerances,
    record,
    width_factor,
    write_expected,
)
from stages.retrieval.evaluation import evaluate_systems
from tests.helpers import PASSAGES, TINY_LANGUAGES, make_release, write_config

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
    rows = {r["language"]: r["ok"] for r in compare(expected, RESULT, ["sw", "yo", "de"], sizes={})}
    assert rows == {"sw": True, "yo": False, "de": False}
    assert [r["language"] for r in compare(expected, RESULT, ["sw"], sizes={})] == ["sw"]


def test_record_then_compare_round_trips(tmp_path):
    record(tmp_path / "e.yaml", RESULT, None, sizes={})
    expected = load_expected(tmp_path / "e.yaml")
    assert all(r["ok"] for r in compare(expected, RESULT, ["sw", "yo"], sizes={}))


@pytest.mark.slow
def test_sample_bm25_matches_the_expected_table_and_no_language_scores_zero(
    sample_bm25, supported_languages, sample_config
):
    result = evaluate_systems(sample_bm25, supported_languages, "dev")
    assert all(result["scores"]["bm25"][lang]["ndcg@10"] > 0 for lang in supported_languages)
    expected = load_expected(sample_config.expected_scores)  # the sample's table (the fixture's tiny config has none)
    expected["scores"] = {"bm25": expected["scores"]["bm25"]}  # this fixture builds BM25 runs only
    sizes = config_corpus_sizes(sample_config, result["metrics"])
    rows = compare(expected, result, supported_languages, sizes=sizes)
    # nDCG@10 only: every sample corpus is under 100 passages, so recall@100 is neither recorded nor checked
    assert len(rows) == len(supported_languages) and {r["metric"] for r in rows} == {"ndcg@10"}
    assert len(left_out(expected, result, supported_languages, None, sizes)) == len(supported_languages)
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
        for r in compare(expected, result, ["sw", "yo"], ["sw", "yo"], sizes={})
    }
    # bm25 is exact: 0.0002 off fails; ce's sw is 0.04 off (within 0.05), yo 0.06 off (outside), avg 0.01 off (within)
    assert rows == {
        ("bm25", "sw"): (False, 0.0001),
        ("ce", "sw"): (True, 0.05),
        ("ce", "yo"): (False, 0.05),
        ("ce", "avg"): (True, 0.01),
    }
    # the average is a statement about every language: a selection of some leaves it out
    assert ("ce", "avg") not in {
        (r["system"], r["language"]) for r in compare(expected, result, ["sw"], ["sw", "yo"], sizes={})
    }


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
    tolerances = measured_tolerances([run(0.60, 0.40), run(0.66, 0.40), run(0.62, 0.42)], "dev", ["sw", "yo"], sizes={})
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
    record(tmp_path / "e.yaml", result, None, ["sw", "yo"], sizes={})
    assert load_expected(tmp_path / "e.yaml")["scores"]["bm25"]["dev"]["avg"] == {"ndcg@10": 0.45}
    record(tmp_path / "f.yaml", result, None, ["sw", "yo", "de"], sizes={})
    assert "avg" not in load_expected(tmp_path / "f.yaml")["scores"]["bm25"]["dev"]


# Recall@k of a corpus of at most k passages. The tiny release's en and sw corpora hold 4 passages each; sw
# gets 2 more here, so at k = 5 en's recall is uninformative (4 <= 5) and sw's is not (6 > 5).
SIX_SW = PASSAGES | {
    "sw": PASSAGES["sw"] + [("10#0", "Maziwa", "Ziwa Victoria."), ("10#1", "Maziwa", "Ziwa Tanganyika.")]
}


def small_result(en_recall=1.0, sw_recall=0.5):
    return {
        "collection": "rel",
        "split": "dev",
        "metrics": ["ndcg@10", "recall@5"],
        "scores": {
            "bm25": {
                "en": {"ndcg@10": 0.7, "recall@5": en_recall, "queries": 2},
                "sw": {"ndcg@10": 0.6, "recall@5": sw_recall, "queries": 2},
            }
        },
        "average": {"bm25": {"ndcg@10": 0.65, "recall@5": (en_recall + sw_recall) / 2, "languages": 2}},
    }


def test_corpus_sizes_stop_counting_one_past_the_depth(tmp_path):
    layout = make_release(tmp_path / "rel", SIX_SW)
    assert corpus_sizes(layout.root, ["en", "sw"], 5) == {"en": 4, "sw": 6}
    # 3 read of en's 4 and of sw's 6: enough to say "more than 2", and a real corpus is never read whole
    assert corpus_sizes(layout.root, ["en", "sw"], 2) == {"en": 3, "sw": 3}


def test_recall_of_a_corpus_no_larger_than_k_is_neither_checked_nor_recorded(tmp_path):
    sizes = {"en": 4, "sw": 6}
    expected = {
        "tolerance": 0.0001,
        "scores": {
            "bm25": {
                "dev": {
                    "en": {"ndcg@10": 0.7, "recall@5": 0.0},  # a wrong recall@5 that the check must not see
                    "sw": {"ndcg@10": 0.6, "recall@5": 0.5},
                    "avg": {"ndcg@10": 0.65, "recall@5": 0.75},
                }
            }
        },
    }
    rows = compare(expected, small_result(), ["en", "sw"], ["en", "sw"], sizes=sizes)
    assert {(r["language"], r["metric"]) for r in rows} == {
        ("en", "ndcg@10"),
        ("sw", "ndcg@10"),
        ("sw", "recall@5"),
        ("avg", "ndcg@10"),
    }
    assert all(r["ok"] for r in rows)
    # en's row, and the average, half of which is en's recall
    assert left_out(expected, small_result(), ["en", "sw"], ["en", "sw"], sizes) == [
        ("bm25", "en", "recall@5"),
        ("bm25", "avg", "recall@5"),
    ]
    # a larger corpus: every row is checked, and the wrong one fails
    wider = compare(expected, small_result(), ["en", "sw"], ["en", "sw"], sizes={"en": 6, "sw": 6})
    assert [(r["language"], r["metric"]) for r in wider if not r["ok"]] == [("en", "recall@5")]

    record(tmp_path / "e.yaml", small_result(), None, ["en", "sw"], sizes=sizes)
    assert load_expected(tmp_path / "e.yaml")["scores"] == {
        "bm25": {
            "dev": {
                "en": {"ndcg@10": 0.7},
                "sw": {"ndcg@10": 0.6, "recall@5": 0.5},
                "avg": {"ndcg@10": 0.65},
            }
        }
    }
    # a table that still holds such rows loses them when it is written again (as make check-tolerance does)
    write_expected(tmp_path / "f.yaml", expected, "rel", sizes=sizes)
    assert "recall@5" not in load_expected(tmp_path / "f.yaml")["scores"]["bm25"]["dev"]["en"]


def test_uninformative_recall_gets_no_measured_tolerance():
    runs = [small_result(en_recall=1.0), small_result(en_recall=0.5)]  # en's recall@5 moves, nothing else does
    assert measured_tolerances(runs, "dev", ["en", "sw"], sizes={"en": 4, "sw": 6}) == {}
    moved = measured_tolerances(runs, "dev", ["en", "sw"], sizes={"en": 6, "sw": 6})
    # spreads 0.5 (en) and 0.25 (the average), times (2 + 1) / (2 - 1) = 3 for two runs
    assert moved == {"bm25": {"recall@5": {"language": 1.5, "avg": 0.75}}}


def test_the_check_says_in_one_line_how_many_scores_it_left_out_and_why(tmp_path, capsys):
    make_release(tmp_path / "rel", SIX_SW)
    table = tmp_path / "e.yaml"
    config_path = write_config(
        tmp_path / "c.yaml",
        data_root=tmp_path / "rel",
        work_root=tmp_path / "w",
        languages=TINY_LANGUAGES,
        expected_scores=table,
        evaluation={"metrics": ["ndcg@10", "recall@5"]},
    )
    config = load_config(config_path)
    result_file = config.work_dir / "runs" / "eval.dev.json"
    result_file.parent.mkdir(parents=True)
    result_file.write_text(json.dumps(small_result()))

    assert main(["--config", str(config_path), "--lang", "all", "--record"]) == 0
    assert "recall@5" not in yaml.safe_load(table.read_text())["scores"]["bm25"]["dev"]["en"]
    capsys.readouterr()
    assert main(["--config", str(config_path), "--lang", "all"]) == 0
    out = capsys.readouterr().out.splitlines()
    skipped = [line for line in out if "not checked" in line]
    assert skipped == [
        "2 recall@5 scores not checked (en, and the averages over the languages): a corpus of at most k "
        "passages fits whole in k hits, so recall@k there says whether passages were retrieved at all, not how "
        "they were ranked"
    ]
    assert "4 of 4 expected scores hold" in out[-1]
