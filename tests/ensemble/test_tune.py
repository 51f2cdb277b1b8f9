"""The tuner covers the whole weight simplex, finds a constructed optimum, and reports an honest estimate."""

import dataclasses

import numpy as np
import pytest
import yaml

from ensemble.params import load_tuned, params_path, write_params
from ensemble.tune import (
    best_setting,
    candidates,
    cross_validated,
    per_query_scores,
    tune_language,
    tune_pooled,
    weight_grid,
)
from stages.config import FusionParams, TuneParams, load_config
from stages.formats import write_run
from tests.helpers import TINY_LANGUAGES, make_release, write_config


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
    # x ranks q11 right, y ranks q12 right; weights (0.5, 0.5) tie q11 and put 2#0 first in q12.
    assert entry["method"] == "wsum" and entry["systems"] == ["x", "y"] and entry["queries"] == 2
    assert entry["settings_tried"] == 3
    assert entry["in_sample"] >= max(entry["input_scores"].values())
    assert entry["cross_validated"] <= entry["in_sample"]


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

    config = dataclasses.replace(tiny_fusion, fusion=dataclasses.replace(tiny_fusion.fusion, method=method))
    entry = tune_language(config, "en")
    assert entry["method"] == method and entry["settings_tried"] == "trained"
    write_params(params_path(config, "en"), entry, config, "en")
    loaded = load_tuned(params_path(config, "en"))
    runs = {s: {"11": {"1#0": 2.0, "1#1": 1.0}} for s in ("x", "y")}
    fused = fuse_runs(runs, method, config.fusion.norm, loaded["params"])
    assert set(fused["11"]) == {"1#0", "1#1"}
