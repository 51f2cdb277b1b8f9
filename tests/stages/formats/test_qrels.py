import pytest

from stages.formats import DataFormatError, read_qrels, write_qrels
from tests.helpers import write_lines


def test_tabs_and_spaces_both_separate_fields(tmp_path):
    path = write_lines(tmp_path / "q.tsv", ["0\tQ0\t151236#1\t1", "0 Q0 151236#0 0", "1  0   77#3\t1"])
    assert read_qrels(path) == {"0": {"151236#1": 1, "151236#0": 0}, "1": {"77#3": 1}}


def test_relevance_zero_judgments_are_kept(tmp_path):
    path = write_lines(tmp_path / "q.tsv", ["9\tQ0\t1#0\t0", "9\tQ0\t1#1\t0"])
    assert read_qrels(path) == {"9": {"1#0": 0, "1#1": 0}}


def test_a_docid_equal_to_its_qid_is_an_ordinary_judgment(tmp_path):
    path = write_lines(tmp_path / "q.tsv", ["10020#0\tQ0\t10020#1\t1", "10020#0\tQ0\t10020#0\t0"])
    assert read_qrels(path)["10020#0"] == {"10020#1": 1, "10020#0": 0}


def test_bom_and_whitespace(tmp_path):
    path = write_lines(tmp_path / "q.tsv", [" 3\tQ0\t5#0\t1  "], bom=True)
    assert read_qrels(path) == {"3": {"5#0": 1}}


@pytest.mark.parametrize(
    "lines, line_no, expected",
    [
        (["1 Q0 2#0 1", "1 Q0 2#1"], 2, "expected 4 fields"),
        (["1 Q0 2#0 yes"], 1, "relevance must be an integer, found 'yes'"),
        (["1 Q0 2#0 1", "1 Q0 2#0 0"], 2, "judges docid '2#0' twice (first on line 1)"),
    ],
)
def test_errors_name_file_line_and_expectation(tmp_path, lines, line_no, expected):
    path = write_lines(tmp_path / "bad.tsv", lines)
    with pytest.raises(DataFormatError) as info:
        read_qrels(path)
    assert info.value.line == line_no and expected in str(info.value)
    assert str(path) in str(info.value)


def test_write_then_read_round_trips(tmp_path):
    qrels = {"0": {"1#0": 1, "1#2": 0}, "es#1": {"8#8": 1}}
    write_qrels(qrels, tmp_path / "q.tsv")
    assert read_qrels(tmp_path / "q.tsv") == qrels
