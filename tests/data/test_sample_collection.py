"""The embedded sample collection (data/miracl-mini) has the shape the pipeline and its users rely on."""

import re
from collections import Counter

import pytest

from stages.formats import ReleaseLayout, read_corpus

INTEGER_QIDS = {"ar", "bn", "en", "fi", "id", "ja", "ko", "ru", "sw", "te", "th"}


@pytest.fixture(scope="module")
def layout(sample_config):
    return ReleaseLayout(sample_config.data_root)


def test_all_18_languages_are_present(sample_config, layout):
    assert len(sample_config.languages) == 18
    for lang in sample_config.languages:
        assert layout.corpus_dir(lang).is_dir(), lang
        assert layout.available_splits(lang) == list(sample_config.languages[lang].splits), lang


@pytest.mark.parametrize("lang", "ar bn en es fa fi fr hi id ja ko ru sw te th zh de yo".split())
def test_language_sample(sample_config, layout, lang):
    corpus = read_corpus(layout.corpus_dir(lang))
    assert len(corpus) >= 30
    articles = Counter(docid.split("#")[0] for docid in corpus)
    assert len(articles) >= 8 and min(articles.values()) >= 2, "several passages per article"
    assert all(re.fullmatch(r"\d+#\d+", docid) for docid in corpus)
    assert all(p.title.strip() and len(p.text) >= 40 for p in corpus.values()), "titled, paragraph-long passages"

    queries = 0
    for split in sample_config.languages[lang].splits:
        topics = layout.topics(lang, split)
        english = layout.english_topics(lang, split)
        assert list(english) == list(topics), f"{lang} {split}: English side file must translate every query"
        queries += len(topics)
        pattern = r"\d+" if lang in INTEGER_QIDS else r"\d+#\d+"
        assert all(re.fullmatch(pattern, qid) for qid in topics), f"{lang} {split}: qid form"
        if split.startswith("test"):
            assert not layout.has_qrels(lang, split), "test splits have no qrels"
            continue
        qrels = layout.qrels(lang, split)
        assert set(qrels) == set(topics)
        for qid, judged in qrels.items():
            assert set(judged) <= set(corpus), f"{lang} {qid}: judged passages must exist"
            assert 1 in judged.values() and 0 in judged.values(), f"{lang} {qid}: relevant and non-relevant judgments"
    assert queries >= 15


def test_yoruba_has_a_query_whose_qid_is_a_judged_docid(layout):
    qrels = layout.qrels("yo", "dev")
    assert any(qid in judged for qid, judged in qrels.items())
