"""Cross-encoder training: the listwise loss by hand, learning on a toy set, resuming after a crash."""

import json
import math

import pytest

from stages.config import TrainParams
from stages.data.groups import Group
from stages.losses.cross_encoder import make_loss
from stages.training.ce import train

pytestmark = pytest.mark.slow

TOY = [
    ("nile river", "The Nile river flows north through Egypt."),
    ("bread yeast", "Bread needs yeast and flour."),
    ("cats sleep", "Cats sleep many hours."),
    ("moon tides", "The moon causes tides."),
]
GROUPS = [
    Group("toy", str(i), q, p, tuple(other for _, other in TOY if other != p)) for i, (q, p) in enumerate(TOY)
] * 8


def test_listwise_loss_is_softmax_cross_entropy_over_the_group_alone(tiny_model):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    loss = make_loss(CrossEncoder(str(tiny_model), num_labels=1, max_length=64), "listwise")
    assert list(loss.get_in_batch_negatives(["q1", "q2"], [["p1", "p2"], ["n1", "n2"]])) == []
    scores = [
        torch.tensor([2.0, 0.5]),
        torch.tensor([1.0, 0.5]),
        torch.tensor([0.0, 1.5]),
    ]  # positive, negative, negative
    expected = (
        -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
        - math.log(math.exp(0.5) / (3 * math.exp(0.5) + math.exp(1.5) - math.exp(0.5)))
    ) / 2
    assert loss.calculate_loss(scores, 2).item() == pytest.approx(expected, rel=1e-6)


def positives_on_top(model_dir) -> int:
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(model_dir), num_labels=1, max_length=64)
    wins = 0
    for query, positive in TOY:
        scores = model.predict([(query, passage) for _, passage in TOY])
        wins += int(scores[[p for _, p in TOY].index(positive)] == max(scores))
    return wins


def test_a_few_steps_lower_the_loss_and_put_positives_first_more_often(tiny_model, tmp_path):
    params = TrainParams(
        epochs=20, learning_rate=2e-3, batch_size=8, warmup_ratio=0.0, save_steps=1000, logging_steps=4
    )
    out = train(GROUPS, str(tiny_model), tmp_path / "ce", params, "listwise", 64, {"step": "toy"})
    losses = [h["loss"] for h in json.loads((out / "training.json").read_text())["log_history"] if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    assert positives_on_top(out) > positives_on_top(tiny_model)
    assert positives_on_top(out) == 4


def test_an_interrupted_training_resumes_from_its_last_checkpoint(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 7:
                raise KeyboardInterrupt("simulated crash")

    params = TrainParams(epochs=3, learning_rate=2e-3, batch_size=8, warmup_ratio=0.0, save_steps=5, logging_steps=1)
    with pytest.raises(KeyboardInterrupt):
        train(GROUPS, str(tiny_model), tmp_path / "ce", params, "pointwise", 64, {}, callbacks=[Crash()])
    assert (tmp_path / "ce.checkpoints" / "checkpoint-5").is_dir() and not (tmp_path / "ce").exists()
    out = train(GROUPS, str(tiny_model), tmp_path / "ce", params, "pointwise", 64, {})
    record = json.loads((out / "training.json").read_text())
    assert record["resumed"] is True and record["steps"] == 3 * math.ceil(len(GROUPS) * 4 / 8)
    assert not (tmp_path / "ce.checkpoints").exists()
