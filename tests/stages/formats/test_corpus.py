import gzip
import json

import pytest

from stages.formats import DataFormatError, corpus_files, iter_corpus, read_corpus
from tests.helpers import write_lines


def doc(docid, title="T", text="body"):
    return json.dumps({"docid": docid, "title": title, "text": text}, ensure_ascii=False)


def test_reads_plain_and_gzipped_files_in_natural_order(tmp_path):
    write_lines(tmp_path / "docs-10.jsonl", [doc("10#0")])
    write_lines(tmp_path / "docs-2.jsonl", [doc("2#0")])
    with gzip.open(tmp_path / "docs-1.jsonl.gz", "wt", encoding="utf-8") as out:
        out.write(doc("1#0", "Ọ̀yọ́", "ìtàn") + "\n")
    assert [p.name for p in corpus_files(tmp_path)] == ["docs-1.jsonl.gz", "docs-2.jsonl", "docs-10.jsonl"]
    corpus = read_corpus(tmp_path)
    assert list(corpus) == ["1#0", "2#0", "10#0"]
    assert corpus["1#0"].title == "Ọ̀yọ́" and corpus["1#0"].contents == "Ọ̀yọ́\nìtàn"


def test_empty_title_is_allowed(tmp_path):
    write_lines(tmp_path / "docs-0.jsonl", [doc("1#0", title="")])
    assert read_corpus(tmp_path)["1#0"].title == ""


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"docid": "1#0", "title": "t", "text": ', "not valid JSON"),
        ('["1#0", "t", "x"]', "expected a JSON object, found list"),
        ('{"title": "t", "text": "x"}', "missing or empty 'docid'"),
        ('{"docid": "  ", "title": "t", "text": "x"}', "missing or empty 'docid'"),
        ('{"docid": "1#0", "title": "t"}', "docid '1#0': missing 'text'"),
        ('{"docid": "1#0", "text": "x"}', "docid '1#0': missing 'title'"),
        ("", "empty line"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, expected):
    path = write_lines(tmp_path / "docs-0.jsonl", [doc("0#0"), line])
    with pytest.raises(DataFormatError) as info:
        read_corpus(tmp_path)
    assert info.value.path == path and info.value.line == 2
    assert expected in str(info.value)


def test_duplicate_docid_names_both_places(tmp_path):
    write_lines(tmp_path / "docs-0.jsonl", [doc("5#0")])
    write_lines(tmp_path / "docs-1.jsonl", [doc("6#0"), doc("5#0")])
    with pytest.raises(DataFormatError, match=r"docs-1\.jsonl:2: duplicate docid '5#0' \(first at docs-0\.jsonl:1\)"):
        read_corpus(tmp_path)


def test_stray_files_and_empty_directories_are_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no .jsonl or .jsonl.gz files"):
        corpus_files(tmp_path)
    write_lines(tmp_path / "docs-0.jsonl", [doc("1#0")])
    write_lines(tmp_path / "README.txt", ["notes"])
    with pytest.raises(DataFormatError, match="unexpected entries README.txt"):
        corpus_files(tmp_path)


def test_iter_corpus_reports_where_each_passage_came_from(tmp_path):
    write_lines(tmp_path / "docs-0.jsonl", [doc("1#0"), doc("1#1")])
    assert [(p.name, n, d.docid) for p, n, d in iter_corpus(tmp_path)] == [
        ("docs-0.jsonl", 1, "1#0"),
        ("docs-0.jsonl", 2, "1#1"),
    ]
