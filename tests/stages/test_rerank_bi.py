"""The bi-encoder reranker scores exactly BM25's candidates by the model's inner product (MaxSim for a
maxsim student), resumes, and writes the local run on Ray workers."""

import json

import numpy as np
import pytest

from stages.config import StudentParams, load_config
from stages.formats import read_run, write_run
from stages.retrieval.rerank_bi import rerank, rerank_language
from tests.helpers import TINY_LANGUAGES, assert_same_runs, make_release, run_stamps, write_config


class BagOfWords:
    """A stand-in encoder: a query or passage is the count of each vocabulary word, so dot products are known."""

    VOCAB = ["nile", "river", "mountain", "africa"]
    similarity_fn_name = "dot"

    def __init__(self):
        self.encoded = 0

    def encode_query(self, texts, **kwargs):
        return self.encode_document(texts)

    def encode_document(self, texts, **kwargs):
        self.encoded += len(texts)
        return np.array([[t.lower().count(w) for w in self.VOCAB] for t in texts], dtype=np.float32)

    def get_embedding_dimension(self):
        return len(self.VOCAB)


def test_rerank_scores_each_candidate_by_the_dot_product():
    texts = {"a": "Nile river in Africa", "b": "a mountain", "c": "river river"}
    run = rerank(BagOfWords(), {"q1": "nile river", "q2": "mountain"}, {"q1": ["a", "b", "c"], "q2": ["b"]}, texts, 2)
    assert run == {"q1": {"a": 2.0, "b": 0.0, "c": 2.0}, "q2": {"b": 1.0}}


@pytest.fixture()
def tiny(tmp_path):
    make_release(tmp_path / "rel")
    config = load_config(
        write_config(
            tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages=TINY_LANGUAGES
        )
    )
    write_run(
        {"11": {"1#0": 2.0, "1#1": 1.0, "2#0": 0.5}, "12": {"2#0": 1.0, "2#1": 0.9}},
        config.run_path("bm25", "en", "dev"),
        tag="bm25",
    )
    return config


def test_a_trained_student_reranks_the_candidates_and_a_rerun_skips(tiny, tiny_model):
    from stages.models.bi_encoder import build_student, encode

    student = build_student(str(tiny_model), StudentParams(max_passage_length=64))
    path = tiny.work_dir / "models" / "bi"
    student.save(str(path))
    (path / "training.json").write_text(json.dumps({"step": "miracl"}))
    (out,) = rerank_language(tiny, "bi", "en", ["dev"], {"model": student})
    run = read_run(out)
    assert {q: set(h) for q, h in run.items()} == {"11": {"1#0", "1#1", "2#0"}, "12": {"2#0", "2#1"}}
    query = encode(student, ["highest mountain"], "query", 4)[0]
    passage = encode(student, ["Mountains: Kilimanjaro is the highest mountain in Africa."], "document", 4)[0]
    assert run["12"]["2#0"] == pytest.approx(float(query @ passage), rel=1e-5)

    class Refuses:
        def __getattr__(self, name):
            raise AssertionError("the model was used although the run is up to date")

    assert rerank_language(tiny, "bi", "en", ["dev"], {"model": Refuses()}) == [out]


def test_a_maxsim_student_reranks_by_maxsim_of_its_own_token_vectors(tiny, tiny_model):
    from stages.models.bi_encoder import build_student, encode_tokens, is_multi_vector, load_encoder

    student = build_student(
        str(tiny_model), StudentParams(scoring="maxsim", token_dim=16, similarity="cosine", max_passage_length=64)
    )
    path = tiny.work_dir / "models" / "bi"
    student.save(str(path))
    (path / "training.json").write_text(json.dumps({"step": "miracl"}))
    cache = {}
    (out,) = rerank_language(tiny, "bi", "en", ["dev"], cache)  # loads the saved folder
    assert is_multi_vector(cache["model"])
    run = read_run(out)
    assert {q: set(h) for q, h in run.items()} == {"11": {"1#0", "1#1", "2#0"}, "12": {"2#0", "2#1"}}
    (query,) = encode_tokens(student, ["highest mountain"], "query", 4)
    passages = encode_tokens(
        student,
        [
            "Mountains: Kilimanjaro is the highest mountain in Africa.",
            "Mountains: Everest lies on the border of Nepal and China.",
        ],
        "document",
        4,
    )
    for docid, passage in zip(("2#0", "2#1"), passages):
        expected = (query @ passage.T).max(axis=1).sum()  # each query token's best passage token, summed
        assert run["12"][docid] == pytest.approx(float(expected), rel=1e-4)
    assert rerank(load_encoder(path, device="cpu"), {"q": "highest mountain"}, {"q": []}, {}, 2) == {"q": {}}


@pytest.mark.slow
def test_ray_workers_write_the_local_run_and_a_second_run_does_nothing(local_ray, tiny, tiny_model, monkeypatch):
    import stages.executors
    from stages.models.bi_encoder import build_student

    path = tiny.work_dir / "models" / "bi"
    build_student(str(tiny_model), StudentParams(max_passage_length=64)).save(str(path))
    (path / "training.json").write_text(json.dumps({"step": "miracl"}))
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    paths = rerank_language(tiny, "bi", "en", ["dev"], {})
    local = [read_run(p) for p in paths]
    paths[0].unlink()
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    cache = {}
    assert rerank_language(tiny, "bi", "en", ["dev"], cache) == paths and cache == {}  # loaded in the worker
    assert_same_runs(paths, local)
    before = run_stamps(paths)

    def refuse_units(*args):
        raise AssertionError("units were submitted although the run is up to date")

    monkeypatch.setattr(stages.executors, "start_ray", refuse_units)  # no Ray is started, so no worker is asked
    assert rerank_language(tiny, "bi", "en", ["dev"], cache) == paths
    assert run_stamps(paths) == before and cache == {}
