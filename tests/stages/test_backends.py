"""Inference backends: each ranks a small set as float32 torch does, within its stated tolerance; exports are
cached by the source's hash and rebuilt when the source changes; auto picks by measurement, once."""

import json

import numpy as np
import pytest

from stages.config import ConfigError, InferenceParams, StudentParams
from stages.models import backends, precision
from stages.models.backends import choose, pick, spearman, use_backend

PAIRS = [
    ("where does the Nile flow", "The Nile river flows north through Egypt."),
    ("where does the Nile flow", "Bread needs yeast and flour."),
    ("what causes tides", "The moon causes tides."),
    ("what causes tides", "Cats sleep many hours."),
    ("mlima mrefu", "Kilimanjaro ni mlima mrefu."),
    ("mlima mrefu", "Mto Nile ni mto mrefu zaidi barani Afrika."),
    ("bread", "Bread needs yeast and flour. The moon causes tides."),
    ("cats", "Cats sleep many hours, and the Nile flows north."),
]
# Tolerances. The float32 engines compute the same function, rounding aside: scores within FLOAT_ATOL and
# the same ranking. The reduced precisions round every product: their scores stay within a share of the
# scores' scale (bf16: 8 bits of mantissa; int8: 8-bit values quantized per tensor), which keeps no
# ranking of scores as close as this random tiny model's. On the trained e5-small, int8's rank correlation
# was 0.83 on the sample: auto refuses a backend below inference.min_rank_correlation (test_auto_...), and
# make bench-rerank reports each backend's nDCG change.
FLOAT_ATOL = 1e-4
RANK_CORRELATION = 0.999
RELATIVE = {"bf16": 0.01, "onnx-int8": 0.05}


def assert_within_tolerance(backend, scores, reference):
    if backend in RELATIVE:
        assert np.abs(scores - reference).max() <= RELATIVE[backend] * np.abs(reference).max()
    else:
        np.testing.assert_allclose(scores, reference, atol=FLOAT_ATOL)
        assert spearman(scores, reference) >= RANK_CORRELATION


