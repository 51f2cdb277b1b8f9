"""The tuner covers the whole weight simplex, finds a constructed optimum, and reports an honest estimate."""

import dataclasses
import math

import numpy as np
import pytest
import yaml

from ensemble.params import load_tuned, params_path, write_params
from ensemble.tune import (
    TuningData,
    best_setting,
    candidates,
    cross_validated,
    language_mean,
    per_query_scores,
    pooled_data,
    query_scores,
    tune,
    tune_language,
    tune_pooled,
    weight_grid,
)
from stages.config import FusionParams, TuneParams, load_config
from stages.formats import write_run
from tests.helpers import TINY_LANGUAGES, make_release, write_config

SECOND = 1 / math.log2(3)  # nDCG@10 of a query whose one relevant passage is ranked second
THIRD = 1 / math.log2(4)  # ... third


def test_weight_grid_covers_the_simplex_exactly():
    grid = weight_grid(3, 0.1)
    assert len(grid) == 66 and len(set(grid)) == 66
    assert (0.2, 0.7, 0.1) in grid  # a vector ranx's own grid drops through a float sum
    assert all(abs(sum(w) - 1) < 1e-9 and min(w) >= 0 for w in grid)
    assert weight_grid(2, 0.5) == [(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)]


def test_ties_go_to_the_most_even_weights():
    settings = candidates(FusionParams(method="wsum", tune=TuneParams(step=0.5)), 2)
    assert [s["weights"] for s in settings] == [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]]
    assert best_setting(np.array([[0.7, 0.7], [0.7, 0.7], [0.2, 0.2]])) == 0


def test_one_parameter_methods_try_the_configured_values():
    fusion = FusionParams(method="rrf", tune=TuneParams(values={"k": (10, 60)}))
    assert candidates(fusion, 2) == [{"k": 10}, {"k": 60}]


# Each query has a relevant doc r and a distractor d; its raw scores in runs (1, 2, 3) make r win only
# on one side of a line in weight space, so nDCG@10 is highest exactly where 0.15 < w1 < 0.25 and
# 0.05 < w3 < 0.15: on a 0.1 grid, only at (0.2, 0.7, 0.1).
CONSTRAINTS = {  # qid: (scores of r, scores of d)
    "w1>.15": ((0.85, 0, 0), (0, 0.15, 0.15)),
    "w1<.25": ((0, 0.25, 0.25), (0.75, 0, 0)),
    "w3>.05": ((0, 0, 0.95), (0.05, 0.05, 0)),
    "w3<.15": ((0.15, 0.15, 0), (0, 0, 0.85)),
}


def constructed_case():
    runs = {name: {qid: {"r": r[i], "d": d[i]} for qid, (r, d) in CONSTRAINTS.items()} for i, name in enumerate("abc")}
    qrels = {qid: {"r": 1, "d": 0} for qid in CONSTRAINTS}
    return runs, qrels


def test_the_tuner_finds_a_constructed_optimum():
    runs, qrels = constructed_case()
    fusion = FusionParams(systems=("a", "b", "c"), method="wsum", norm="none", tune=TuneParams(step=0.1))
    settings = candidates(fusion, 3)
    qids, matrix = per_query_scores(qrels, runs, fusion, settings)
    assert qids == list(CONSTRAINTS)
    best = settings[best_setting(matrix)]["weights"]
    assert best == pytest.approx([0.2, 0.7, 0.1])
    assert matrix[best_setting(matrix)].mean() == 1.0
    winners = [settings[i]["weights"] for i in np.flatnonzero(matrix.mean(axis=1) == 1.0)]
    assert winners == [best]


def test_cross_validation_is_below_the_in_sample_score_when_tuning_overfits():
    # 300 settings whose per-query scores are pure noise: the best in-sample mean is luck.
    matrix = np.random.default_rng(0).uniform(size=(300, 200))
    in_sample = matrix[best_setting(matrix)].mean()
    estimate = cross_validated(matrix, folds=5, seed=13)
    assert in_sample > 0.54  # the luckiest of 300 noise settings
    assert estimate < in_sample - 0.03
    assert abs(estimate - 0.5) < 0.06  # what any setting is worth on unseen queries


def test_cross_validation_of_a_clear_winner_keeps_its_score():
    matrix = np.vstack([np.full(10, 0.2), np.full(10, 0.9)])
    assert cross_validated(matrix, folds=5, seed=1) == pytest.approx(0.9)


