"""The student's two kinds: MaxSim against hand values, a maxsim student built, saved and loaded back as such."""

import numpy as np
import pytest

from stages.config import ConfigError, StudentParams
from stages.models.bi_encoder import (
    build_student,
    encode_tokens,
    is_multi_vector,
    load_encoder,
    maxsim_scores,
    saved_multi_vector,
)

MAXSIM = StudentParams(scoring="maxsim", token_dim=8, similarity="cosine", max_query_length=32, max_passage_length=64)


def test_maxsim_sums_each_query_tokens_best_passage_token():
    query = np.array([[1.0, 0.0], [0.0, 1.0]])
    near = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    far = np.array([[-1.0, 0.0], [0.0, -1.0], [0.3, 0.4]])
    scores = maxsim_scores(query, [near, far])
    # near: token 1 max(1, 0.5, 0) = 1, token 2 max(0, 0.5, 2) = 2; far: max(-1, 0, 0.3) + max(0, -1, 0.4).
    assert scores == pytest.approx([1.0 + 2.0, 0.3 + 0.4], rel=1e-6)
    assert maxsim_scores(query, []).shape == (0,)


def test_a_maxsim_student_saves_and_loads_back_as_a_multi_vector_model(tiny_model, tmp_path):
    student = build_student(str(tiny_model), MAXSIM)
    assert is_multi_vector(student)
    student.save(str(tmp_path / "mv"))
    loaded = load_encoder(tmp_path / "mv", device="cpu")
    assert saved_multi_vector(tmp_path / "mv") and is_multi_vector(loaded)

    texts = ["Mto Nile ni mto mrefu zaidi barani Afrika.", "Kilimanjaro"]
    built, reloaded = encode_tokens(student, texts, "document", 4), encode_tokens(loaded, texts, "document", 4)
    assert [v.shape for v in reloaded] == [v.shape for v in built] and all(v.shape[1] == 8 for v in built)
    for a, b in zip(built, reloaded):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(built[0], axis=1), 1.0, rtol=1e-5)  # cosine: unit token vectors
    # Padding is not scored: the short text, padded in a batch with the long one, keeps exactly its own tokens.
    alone = encode_tokens(student, ["Kilimanjaro"], "document", 4)[0]
    np.testing.assert_allclose(built[1], alone, rtol=1e-5, atol=1e-6)
    assert len(built[1]) < len(built[0])


def test_a_single_vector_student_still_loads_as_a_sentence_transformer(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    build_student(str(tiny_model), StudentParams(max_passage_length=64)).save(str(tmp_path / "single"))
    assert not saved_multi_vector(tmp_path / "single") and not saved_multi_vector(tmp_path / "nothing-here")
    loaded = load_encoder(tmp_path / "single", device="cpu")
    assert type(loaded) is SentenceTransformer and not is_multi_vector(loaded)


def test_scoring_and_token_dim_errors_name_the_key(tiny_model):
    with pytest.raises(ConfigError, match=r"bi_encoder\.student\.scoring must be single or maxsim, got 'colbert'"):
        build_student(str(tiny_model), StudentParams(scoring="colbert"))
    with pytest.raises(ConfigError, match=r"bi_encoder\.student\.token_dim"):
        build_student(str(tiny_model), StudentParams(scoring="maxsim", token_dim=-1))
