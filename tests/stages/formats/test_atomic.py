import pytest

from stages.formats import atomic_write


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("finished before\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as out:
            out.write("half")
            raise RuntimeError("crash")
    assert target.read_text() == "finished before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_success_replaces_the_file(tmp_path):
    with atomic_write(tmp_path / "sub" / "out.txt") as out:
        out.write("new\n")
    assert (tmp_path / "sub" / "out.txt").read_text() == "new\n"
