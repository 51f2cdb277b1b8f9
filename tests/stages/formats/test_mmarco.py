"""mMARCO files as their users have them, and the project's parallel sample of them."""

import pytest

from stages.formats import DataFormatError
from stages.formats.mmarco import MMarcoLayout, iter_id_triples, iter_text_triples
from tests.helpers import REPO, write_lines

SAMPLE = MMarcoLayout(REPO / "data" / "mmarco-mini")
LANGUAGES = ["english", "spanish", "french", "indonesian", "russian", "chinese", "arabic"]


def test_layout_follows_mmarco():
    assert (
        SAMPLE.collection_path("french").relative_to(SAMPLE.root).as_posix()
        == "google/collections/french_collection.tsv"
    )
    assert (
        SAMPLE.queries_path("french").relative_to(SAMPLE.root).as_posix()
        == "google/queries/train/french_queries.train.tsv"
    )


def test_the_sample_is_parallel_by_id_in_every_language():
    english_collection, english_queries = SAMPLE.collection("english"), SAMPLE.queries("english")
    for language in LANGUAGES:
        assert list(SAMPLE.collection(language)) == list(english_collection), language
        assert list(SAMPLE.queries(language)) == list(english_queries), language
    triples = list(iter_id_triples(SAMPLE.triples_path()))
    assert triples and all(
        q in english_queries and p in english_collection and n in english_collection for q, p, n in triples
    )


def test_id_and_text_triples(tmp_path):
    ids = write_lines(tmp_path / "t.tsv", ["1\t10\t11", "1 10 12"])
    assert list(iter_id_triples(ids)) == [("1", "10", "11"), ("1", "10", "12")]
    text = write_lines(tmp_path / "x.tsv", ["what is x\tx is a letter\ty is another"])
    assert list(iter_text_triples(text)) == [("what is x", "x is a letter", "y is another")]


@pytest.mark.parametrize(
    "reader, line, message",
    [
        (iter_id_triples, "1\t10", "t.tsv:2: expected 'qid<TAB>positive pid<TAB>negative pid', found 2 fields"),
        (
            iter_text_triples,
            "q\tpositive",
            "t.tsv:2: expected 'query<TAB>positive passage<TAB>negative passage', found 2",
        ),
    ],
)
def test_bad_triples_name_file_and_line(tmp_path, reader, line, message):
    path = write_lines(tmp_path / "t.tsv", ["1\t2\t3", line])
    with pytest.raises(DataFormatError, match=message):
        list(reader(path))


def test_a_missing_language_names_the_file():
    with pytest.raises(DataFormatError, match="klingon_collection.tsv: mMARCO klingon collection not found"):
        SAMPLE.collection("klingon")
