"""Fusion on three queries whose fused scores can be worked out on paper."""

import pytest

from ensemble.methods import align_runs, fuse_runs
from stages.config import ConfigError

# Two runs over three queries. Per query, min-max maps a run's best hit to 1 and its worst to 0.
RUN_A = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 4.0, "d5": 2.0}, "q3": {"d6": 1.0, "d7": 0.5}}
RUN_B = {"q1": {"d2": 0.9, "d3": 0.5, "d1": 0.1}, "q2": {"d5": 8.0, "d4": 6.0}, "q3": {"d7": 3.0, "d8": 1.0}}


def ranked(hits):
    return [(docid, round(score, 6)) for docid, score in sorted(hits.items(), key=lambda h: (-h[1], h[0]))]


def test_weighted_sum_of_min_max_scores():
    fused = fuse_runs({"a": RUN_A, "b": RUN_B}, "wsum", "min-max", {"weights": [0.3, 0.7]})
    # q1: A -> d1 1, d2 .5, d3 0; B -> d2 1, d3 .5, d1 0.
    assert ranked(fused["q1"]) == [("d2", 0.3 * 0.5 + 0.7 * 1), ("d3", 0.7 * 0.5), ("d1", 0.3)]
    assert ranked(fused["q2"]) == [("d5", 0.7), ("d4", 0.3)]
    assert ranked(fused["q3"]) == [("d7", 0.7), ("d6", 0.3), ("d8", 0.0)]


def test_reciprocal_rank_fusion():
    fused = fuse_runs({"a": RUN_A, "b": RUN_B}, "rrf", "none", {"k": 60})
    assert ranked(fused["q1"]) == [
        ("d2", round(1 / 62 + 1 / 61, 6)),
        ("d1", round(1 / 61 + 1 / 63, 6)),
        ("d3", round(1 / 63 + 1 / 62, 6)),
    ]
    assert ranked(fused["q3"]) == [
        ("d7", round(1 / 62 + 1 / 61, 6)),
        ("d6", round(1 / 61, 6)),
        ("d8", round(1 / 62, 6)),
    ]


def test_depth_and_hits_cut_inputs_and_output():
    fused = fuse_runs({"a": RUN_A, "b": RUN_B}, "wsum", "min-max", {"weights": [0.3, 0.7]}, depth=2, hits=2)
    # depth 2, q1: A keeps d1 (-> 1), d2 (-> 0); B keeps d2 (-> 1), d3 (-> 0); d3 is cut by hits=2.
    assert ranked(fused["q1"]) == [("d2", 0.7), ("d1", 0.3)]
    assert all(len(hits) <= 2 for hits in fused.values())


def test_runs_answering_different_queries_are_aligned_and_logged(caplog):
    partial_b = {"q1": RUN_B["q1"], "q2": {}}  # b skipped q3 and has no hits for q2
    alignment = align_runs({"a": RUN_A, "b": partial_b}, ["q1", "q2", "q3", "q4"])
    assert alignment.groups == {("a", "b"): ["q1"], ("a",): ["q2", "q3"]}
    assert alignment.unanswered == ["q4"]
    assert alignment.describe(["a", "b"]) == ["2 queries lack b: fused from a only", "1 queries answered by no run: q4"]
    fused = fuse_runs(
        {"a": RUN_A, "b": partial_b}, "wsum", "min-max", {"weights": [0.3, 0.7]}, qids=["q1", "q2", "q3", "q4"]
    )
    assert ranked(fused["q1"])[0] == ("d2", 0.85)
    assert list(fused["q3"]) == ["d6", "d7"]  # a's own ranking where only a answers
    assert "q4" not in fused


def test_bad_method_norm_or_weights_are_config_errors():
    with pytest.raises(ConfigError, match="fusion method 'wsumm'"):
        fuse_runs({"a": RUN_A, "b": RUN_B}, "wsumm")
    with pytest.raises(ConfigError, match="fusion norm 'minmax'"):
        fuse_runs({"a": RUN_A, "b": RUN_B}, "wsum", "minmax", {"weights": [0.5, 0.5]})
    with pytest.raises(ConfigError, match="one weight per run"):
        fuse_runs({"a": RUN_A, "b": RUN_B}, "wsum", "min-max", {"weights": [1.0]})
