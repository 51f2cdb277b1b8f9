"""The readers on the real MIRACL v1.0 topics and qrels (../shared; skipped when absent)."""

import re

import pytest

from stages.formats import ReleaseLayout

pytestmark = pytest.mark.shared

# Dev query counts published with MIRACL v1.0 (Zhang et al., TACL 2023).
DEV_QUERIES = {
    "ar": 2896,
    "bn": 411,
    "en": 799,
    "es": 648,
    "fa": 632,
    "fi": 1271,
    "fr": 343,
    "hi": 350,
    "id": 960,
    "ja": 860,
    "ko": 213,
    "ru": 1252,
    "sw": 482,
    "te": 828,
    "th": 733,
    "zh": 393,
    "de": 305,
    "yo": 119,
}
INTEGER_QIDS = {"ar", "bn", "en", "fi", "id", "ja", "ko", "ru", "sw", "te", "th"}


@pytest.mark.parametrize("lang", sorted(DEV_QUERIES))
def test_every_dev_topic_is_read_and_judged(shared_miracl, lang):
    layout = ReleaseLayout(shared_miracl)
    topics = layout.topics(lang, "dev")
    qrels = layout.qrels(lang, "dev")
    assert len(topics) == DEV_QUERIES[lang]
    assert set(qrels) == set(topics)
    pattern = r"\d+" if lang in INTEGER_QIDS else r"\d+#\d+"
    assert all(re.fullmatch(pattern, qid) for qid in topics)
    assert all(query.strip() == query and query for query in topics.values())


def test_relevance_zero_and_qid_equal_docid_judgments_survive(shared_miracl):
    qrels = ReleaseLayout(shared_miracl).qrels("yo", "dev")
    assert qrels["10020#0"]["10020#0"] == 0
    assert sum(1 for qid, docs in qrels.items() if qid in docs) == 46
    assert sum(1 for docs in qrels.values() for rel in docs.values() if rel == 0) == 1044


def test_splits_found_match_the_release(shared_miracl):
    layout = ReleaseLayout(shared_miracl)
    assert layout.available_splits("de") == ["dev"]
    assert layout.available_splits("ja") == ["train", "dev"]
