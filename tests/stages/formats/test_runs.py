import pytest

from stages.formats import DataFormatError, read_run, write_run
from stages.formats.runs import iter_run, metadata_path, read_metadata
from tests.helpers import write_lines


def test_write_ranks_by_score_with_docid_tie_break_and_depth(tmp_path):
    run = {"q1": {"b#0": 1.0, "a#0": 1.0, "c#0": 3.5, "d#0": 0.5}, "7": {"x#1": 2.0}}
    write_run(run, tmp_path / "run.txt", tag="bm25", depth=3)
    lines = (tmp_path / "run.txt").read_text().splitlines()
    assert lines == [
        "q1 Q0 c#0 1 3.500000 bm25",
        "q1 Q0 a#0 2 1.000000 bm25",
        "q1 Q0 b#0 3 1.000000 bm25",
        "7 Q0 x#1 1 2.000000 bm25",
    ]


def test_round_trip_keeps_a_hit_whose_docid_equals_the_qid(tmp_path):
    run = {"10020#0": {"10020#0": 5.0, "10020#1": 4.0}}
    write_run(run, tmp_path / "r.txt", tag="t")
    assert read_run(tmp_path / "r.txt") == run


def test_metadata_sidecar_is_written_and_read(tmp_path):
    write_run({"1": {"d": 1.0}}, tmp_path / "r.txt", tag="t", metadata={"config": "x.yaml"})
    assert metadata_path(tmp_path / "r.txt").name == "r.txt.meta.json"
    metadata = read_metadata(tmp_path / "r.txt")
    # with the time the lines were written: what a submission bundle dates itself by
    assert metadata.pop("written").endswith("Z") and metadata == {"config": "x.yaml"}


def test_tag_must_be_one_word(tmp_path):
    with pytest.raises(ValueError, match="tag"):
        write_run({"1": {"d": 1.0}}, tmp_path / "r.txt", tag="two words")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1 Q0 d#0 1 2.0", "expected 6 fields"),
        ("1 Q0 d#0 first 2.0 tag", "rank must be an integer"),
        ("1 Q0 d#0 1 high tag", "score must be a number"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, expected):
    path = write_lines(tmp_path / "r.txt", ["1 Q0 d#1 1 3.0 tag", line])
    with pytest.raises(DataFormatError) as info:
        read_run(path)
    assert info.value.line == 2 and expected in str(info.value)


def test_duplicate_docid_within_a_query_is_an_error(tmp_path):
    path = write_lines(tmp_path / "r.txt", ["1 Q0 d#1 1 3.0 t", "1 Q0 d#1 2 2.0 t"])
    with pytest.raises(DataFormatError, match=r"r\.txt:2: docid 'd#1' appears twice for qid '1'"):
        read_run(path)


def test_iter_run_gives_every_field(tmp_path):
    path = write_lines(tmp_path / "r.txt", ["q Q0 d 1 -1.5 tag"])
    (row,) = list(iter_run(path))
    assert (row.qid, row.docid, row.rank, row.score, row.tag, row.line) == ("q", "d", 1, -1.5, "tag", 1)
