"""Dense retrieval: exact sharded search, approximate indexes, resumable float16 shards, the stage end to end,
and ColBERT-style MaxSim retrieval over token vectors."""

import hashlib
import json
import os

import numpy as np
import pytest

from stages.config import ConfigError, ExecutorParams, StudentParams, load_config
from stages.data.passages import passage_text
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, iter_corpus, read_run
from stages.formats.runs import read_metadata
from stages.retrieval.dense import (
    Encoder,
    ShardUnit,
    TokenCollection,
    apply_search_settings,
    build_index,
    collection_dir,
    dense_language,
    dense_splits,
    encode_collection,
    read_shards,
    read_token_shards,
    search_exact,
    search_index,
    search_maxsim,
    shard_paths,
    write_shard,
)
from tests.helpers import make_release, write_config


def brute_force(queries, vectors, k):
    """numpy's top-k: full score matrix, argpartition, then sort (score descending, row ascending)."""
    scores = queries.astype(np.float32) @ vectors.astype(np.float32).T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=-1)
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


def random_vectors(rows, dim, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_sharded_exact_search_equals_brute_force(dtype):
    vectors, queries = random_vectors(1000, 32, 1, dtype), random_vectors(40, 32, 2)
    shards = [vectors[:300], vectors[300:301], vectors[301:700], vectors[700:]]
    scores, rows = search_exact(queries, shards, 25)
    expected_scores, expected_rows = brute_force(queries, vectors, 25)
    assert np.array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    # Merging shards changes nothing: the same ids and bit-identical scores as one faiss index.
    whole_scores, whole_rows = search_exact(queries, [vectors], 25)
    assert np.array_equal(rows, whole_rows) and np.array_equal(scores, whole_scores)


def test_exact_search_with_fewer_vectors_than_k_leaves_empty_slots():
    vectors, queries = random_vectors(5, 8, 3), random_vectors(2, 8, 4)
    scores, rows = search_exact(queries, [vectors[:2], vectors[2:]], 8)
    assert (rows[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert np.array_equal(rows[:, :5], brute_force(queries, vectors, 5)[1])


@pytest.fixture()
def one_thread():
    """faiss builds HNSW graphs in parallel, in an order that varies; one thread makes the graph repeatable."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def test_approximate_indexes_with_exhaustive_settings_find_the_exact_top_k(one_thread):
    vectors, queries = random_vectors(600, 16, 5, np.float16), random_vectors(30, 16, 6)
    shards = [vectors[:250], vectors[250:]]
    expected_scores, expected_rows = brute_force(queries, vectors, 10)
    ivf = apply_search_settings(build_index("IVF8,Flat", shards, train_size=400), "nprobe=8")  # every list probed
    hnsw = apply_search_settings(build_index("HNSW16", shards, train_size=1), "efSearch=600")
    for index in (ivf, hnsw):
        scores, rows = search_index(index, queries, 10)
        assert np.array_equal(rows, expected_rows)
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    assert ivf.nprobe == 8 and hnsw.hnsw.efSearch == 600


def test_a_compressed_index_is_trained_on_the_sample_and_ranks_close_to_exact(one_thread):
    vectors, queries = random_vectors(2000, 16, 7, np.float16), random_vectors(20, 16, 8)
    index = apply_search_settings(build_index("IVF4,PQ8", [vectors], train_size=1000), "nprobe=4")
    assert index.is_trained and index.ntotal == 2000 and index.nprobe == 4
    _, rows = search_index(index, queries, 10)
    _, exact = brute_force(queries, vectors, 10)
    assert np.mean([len(set(r) & set(e)) / 10 for r, e in zip(rows, exact)]) > 0.5  # PQ8: 2 dims per code


def test_index_errors_name_the_setting_and_faiss_s_reason():
    vectors = random_vectors(50, 16, 9)
    with pytest.raises(ConfigError, match=r"bi_encoder\.dense\.index 'IVF4,Blah' .*could not parse"):
        build_index("IVF4,Blah", [vectors], train_size=50)
    with pytest.raises(ConfigError, match=r"'PQ5' .*multiple of the number of subquantizers"):
        build_index("PQ5", [vectors], train_size=50)
    with pytest.raises(ConfigError, match=r"cannot be trained on 50 vectors .*at least as large as number of clusters"):
        build_index("IVF64,Flat", [vectors], train_size=1000)
    with pytest.raises(ConfigError, match=r"bi_encoder\.dense\.search 'efSearch=3' .*could not set parameter efSearch"):
        apply_search_settings(build_index("IVF2,Flat", [vectors], train_size=50), "efSearch=3")


# ---------------------------------------------------------------- float16 shards, resumable


def fake_vectors(texts):
    """A deterministic stand-in encoder: 8 numbers per text from its hash."""
    rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) for t in texts]
    return (np.array(rows, dtype=np.float32) - 128) / 64


class CountingEncoder:
    def __init__(self, fail_after=None):
        self.calls, self.fail_after = [], fail_after

    def __call__(self, texts):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls.append(list(texts))
        return fake_vectors(texts)


def corpus_of(tmp_path, count):
    passages = {"en": [(f"{i}#0", f"Title {i}", f"passage number {i}") for i in range(count)]}
    return make_release(tmp_path / "rel", passages).corpus_dir("en")


IDENTITY = {"model": "m", "model_sha256": "a" * 64, "shard_size": 4, "corpus": {"docs-0.jsonl": "b" * 64}}


def shards_of(directory, manifest):
    shards, docids = read_shards(directory, manifest)
    return np.concatenate(shards), docids


def test_an_interrupted_encoding_resumes_at_the_first_missing_shard(tmp_path):
    corpus = corpus_of(tmp_path, 10)  # shards of 4, 4, 2
    fresh = encode_collection(corpus, tmp_path / "fresh", IDENTITY, 4, CountingEncoder())
    with pytest.raises(KeyboardInterrupt):
        encode_collection(corpus, tmp_path / "resumed", IDENTITY, 4, CountingEncoder(fail_after=1))
    assert [p.is_file() for p in shard_paths(tmp_path / "resumed", 0) + shard_paths(tmp_path / "resumed", 1)] == [
        True,
        True,
        False,
        False,
    ]
    encoder = CountingEncoder()
    resumed = encode_collection(corpus, tmp_path / "resumed", IDENTITY, 4, encoder)
    assert [len(c) for c in encoder.calls] == [4, 2]  # shards 1 and 2 only
    assert resumed == fresh == {**IDENTITY, "dimension": 8, "passages": 10, "shards": 3, "complete": True}
    vectors, docids = shards_of(tmp_path / "resumed", resumed)
    fresh_vectors, fresh_docids = shards_of(tmp_path / "fresh", fresh)
    assert vectors.dtype == np.float16
    assert np.array_equal(vectors, fresh_vectors) and docids == fresh_docids == [f"{i}#0" for i in range(10)]
    np.testing.assert_allclose(vectors, fake_vectors([f"Title {i}: passage number {i}" for i in range(10)]), atol=1e-3)


def test_a_missing_shard_is_encoded_again_and_a_complete_collection_is_left_alone(tmp_path):
    corpus = corpus_of(tmp_path, 10)
    manifest = encode_collection(corpus, tmp_path / "d", IDENTITY, 4, CountingEncoder())
    encoder = CountingEncoder()
    assert encode_collection(corpus, tmp_path / "d", IDENTITY, 4, encoder) == manifest and encoder.calls == []
    shard_paths(tmp_path / "d", 2)[0].unlink()
    assert encode_collection(corpus, tmp_path / "d", IDENTITY, 4, encoder) == manifest
    assert [len(c) for c in encoder.calls] == [2]


def _die_while_writing_the_vectors(unit):
    """In a child process: write a shard, but exit (as a killed process does: no cleanup) in the middle of
    writing its vectors file."""

    def save_half(handle, array):
        handle.write(b"\x93NUMPY half a header")
        handle.flush()
        os._exit(1)

    np.save = save_half
    write_shard(unit, fake_vectors)


def test_a_worker_killed_while_writing_a_shard_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    import multiprocessing

    corpus = corpus_of(tmp_path, 10)
    fresh = encode_collection(corpus, tmp_path / "fresh", IDENTITY, 4, CountingEncoder())
    directory = tmp_path / "killed"
    encode_collection(corpus, directory, IDENTITY, 4, CountingEncoder())
    shard_paths(directory, 1)[0].unlink()
    (docids_path,) = [p for p in shard_paths(directory, 1) if p.name.endswith(".txt")]
    unit = ShardUnit(directory, 1, docids_path.read_text().split(), [f"passage {i}" for i in range(4)], False, "t")
    child = multiprocessing.get_context("fork").Process(target=_die_while_writing_the_vectors, args=(unit,))
    child.start()
    child.join()
    assert child.exitcode == 1
    assert [p.name for p in directory.glob(".*.tmp-*")] == [f".{shard_paths(directory, 1)[0].name}.tmp-{child.pid}"]
    assert not shard_paths(directory, 1)[0].exists()  # the shard is missing, not half-written
    encoder = CountingEncoder()
    resumed = encode_collection(corpus, directory, IDENTITY, 4, encoder)
    assert [len(c) for c in encoder.calls] == [4] and resumed == fresh
    assert not list(directory.glob(".*.tmp-*"))
    assert np.array_equal(shards_of(directory, resumed)[0], shards_of(tmp_path / "fresh", fresh)[0])


def test_on_ray_the_languages_of_a_stage_are_encoded_through_one_pool(tmp_path, monkeypatch):
    import stages.executors
    from stages.retrieval.dense import CollectionEncoding, encode_collections

    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    passages = {
        lang: [(f"{i}#0", f"{lang} {i}", f"passage {i} in {lang}") for i in range(n)]
        for lang, n in (("en", 6), ("sw", 3))
    }
    layout = make_release(tmp_path / "rel", passages)
    pools = []

    def one_pool(params, make_worker, units):  # Ray's pool, played here: which units it was sent, in one call
        pools.append([])
        worker = make_worker()
        for tagged in units:
            pools[-1].append((tagged[1].desc, tagged[1].number))
            yield worker(tagged)

    monkeypatch.setattr(stages.executors, "_ray_units", one_pool)
    encodings = [
        CollectionEncoding(layout.corpus_dir(lang), tmp_path / lang, IDENTITY, 4, lang) for lang in ("en", "sw")
    ]
    given = [encoding.desc for encoding in encode_collections(encodings, fake_vectors)]
    assert given == ["en", "sw"] and pools == [[("en", 0), ("en", 1), ("sw", 0)]]
    assert [e.manifest["passages"] for e in encodings] == [6, 3]
    for encoding, lang in zip(encodings, ("en", "sw")):
        alone = encode_collection(layout.corpus_dir(lang), tmp_path / f"{lang}-alone", IDENTITY, 4, fake_vectors)
        assert encoding.manifest == alone
        assert np.array_equal(shards_of(tmp_path / lang, alone)[0], shards_of(tmp_path / f"{lang}-alone", alone)[0])


def test_a_changed_model_or_corpus_encodes_from_scratch(tmp_path):
    corpus = corpus_of(tmp_path, 10)
    encode_collection(corpus, tmp_path / "d", IDENTITY, 4, CountingEncoder())
    (tmp_path / "d" / "stray.faiss").write_text("an index of the old vectors")
    encoder = CountingEncoder()
    encode_collection(corpus, tmp_path / "d", {**IDENTITY, "model_sha256": "c" * 64}, 4, encoder)
    assert [len(c) for c in encoder.calls] == [4, 4, 2]
    assert not (tmp_path / "d" / "stray.faiss").exists()


# ---------------------------------------------------------------- the stage end to end


@pytest.fixture(scope="module")
def bi_model(tiny_model, tmp_path_factory):
    from stages.models.bi_encoder import build_student

    path = tmp_path_factory.mktemp("bi") / "bi"
    # The fixture's model has 64 positions: passages are cut there.
    build_student(str(tiny_model), StudentParams(max_query_length=32, max_passage_length=64)).save(str(path))
    (path / "training.json").write_text(json.dumps({"step": "miracl"}))
    return path


def stage_config(tmp_path, bi_model, **dense):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_config(
        write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", bi_encoder={"dense": {"shard_size": 16, **dense}})
    )
    models = config.work_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (models / "bi").exists():
        (models / "bi").symlink_to(bi_model)
    return config


class Loads:
    def __init__(self):
        self.count = 0

    def __call__(self, path):
        from stages.models.bi_encoder import load_encoder

        self.count += 1
        return load_encoder(path)


def test_dense_runs_rank_the_whole_corpus_by_the_models_inner_product(tmp_path, bi_model):
    from stages.models.bi_encoder import encode

    config = stage_config(tmp_path, bi_model)
    layout = ReleaseLayout(config.data_root)
    assert dense_splits(config, "sw", None) == ["dev", "test-a"]  # train: the bi-encoder learned from it
    loads = Loads()
    encoder = Encoder(config.work_dir / "models" / "bi", batch_size=8, loader=loads)
    (out,) = dense_language(config, "sw", ["dev"], encoder)
    assert loads.count == 1 and out == config.run_path("dense", "sw", "dev")

    run, topics = read_run(out), layout.topics("sw", "dev")
    corpus = [p for _, _, p in iter_corpus(layout.corpus_dir("sw"))]
    docids = [p.docid for p in corpus]
    hits = min(config.bi_encoder.dense.hits, len(docids))
    assert set(run) == set(topics) and all(len(h) == hits for h in run.values())
    assert all(set(h) <= set(docids) for h in run.values())

    manifest = json.loads((collection_dir(config, "sw") / "manifest.json").read_text())
    assert manifest["passages"] == len(docids) and manifest["shards"] == -(-len(docids) // 16)
    stored, stored_ids = shards_of(collection_dir(config, "sw"), manifest)
    assert stored_ids == docids
    fresh = encode(encoder.model, [passage_text(p) for p in corpus], "document", 8)
    np.testing.assert_allclose(stored.astype(np.float32), fresh, rtol=1e-2, atol=1e-2)
    qids = list(topics)
    expected = encode(encoder.model, [topics[q] for q in qids], "query", 8) @ stored.astype(np.float32).T
    for qid, row in zip(qids, expected):
        ranked = sorted(run[qid].items(), key=lambda h: -h[1])
        top = np.sort(row)[::-1][:hits]
        np.testing.assert_allclose([s for _, s in ranked], top, rtol=1e-4, atol=1e-4)
        for docid, score in ranked:
            assert score == pytest.approx(row[docids.index(docid)], rel=1e-4, abs=1e-4)

    meta = read_metadata(out)
    assert meta["system"] == "dense" and meta["index"] == "flat" and meta["inputs"]["hits"] == 100
    again = Encoder(config.work_dir / "models" / "bi", batch_size=8, loader=Loads())
    assert dense_language(config, "sw", ["dev"], again) == [out] and not again.loaded


def test_approximate_indexes_are_built_once_and_searched_with_the_configured_settings(tmp_path, bi_model):
    flat = stage_config(tmp_path / "flat", bi_model)
    encoder = Encoder(flat.work_dir / "models" / "bi", batch_size=8)
    reference = read_run(dense_language(flat, "sw", ["dev"], encoder)[0])
    for dense in ({"index": "IVF4,Flat", "search": "nprobe=4"}, {"index": "HNSW16", "search": "efSearch=200"}):
        config = stage_config(tmp_path / dense["index"].replace(",", "_"), bi_model, **dense)
        (out,) = dense_language(config, "sw", ["dev"], encoder)
        run = read_run(out)
        assert set(run) == set(reference)
        if dense["index"].startswith("IVF"):  # every list probed: exactly the flat run
            assert {q: list(h) for q, h in run.items()} == {q: list(h) for q, h in reference.items()}
        for qid, hits in run.items():  # HNSW over inner products may miss a few passages, never misscore one
            assert len(hits) >= len(reference[qid]) // 2
            assert all(score == pytest.approx(reference[qid][d], rel=1e-5, abs=1e-5) for d, score in hits.items())
        index_file = collection_dir(config, "sw") / f"index.{dense['index'].replace(',', '_')}.faiss"
        built = index_file.stat().st_mtime_ns
        out.unlink()
        dense_language(config, "sw", ["dev"], encoder)
        assert index_file.stat().st_mtime_ns == built  # reused, not rebuilt
        assert read_metadata(out)["inputs"]["index"] == {
            "index": dense["index"],
            "train_size": config.bi_encoder.dense.train_size,
            "seed": 13,
            "search": dense["search"],
        }


def test_configuration_errors_name_the_key_or_the_missing_model(tmp_path, bi_model):
    with pytest.raises(ConfigError, match=r"bi_encoder\.dense\.index is empty"):
        dense_language(stage_config(tmp_path / "empty-index", bi_model, index=" "), "sw", ["dev"], Encoder(tmp_path, 8))
    with pytest.raises(ConfigError, match=r"bi_encoder\.dense: unknown key\(s\) ivf_lists"):  # the builders' keys went
        stage_config(tmp_path / "old-key", bi_model, ivf_lists=8)
    wrong = stage_config(tmp_path / "wrong", bi_model, index="IVF4,Flat", search="efSearch=3")
    with pytest.raises(ConfigError, match=r"bi_encoder\.dense\.search 'efSearch=3'"):
        dense_language(wrong, "sw", ["dev"], Encoder(wrong.work_dir / "models" / "bi", batch_size=8))
    config = load_config(write_config(tmp_path / "other.yaml", work_root=tmp_path / "empty"))
    with pytest.raises(InputDataError, match="make train-bi"):
        dense_language(config, "sw", ["dev"], Encoder(tmp_path, 8))


# ---------------------------------------------------------------- maxsim students: token vectors


def brute_force_maxsim(query, passages):
    """numpy's MaxSim of one query against every passage: each query token's best passage token, summed."""
    return np.array([(query @ p.T).max(axis=1).sum() for p in passages], dtype=np.float32)


def test_maxsim_search_with_every_token_hit_equals_brute_force_and_scores_fewer_candidates_exactly():
    rng = np.random.default_rng(7)
    lengths = [rng.integers(1, 6, size=4) for _ in range(3)]  # 3 shards of 4 passages, 1 to 5 tokens each
    shards = [random_vectors(int(n.sum()), 8, 10 + i, np.float16) for i, n in enumerate(lengths)]
    collection = TokenCollection(shards, [f"d{i}" for i in range(12)], lengths)
    passages = [collection.passage_tokens(r) for r in range(12)]
    assert np.array_equal(np.concatenate(passages), np.concatenate(shards).astype(np.float32))
    queries = [random_vectors(3, 8, 20), random_vectors(2, 8, 21)]

    def search_tokens(vectors, k):
        return search_exact(vectors, shards, k)

    scores, rows = search_maxsim(queries, collection, search_tokens, token_hits=1000, k=5)
    for query, srow, rrow in zip(queries, scores, rows):
        expected = brute_force_maxsim(query, passages)
        order = np.lexsort((np.arange(12), -expected))[:5]
        assert np.array_equal(rrow, order)
        np.testing.assert_allclose(srow, expected[order], rtol=1e-5, atol=1e-5)
    # One token hit each: only the passages owning a query token's nearest token are candidates, each scored exactly.
    scores, rows = search_maxsim(queries, collection, search_tokens, token_hits=1, k=5)
    for query, srow, rrow in zip(queries, scores, rows):
        found = rrow[rrow >= 0]
        assert 1 <= len(found) <= len(query) and np.isneginf(srow[len(found) :]).all()
        np.testing.assert_allclose(srow[: len(found)], brute_force_maxsim(query, passages)[found], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def maxsim_model(tiny_model, tmp_path_factory):
    from stages.models.bi_encoder import build_student

    path = tmp_path_factory.mktemp("maxsim") / "bi-maxsim"
    build_student(
        str(tiny_model),
        StudentParams(scoring="maxsim", token_dim=16, similarity="cosine", max_query_length=32, max_passage_length=64),
    ).save(str(path))
    (path / "training.json").write_text(json.dumps({"step": "miracl"}))
    return path


def test_a_maxsim_student_retrieves_the_passages_with_the_best_maxsim(tmp_path, maxsim_model):
    from stages.models.bi_encoder import encode_tokens

    config = stage_config(tmp_path, maxsim_model, maxsim_token_hits=100_000)  # every token a hit: exact
    layout = ReleaseLayout(config.data_root)
    encoder = Encoder(config.work_dir / "models" / "bi", batch_size=8, loader=Loads())
    (out,) = dense_language(config, "sw", ["dev"], encoder)
    run, topics = read_run(out), layout.topics("sw", "dev")
    corpus = [p for _, _, p in iter_corpus(layout.corpus_dir("sw"))]

    directory = collection_dir(config, "sw")
    manifest = json.loads((directory / "manifest.json").read_text())
    collection = read_token_shards(directory, manifest)
    assert manifest["scoring"] == "maxsim" and collection.docids == [p.docid for p in corpus]
    assert manifest["tokens"] == len(collection.owner) and manifest["dimension"] == 16
    fresh = encode_tokens(encoder.model, [passage_text(p) for p in corpus], "document", 8)
    stored = [collection.passage_tokens(r) for r in range(len(corpus))]
    assert [len(v) for v in stored] == [len(v) for v in fresh]
    np.testing.assert_allclose(np.concatenate(stored), np.concatenate(fresh), rtol=1e-2, atol=1e-2)

    qids = list(topics)
    for qid, query in zip(qids, encode_tokens(encoder.model, [topics[q] for q in qids], "query", 8)):
        expected = brute_force_maxsim(query, stored)
        assert len(run[qid]) == len(corpus)  # hits (100) beyond the 50 passages: every passage ranked
        for docid, score in run[qid].items():
            assert score == pytest.approx(expected[collection.docids.index(docid)], rel=1e-4, abs=1e-4)
    meta = read_metadata(out)
    assert meta["inputs"]["scoring"] == "maxsim" and meta["inputs"]["token_hits"] == 100_000
    again = Encoder(config.work_dir / "models" / "bi", batch_size=8, loader=Loads())
    assert dense_language(config, "sw", ["dev"], again) == [out] and not again.loaded

    few = stage_config(tmp_path / "few", maxsim_model, maxsim_token_hits=2)
    for qid, hits in read_run(dense_language(few, "sw", ["dev"], encoder)[0]).items():
        assert 1 <= len(hits) < len(corpus)  # candidates: the passages of each query token's 2 nearest tokens
        assert all(score == pytest.approx(run[qid][d], rel=1e-4, abs=1e-4) for d, score in hits.items())
    ivf = stage_config(tmp_path / "ivf", maxsim_model, maxsim_token_hits=100_000, index="IVF4,Flat", search="nprobe=4")
    ivf_run = read_run(dense_language(ivf, "sw", ["dev"], encoder)[0])  # every list probed: the flat run
    assert {q: list(h) for q, h in ivf_run.items()} == {q: list(h) for q, h in run.items()}


# ---------------------------------------------------------------- on Ray workers (EXECUTOR=ray)


class DiesAtPassage:
    """A picklable encoder whose worker process exits (as a killed one would) while encoding the shard that
    holds `text`, the first time only (a marker file remembers)."""

    def __init__(self, marker: str, text: str):
        self.marker, self.text = marker, text

    def __call__(self, texts):
        if self.text in texts and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return fake_vectors(texts)


class MustNotEncode:
    def __call__(self, texts):
        raise AssertionError("a second run encoded again")


@pytest.mark.slow
def test_ray_workers_write_the_local_shards_even_when_one_dies_and_a_second_run_does_nothing(
    local_ray, tmp_path, monkeypatch
):
    corpus = corpus_of(tmp_path, 14)
    local = encode_collection(corpus, tmp_path / "local", IDENTITY, 4, fake_vectors)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    marker = tmp_path / "killed"
    dies = DiesAtPassage(str(marker), passage_text(next(p for _, _, p in iter_corpus(corpus) if p.docid == "9#0")))
    on_ray = encode_collection(corpus, tmp_path / "ray", IDENTITY, 4, dies, executor=ExecutorParams(cpus_per_worker=1))
    assert marker.exists()  # the worker died in shard 2 and the shard was encoded again
    assert on_ray == local
    vectors, docids = shards_of(tmp_path / "ray", on_ray)
    expected_vectors, expected_docids = shards_of(tmp_path / "local", local)
    assert docids == expected_docids and np.array_equal(vectors, expected_vectors)
    assert not list((tmp_path / "ray").glob(".*.tmp-*"))  # nothing half-written left beside the shards
    assert (
        encode_collection(corpus, tmp_path / "ray", IDENTITY, 4, MustNotEncode(), executor=ExecutorParams()) == on_ray
    )


@pytest.mark.slow
def test_the_dense_stage_on_ray_writes_the_local_vectors_and_runs(local_ray, tmp_path, bi_model, monkeypatch):
    runs, stored = {}, {}
    for executor in ("local", "ray"):
        monkeypatch.setenv("PIPELINE_EXECUTOR", executor)
        config = stage_config(tmp_path / executor, bi_model)
        (out,) = dense_language(config, "sw", ["dev"], Encoder(config.work_dir / "models" / "bi", batch_size=8))
        runs[executor] = read_run(out)
        directory = collection_dir(config, "sw")
        stored[executor] = shards_of(directory, json.loads((directory / "manifest.json").read_text()))
    assert stored["ray"][1] == stored["local"][1]  # the same passages in the same rows
    np.testing.assert_allclose(stored["ray"][0], stored["local"][0], rtol=0, atol=1e-6)
    assert {q: list(h) for q, h in runs["ray"].items()} == {q: list(h) for q, h in runs["local"].items()}
    assert runs["ray"] == runs["local"]
