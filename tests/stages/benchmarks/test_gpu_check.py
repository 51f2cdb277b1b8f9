"""The GPU check stops with a clear message on a host without a GPU, and its parts run (on the CPU, at toy
sizes) so the script is known to work before a GPU host runs it."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, write_config


def test_without_a_gpu_it_stops_saying_so_and_measures_nothing(tmp_path, monkeypatch):
    from stages.benchmarks import gpu_check

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="make gpu-check needs a CUDA GPU.*sees none on this host"):
        gpu_check.require_gpu()
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w")
    result = subprocess.run(
        [sys.executable, "-m", "stages.benchmarks.gpu_check", "--config", str(config), "--out", str(tmp_path / "o")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=300,
    )
    assert result.returncode != 0
    assert "needs a CUDA GPU" in result.stderr
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.slow
def test_every_part_runs_at_toy_sizes_on_the_cpu(tmp_path, packaged_e5):
    from stages.benchmarks import gpu_check

    config = write_config(tmp_path / "c.yaml", work_root=packaged_e5.parent.parent)  # its packaged/ folder
    assert gpu_check.main(["--config", str(config), "--cpu-smoke", "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "report.json").read_text())
    assert record["rerank"]["pairs_per_second"] > 0 and record["encode"]["passages_per_second"] > 0
    assert record["train"]["steps"] == gpu_check.SMOKE.train_steps and record["train"]["logged_losses"]
    assert record["train_torchrun"].get("processes") == 1, record["train_torchrun"]
    assert record["faiss"]["cpu flat"]["recall_at_100"] == 1.0
    assert 0 < record["faiss"]["cpu ivf"]["recall_at_100"] <= 1.0
    assert "| rerank (bf16) |" in (tmp_path / "o" / "report.md").read_text()
