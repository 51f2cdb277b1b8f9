"""Append-only keyed tables: what was appended reads back, an interrupted last line is dropped, bad lines name their line."""

import pytest

from stages.formats import DataFormatError
from stages.formats.keyed import append_keyed, read_keyed


def test_appended_rows_read_back_by_key_through_the_parser(tmp_path):
    table = tmp_path / "scores.tsv"
    append_keyed(table, [["q1", "k1", "0.5"], ["q2", "k2", "-1.25"]])
    append_keyed(table, [["q1", "k1", "0.75"]])  # a later row for the same key wins
    assert read_keyed(table, 1, 3, "qid<TAB>key<TAB>score", lambda row: float(row[2])) == {"k1": 0.75, "k2": -1.25}
    assert read_keyed(tmp_path / "absent.tsv", 0, 2, "key<TAB>value") == {}


def test_an_unfinished_last_line_is_dropped_and_a_malformed_one_names_its_line(tmp_path):
    table = tmp_path / "scores.tsv"
    table.write_text("k1\t1.0\nk2\t2.", encoding="utf-8")  # the process died while writing k2
    assert read_keyed(table, 0, 2, "key<TAB>score", lambda row: float(row[1])) == {"k1": 1.0}
    table.write_text("k1\t1.0\nk2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"scores.tsv:2: expected 'key<TAB>score'"):
        read_keyed(table, 0, 2, "key<TAB>score")
    table.write_text("k1\tone\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"scores.tsv:1: expected 'key<TAB>score'"):
        read_keyed(table, 0, 2, "key<TAB>score", lambda row: float(row[1]))


def test_an_append_after_an_interrupted_run_starts_on_a_new_line(tmp_path):
    table = tmp_path / "scores.tsv"
    table.write_text("k1\t1.0\nk2\t2.", encoding="utf-8")
    append_keyed(table, [["k3", "3.0"]])
    assert table.read_text(encoding="utf-8") == "k1\t1.0\nk3\t3.0\n"  # the unfinished k2 line is gone, not glued
    assert read_keyed(table, 0, 2, "key<TAB>score", lambda row: float(row[1])) == {"k1": 1.0, "k3": 3.0}
