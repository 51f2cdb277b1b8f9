"""Parallel queries for distillation: English versions by id, candidates from BM25 or the triples."""

import pytest

from stages.config import load_config
from stages.data.parallel_queries import miracl_parallel, mmarco_parallel
from stages.formats import write_run
from stages.formats.mmarco import MMarcoLayout
from tests.helpers import PASSAGES, REPO, TINY_LANGUAGES, make_release, write_config, write_lines


@pytest.fixture()
def tiny(tmp_path):
    layout = make_release(tmp_path / "rel")
    write_lines(layout.english_topics_path("sw", "train"), ["23\tMount Kenya"])
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            bi_encoder={"distillation": {"data": {"candidates": 2, "mmarco": {}}}},
        )
    )
    write_run({"13": {"1#1": 9.0, "2#1": 5.0, "2#0": 4.0}}, config.run_path("bm25", "en", "train"), tag="bm25")
    write_run({"23": {"9#1": 7.0, "7#1": 7.0, "9#0": 1.0}}, config.run_path("bm25", "sw", "train"), tag="bm25")
    return config


def test_miracl_queries_pair_with_their_english_version_and_bm25s_top_hits(tiny):
    by_lang = {q.source: q for q in miracl_parallel(tiny, ["en", "sw"])}
    sw, en = by_lang["miracl:sw"], by_lang["miracl:en"]
    assert (sw.qid, sw.query, sw.english) == ("23", "Mlima Kenya", "Mount Kenya")
    assert sw.docids == ("7#1", "9#1")  # a tie at 7.0 goes to the smaller docid
    texts = {d: f"{title}: {text}" for d, title, text in PASSAGES["sw"]}
    assert sw.passages == sw.teacher_passages == (texts["7#1"], texts["9#1"])
    assert en.query == en.english == "Amazon water"  # English topics are their own English version


def test_a_language_without_an_english_side_file_is_left_out(tiny):
    layout_path = tiny.data_root / "miracl-v1.0-sw" / "topics" / "topics-en.miracl-v1.0-sw-train.tsv"
    layout_path.unlink()
    assert [q.source for q in miracl_parallel(tiny, ["en", "sw"])] == ["miracl:en"]


def test_mmarco_queries_are_parallel_by_id_and_the_teacher_reads_english(tmp_path):
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            bi_encoder={"distillation": {"data": {"candidates": 3, "mmarco": {"french": 4, "arabic": 2}}}},
        )
    )
    # (a child config's mapping merges into the sample's, which names four more languages)
    queries = [q for q in mmarco_parallel(config) if q.source in ("mmarco:french", "mmarco:arabic")]
    layout = MMarcoLayout(REPO / "data" / "mmarco-mini")
    english_q, english_p = layout.queries("english"), layout.collection("english")
    french_q, french_p = layout.queries("french"), layout.collection("french")
    assert [q.source for q in queries] == ["mmarco:french"] * 4 + ["mmarco:arabic"] * 2
    for q in queries[:4]:
        assert q.query == french_q[q.qid] and q.english == english_q[q.qid] and len(q.docids) == 3
        assert q.passages == tuple(french_p[d] for d in q.docids)
        assert q.teacher_passages == tuple(english_p[d] for d in q.docids)
