"""Parallel sentences: `english<TAB>target` pairs in order; a bad line names the file and line."""

import pytest

from stages.formats import DataFormatError
from stages.formats.parallel import read_parallel


def test_parallel_files_are_read_in_order_and_bad_lines_name_the_file_and_line(tmp_path):
    good = tmp_path / "sw.tsv"
    good.write_text("The river is long.\tMto ni mrefu.\n\nWhere is Dodoma?\tDodoma iko wapi?\n", encoding="utf-8")
    assert read_parallel(good) == [("The river is long.", "Mto ni mrefu."), ("Where is Dodoma?", "Dodoma iko wapi?")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\ttwo\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.tsv:2: expected 'english<TAB>target'"):
        read_parallel(bad)
    bad.write_text("one\t \n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad.tsv:1: empty target side"):
        read_parallel(bad)
