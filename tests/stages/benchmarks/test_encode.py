"""The encoding benchmark compares like with like: same embeddings, same top-k, a report in the right place."""

import json

import numpy as np
import pytest

from stages.benchmarks.encode import baseline_encode, bench_texts, main, numpy_top_k, padding_share
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


def test_texts_are_seeded_and_of_the_asked_lengths():
    words = [f"w{i}" for i in range(50)]
    texts = bench_texts(words, 30, 3, 9, seed=1)
    assert texts == bench_texts(words, 30, 3, 9, seed=1) and texts != bench_texts(words, 30, 3, 9, seed=2)
    assert all(3 <= len(t.split()) <= 9 for t in texts)


def test_the_baseline_gives_the_embeddings_of_bi_model_encode(student):
    from stages.models.bi_encoder import encode, load_encoder

    model = load_encoder(student)
    texts = bench_texts(["Mto", "Nile", "ni", "mrefu", "Afrika", "river", "the"], 7, 1, 40, seed=3)
    ours = encode(model, texts, "document", batch_size=3)
    np.testing.assert_allclose(baseline_encode(model, texts, batch_size=3), ours, atol=1e-5)
    assert padding_share(model, texts, 3, sort=True) <= padding_share(model, texts, 3, sort=False)


def test_numpy_top_k_matches_faiss():
    rng = np.random.default_rng(0)
    vectors, queries = rng.standard_normal((500, 16), dtype=np.float32), rng.standard_normal((9, 16), dtype=np.float32)
    scores, ids = numpy_top_k(queries, vectors, 7)
    faiss_scores, faiss_ids = search_exact(queries, [vectors], 7)
    assert np.array_equal(ids, faiss_ids)
    np.testing.assert_allclose(scores, faiss_scores, rtol=1e-5, atol=1e-5)


def test_a_small_run_writes_the_table_and_the_numbers(student, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w")
    assert (
        main(
            [
                "--config",
                str(config),
                "--model",
                str(student),
                "--passages",
                "12",
                "--batch-size",
                "4",
                "--vectors",
                "300",
                "--dimension",
                "8",
                "--queries",
                "5",
                "--k",
                "4",
                "--repeats",
                "1",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    report = (tmp_path / "out" / "results.md").read_text()
    assert "| encoding" in report and "| exact search" in report and report in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["encoding"]["max_abs_difference"] < 1e-4 and results["search"]["same_ids"] == 1.0
    assert set(results["encoding"]["rate"]) == set(results["search"]["rate"]) == {"ours", "baseline"}
