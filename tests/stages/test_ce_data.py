"""Cross-encoder training groups: shapes, no positive among negatives, hard negatives from the run."""

import dataclasses

import pytest

from stages.config import ConfigError, MiraclData, NMTData
from stages.data.groups import Group, as_rows, miracl_groups, miracl_negatives, nmt_groups
from stages.data.passages import passage_text
from stages.formats import write_run
from stages.formats.mmarco import MMarcoLayout
from tests.helpers import PASSAGES, REPO, TINY_LANGUAGES, make_release, write_lines


def test_negatives_take_judged_non_relevant_first_then_bm25_and_never_a_positive():
    judged = {"a": 1, "b": 0, "c": 1, "d": 0}
    assert miracl_negatives(judged, ["a", "e", "b", "f", "c", "g"], 4) == ["b", "d", "e", "f"]
    assert miracl_negatives(judged, ["a", "c"], 4) == ["b", "d"]  # short: the caller skips the query


# What a config's `languages` section gives the builders: each code with its configured splits.
SPLITS = {code: tuple(language["splits"]) for code, language in TINY_LANGUAGES.items()}


def bm25_runs(folder):
    return lambda lang, split: folder / f"run.bm25.{lang}.{split}.txt"


@pytest.fixture()
def tiny(tmp_path):
    """The tiny release with en train judged (13: 1#1 relevant, 1#0 not) and BM25's run of it; no config."""
    layout = make_release(tmp_path / "rel")
    write_lines(layout.qrels_path("en", "train"), ["13 Q0 1#1 1", "13 Q0 1#0 0"])
    runs = bm25_runs(tmp_path / "runs")
    write_run({"13": {"1#1": 9.0, "2#1": 5.0, "2#0": 4.0, "1#0": 3.0}}, runs("en", "train"), tag="bm25")
    return layout, runs


TEXTS = {docid: f"{title}: {text}" for lang in PASSAGES for docid, title, text in PASSAGES[lang]}


def test_miracl_groups_have_one_positive_and_n_negatives_from_judgments_then_the_run(tiny):
    layout, runs = tiny
    (group,) = miracl_groups(layout, SPLITS, runs, MiraclData(), 2)  # sw has no train qrels: no groups
    assert group.source == "miracl:en" and group.query == "Amazon water"
    assert group.positive == TEXTS["1#1"]
    assert group.negatives == (TEXTS["1#0"], TEXTS["2#1"])  # judged non-relevant, then BM25's best non-positive


def test_a_query_short_of_negatives_is_skipped(tiny):
    layout, runs = tiny
    assert miracl_groups(layout, SPLITS, runs, MiraclData(), 5) == []
    # BM25's hits past bm25_depth are not looked at: its top hit is the positive, so one negative only
    assert miracl_groups(layout, SPLITS, runs, MiraclData(bm25_depth=1), 2) == []


def test_a_language_without_the_split_configured_gives_no_groups(tiny):
    layout, runs = tiny
    assert miracl_groups(layout, {"en": ("dev", "test-a"), "sw": SPLITS["sw"]}, runs, MiraclData(), 2) == []


def test_the_groups_of_the_tiny_release_built_without_a_config(tmp_path):
    """Every dev query of the tiny release judges one passage relevant and one not: with one negative each,
    the groups are the judgments alone, in language order then qrels order (BM25's hits are not needed)."""
    layout = make_release(tmp_path / "rel")
    runs = bm25_runs(tmp_path / "runs")
    write_run({"11": {"2#0": 2.0}, "12": {"1#0": 1.0}}, runs("en", "dev"), tag="bm25")
    write_run({"21": {"9#1": 2.0}, "22": {"7#1": 1.0}}, runs("sw", "dev"), tag="bm25")
    groups = miracl_groups(layout, {"sw": SPLITS["sw"], "en": SPLITS["en"]}, runs, MiraclData(split="dev"), 1)
    assert groups == [
        Group("miracl:sw", "21", "mto mrefu zaidi", TEXTS["7#0"], (TEXTS["9#0"],)),
        Group("miracl:sw", "22", "Kilimanjaro", TEXTS["9#0"], (TEXTS["7#0"],)),
        Group("miracl:en", "11", "longest river in Africa", TEXTS["1#0"], (TEXTS["1#1"],)),
        Group("miracl:en", "12", "highest mountain", TEXTS["2#0"], (TEXTS["2#1"],)),
    ]
    # two negatives: the judged one, then BM25's first hit that is not the positive
    assert [g.negatives for g in miracl_groups(layout, SPLITS, runs, MiraclData(split="dev"), 2)] == [
        (TEXTS["1#1"], TEXTS["2#0"]),
        (TEXTS["2#1"], TEXTS["1#0"]),
        (TEXTS["9#0"], TEXTS["9#1"]),
        (TEXTS["7#0"], TEXTS["7#1"]),
    ]


def test_nmt_groups_take_each_language_from_its_own_files():
    nmt = NMTData(root=REPO / "data" / "mmarco-mini", languages={"english": 5, "french": 5})
    groups = nmt_groups(nmt, 3, 13)
    layout = MMarcoLayout(REPO / "data" / "mmarco-mini")
    english, french = layout.collection("english"), layout.collection("french")
    assert [g.source for g in groups] == ["mmarco:english"] * 5 + ["mmarco:french"] * 5
    assert all(len(g.negatives) == 3 and g.positive not in g.negatives for g in groups)
    assert all(g.positive in english.values() for g in groups[:5])
    assert all(g.positive in french.values() for g in groups[5:])
    assert groups[0].query == layout.queries("english")[groups[0].qid]
    # the same query ids in each language (one seed per language), and another seed samples others
    assert nmt_groups(nmt, 3, 13) == groups and nmt_groups(nmt, 3, 7) != groups


def test_nmt_groups_of_a_hand_written_mmarco(tmp_path):
    """Two queries, one with two distinct negatives: only it can give a group of two negatives."""
    layout = MMarcoLayout(tmp_path / "mmarco")
    write_lines(layout.triples_path(), ["q1\tp1\tn1", "q1\tp1\tn2", "q1\tp1\tn1", "q2\tp3\tn3"])
    write_lines(layout.collection_path("french"), [f"{pid}\tpassage {pid}" for pid in ("p1", "n1", "n2", "p3", "n3")])
    write_lines(layout.queries_path("french"), ["q1\tquestion un", "q2\tquestion deux"])
    nmt = NMTData(root=layout.root, languages={"french": 3, "english": 0})  # 0: the language is off
    assert nmt_groups(nmt, 2, 13) == [
        Group("mmarco:french", "q1", "question un", "passage p1", ("passage n1", "passage n2"))
    ]
    with pytest.raises(ConfigError, match="languages is empty"):
        nmt_groups(dataclasses.replace(nmt, languages={"french": 0}), 2, 13)


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
