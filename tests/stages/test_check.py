"""`make check`: the table of expected scores, and the sample's BM25 scores against it."""
import pytest

from stages.check import compare, load_expected, record
from stages.evaluate import evaluate_systems

RESULT = {"collection": "c", "split": "dev", "metrics": ["ndcg@10"],
          "scores": {"bm25": {"sw": {"ndcg@10": 0.50004}, "yo": {"ndcg@10": 0.4}}}}


def test_compare_flags_scores_outside_the_tolerance_and_missing_ones():
    expected = {"tolerance": 0.0001, "scores": {"bm25": {"dev": {"sw": {"ndcg@10": 0.5}, "yo": {"ndcg@10": 0.41},
                                                                 "de": {"ndcg@10": 0.3}}}}}
    rows = {r["language"]: r["ok"] for r in compare(expected, RESULT, ["sw", "yo", "de"])}
    assert rows == {"sw": True, "yo": False, "de": False}
    assert [r["language"] for r in compare(expected, RESULT, ["sw"])] == ["sw"]


def test_record_then_compare_round_trips(tmp_path):
    record(tmp_path / "e.yaml", RESULT, None)
    expected = load_expected(tmp_path / "e.yaml")
    assert all(r["ok"] for r in compare(expected, RESULT, ["sw", "yo"]))


@pytest.mark.slow
def test_sample_bm25_matches_the_expected_table_and_no_language_scores_zero(sample_bm25, supported_languages,
                                                                           sample_config):
    result = evaluate_systems(sample_bm25, supported_languages, "dev")
    assert all(result["scores"]["bm25"][lang]["ndcg@10"] > 0 for lang in supported_languages)
    expected = load_expected(sample_config.expected_scores)  # the sample's table (the fixture's tiny config has none)
    expected["scores"] = {"bm25": expected["scores"]["bm25"]}  # this fixture builds BM25 runs only
    rows = compare(expected, result, supported_languages)
    assert len(rows) == 2 * len(supported_languages)
    assert [r for r in rows if not r["ok"]] == []
