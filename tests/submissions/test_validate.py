"""The validator catches each defect a leaderboard would reject, one test per defect."""

from submissions.rules import validate_run
from tests.helpers import write_lines

TOPICS = {"1": "first query", "2": "second query"}
DOCIDS = {"10#0", "10#1", "11#0"}
GOOD = ["1 Q0 10#0 1 2.5 t", "1 Q0 10#1 2 1.5 t", "2 Q0 11#0 1 3.0 t", "2 Q0 10#0 2 3.0 t"]


def check(tmp_path, lines, max_hits=100):
    return validate_run(write_lines(tmp_path / "run.t.sw.test-a.txt", lines), TOPICS, DOCIDS, max_hits)


def test_a_good_run_passes(tmp_path):
    report = check(tmp_path, GOOD)
    assert report.ok and report.queries == 2 and report.lines == 4


def test_a_missing_topic(tmp_path):
    report = check(tmp_path, GOOD[:2])
    assert report.problems == [f"{tmp_path / 'run.t.sw.test-a.txt'}: 1 of 2 topics have no hits: 2"]


def test_ranks_must_run_from_one(tmp_path):
    report = check(tmp_path, ["1 Q0 10#0 1 2.5 t", "1 Q0 10#1 3 1.5 t"] + GOOD[2:])
    assert report.problems == [
        f"{tmp_path / 'run.t.sw.test-a.txt'}:2: qid 1: rank 3 where 2 was expected (ranks run 1..n)"
    ]


def test_a_duplicate_docid_within_a_query(tmp_path):
    report = check(tmp_path, ["1 Q0 10#0 1 2.5 t", "1 Q0 10#0 2 1.5 t"] + GOOD[2:])
    assert len(report.problems) == 1 and ":2: qid 1: docid 10#0 listed twice" in report.problems[0]


def test_scores_must_not_increase_down_the_ranking(tmp_path):
    report = check(tmp_path, ["1 Q0 10#0 1 1.5 t", "1 Q0 10#1 2 2.5 t"] + GOOD[2:])
    assert (
        len(report.problems) == 1 and ":2: qid 1: score 2.5 is higher than the one above it (1.5)" in report.problems[0]
    )


def test_every_docid_must_be_in_the_corpus(tmp_path):
    report = check(tmp_path, GOOD[:1] + ["1 Q0 99#0 2 1.5 t"] + GOOD[2:])
    assert len(report.problems) == 1 and ":2: docid 99#0 is not in the corpus" in report.problems[0]


def test_every_line_must_parse(tmp_path):
    report = check(tmp_path, GOOD[:1] + ["1 Q0 10#1 2 high t"] + GOOD[2:])
    assert len(report.problems) == 1 and ":2: score must be a number, found 'high'" in report.problems[0]
    report = check(tmp_path, GOOD[:1] + ["1 Q0 10#1 2"] + GOOD[2:])
    assert ":2: expected 6 fields" in report.problems[0]


def test_the_tag_must_be_the_same_throughout(tmp_path):
    report = check(tmp_path, GOOD[:3] + ["2 Q0 10#0 2 3.0 other"])
    assert len(report.problems) == 1 and ":4: tag 'other' differs from the file's first tag 't'" in report.problems[0]


def test_at_most_max_hits_per_query(tmp_path):
    report = check(tmp_path, GOOD, max_hits=1)
    assert [p.split(": ", 1)[1] for p in report.problems] == ["qid 1: more than 1 hits", "qid 2: more than 1 hits"]


def test_a_query_must_be_one_block_and_a_topic_of_the_split(tmp_path):
    report = check(tmp_path, [GOOD[0], GOOD[2], "1 Q0 10#1 2 1.5 t", "3 Q0 10#0 1 1.0 t"])
    messages = [p.split(": ", 1)[1] for p in report.problems]
    assert "qid 1 appears again after other queries (its lines must be contiguous)" in messages
    assert "qid 3 is not a topic of this split" in messages


def test_the_command_line_reads_language_and_split_from_the_name_and_exits_1(tmp_path, sample_config):
    import subprocess
    import sys

    from stages.formats import ReleaseLayout, read_corpus
    from tests.helpers import REPO

    layout = ReleaseLayout(sample_config.data_root)
    first_qid = next(iter(layout.topics("sw", "test-a")))
    docid = next(iter(read_corpus(layout.corpus_dir("sw"))))
    path = write_lines(tmp_path / "run.mine.sw.test-a.txt", [f"{first_qid} Q0 {docid} 1 1.0 mine"])
    result = subprocess.run(
        [sys.executable, "-m", "submissions.validate", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"BAD {path}" in result.stdout and "3 of 4 topics have no hits" in result.stdout
