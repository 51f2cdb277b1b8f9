"""Distillation data for the bi-encoder: parallel queries with the candidates teacher and student both score.

One `ParallelQuery` is a query in the target language, its English version (same id), and a fixed
list of candidate passages. The student reads the target-language query and `passages`; the English
teacher reads the English query and `teacher_passages`. The sources (mMARCO, MIRACL with English side
files) are told in stages.bi_data, which prints a few.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.config import DistillData
from stages.data.groups import group_triples
from stages.data.passages import fetch_passages
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, read_run
from stages.formats.mmarco import MMarcoLayout

log = logging.getLogger("stages.data.parallel_queries")


@dataclass(frozen=True)
class ParallelQuery:
    source: str  # "mmarco:<language>" or "miracl:<lang>"
    qid: str
    query: str  # target language: what the student reads
    english: str  # the same query in English: what the teacher reads
    docids: tuple[str, ...]
    passages: tuple[str, ...]  # candidate texts the student reads
    teacher_passages: tuple[str, ...]  # the same candidates as the teacher reads them


def mmarco_parallel(layout: MMarcoLayout, data: DistillData, seed: int) -> list[ParallelQuery]:
    """Per configured mMARCO language, a seeded sample of the triples' queries with their candidates; `seed` is
    the distillation step's (bi_encoder.distillation.training.seed)."""
    languages = {language: count for language, count in data.mmarco.items() if count > 0}  # 0: off (configs merge)
    if not languages:
        return []
    by_query = group_triples(layout.triples_path())
    usable = sorted(q for q, (_, negs) in by_query.items() if 1 + len(negs) >= data.candidates)
    english_queries, english_passages = layout.queries(data.english), layout.collection(data.english)
    out = []
    for language, count in languages.items():
        queries, collection = layout.queries(language), layout.collection(language)
        for qid in random.Random(f"{seed}:{language}").sample(usable, min(count, len(usable))):
            positive, negatives = by_query[qid]
            pids = (positive, *negatives)[: data.candidates]
            missing = [p for p in pids if p not in collection or p not in english_passages]
            if qid not in queries or qid not in english_queries or missing:
                raise InputDataError(
                    None,
                    None,
                    f"mMARCO {language}/{data.english}: query {qid} or passages {missing} of the triples "
                    f"are missing from {layout.queries_path(language)} or {layout.collection_path(language)}",
                )
            out.append(
                ParallelQuery(
                    f"mmarco:{language}",
                    qid,
                    queries[qid],
                    english_queries[qid],
                    pids,
                    tuple(collection[p] for p in pids),
                    tuple(english_passages[p] for p in pids),
                )
            )
    log.info(
        "mMARCO: %d parallel queries (%s), %d candidates each",
        len(out),
        ", ".join(f"{lang} {n}" for lang, n in languages.items()),
        data.candidates,
    )
    return out


def english_version(layout: ReleaseLayout, lang: str, split: str) -> dict[str, str] | None:
    """English queries of a language's split: its side file, or the topics themselves for English."""
    if layout.english_topics_path(lang, split).is_file():
        return layout.english_topics(lang, split)
    if lang == "en":
        return layout.topics(lang, split)
    return None


def miracl_parallel(
    layout: ReleaseLayout,
    languages: Mapping[str, Sequence[str]],
    bm25_run: Callable[[str, str], Path],
    data: DistillData,
) -> list[ParallelQuery]:
    """MIRACL queries with an English version, each with BM25's top `candidates` hits, of each language (in the
    mapping's order) whose configured splits (`languages`: code -> splits) and release have `data.miracl_split`.
    `bm25_run(lang, split)` is where BM25's run of a split is."""
    split, out = data.miracl_split, []
    for lang, splits in languages.items():
        if split not in splits or not layout.topics_path(lang, split).is_file():
            continue
        english = english_version(layout, lang, split)
        if english is None:
            log.info(
                "%s %s: no English side file (%s), not used for distillation",
                lang,
                split,
                layout.english_topics_path(lang, split).name,
            )
            continue
        topics = layout.topics(lang, split)
        run = read_run(bm25_run(lang, split))
        shortlist = {}
        for qid in topics:
            hits = [d for d, _ in sorted(run.get(qid, {}).items(), key=lambda h: (-h[1], h[0]))[: data.candidates]]
            if qid in english and len(hits) == data.candidates:
                shortlist[qid] = hits
        texts = fetch_passages(layout.corpus_dir(lang), {d for hits in shortlist.values() for d in hits})
        for qid, hits in shortlist.items():
            candidates = tuple(texts[d] for d in hits)
            out.append(
                ParallelQuery(f"miracl:{lang}", qid, topics[qid], english[qid], tuple(hits), candidates, candidates)
            )
        if len(shortlist) < len(topics):
            log.info(
                "%s %s: %d of %d queries used (an English version and %d BM25 hits needed)",
                lang,
                split,
                len(shortlist),
                len(topics),
                data.candidates,
            )
    log.info("MIRACL %s: %d parallel queries over %d languages", split, len(out), len({q.source for q in out}))
    return out


def distillation_queries(
    mmarco: MMarcoLayout,
    layout: ReleaseLayout,
    languages: Mapping[str, Sequence[str]],
    bm25_run: Callable[[str, str], Path],
    data: DistillData,
    seed: int,
) -> list[ParallelQuery]:
    """mMARCO's parallel queries, then MIRACL's (the arguments of mmarco_parallel and miracl_parallel)."""
    return mmarco_parallel(mmarco, data, seed) + miracl_parallel(layout, languages, bm25_run, data)
