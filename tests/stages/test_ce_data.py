"""Cross-encoder training groups: shapes, no positive among negatives, hard negatives from the run."""

import dataclasses

import pytest

from stages.config import load_config
from stages.data.groups import Group, as_rows, miracl_groups, miracl_negatives, nmt_groups
from stages.data.passages import passage_text
from stages.formats import write_run
from stages.formats.mmarco import MMarcoLayout
from tests.helpers import PASSAGES, REPO, TINY_LANGUAGES, make_release, write_config, write_lines


def test_negatives_take_judged_non_relevant_first_then_bm25_and_never_a_positive():
    judged = {"a": 1, "b": 0, "c": 1, "d": 0}
    assert miracl_negatives(judged, ["a", "e", "b", "f", "c", "g"], 4) == ["b", "d", "e", "f"]
    assert miracl_negatives(judged, ["a", "c"], 4) == ["b", "d"]  # short: the caller skips the query


@pytest.fixture()
def tiny(tmp_path):
    layout = make_release(tmp_path / "rel")
    write_lines(layout.qrels_path("en", "train"), ["13 Q0 1#1 1", "13 Q0 1#0 0"])
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            cross_encoder={"negatives": 2},
        )
    )
    write_run(
        {"13": {"1#1": 9.0, "2#1": 5.0, "2#0": 4.0, "1#0": 3.0}}, config.run_path("bm25", "en", "train"), tag="bm25"
    )
    return config


def test_miracl_groups_have_one_positive_and_n_negatives_from_judgments_then_the_run(tiny):
    (group,) = miracl_groups(tiny, ["en", "sw"])  # sw has no train qrels: no groups
    passages = {docid: f"{title}: {text}" for docid, title, text in PASSAGES["en"]}
    assert group.source == "miracl:en" and group.query == "Amazon water"
    assert group.positive == passages["1#1"]
    assert group.negatives == (passages["1#0"], passages["2#1"])  # judged non-relevant, then BM25's best non-positive


def test_a_query_short_of_negatives_is_skipped(tiny):
    config = dataclasses.replace(tiny, cross_encoder=dataclasses.replace(tiny.cross_encoder, negatives=5))
    assert miracl_groups(config, ["en"]) == []


def test_nmt_groups_take_each_language_from_its_own_files(tmp_path):
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            cross_encoder={
                "negatives": 3,
                "nmt": {"root": str(REPO / "data" / "mmarco-mini"), "languages": {"english": 5, "french": 5}},
            },
        )
    )
    groups = nmt_groups(config)
    layout = MMarcoLayout(REPO / "data" / "mmarco-mini")
    english, french = layout.collection("english"), layout.collection("french")
    assert [g.source for g in groups] == ["mmarco:english"] * 5 + ["mmarco:french"] * 5
    assert all(len(g.negatives) == 3 and g.positive not in g.negatives for g in groups)
    assert all(g.positive in english.values() for g in groups[:5])
    assert all(g.positive in french.values() for g in groups[5:])
    assert groups[0].query == layout.queries("english")[groups[0].qid]


def test_rows_for_each_loss():
    groups = [Group("s", "1", "q", "pos", ("n1", "n2"))]
    assert as_rows(groups, "listwise") == {
        "query": ["q"],
        "positive": ["pos"],
        "negative_1": ["n1"],
        "negative_2": ["n2"],
    }
    assert as_rows(groups, "pointwise") == {
        "query": ["q", "q", "q"],
        "passage": ["pos", "n1", "n2"],
        "label": [1.0, 0.0, 0.0],
    }


def test_passage_text_puts_the_title_first():
    from stages.formats import Passage

    assert passage_text(Passage("1#0", "Nile", "A river.")) == "Nile: A river."
    assert passage_text(Passage("1#0", "", "A river.")) == "A river."
