"""The reranking benchmark times every backend on the dev shortlists and reports each one's nDCG change."""

import json

import numpy as np
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


def tiny_bert(hidden: int = 16, layers: int = 2, intermediate: int = 40):
    """A BERT cross-encoder small enough to count by hand."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=intermediate, max_position_embeddings=256, num_labels=1,
    )  # fmt: skip
    return BertForSequenceClassification(config).eval()


def test_the_flops_per_token_are_twice_the_weights_of_the_linear_layers():
    # per token: Q, K, V, the attention output (h x h each) and the feed-forward (h x i, i x h) of every layer,
    # 2 FLOPs per multiply-add; per sequence: the pooler (h x h) and the score (h x 1) on the first token
    hidden, layers, intermediate = 16, 2, 40
    c, a, b = flops_fit(tiny_bert(hidden, layers, intermediate), {"input_ids": None, "token_type_ids": None})
    assert a == pytest.approx(2 * layers * (4 * hidden * hidden + 2 * hidden * intermediate), rel=1e-9)  # 5,120
    assert c == pytest.approx(2 * (hidden * hidden + hidden), rel=1e-9)
    assert b == pytest.approx(4 * hidden * layers, rel=1e-9)


def test_an_exported_stand_in_is_refused_not_counted_as_no_work():
    from stages.models.backends import exported_module

    hf_model = tiny_bert()
    stand_in = exported_module(lambda feed: np.zeros((1, 1)), ["input_ids"], "logits", hf_model.config)
    with pytest.raises(ValueError, match="no torch weights"):
        flops_fit(stand_in, {"input_ids": None})


def test_the_benchmark_counts_the_flops_of_the_torch_model_not_of_the_last_backends_stand_in(
    tiny_model, tmp_path, monkeypatch
):
    """The exported backends swap the transformer for a stand-in; the count must still be the model's."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    import stages.benchmarks.rerank as rerank
    import stages.models.backends as backends
    from tests.helpers import two_query_dev_set

    torch.manual_seed(0)
    path = tmp_path / "ce"
    CrossEncoder(str(tiny_model), num_labels=1, max_length=32).save(str(path))
    dev = two_query_dev_set()
    monkeypatch.setattr(rerank, "dev_sets", lambda config, depth: {"sw": dev})
    monkeypatch.setattr(backends, "cpu_candidates", lambda work_root: {"fp32": None, "onnx-fp32": None})  # onnx last
    monkeypatch.setattr(rerank, "peaks", lambda bf16: {"float32": 1e11, "int8": 2e11})
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "work")
    assert rerank.main(["--config", str(config), "--model", str(path), "--out", str(tmp_path / "o")]) == 0

    record = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "seconds" in record["results"]["onnx-fp32"], record["results"]["onnx-fp32"]
    hf_model = CrossEncoder(str(path), num_labels=1).model
    linear = [m for m in hf_model.modules() if isinstance(m, torch.nn.Linear)]
    c, a, b = record["flops_fit"]
    head = 2 * (hf_model.config.hidden_size**2 + hf_model.config.hidden_size)  # pooler and score, once per sequence
    assert a + c == pytest.approx(2 * sum(m.weight.numel() for m in linear), rel=1e-6)
    assert c == pytest.approx(head, rel=1e-6)
    assert record["flops"] > a * record["items"]  # every pair has at least one token
    report = (tmp_path / "o" / "report.md").read_text()
    assert f"{a / 1e6:.1f} MFLOP per token" in report and "| onnx-fp32 |" in report


def test_the_table_sets_each_rate_against_the_baseline_and_the_peak_of_its_precision():
    results = {
        "sentence-transformers": {"seconds": 10.0, "ndcg@10": {"sw": 0.5, "yo": 0.4}},
        "fp32": {"seconds": 10.0, "ndcg@10": {"sw": 0.5, "yo": 0.4}},
        "bf16": {"seconds": 5.0, "ndcg@10": {"sw": 0.5, "yo": 0.42}},
        "onnx-int8": {"seconds": 4.0, "ndcg@10": {"sw": 0.45, "yo": 0.41}},
    }
    rows = table(results, 100, "pairs", 2e11, {"float32": 1e11, "int8": 2e11, "bfloat16": 4e11})
    assert "of the matmul peak in the row's precision" in rows[0]
    assert rows[3] == "| fp32 | 10.0 | 1.00 | 20.0 | 20% of float32 100 GFLOP/s | 0.4500 | +0.0000 (sw) |"
    assert rows[4] == "| bf16 | 20.0 | 2.00 | 40.0 | 10% of bfloat16 400 GFLOP/s | 0.4600 | +0.0200 (yo) |"
    assert rows[5] == "| onnx-int8 | 25.0 | 2.50 | 50.0 | 25% of int8 200 GOP/s | 0.4300 | -0.0500 (sw) |"
    rows = table(results, 100, "pairs", 2e11, {"float32": 1e11, "int8": 2e11})  # bf16's peak not measured
    assert rows[4].split(" | ")[4] == "n/a (no bfloat16 peak measured)"


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
