"""The query generator's training pairs: (source, query language, passage, query) from mMARCO positives (and the
same query in each cross language, the ids being parallel) and from MIRACL judged positives.
"""

from __future__ import annotations

from collections.abc import Mapping

from stages.config import Language, QueryGeneratorParams
from stages.data.groups import group_triples
from stages.data.passages import fetch_passages
from stages.errors import InputDataError
from stages.formats import ReleaseLayout
from stages.formats.mmarco import MMarcoLayout


def training_pairs(
    params: QueryGeneratorParams, mmarco: MMarcoLayout, layout: ReleaseLayout, languages: Mapping[str, Language]
) -> list[tuple[str, str, str, str]]:
    """(source, query language, passage, query): mMARCO positives of each of `params.mmarco`'s languages (and the
    same query in each cross language), then the judged positives of `params.miracl_split` of each language in
    `languages` that has it. The language is the prompt's name for it (a MIRACL language's name, lower case)."""
    pairs: list[tuple[str, str, str, str]] = []
    if params.mmarco:
        by_query = group_triples(mmarco.triples_path())
        for language, count in params.mmarco.items():
            collection = mmarco.collection(language)
            for written in [language] + [c for c in params.mmarco_cross_languages if c != language]:
                queries = mmarco.queries(written)
                source = f"mmarco:{language}" + (f">{written}" if written != language else "")
                for qid in sorted(by_query)[:count]:
                    pairs.append((source, written, collection[by_query[qid][0]], queries[qid]))
    for lang, language in languages.items():
        split = params.miracl_split
        if split not in language.splits or not layout.has_qrels(lang, split):
            continue
        topics, qrels = layout.topics(lang, split), layout.qrels(lang, split)
        wanted = {(qid, d) for qid, judged in qrels.items() if qid in topics for d, rel in judged.items() if rel > 0}
        texts = fetch_passages(layout.corpus_dir(lang), {d for _, d in wanted})
        pairs += [(f"miracl:{lang}", language.name.lower(), texts[d], topics[qid]) for qid, d in sorted(wanted)]
    if not pairs:
        raise InputDataError(None, None, "no (passage, query) pairs to train the query generator on")
    return pairs
