"""precision: auto is decided by this machine's measured matmul rates, once, and explicit settings win."""

import pytest
import torch

from stages.config import ConfigError
from stages.models import precision


@pytest.fixture()
def rates(monkeypatch):
    """Fake measurements: each call of measure_matmul is counted and answers from `values`."""
    values, calls = {"float32": 100.0, "bfloat16": 300.0}, []

    def measure(name, *args, **kwargs):
        calls.append(name)
        return values[name]

    monkeypatch.setattr(precision, "measure_matmul", measure)
    monkeypatch.setattr(precision, "_cuda", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    return values, calls


def test_auto_takes_bf16_where_it_measured_at_least_the_margin_faster(tmp_path, rates):
    assert precision.resolve("auto", tmp_path) == "bf16"
    (record,) = (tmp_path / ".machine").glob("matmul-*.json")
    assert '"bfloat16": 300.0' in record.read_text()


def test_auto_keeps_fp32_where_bf16_is_slow_or_barely_faster(tmp_path, rates):
    values, _ = rates
    values["bfloat16"] = 0.3  # a CPU without a fast bf16 kernel
    assert precision.resolve("auto", tmp_path / "slow") == "fp32"
    values["bfloat16"] = 140.0  # faster, but under the margin
    assert precision.resolve("auto", tmp_path / "close") == "fp32"


def test_the_measurement_is_recorded_once_per_machine(tmp_path, rates):
    _, calls = rates
    precision.resolve("auto", tmp_path)
    precision.resolve("auto", tmp_path)
    assert calls == ["float32", "bfloat16"]


def test_an_explicit_precision_is_never_measured(tmp_path, rates):
    _, calls = rates
    assert [precision.resolve(p, tmp_path) for p in ("bf16", "fp32", "fp16")] == ["bf16", "fp32", "fp16"]
    assert calls == []
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp16, fp32"):
        precision.resolve("int8", tmp_path)


def test_autocast_computes_in_bf16_and_fp32_is_left_alone():
    import torch

    a = torch.randn(8, 8)
    with precision.autocast("bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with precision.autocast("fp32"):
        assert (a @ a).dtype == torch.float32


def test_a_real_measurement_gives_positive_rates():
    assert precision.measure_matmul("float32", size=64, seconds=0.01) > 0


@pytest.mark.slow
def test_bf16_reranking_ranks_as_fp32_does(packaged_e5):
    from stages.models.cross_encoder import load_model, score_pairs

    # e5-small under a new seeded head: real features, so the passages' scores differ by more than bf16's error
    torch.manual_seed(13)
    model = load_model(packaged_e5, 64)
    pairs = [
        ("Nile river", text)
        for text in (
            "The Nile river flows north.",
            "Cats sleep many hours.",
            "The moon causes tides.",
            "Mto Nile ni mto mrefu.",
            "Bread needs yeast.",
        )
    ]
    fp32 = score_pairs(model, pairs, 8, precision="fp32")
    bf16 = score_pairs(model, pairs, 8, precision="bf16")
    error = max(abs(a - b) for a, b in zip(fp32, bf16))
    assert error < 0.05  # bf16 keeps 8 bits of mantissa
    # An untrained model nearly ties some passages: the order may swap only where fp32 is within the error.
    for i in range(5):
        for j in range(5):
            if fp32[i] - fp32[j] > 2 * error:
                assert bf16[i] > bf16[j], (fp32, bf16)
    assert sum(fp32[i] - fp32[j] > 2 * error for i in range(5) for j in range(5)) >= 4  # the check has pairs to check
