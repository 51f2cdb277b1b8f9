"""make bench-index at a small size: the table's rows, exact recall where the search is exhaustive, and the
compressed index's smaller memory."""

import json

import numpy as np

from stages.benchmarks.index import main
from stages.benchmarks.indexes import clustered_vectors, recall
from stages.config import IndexBenchParams
from tests.helpers import write_config


def test_the_synthetic_vectors_are_unit_length_and_clustered_around_their_centres():
    params = IndexBenchParams(vectors=500, dimension=32, clusters=5, spread=1.0)
    vectors, labels = clustered_vectors(500, params, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    similarity = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None, :]
    assert similarity[same].mean() > 0.3 and abs(similarity[different].mean()) < 0.1


def test_recall_counts_the_exact_ids_found_per_query():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall(found, exact) == (2 / 4 + 4 / 4) / 2


def test_a_small_run_reports_every_index_and_setting(tmp_path):
    bench = {
        "vectors": 4000,
        "dimension": 32,
        "clusters": 20,
        "queries": 50,
        "hits": 20,
        "train_size": 2000,
        "repeats": 1,
        "indexes": [
            {"factory": "Flat"},
            {"factory": "IVF16,Flat", "search": ["nprobe=1", "nprobe=16"]},
            {"factory": "IVF16,PQ8", "search": ["nprobe=16"]},
        ],
    }
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", bench_index=bench)
    assert main(["--config", str(config), "--out", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())["results"]
    assert report["Flat"]["search"][""]["recall"] == 1.0
    assert report["IVF16,Flat"]["search"]["nprobe=16"]["recall"] > 0.99  # every list probed: exact but for ties
    assert report["IVF16,Flat"]["search"]["nprobe=1"]["recall"] < report["IVF16,Flat"]["search"]["nprobe=16"]["recall"]
    flat, pq = report["IVF16,Flat"]["mb_per_million"], report["IVF16,PQ8"]["mb_per_million"]
    assert pq < flat / 4  # 8 bytes of codes per vector against 128 of floats (ids and centroids besides)
    assert all(row["qps"] > 0 for r in report.values() for row in r["search"].values())
    table = (tmp_path / "o" / "report.md").read_text()
    assert table.count("\n| IVF16,Flat | nprobe=") == 2 and "| IVF16,PQ8 | nprobe=16 |" in table
