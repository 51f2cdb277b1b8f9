"""Training groups for the cross-encoder: one query, one positive passage, n negatives, from mMARCO (per
configured language, the id triples grouped by query) and from MIRACL train (judged non-relevant passages,
then BM25's hits, as negatives); and their columns for sentence-transformers (listwise or pointwise).
`python -m stages.ce_data` prints a few.

`group_triples` (mMARCO's id triples by query) also gives the bi-encoder's and the generator's mMARCO data.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.config import ConfigError, MiraclData, NMTData
from stages.data.passages import passage_text
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, iter_corpus, read_run
from stages.formats.mmarco import MMarcoLayout, iter_id_triples

log = logging.getLogger("stages.data.groups")


@dataclass(frozen=True)
class Group:
    source: str  # "mmarco:<language>" or "miracl:<lang>"
    qid: str
    query: str
    positive: str
    negatives: tuple[str, ...]


def group_triples(path) -> dict[str, tuple[str, list[str]]]:
    """{qid: (positive pid, [negative pids in file order])} from mMARCO's id triples (first positive kept)."""
    by_query: dict[str, tuple[str, list[str]]] = {}
    for qid, positive, negative in iter_id_triples(path):
        pos, negs = by_query.setdefault(qid, (positive, []))
        if positive == pos and negative not in negs and negative != pos:
            negs.append(negative)
    return by_query


def nmt_groups(nmt: NMTData, negatives: int, seed: int) -> list[Group]:
    """mMARCO groups, `count` queries per configured language (a seeded sample of the triples' queries), each
    with `negatives` negatives; `seed` is the training step's (cross_encoder.nmt_training.seed)."""
    # 0 turns a language off: a child config cannot drop a key its parent's mapping has (configs merge)
    languages = {language: count for language, count in nmt.languages.items() if count > 0}
    if not languages:
        raise ConfigError("cross_encoder.nmt.languages is empty: name the mMARCO languages to train on")
    layout = MMarcoLayout(nmt.root, nmt.translation)
    by_query = group_triples(layout.triples_path())
    usable = sorted(q for q, (_, negs) in by_query.items() if len(negs) >= negatives)
    groups = []
    for language, count in languages.items():
        collection, queries = layout.collection(language), layout.queries(language)
        chosen = random.Random(f"{seed}:{language}").sample(usable, min(count, len(usable)))
        for qid in chosen:
            positive, triple_negatives = by_query[qid]
            taken = triple_negatives[:negatives]
            ids = [positive, *taken]
            missing = [pid for pid in ids if pid not in collection]
            if qid not in queries or missing:
                raise InputDataError(
                    None,
                    None,
                    f"mMARCO {language}: query {qid} or passages {missing} of the triples are not in "
                    f"{layout.queries_path(language)} / {layout.collection_path(language)}",
                )
            groups.append(
                Group(
                    f"mmarco:{language}",
                    qid,
                    queries[qid],
                    collection[positive],
                    tuple(collection[pid] for pid in taken),
                )
            )
    log.info(
        "mMARCO: %d groups (%s), %d negatives each",
        len(groups),
        ", ".join(f"{lang} {count}" for lang, count in languages.items()),
        negatives,
    )
    return groups


def miracl_negatives(judged: dict[str, int], bm25_hits: list[str], n: int) -> list[str]:
    """Judged non-relevant passages first, then BM25's hits in rank order; never a judged positive."""
    positives = {docid for docid, rel in judged.items() if rel > 0}
    negatives: list[str] = []
    for docid in [d for d, rel in judged.items() if rel <= 0] + bm25_hits:
        if docid not in positives and docid not in negatives:
            negatives.append(docid)
        if len(negatives) == n:
            break
    return negatives


def miracl_groups(
    layout: ReleaseLayout,
    languages: Mapping[str, Sequence[str]],
    bm25_run: Callable[[str, str], Path],
    data: MiraclData,
    negatives: int,
) -> list[Group]:
    """MIRACL groups on `data.split`, `negatives` negatives each, of each language (in the mapping's order)
    whose configured splits (`languages`: code -> splits) and release have that split judged; queries short
    of negatives are skipped. `bm25_run(lang, split)` is where BM25's run of a split is.

    The cross-encoder passes its `miracl` and `negatives`; the bi-encoder its own.
    """
    n, split = negatives, data.split  # n: the count; below, `negatives` is a query's chosen passages
    groups = []
    for lang, splits in languages.items():
        if split not in splits or not layout.has_qrels(lang, split):
            continue
        topics, qrels = layout.topics(lang, split), layout.qrels(lang, split)
        run = read_run(bm25_run(lang, split))
        plan, short = {}, []
        for qid, judged in qrels.items():
            positives = [d for d, rel in judged.items() if rel > 0]
            if not positives or qid not in topics:
                continue
            hits = sorted(run.get(qid, {}).items(), key=lambda h: (-h[1], h[0]))[: data.bm25_depth]
            negatives = miracl_negatives(judged, [d for d, _ in hits], n)
            if len(negatives) < n:
                short.append(qid)
                continue
            plan[qid] = (positives[0], negatives)
        needed = {d for pos, negs in plan.values() for d in (pos, *negs)}
        passages = {p.docid: p for _, _, p in iter_corpus(layout.corpus_dir(lang)) if p.docid in needed}
        absent = sorted(needed - set(passages))
        if absent:
            raise InputDataError(
                layout.corpus_dir(lang),
                None,
                f"{lang} {split}: judged or retrieved passages not in the corpus: {' '.join(absent[:10])}",
            )
        for qid, (positive, negatives) in plan.items():
            groups.append(
                Group(
                    f"miracl:{lang}",
                    qid,
                    topics[qid],
                    passage_text(passages[positive]),
                    tuple(passage_text(passages[d]) for d in negatives),
                )
            )
        if short:
            log.info(
                "%s %s: %d queries skipped, fewer than %d negatives: %s",
                lang,
                split,
                len(short),
                n,
                " ".join(short[:10]),
            )
    log.info("MIRACL %s: %d groups over %d languages", split, len(groups), len({g.source for g in groups}))
    return groups


def as_rows(groups: list[Group], loss: str) -> dict[str, list]:
    """Columns for sentence-transformers: listwise (query, positive, negative_1..n) or pointwise (query, passage, label)."""
    if loss == "listwise":
        columns: dict[str, list] = defaultdict(list)
        for g in groups:
            columns["query"].append(g.query)
            columns["positive"].append(g.positive)
            for i, negative in enumerate(g.negatives, 1):
                columns[f"negative_{i}"].append(negative)
        return dict(columns)
    if loss == "pointwise":
        rows = [
            (g.query, text, float(label))
            for g in groups
            for text, label in [(g.positive, 1), *((neg, 0) for neg in g.negatives)]
        ]
        return {"query": [r[0] for r in rows], "passage": [r[1] for r in rows], "label": [r[2] for r in rows]}
    raise ConfigError(f"cross_encoder.loss must be 'listwise' or 'pointwise', got {loss!r}")