@pytest.fixture()
def tiny_fusion(tmp_path):
    """The tiny en/sw release with two hand-written systems' dev runs, sw judged on 2 queries only."""
    make_release(tmp_path / "rel")
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            fusion={"systems": ["x", "y"], "tune": {"min_queries": 2, "step": 0.5, "folds": 2}},
        )
    )
    runs = {
        "x": {
            "en": {"11": {"1#0": 2.0, "1#1": 1.0}, "12": {"2#1": 2.0, "2#0": 1.0}},
            "sw": {"21": {"9#0": 2.0, "7#0": 1.0}, "22": {"9#0": 1.0}},
        },
        "y": {
            "en": {"11": {"1#1": 2.0, "1#0": 1.0}, "12": {"2#0": 3.0, "2#1": 1.0}},
            "sw": {"21": {"7#0": 5.0, "9#0": 1.0}, "22": {"7#0": 1.0}},
        },
    }
    for system, per_lang in runs.items():
        for lang, run in per_lang.items():
            write_run(run, config.run_path(system, lang, "dev"), tag=system)
    return config


def test_tune_language_records_parameters_scores_and_inputs(tiny_fusion):
    entry = tune_language(tiny_fusion, "en")
    # x ranks q11 right and q12 wrong, y the other way round: each alone scores 1 and SECOND, (1 + SECOND) / 2.
    # Min-max maps each run's two hits to 1 and 0, so weights (0.5, 0.5) give both passages of a query 0.5: a
    # tie, ranked by docid, which puts the relevant 1#0 and 2#0 first. (0.5, 0.5) scores 1 on both queries, the
    # others (0, 1) and (1, 0) SECOND on one. Cross-validated on two folds of one query, the other query makes
    # (0.5, 0.5) best or tied for best (and ties go to the most even weights): 1 again.
    assert entry["method"] == "wsum" and entry["systems"] == ["x", "y"] and entry["queries"] == 2
    assert entry["settings_tried"] == 3
    assert entry["params"] == {"weights": [0.5, 0.5]}
    assert entry["in_sample"] == 1.0 and entry["cross_validated"] == 1.0
    assert entry["input_scores"] == {"x": round((1 + SECOND) / 2, 6), "y": round((1 + SECOND) / 2, 6)}


def test_a_language_with_too_few_dev_queries_takes_the_pooled_parameters(tiny_fusion):
    config = dataclasses.replace(
        tiny_fusion,
        fusion=dataclasses.replace(
            tiny_fusion.fusion, tune=dataclasses.replace(tiny_fusion.fusion.tune, min_queries=3)
        ),
    )
    entry = tune_language(config, "sw")
    assert entry["fallback"] == "all" and "2 judged dev queries" in entry["reason"]
    write_params(params_path(config, "sw"), entry, config, "sw")
    pooled = tune_pooled(config)
    assert pooled["queries"] == 4 and pooled["languages"] == ["en", "sw"]
    write_params(params_path(config, "all"), pooled, config, "all")
    resolved = load_tuned(params_path(config, "sw"))
    assert resolved["params"] == pooled["params"] and resolved["source"].endswith("params.all.yaml")
    on_disk = yaml.safe_load(params_path(config, "sw").read_text())
    assert on_disk["language"] == "sw" and on_disk["fallback"] == "all"


@pytest.mark.parametrize("method", ["probfuse", "segfuse", "bayesfuse", "mapfuse", "posfuse", "slidefuse"])
def test_trained_methods_learn_on_dev_and_their_state_survives_yaml(tiny_fusion, method):
    from ensemble.methods import fuse_runs
    from stages.formats import ReleaseLayout, read_run

    config = dataclasses.replace(tiny_fusion, fusion=dataclasses.replace(tiny_fusion.fusion, method=method))
    entry = tune_language(config, "en")
    assert entry["method"] == method and entry["settings_tried"] == "trained"
    write_params(params_path(config, "en"), entry, config, "en")
    loaded = load_tuned(params_path(config, "en"))
    assert loaded["params"] == entry["params"]
    # the state read back fuses en's dev runs into the very run whose score the tuning recorded
    qrels = ReleaseLayout(config.data_root).qrels("en", "dev")
    runs = {s: read_run(config.run_path(s, "en", "dev")) for s in ("x", "y")}
    fused = fuse_runs(runs, method, config.fusion.norm, loaded["params"])
    judged = ranx_qrels(qrels)
    assert query_scores(judged, fused, list(qrels), "ndcg@10").mean() == pytest.approx(entry["in_sample"], abs=1e-6)


def ranx_qrels(qrels):
    from stages.retrieval.evaluation import ranx_module

    return ranx_module().Qrels({q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()})


def test_mapfuse_weighs_each_run_by_its_map_on_dev(tiny_fusion):
    from ensemble.methods import fuse_runs

    # x ranks both en queries wrong (AP 1/2 each, MAP 0.5), y both right (MAP 1). MAPFuse gives a passage
    # MAP / rank from each run: the relevant one 0.5 / 2 + 1 / 1 = 1.25, the other 0.5 / 1 + 1 / 2 = 1.
    runs = {
        "x": {"11": {"1#1": 2.0, "1#0": 1.0}, "12": {"2#1": 2.0, "2#0": 1.0}},
        "y": {"11": {"1#0": 2.0, "1#1": 1.0}, "12": {"2#0": 3.0, "2#1": 1.0}},
    }
    for system, run in runs.items():
        write_run(run, tiny_fusion.run_path(system, "en", "dev"), tag=system)
    config = dataclasses.replace(tiny_fusion, fusion=dataclasses.replace(tiny_fusion.fusion, method="mapfuse"))
    entry = tune_language(config, "en")
    assert entry["params"] == {"map_scores": [0.5, 1.0]}
    fused = fuse_runs(runs, "mapfuse", config.fusion.norm, entry["params"])
    assert fused == {"11": {"1#0": 1.25, "1#1": 1.0}, "12": {"2#0": 1.25, "2#1": 1.0}}
    # trained on either query alone the MAPs are the same, so the held-out query is ranked right too
    assert entry["in_sample"] == 1.0 and entry["cross_validated"] == 1.0
    assert entry["input_scores"] == {"x": round(SECOND, 6), "y": 1.0}


