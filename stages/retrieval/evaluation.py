"""Evaluation: nDCG@10 and Recall@100 per language and their average, for every system with runs
(`python -m stages.evaluate` prints and saves the table).

Scores follow trec_eval with `-c`: every query of the qrels counts, and a query the run does not
answer (no hits) scores 0. Runs are found under `<work>/<collection>/runs/<system>/`.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from stages.config import REPO_ROOT, Config
from stages.formats import ReleaseLayout, read_run
from stages.formats.qrels import Qrels
from stages.formats.runs import Run

log = logging.getLogger("stages.retrieval.evaluation")
METRIC_LABELS = {"ndcg@10": "nDCG@10", "recall@100": "R@100"}


def ranx_module():
    # numba compiles ranx's metrics at first use; a persistent cache turns ~15 s into ~3 s.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO_ROOT / "work" / ".numba-cache"))
    import ranx

    return ranx


def align(qrels: Qrels, run: Run) -> tuple[Run, list[str], list[str]]:
    """The run restricted to the qrels' queries, with an empty ranking for each query it lacks.

    Returns (aligned run, qids missing from the run, qids of the run that have no qrels).
    """
    missing = [qid for qid in qrels if not run.get(qid)]
    extra = [qid for qid in run if qid not in qrels]
    aligned = {qid: dict(run.get(qid, {})) for qid in qrels}
    return aligned, missing, extra


def evaluate_run(qrels: Qrels, run: Run, metrics: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Mean of each metric over all queries of the qrels (trec_eval -c): unanswered queries score 0.

    ranx's `make_comparable` gives exactly that: it adds an empty ranking for every judged query the
    run lacks and drops run queries without judgments; a query judged only non-relevant scores 0.
    """
    ranx = ranx_module()
    answered = {qid: hits for qid, hits in run.items() if hits}
    if not qrels:
        raise ValueError("no judged queries to evaluate")
    if not answered:
        return {metric: 0.0 for metric in metrics}
    judged = {qid: {docid: int(rel) for docid, rel in docs.items()} for qid, docs in qrels.items()}
    with warnings.catch_warnings():
        # ranx casts uint64 to int64 inside numba; harmless, but it warns on every call.
        warnings.simplefilter("ignore")
        scores = ranx.evaluate(ranx.Qrels(judged), ranx.Run(answered), list(metrics), make_comparable=True)
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    return {metric: float(scores[metric]) for metric in metrics}


def find_runs(config: Config, split: str) -> dict[str, dict[str, Path]]:
    """{system: {lang: run path}} for every run file of this split under the work folder."""
    found: dict[str, dict[str, Path]] = {}
    runs_root = config.work_dir / "runs"
    if not runs_root.is_dir():
        return found
    for system_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()):
        for path in sorted(system_dir.glob(f"run.{system_dir.name}.*.{split}.txt")):
            lang = path.name[len(f"run.{system_dir.name}.") : -len(f".{split}.txt")]
            found.setdefault(system_dir.name, {})[lang] = path
    return found


def evaluate_systems(config: Config, langs: list[str], split: str) -> dict:
    """Scores of every system with runs, per language, plus the average over languages."""
    layout = ReleaseLayout(config.data_root)
    metrics = list(config.evaluation.metrics)
    runs = find_runs(config, split)
    result = {"collection": config.collection, "split": split, "metrics": metrics, "scores": {}, "average": {}}
    for system, paths in runs.items():
        per_lang = {}
        for lang in langs:
            if lang not in paths:
                continue
            qrels = layout.qrels(lang, split)
            run = read_run(paths[lang])
            _, missing, extra = align(qrels, run)
            if missing:
                log.info(
                    "%s %s %s: %d of %d judged queries have no hits in the run (scored 0)",
                    system,
                    lang,
                    split,
                    len(missing),
                    len(qrels),
                )
            if extra:
                log.info("%s %s %s: %d run queries have no qrels (ignored)", system, lang, split, len(extra))
            scores = evaluate_run(qrels, run, metrics)
            per_lang[lang] = scores | {"queries": len(qrels)}
        if per_lang:
            result["scores"][system] = per_lang
            result["average"][system] = {m: sum(s[m] for s in per_lang.values()) / len(per_lang) for m in metrics} | {
                "languages": len(per_lang)
            }
    return result
