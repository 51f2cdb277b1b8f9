"""DataFormatError keeps its file, line and message, also across a process boundary."""

import pickle
from pathlib import Path

from stages.formats import DataFormatError


def test_message_names_file_and_line():
    err = DataFormatError("a/topics.tsv", 3, "expected qid<TAB>query")
    assert str(err) == "a/topics.tsv:3: expected qid<TAB>query"
    assert str(DataFormatError("a/docs", None, "no files")) == "a/docs: no files"


def test_survives_pickling_as_worker_processes_send_it():
    err = pickle.loads(pickle.dumps(DataFormatError("a/qrels.tsv", 7, "expected 4 fields")))
    assert (err.path, err.line, err.message) == (Path("a/qrels.tsv"), 7, "expected 4 fields")
    assert str(err) == "a/qrels.tsv:7: expected 4 fields"