# Three queries in two languages, so a mean over queries and a mean over languages differ. Each query has one
# relevant passage r and two others; nDCG@10 is 1, SECOND or THIRD as r is ranked first, second or third.
# Raw scores (norm none); a wsum setting's score of a passage is w_a * a + w_b * b:
#   q1, q2 (l1): a: r 1, d1 0.9, d2 0     b: d1 1, r 0.5, d2 0
#   q3 (l2):     a: d1 1, d2 0.9, r 0     b: r 1, d1 0.6, d2 0.5
# Per query (q1, q2, q3) the settings score:
#   (0.5, 0.5): r 0.75 < d1 0.95 in q1, q2; r 0.5 < d2 0.7 < d1 0.8 in q3     -> SECOND, SECOND, THIRD
#   (0, 1), b alone:                                                          -> SECOND, SECOND, 1
#   (1, 0), a alone:                                                          -> 1, 1, THIRD
# Mean over the queries: (1, 0) wins with (2 + 0.5) / 3 = 0.8333 against (0, 1)'s (2 * 0.6309 + 1) / 3 = 0.7540.
# Mean of l1's mean and l2's: (0, 1) wins with (0.6309 + 1) / 2 = 0.8155 against (1, 0)'s (1 + 0.5) / 2 = 0.75,
# and (0.5, 0.5) has (0.6309 + 0.5) / 2 = 0.5655.
# Cross-validated over three folds of one query, each tuned by the languages' mean of the other two:
#   q1 out: tuned on q2 (l1) and q3 (l2): (0, 1) 0.8155 > (1, 0) 0.75 > (0.5, 0.5) 0.5655 -> q1 scores SECOND
#   q2 out: the same                                                                -> q2 scores SECOND
#   q3 out: tuned on q1 and q2 (l1 only): (1, 0) 1 > the others' SECOND            -> q3 scores THIRD
#   languages' mean: (SECOND + THIRD) / 2 = 0.5655 (the queries' mean would be (2 * SECOND + THIRD) / 3 = 0.5873)
POOLED_RUNS = {
    "l1": {
        "a": {q: {"r": 1.0, "d1": 0.9, "d2": 0.0} for q in ("q1", "q2")},
        "b": {q: {"d1": 1.0, "r": 0.5, "d2": 0.0} for q in ("q1", "q2")},
    },
    "l2": {"a": {"q3": {"d1": 1.0, "d2": 0.9, "r": 0.0}}, "b": {"q3": {"r": 1.0, "d1": 0.6, "d2": 0.5}}},
}


def test_pooled_tuning_averages_languages_for_the_choice_the_scores_and_the_inputs_alike():
    parts = {
        lang: TuningData(
            qrels={q: {"r": 1, "d1": 0, "d2": 0} for q in runs["a"]},
            runs=runs,
            # each input run alone, its mean over the language's queries (as language_data evaluates it)
            baselines={"a": 1.0 if lang == "l1" else THIRD, "b": SECOND if lang == "l1" else 1.0},
        )
        for lang, runs in POOLED_RUNS.items()
    }
    data = pooled_data(parts)
    assert data.qids == ["l1/q1", "l1/q2", "l2/q3"] and data.languages == ["l1", "l1", "l2"]
    fusion = FusionParams(systems=("a", "b"), method="wsum", norm="none", tune=TuneParams(step=0.5, folds=3))
    tuned = tune(data, fusion)

    assert tuned["params"] == {"weights": [0.0, 1.0]}
    assert tuned["in_sample"] == pytest.approx((SECOND + 1) / 2)
    # the fused score and the inputs' are the same kind of mean: b alone is the chosen setting, and scores alike
    assert data.baselines == pytest.approx({"a": (1 + THIRD) / 2, "b": (SECOND + 1) / 2})
    assert tuned["in_sample"] == pytest.approx(data.baselines["b"])
    assert list(tuned["held_out"]) == pytest.approx([SECOND, SECOND, THIRD])
    assert tuned["cross_validated"] == pytest.approx((SECOND + THIRD) / 2)
    assert language_mean(np.array([SECOND, SECOND, THIRD]), data.groups) == pytest.approx((SECOND + THIRD) / 2)
