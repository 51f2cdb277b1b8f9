import pytest

from stages.formats import DataFormatError, ReleaseLayout
from tests.helpers import write_lines


def make_release(root):
    write_lines(root / "miracl-v1.0-sw" / "topics" / "topics.miracl-v1.0-sw-dev.tsv", ["1\tswali"])
    write_lines(root / "miracl-v1.0-sw" / "topics" / "topics.miracl-v1.0-sw-train.tsv", ["2\tswali"])
    write_lines(root / "miracl-v1.0-sw" / "topics" / "topics-en.miracl-v1.0-sw-dev.tsv", ["1\tquestion"])
    write_lines(root / "miracl-v1.0-sw" / "qrels" / "qrels.miracl-v1.0-sw-dev.tsv", ["1\tQ0\t3#0\t1"])
    return ReleaseLayout(root)


def test_paths_follow_the_release_layout(tmp_path):
    layout = ReleaseLayout(tmp_path)
    assert (
        layout.topics_path("ja", "test-a").relative_to(tmp_path).as_posix()
        == "miracl-v1.0-ja/topics/topics.miracl-v1.0-ja-test-a.tsv"
    )
    assert (
        layout.qrels_path("yo", "dev").relative_to(tmp_path).as_posix()
        == "miracl-v1.0-yo/qrels/qrels.miracl-v1.0-yo-dev.tsv"
    )
    assert layout.corpus_dir("de").relative_to(tmp_path).as_posix() == "miracl-corpus-v1.0-de"


def test_available_splits_and_readers(tmp_path):
    layout = make_release(tmp_path)
    assert layout.available_splits("sw") == ["train", "dev"]
    assert layout.topics("sw", "dev") == {"1": "swali"}
    assert layout.english_topics("sw", "dev") == {"1": "question"}
    assert layout.qrels("sw", "dev") == {"1": {"3#0": 1}}


def test_a_missing_split_names_the_file_and_the_splits_there_are(tmp_path):
    layout = make_release(tmp_path)
    with pytest.raises(
        DataFormatError,
        match=r"topics\.miracl-v1\.0-sw-test-a\.tsv: no topics file for sw test-a \(splits with topics for sw: train, dev\)",
    ):
        layout.topics("sw", "test-a")
    with pytest.raises(DataFormatError, match="no qrels file for sw train"):
        layout.qrels("sw", "train")


def test_a_missing_language_folder_is_named(tmp_path):
    layout = make_release(tmp_path)
    with pytest.raises(DataFormatError, match="language folder miracl-v1.0-fi is missing"):
        layout.topics("fi", "dev")