@pytest.fixture(scope="module")
def cross_encoder(tiny_model, tmp_path_factory):
    """A cross-encoder over the tiny model (seeded head), saved: backends export from a folder."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("backends") / "ce"
    CrossEncoder(str(tiny_model), num_labels=1, max_length=64).save(str(path))
    return path


@pytest.fixture(scope="module", params=["shared", "two-towers"])
def student(tiny_model, tmp_path_factory, request):
    """A student with one tower, or a query and a passage tower (a Router: two exports)."""
    from stages.models.bi_encoder import build_student

    path = tmp_path_factory.mktemp("backends") / "bi"
    params = StudentParams(max_query_length=32, max_passage_length=64, shared_towers=request.param == "shared")
    build_student(str(tiny_model), params).save(str(path))
    return path


def ce_scores(model, backend, path):
    from stages.models.cross_encoder import score_pairs

    return np.array(score_pairs(model, PAIRS, 3, "test", use_backend(model, path, backend)))


def bi_scores(model, backend, path):
    from stages.models.bi_encoder import encode

    torch_precision = use_backend(model, path, backend)
    queries = encode(model, [q for q, _ in PAIRS], "query", 3, precision=torch_precision)
    passages = encode(model, [p for _, p in PAIRS], "document", 3, precision=torch_precision)
    return (queries * passages).sum(axis=1), passages


@pytest.mark.parametrize("backend", ["onnx-fp32", "openvino-fp32", "onnx-int8", "bf16"])
def test_every_backend_scores_the_cross_encoder_pairs_like_fp32(cross_encoder, backend):
    from stages.models.cross_encoder import load_model

    model = load_model(cross_encoder, 64)
    reference = ce_scores(model, "fp32", cross_encoder)
    scores = ce_scores(model, backend, cross_encoder)
    assert_within_tolerance(backend, scores, reference)
    if backend.endswith("fp32"):
        assert list(np.argsort(-scores)) == list(np.argsort(-reference))
    assert np.array_equal(ce_scores(model, "fp32", cross_encoder), reference)  # fp32 puts torch back


@pytest.mark.parametrize("backend", ["onnx-fp32", "openvino-fp32", "onnx-int8"])
def test_every_backend_encodes_like_fp32(student, backend):
    from stages.models.bi_encoder import load_encoder

    model = load_encoder(student)
    reference, reference_vectors = bi_scores(model, "fp32", student)
    scores, vectors = bi_scores(model, backend, student)
    assert_within_tolerance(backend, scores, reference)
    if backend.endswith("fp32"):
        np.testing.assert_allclose(vectors, reference_vectors, atol=FLOAT_ATOL)


def test_an_exported_backend_refuses_a_model_not_in_float32_on_the_cpu(cross_encoder):
    import torch

    from stages.models.cross_encoder import load_model

    model = load_model(cross_encoder, 64)
    model.model.to(torch.bfloat16)  # as a GPU host loads it
    with pytest.raises(ConfigError, match="runs on the CPU from float32 weights.*use bf16 or fp32"):
        use_backend(model, cross_encoder, "onnx-fp32")


def test_an_export_is_cached_and_rebuilt_when_its_source_changes(cross_encoder, tmp_path):
    import shutil

    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.models.cross_encoder import load_model

    path = tmp_path / "ce"
    shutil.copytree(cross_encoder, path)
    model = load_model(path, 64)
    before = ce_scores(model, "onnx-fp32", path)
    (first,) = (tmp_path / ".exports" / "ce").glob("onnx-fp32-0-*")
    stamp = (first / "model.onnx").stat().st_mtime_ns
    use_backend(load_model(path, 64), path, "onnx-fp32")
    assert (first / "model.onnx").stat().st_mtime_ns == stamp  # reused, not exported again

    changed = CrossEncoder(str(path), num_labels=1, max_length=64)
    head = getattr(changed.model.classifier, "out_proj", changed.model.classifier)
    with torch.no_grad():  # the same model with its score negated: its ranking reversed
        head.weight.mul_(-1)
        head.bias.mul_(-1)
    changed.save(str(path))
    model = load_model(path, 64)
    after = ce_scores(model, "onnx-fp32", path)
    (second,) = (tmp_path / ".exports" / "ce").glob("onnx-fp32-0-*")
    assert second != first and not first.exists()  # the stale export is gone
    np.testing.assert_allclose(after, ce_scores(model, "fp32", path), atol=FLOAT_ATOL)
    assert spearman(after, before) < 0
    assert json.loads((second / "source.json").read_text())["source_sha256"] == backends.source_sha256(path)


def test_pick_takes_the_fastest_backend_that_ranks_like_fp32():
    params = InferenceParams(min_rank_correlation=0.99, speed_margin=1.05)
    results = {
        "fp32": {"items_per_second": 10.0, "rank_correlation": 1.0},
        "openvino-fp32": {"items_per_second": 12.0, "rank_correlation": 1.0},
        "onnx-fp32": {"items_per_second": 11.0, "rank_correlation": 1.0},
        "onnx-int8": {"items_per_second": 20.0, "rank_correlation": 0.84},  # fast, but ranks differently
        "bf16": {"error": "RuntimeError: no kernel"},
        "fp16": {"skipped": "float16 on a CPU: no fast kernels"},
    }
    assert pick(results, params) == "openvino-fp32"
    results["openvino-fp32"]["items_per_second"] = 10.4  # within the margin of fp32: not worth a change
    results["onnx-fp32"]["items_per_second"] = 10.3
    assert pick(results, params) == "fp32"
    results["onnx-int8"]["rank_correlation"] = 0.995
    assert pick(results, params) == "onnx-int8"


@pytest.fixture()
def no_matmul_timing(monkeypatch):
    monkeypatch.setattr(precision, "measure_matmul", lambda name, *a, **k: {"float32": 100.0, "bfloat16": 1.0}[name])
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)


def test_auto_measures_once_per_machine_and_model_and_records_it(cross_encoder, tmp_path, no_matmul_timing):
    from stages.models.cross_encoder import load_model, score_pairs

    calls = []

    def calibrate():
        calls.append(1)
        score = lambda model, p: np.array(score_pairs(model, PAIRS, 4, "calibrate", p))  # noqa: E731
        return load_model(cross_encoder, 64), score, len(PAIRS), "the test pairs"

    params = InferenceParams(min_rank_correlation=0.99, speed_margin=1.05)
    first = choose("auto", tmp_path, cross_encoder, "cross-encoder", params, calibrate)
    assert choose("auto", tmp_path, cross_encoder, "cross-encoder", params, calibrate) == first
    assert calls == [1]
    (record_path,) = (tmp_path / ".machine").glob("backend-ce-*.json")
    record = json.loads(record_path.read_text())
    assert record["choice"] == first and record["calibration"] == "the test pairs"
    assert "bfloat16 matmul measured slower" in record["results"]["bf16"]["skipped"]
    timed = {b: r for b, r in record["results"].items() if "items_per_second" in r}
    assert {"fp32", "onnx-fp32", "openvino-fp32", "onnx-int8"} <= set(timed)
    assert first == pick(record["results"], params)
    assert timed[first]["rank_correlation"] >= params.min_rank_correlation


def test_an_explicit_setting_is_never_measured_and_a_wrong_one_is_named(tmp_path):
    def calibrate():
        raise AssertionError("an explicit setting must not calibrate")

    for setting in ("fp32", "bf16", "openvino-fp32", "onnx-int8"):
        assert choose(setting, tmp_path, tmp_path, "cross-encoder", InferenceParams(), calibrate) == setting
    with pytest.raises(ConfigError, match="must be one of auto, fp32, bf16, fp16, onnx-fp32, openvino-fp32, onnx-int8"):
        choose("int4", tmp_path, tmp_path, "cross-encoder", InferenceParams(), calibrate)


def test_auto_without_a_bm25_run_means_fp32_this_time_and_records_nothing(
    cross_encoder, tmp_path, no_matmul_timing, capsys
):
    from stages.config import load_config
    from stages.retrieval.shortlist import choose_backend
    from tests.helpers import write_config

    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "w"))

    def load():
        raise AssertionError("nothing to calibrate on: the model is not loaded")

    assert choose_backend(config, "auto", cross_encoder, "cross-encoder", load, None) == "fp32"
    assert "no BM25 run to calibrate the inference backends on" in capsys.readouterr().out
    assert not list((tmp_path / "w" / ".machine").glob("backend-*.json"))


def test_the_calibration_slice_is_the_first_language_with_a_bm25_run_whoever_asks(tmp_path):
    from stages.config import load_config
    from stages.formats import write_run
    from stages.retrieval.shortlist import calibration_slice
    from tests.helpers import TINY_LANGUAGES, make_release, write_config

    make_release(tmp_path / "rel")
    config = load_config(
        write_config(
            tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages=TINY_LANGUAGES
        )
    )
    write_run(
        {"21": {"7#0": 2.0, "9#0": 1.0}, "22": {"9#0": 3.0, "7#0": 1.0}}, config.run_path("bm25", "sw", "dev"), "bm25"
    )
    topics, shortlist, texts, what = calibration_slice(config, 3)
    assert what.startswith("sw dev") and shortlist == {"21": ["7#0", "9#0"], "22": ["9#0"]}  # 3 pairs, ranked
    assert set(texts) == {"7#0", "9#0"} and topics["22"] == "Kilimanjaro"
    write_run({"13": {"1#1": 1.0}}, config.run_path("bm25", "en", "train"), "bm25")  # en comes first in the config
    assert calibration_slice(config, 3)[3] == "en train: top 8 BM25 candidates of 1 queries (1 pairs)"
