"""The encoding benchmark compares like with like: every backend's runs beside float32's, the same top-k from
faiss and numpy, and a report in the right place."""

import json
import shutil

import numpy as np
import pytest

from stages.benchmarks.encode import main, numpy_top_k
from stages.config import StudentParams
from stages.retrieval.dense import search_exact
from tests.helpers import write_config


@pytest.fixture(scope="module")
def student(tiny_model, tmp_path_factory):
    """A mean-pooling student over the tiny model, saved (the benchmark loads models by path)."""
    from stages.models.bi_encoder import build_student

    path = tmp_path_factory.mktemp("bench-student") / "student"
    build_student(str(tiny_model), StudentParams(max_query_length=32, max_passage_length=64)).save(str(path))
    return path


def test_numpy_top_k_matches_faiss():
    rng = np.random.default_rng(0)
    vectors, queries = rng.standard_normal((500, 16), dtype=np.float32), rng.standard_normal((9, 16), dtype=np.float32)
    scores, ids = numpy_top_k(queries, vectors, 7)
    faiss_scores, faiss_ids = search_exact(queries, [vectors], 7)
    assert np.array_equal(ids, faiss_ids)
    np.testing.assert_allclose(scores, faiss_scores, rtol=1e-5, atol=1e-5)


def test_the_encoding_benchmark_counts_the_flops_of_the_torch_model_not_of_the_last_backends_stand_in(
    student, tmp_path, monkeypatch
):
    """The exported backends swap each tower's transformer for a stand-in; the count must still be the model's:
    2 FLOPs per weight of the encoder's linear layers per token."""
    import torch

    import stages.benchmarks.encode as encode
    import stages.models.backends as backends
    from stages.config import load_config
    from stages.models.backends import transformers_of
    from stages.models.bi_encoder import load_encoder
    from tests.helpers import two_query_dev_set

    model = tmp_path / "student"  # a copy: the exports are written beside the model
    shutil.copytree(student, model)
    dev = two_query_dev_set()
    monkeypatch.setattr(encode, "dev_sets", lambda config, depth: {"sw": dev})
    monkeypatch.setattr(backends, "cpu_candidates", lambda work_root: {"fp32": None, "onnx-fp32": None})  # onnx last
    monkeypatch.setattr(encode, "peaks", lambda bf16: {"float32": 1e11, "int8": 2e11})
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "work"))
    encode.compare_encoding(config, model, tmp_path / "o")

    record = json.loads((tmp_path / "o" / "report.json").read_text())
    assert "seconds" in record["results"]["onnx-fp32"], record["results"]["onnx-fp32"]
    (tower,) = transformers_of(load_encoder(model))
    layers = tower.auto_model.encoder
    weights = sum(m.weight.numel() for m in layers.modules() if isinstance(m, torch.nn.Linear))
    c, a, b = record["flops_fit"]
    assert a == pytest.approx(2 * weights, rel=1e-6)
    config_ = tower.auto_model.config
    assert b == pytest.approx(4 * config_.hidden_size * config_.num_hidden_layers, rel=0.01)
    assert f"{a / 1e6:.1f} MFLOP per token" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.slow
def test_a_small_run_writes_the_backend_table_and_the_search_table(packaged_e5, sample_bm25, tmp_path, capsys):
    # The real e5-small, not the tiny model: the tiny one gives many passages the same vector (its
    # 120-token vocabulary reads most scripts as unknown), and a rounding difference then reorders the tie.
    config = write_config(
        tmp_path / "c.yaml", work_root=sample_bm25.work_root, bi_encoder={"rerank_depth": 2, "encode_batch_size": 16}
    )
    options = ["--vectors", "300", "--dimension", "8", "--queries", "5", "--k", "4", "--repeats", "1"]
    model = tmp_path / "e5"  # a copy: the exports are written beside the model
    shutil.copytree(packaged_e5, model)
    assert main(["--config", str(config), "--model", str(model), "--out", str(tmp_path / "o"), *options]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "| sentence-transformers |" in report and "| openvino-fp32 |" in report and report in capsys.readouterr().out
    record = json.loads((tmp_path / "o" / "report.json").read_text())
    assert record["unit"] == "passages" and record["flops"] > 0 and record["matmul_peak"]["float32"] > 0
    for name in ("sentence-transformers", "fp32", "onnx-fp32", "openvino-fp32", "onnx-int8"):
        assert "seconds" in record["results"][name], record["results"][name]  # ran, not failed
    changes = record["largest_ndcg_change"]
    assert changes["fp32"] == 0 and changes["sentence-transformers"] <= 1e-3  # the same float32 model twice
    assert changes["onnx-fp32"] <= 1e-3 and changes["openvino-fp32"] <= 1e-3
    search = json.loads((tmp_path / "o" / "search.json").read_text())["search"]
    assert search["same_ids"] == 1.0 and set(search["rate"]) == {"ours", "baseline"}
