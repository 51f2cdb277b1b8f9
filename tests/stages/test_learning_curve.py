"""A training step's learning curve: scored at step 0, every n steps and at the end, on the reranker's own metric."""

import json

import numpy as np
import pytest
import torch

from stages.config import ConfigError, load_config
from stages.formats import write_run
from stages.training.curve import DevSet, dev_ndcg, learning_curve, read_points
from tests.helpers import TINY_LANGUAGES, make_release, write_config

# The tiny release's dev judgments: en 11 -> 1#0, 12 -> 2#0; sw 21 -> 7#0, 22 -> 9#0 (one relevant each).
BM25_DEV = {
    "en": {"11": {"1#1": 2.0, "1#0": 1.0}, "12": {"2#0": 2.0, "2#1": 1.0}},
    "sw": {"21": {"7#0": 2.0, "9#0": 1.0}, "22": {"9#0": 2.0, "7#0": 1.0}},
}


class FirstCandidateWins(torch.nn.Module):
    """Scores a passage by the reverse of its position in the candidate texts: a ranking known in advance."""

    def __init__(self, order):
        super().__init__()
        self.order = order

    def predict(self, pairs, **kwargs):
        return np.array([-float(self.order.index(p)) for _, p in pairs])


def test_dev_ndcg_is_ranx_ndcg_of_the_reranked_candidates_and_the_training_mode_comes_back():
    from stages.retrieval.rerank_ce import rerank

    texts = {"a": "alpha", "b": "beta"}
    dev = DevSet({"q": "query"}, {"q": ["a", "b"]}, texts, {"q": {"b": 1}})
    model = FirstCandidateWins(["beta", "alpha"]).train()
    score = lambda m, d: rerank(m, d.topics, d.shortlist, d.texts, 8)  # noqa: E731
    assert dev_ndcg(model, {"xx": dev}, score) == {"xx": 1.0}  # b first: its one relevant passage at rank 1
    assert model.training
    model.order = ["alpha", "beta"]
    assert dev_ndcg(model.eval(), {"xx": dev}, score)["xx"] == pytest.approx(1 / np.log2(3))
    assert not model.training


def test_a_resumed_curve_keeps_its_points_and_the_later_score_of_a_step_wins(tmp_path):
    path = tmp_path / "points.jsonl"
    path.write_text("".join(json.dumps({"step": s, "ndcg@10": v}) + "\n" for s, v in ((0, 0.5), (4, 0.6), (4, 0.7))))
    assert read_points(path) == {0: {"step": 0, "ndcg@10": 0.5}, 4: {"step": 4, "ndcg@10": 0.7}}


@pytest.fixture()
def tiny_curve_config(tmp_path, tiny_model):
    make_release(tmp_path / "rel")
    nmt_languages = {name: 0 for name in ("spanish", "french", "indonesian", "russian", "chinese", "arabic")}
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            cross_encoder={
                "base_model": str(tiny_model),
                "max_length": 48,
                "nmt": {"languages": nmt_languages | {"english": 6}},
                "nmt_training": {"epochs": 1, "batch_size": 2, "logging_steps": 1},
            },
        )
    )
    for lang, run in BM25_DEV.items():
        write_run(run, config.run_path("bm25", lang, "dev"), tag="bm25")
    return config


def test_an_unknown_model_names_the_steps_that_train(tiny_curve_config):
    with pytest.raises(ConfigError, match="choose one of ce-nmt, ce, bi-kd, bi"):
        learning_curve(tiny_curve_config, "bi-init", 2)


@pytest.mark.slow
def test_a_cross_encoder_curve_scores_step_0_every_n_steps_and_the_end(tiny_curve_config):
    paths = learning_curve(tiny_curve_config, "ce-nmt", every=2)
    record = json.loads(paths["json"].read_text())
    points = record["points"]
    assert [p["step"] for p in points] == [0, 2, 3]  # 6 groups, 2 a step: 3 steps
    assert all(set(p["by_language"]) == {"en", "sw"} for p in points)
    assert all(p["ndcg@10"] == pytest.approx(np.mean(list(p["by_language"].values())), abs=1e-6) for p in points)
    assert points[0]["training_loss"] is None and points[1]["training_loss"] is not None
    assert paths["png"].stat().st_size > 0 and "dev nDCG@10" in paths["md"].read_text()
    assert not (tiny_curve_config.work_dir / "curves" / "ce-nmt").exists()  # the scratch model is gone
    assert not (tiny_curve_config.work_dir / "models" / "ce-nmt").exists()  # and the pipeline's model untouched
