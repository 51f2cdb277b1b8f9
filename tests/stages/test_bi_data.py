"""Parallel queries for distillation: English versions by id, candidates from BM25 or the triples."""

import pytest

from stages.config import DistillData
from stages.data.parallel_queries import ParallelQuery, distillation_queries, miracl_parallel, mmarco_parallel
from stages.formats import write_run
from stages.formats.mmarco import MMarcoLayout
from tests.helpers import PASSAGES, REPO, TINY_LANGUAGES, make_release, write_lines

# What a config's `languages` section gives the builders: each code with its configured splits.
SPLITS = {code: tuple(language["splits"]) for code, language in TINY_LANGUAGES.items()}
TWO = DistillData(mmarco={}, candidates=2)


@pytest.fixture()
def tiny(tmp_path):
    """The tiny release with an English side file for sw train, and BM25's train runs; no config."""
    layout = make_release(tmp_path / "rel")
    write_lines(layout.english_topics_path("sw", "train"), ["23\tMount Kenya"])

    def runs(lang, split):
        return tmp_path / "runs" / f"run.bm25.{lang}.{split}.txt"

    write_run({"13": {"1#1": 9.0, "2#1": 5.0, "2#0": 4.0}}, runs("en", "train"), tag="bm25")
    write_run({"23": {"9#1": 7.0, "7#1": 7.0, "9#0": 1.0}}, runs("sw", "train"), tag="bm25")
    return layout, runs


def test_miracl_queries_pair_with_their_english_version_and_bm25s_top_hits(tiny):
    layout, runs = tiny
    by_lang = {q.source: q for q in miracl_parallel(layout, SPLITS, runs, TWO)}
    sw, en = by_lang["miracl:sw"], by_lang["miracl:en"]
    assert (sw.qid, sw.query, sw.english) == ("23", "Mlima Kenya", "Mount Kenya")
    assert sw.docids == ("7#1", "9#1")  # a tie at 7.0 goes to the smaller docid
    texts = {d: f"{title}: {text}" for d, title, text in PASSAGES["sw"]}
    assert sw.passages == sw.teacher_passages == (texts["7#1"], texts["9#1"])
    assert en.query == en.english == "Amazon water"  # English topics are their own English version


def test_the_parallel_queries_of_the_tiny_release_built_without_a_config(tiny):
    """In the mapping's order; a query short of `candidates` BM25 hits, or a language without the split
    configured, is left out; with no mMARCO language its folder is never read."""
    layout, runs = tiny
    texts = {d: f"{title}: {text}" for lang in PASSAGES for d, title, text in PASSAGES[lang]}
    queries = distillation_queries(MMarcoLayout(layout.root / "no-mmarco"), layout, SPLITS, runs, TWO, 13)
    assert queries == [
        ParallelQuery(
            "miracl:en",
            "13",
            "Amazon water",
            "Amazon water",
            ("1#1", "2#1"),
            (texts["1#1"], texts["2#1"]),
            (texts["1#1"], texts["2#1"]),
        ),
        ParallelQuery(
            "miracl:sw",
            "23",
            "Mlima Kenya",
            "Mount Kenya",
            ("7#1", "9#1"),
            (texts["7#1"], texts["9#1"]),
            (texts["7#1"], texts["9#1"]),
        ),
    ]
    three = DistillData(mmarco={}, candidates=3)  # en's run has three hits, sw's too: both stay
    assert [q.docids for q in miracl_parallel(layout, SPLITS, runs, three)] == [
        ("1#1", "2#1", "2#0"),
        ("7#1", "9#1", "9#0"),
    ]
    four = DistillData(mmarco={}, candidates=4)
    assert miracl_parallel(layout, SPLITS, runs, four) == []
    assert [q.source for q in miracl_parallel(layout, {"sw": SPLITS["sw"], "en": ("dev",)}, runs, TWO)] == ["miracl:sw"]


def test_a_language_without_an_english_side_file_is_left_out(tiny):
    layout, runs = tiny
    layout.english_topics_path("sw", "train").unlink()
    assert [q.source for q in miracl_parallel(layout, SPLITS, runs, TWO)] == ["miracl:en"]


def test_mmarco_queries_are_parallel_by_id_and_the_teacher_reads_english():
    data = DistillData(candidates=3, mmarco={"french": 4, "arabic": 2, "spanish": 0})  # 0: off
    layout = MMarcoLayout(REPO / "data" / "mmarco-mini")
    queries = mmarco_parallel(layout, data, 13)
    english_q, english_p = layout.queries("english"), layout.collection("english")
    french_q, french_p = layout.queries("french"), layout.collection("french")
    assert [q.source for q in queries] == ["mmarco:french"] * 4 + ["mmarco:arabic"] * 2
    for q in queries[:4]:
        assert q.query == french_q[q.qid] and q.english == english_q[q.qid] and len(q.docids) == 3
        assert q.passages == tuple(french_p[d] for d in q.docids)
        assert q.teacher_passages == tuple(english_p[d] for d in q.docids)
