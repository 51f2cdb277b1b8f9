"""Metrics against values worked out by hand, with trec_eval -c semantics."""

import math

import pytest

from stages.evaluate import to_frame
from stages.retrieval.evaluation import align, evaluate_run

# Three queries:
#   q1: relevant d1, d2; run ranks d3, d1, d2  -> DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3)
#   q2: relevant d5, ranked first              -> nDCG 1, recall 1
#   q3: relevant d7 (d8 judged 0); no hits     -> 0 and 0 (counted, as trec_eval -c does)
QRELS = {"q1": {"d1": 1, "d2": 1, "d9": 0}, "q2": {"d5": 1}, "q3": {"d7": 1, "d8": 0}}
RUN = {"q1": {"d3": 3.0, "d1": 2.0, "d2": 1.0}, "q2": {"d5": 9.0, "d6": 1.0}, "extra": {"d1": 1.0}}
Q1_NDCG = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))


def test_ndcg_and_recall_match_the_hand_computation():
    scores = evaluate_run(QRELS, RUN, ["ndcg@10", "recall@100"])
    assert scores["ndcg@10"] == pytest.approx((Q1_NDCG + 1.0 + 0.0) / 3, abs=1e-9)
    assert scores["recall@100"] == pytest.approx((1.0 + 1.0 + 0.0) / 3, abs=1e-9)


def test_cutoffs_apply():
    qrels = {"q": {"rel": 1}}
    run = {"q": {f"d{i}": 100.0 - i for i in range(10)} | {"rel": 1.0}}  # the relevant passage at rank 11
    scores = evaluate_run(qrels, run, ["ndcg@10", "recall@100"])
    assert scores == {"ndcg@10": 0.0, "recall@100": 1.0}


def test_a_query_judged_only_non_relevant_counts_as_zero():
    scores = evaluate_run({"a": {"x": 1}, "b": {"y": 0}}, {"a": {"x": 1.0}, "b": {"y": 1.0}}, ["ndcg@10"])
    assert scores["ndcg@10"] == pytest.approx(0.5)


def test_an_empty_run_scores_zero():
    assert evaluate_run(QRELS, {}, ["ndcg@10"]) == {"ndcg@10": 0.0}


def test_alignment_reports_missing_and_extra_queries():
    aligned, missing, extra = align(QRELS, RUN)
    assert missing == ["q3"] and extra == ["extra"]
    assert set(aligned) == set(QRELS) and aligned["q3"] == {}


def test_table_has_a_row_per_language_and_an_average():
    result = {
        "metrics": ["ndcg@10", "recall@100"],
        "scores": {
            "bm25": {
                "sw": {"ndcg@10": 0.5, "recall@100": 1.0, "queries": 2},
                "yo": {"ndcg@10": 0.25, "recall@100": 0.5, "queries": 3},
            }
        },
        "average": {"bm25": {"ndcg@10": 0.375, "recall@100": 0.75, "languages": 2}},
    }
    frame = to_frame(result)
    assert list(frame.index) == ["sw", "yo", "avg"]
    assert frame.loc["avg", "bm25 nDCG@10"] == 0.375 and frame.loc["yo", "bm25 R@100"] == 0.5
