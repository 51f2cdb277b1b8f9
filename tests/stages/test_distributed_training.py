"""Training under torchrun (`make train-ce NPROC=2`): two CPU processes over gloo train one model, saved and
reported once by rank 0."""

import json

import pytest

from tests.helpers import write_config
from tests.test_makefile import make


@pytest.mark.slow
def test_two_processes_train_one_model_saved_and_reported_once(tmp_path):
    # the mMARCO step alone: 168 groups, batch 8 a process, 10 steps, a loss logged every 5
    config = write_config(
        tmp_path / "c.yaml",
        work_root=tmp_path / "work",
        cross_encoder={"nmt_training": {"epochs": 1, "logging_steps": 5}},
    )
    models = tmp_path / "work" / "miracl-mini" / "models"
    result = make(
        str(models / "ce-nmt" / "training.json"), f"CONFIG={config}", "NPROC=2", plan_dir=tmp_path, verbose=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert sorted(p.name for p in models.iterdir()) == ["ce-nmt", "tiny-xlmr"]  # no staging folder, no checkpoints
    record = json.loads((models / "ce-nmt" / "training.json").read_text())
    assert record["processes"] == 2 and record["steps"] == 10
    losses = [entry["loss"] for entry in record["log_history"] if "loss" in entry]
    assert len(losses) == 2
    # quiet: the stage's one line on the terminal, once; torchrun's own warnings stay out of it
    lines = [line for line in result.stdout.splitlines() if line.startswith("train ce-nmt:")]
    assert len(lines) == 1 and f"10 steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}" in lines[0]
    assert "OMP_NUM_THREADS" not in result.stderr and "error" not in result.stderr
    # the log: both processes append to it; the Trainer's loss lines and the model's path come from rank 0 alone
    log = (tmp_path / "work" / "miracl-mini" / "logs" / "train_ce.nmt.log").read_text()
    assert log.count("'loss': ") == 2 and log.count("train ce-nmt: 168 groups") == 1
    assert log.count(f"\n{models / 'ce-nmt'}\n") == 1
