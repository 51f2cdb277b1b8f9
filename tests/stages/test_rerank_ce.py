"""Reranking keeps the candidate set, scores by the model, names missing passages, and resumes; on Ray workers
it writes the local runs."""

import json
from pathlib import Path

import numpy as np
import pytest

import stages.executors
from stages.config import Config, load_config
from stages.console import LanguageWork
from stages.data.passages import fetch_passages
from stages.formats import read_run, write_run
from stages.retrieval.rerank_ce import rerank, rerank_language
from stages.retrieval.shortlist import candidates
from tests.helpers import TINY_LANGUAGES, assert_same_runs, make_release, run_stamps, write_config


class WordOverlap:
    """A stand-in model whose score is the number of query words in the passage, so results are known."""

    def __init__(self):
        self.calls = []

    def predict(self, pairs, batch_size, **kwargs):
        self.calls.append([len(q) + len(p) for q, p in pairs])
        return np.array([float(sum(w.lower() in p.lower() for w in q.split())) for q, p in pairs])


def test_candidates_take_the_top_of_each_ranking():
    run = {"q": {"a": 1.0, "b": 3.0, "c": 3.0, "d": 0.5}}
    assert candidates(run, 3) == {"q": ["b", "c", "a"]}


def test_rerank_scores_exactly_the_candidates_in_length_sorted_batches():
    model = WordOverlap()
    texts = {"a": "Nile river in Africa", "b": "The Amazon", "c": "A very long passage about the Nile and its delta"}
    run = rerank(model, {"q1": "nile delta", "q2": "amazon"}, {"q1": ["a", "b", "c"], "q2": ["b"]}, texts, batch_size=2)
    assert run == {"q1": {"a": 1.0, "b": 0.0, "c": 2.0}, "q2": {"b": 1.0}}
    lengths = [n for batch in model.calls for n in batch]
    assert lengths == sorted(lengths) and [len(b) for b in model.calls] == [2, 2]


def test_a_candidate_missing_from_the_corpus_is_named(tmp_path):
    layout = make_release(tmp_path / "rel")
    with pytest.raises(Exception, match="1 docids of the run are not in the corpus .*: 9#9"):
        fetch_passages(layout.corpus_dir("en"), {"1#0", "9#9"})


@pytest.fixture()
def tiny(tmp_path):
    make_release(tmp_path / "rel")
    config = load_config(
        write_config(
            tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages=TINY_LANGUAGES
        )
    )
    for split, run in {
        "dev": {"11": {"1#0": 2.0, "1#1": 1.0, "2#0": 0.5}, "12": {"2#0": 1.0, "2#1": 0.9}},
        "train": {"13": {"1#1": 1.0}},
    }.items():
        write_run(run, config.run_path("bm25", "en", split), tag="bm25")
    model_dir = config.work_dir / "models" / "ce"
    model_dir.mkdir(parents=True)
    (model_dir / "training.json").write_text(json.dumps({"step": "miracl"}))
    return config


def test_a_rerun_keeps_finished_runs_and_redoes_only_a_missing_one(tiny):
    model = WordOverlap()
    paths = rerank_language(tiny, "ce", "en", ["dev", "train"], {"model": model})
    dev = read_run(paths[0])
    assert {q: set(h) for q, h in dev.items()} == {"11": {"1#0", "1#1", "2#0"}, "12": {"2#0", "2#1"}}
    assert next(iter(dev["12"])) == "2#0"  # "highest mountain": 2#0 has both words
    calls = len(model.calls)
    paths[1].unlink()
    rerank_language(tiny, "ce", "en", ["dev", "train"], {"model": model})
    assert len(model.calls) == calls + 1  # only the missing split was scored again
    assert paths[1].is_file() and read_run(paths[0]) == dev


