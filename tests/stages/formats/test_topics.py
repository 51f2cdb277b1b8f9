import pytest

from stages.formats import DataFormatError, read_topics, write_topics
from tests.helpers import write_lines


def test_reads_integer_and_hash_qids_as_strings_in_file_order(tmp_path):
    path = write_lines(
        tmp_path / "t.tsv", ["29\tما هي منظمة الاوبك ؟", "10020#0\tOdun wo ni?", "007\tleading zeros stay"]
    )
    topics = read_topics(path)
    assert list(topics) == ["29", "10020#0", "007"]
    assert topics["29"] == "ما هي منظمة الاوبك ؟"


def test_strips_bom_stray_whitespace_and_windows_line_ends(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes("\ufeff 4 \t  เทียรี่ เมฆวัฒนา?  \r\n7\tsecond\r\n\n".encode("utf-8"))
    assert read_topics(path) == {"4": "เทียรี่ เมฆวัฒนา?", "7": "second"}


def test_a_tab_inside_the_query_is_kept(tmp_path):
    path = write_lines(tmp_path / "t.tsv", ["1\tpart one\tpart two"])
    assert read_topics(path) == {"1": "part one\tpart two"}


@pytest.mark.parametrize(
    "lines, line_no, expected",
    [
        (["1\tok", "2 no tab here"], 2, "expected 'qid<TAB>query'"),
        (["1\tok", "2\t   "], 2, "empty query for qid '2'"),
        (["\tquery without id"], 1, "empty qid"),
        (["5\tfirst", "6\tother", "5\tagain"], 3, "duplicate qid '5' (first on line 1)"),
    ],
)
def test_errors_name_file_line_and_expectation(tmp_path, lines, line_no, expected):
    path = write_lines(tmp_path / "bad.tsv", lines)
    with pytest.raises(DataFormatError) as info:
        read_topics(path)
    assert info.value.line == line_no
    assert str(info.value).startswith(f"{path}:{line_no}: ")
    assert expected in str(info.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"1\tok\n2\t\xff\xfe broken\n")
    with pytest.raises(DataFormatError, match=r"t\.tsv:2: not valid UTF-8"):
        read_topics(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        read_topics(tmp_path / "absent.tsv")


def test_write_then_read_round_trips(tmp_path):
    topics = {"0": "¿Qué es?", "3039093#0": "日本語の質問"}
    write_topics(topics, tmp_path / "out.tsv")
    assert read_topics(tmp_path / "out.tsv") == topics
