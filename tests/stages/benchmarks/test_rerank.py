"""The reranking benchmark times every backend on the dev shortlists and reports each one's nDCG change."""

import json

import pytest

from stages.benchmarks.backends import ShapeLog, flops_fit, table
from tests.helpers import write_config


def test_the_fitted_flops_of_a_batch_match_torchs_count(tiny_model):
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModel

    # eager attention: its products are matmuls the counter sees, so the fit can be checked at a third length
    model = AutoModel.from_pretrained(tiny_model, attn_implementation="eager").eval()
    fit = flops_fit(model, {"input_ids": None, "attention_mask": None})
    shapes = ShapeLog(model)
    inputs = {"input_ids": torch.ones(3, 40, dtype=torch.long), "attention_mask": torch.ones(3, 40, dtype=torch.long)}
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(**inputs)
    shapes.close()
    assert shapes.shapes == [(3, 40)]
    assert shapes.flops(fit) == pytest.approx(counter.get_total_flops(), rel=1e-6)
    config = model.config
    assert fit[2] == pytest.approx(4 * config.hidden_size * config.num_hidden_layers, rel=0.01)


def test_the_table_sets_each_rate_against_the_baseline_and_the_peak_of_its_precision():
    results = {
        "sentence-transformers": {"seconds": 10.0, "ndcg@10": {"sw": 0.5, "yo": 0.4}},
        "fp32": {"seconds": 10.0, "ndcg@10": {"sw": 0.5, "yo": 0.4}},
        "onnx-int8": {"seconds": 4.0, "ndcg@10": {"sw": 0.45, "yo": 0.41}},
    }
    rows = table(results, 100, "pairs", 2e11, {"float32": 1e11, "int8": 2e11})
    assert rows[3] == "| fp32 | 10.0 | 1.00 | 20.0 | 20% of float32 | 0.4500 | +0.0000 (sw) |"
    assert rows[4] == "| onnx-int8 | 25.0 | 2.50 | 50.0 | 25% of int8 | 0.4300 | -0.0500 (sw) |"


@pytest.mark.slow
def test_a_small_run_reports_every_backend(packaged_e5, sample_bm25, tmp_path):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.benchmarks.rerank import main

    torch.manual_seed(5)  # e5-small with a new scoring head (the tiny model ties too many passages: test_encode)
    model = tmp_path / "ce"
    CrossEncoder(str(packaged_e5), num_labels=1, max_length=64).save(str(model))
    config = write_config(
        tmp_path / "c.yaml", work_root=sample_bm25.work_root, cross_encoder={"rerank_depth": 2, "max_length": 64}
    )
    assert main(["--config", str(config), "--model", str(model), "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "report.json").read_text())
    assert record["unit"] == "pairs" and record["items"] > 0
    for name in ("sentence-transformers", "fp32", "onnx-fp32", "openvino-fp32", "onnx-int8"):
        assert "seconds" in record["results"][name], record["results"][name]  # ran, not failed
    assert record["largest_ndcg_change"]["onnx-fp32"] <= 1e-3 and record["largest_ndcg_change"]["openvino-fp32"] <= 1e-3