def test_calibration_and_reranking_share_one_loaded_model(tiny, monkeypatch):
    import stages.models.backends
    import stages.retrieval.rerank_ce

    loaded, model = [], WordOverlap()

    def calibrating(setting, work_root, model_path, kind, params, calibrate):  # precision auto, measured now
        calibrated, score, _, _ = calibrate()
        score(calibrated, "fp32")
        return "fp32"

    monkeypatch.setattr(stages.models.backends, "choose", calibrating)
    monkeypatch.setattr(stages.retrieval.rerank_ce, "load_model", lambda path, max_length: loaded.append(path) or model)
    cache = {}
    rerank_language(tiny, "ce", "en", ["dev"], cache)
    assert len(loaded) == 1 and cache["model"] is model and len(model.calls) == 2  # calibrated, then reranked


# ---------------------------------------------------------------- on Ray workers (EXECUTOR=ray)


def trained_cross_encoder(tiny: Config, tiny_model: Path) -> Config:
    """`tiny` with a cross-encoder over the tiny model (seeded head) as models/ce, at the tiny model's length."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    path = tiny.work_dir / "models" / "ce"
    torch.manual_seed(3)
    CrossEncoder(str(tiny_model), num_labels=1, max_length=64).save(str(path))
    config_path = write_config(
        tiny.work_root.parent / "ray.yaml",
        data_root=tiny.data_root,
        work_root=tiny.work_root,
        languages=TINY_LANGUAGES,
        cross_encoder={"max_length": 64},
        executor={"cpus_per_worker": 1},  # a worker per CPU: both splits at once
    )
    return load_config(config_path)


def test_on_ray_the_stage_s_languages_share_one_pool_of_workers_and_each_gets_its_line(tiny, monkeypatch, capsys):
    import stages.executors
    from stages.retrieval.rerank_ce import rerank_batch
    from stages.retrieval.shortlist import rerank_batches

    write_run({"21": {"7#0": 1.0, "9#0": 0.5}, "22": {"9#0": 1.0}}, tiny.run_path("bm25", "sw", "dev"), tag="bm25")
    pools = []

    def one_pool(params, make_worker, units):  # Ray's pool, played here: which units it was sent, in one call
        pools.append([])
        worker = make_worker()
        for tagged in units:
            pools[-1].append(tagged[1].desc)
            yield worker(tagged)

    monkeypatch.setattr(stages.executors, "_ray_units", one_pool)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    cache = {"model": WordOverlap()}
    works = {lang: LanguageWork("rerank ce", lang) for lang in ("en", "sw")}
    batches = [rerank_batch(tiny, "ce", lang, ["dev"], cache, works[lang]) for lang in ("en", "sw")]
    assert [batch.lang for batch in rerank_batches(tiny, batches)] == ["en", "sw"]
    assert pools == [["en dev", "sw dev"]]  # one pool for the stage, fed both languages' splits
    assert read_run(tiny.run_path("ce", "sw", "dev"))["21"] == {"7#0": 3.0, "9#0": 2.0}
    assert works["en"].written == {"dev": 2} and works["sw"].written == {"dev": 2}
    assert works["sw"].counts == {"candidates scored": 3}


def refuse_units(*args):
    raise AssertionError("units were submitted although every run is up to date")


@pytest.mark.slow
def test_ray_workers_write_the_local_runs_and_a_second_run_does_nothing(local_ray, tiny, tiny_model, monkeypatch):
    config = trained_cross_encoder(tiny, tiny_model)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    paths = rerank_language(config, "ce", "en", ["dev", "train"], {})
    local = [read_run(p) for p in paths]
    for path in paths:
        path.unlink()
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    cache = {}
    assert rerank_language(config, "ce", "en", ["dev", "train"], cache) == paths
    assert cache == {}  # the model was loaded in the workers, not here
    assert_same_runs(paths, local)
    before = run_stamps(paths)
    work = LanguageWork("rerank ce", "en")
    monkeypatch.setattr(stages.executors, "start_ray", refuse_units)  # no Ray is started, so no worker is asked
    assert rerank_language(config, "ce", "en", ["dev", "train"], cache, work) == paths
    assert run_stamps(paths) == before and cache == {} and work.kept == ["dev", "train"] and not work.written
