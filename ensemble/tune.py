"""Per-language fusion tuning on dev, with a cross-validated estimate of how much of the gain is real.

    python -m ensemble.tune --lang sw          # work/<collection>/fusion/<name>/params.sw.yaml
    python -m ensemble.tune --pooled           # params.all.yaml: tuned over every language's dev queries

For each candidate parameter setting (every weight vector of the simplex grid, or every listed value
of RRF's k, ...), the fused run's metric is computed per dev query once; the tuned setting is the best
mean, and the k-fold estimate picks the best setting on k-1 folds and scores it on the held-out fold.
A language with fewer judged dev queries than `min_queries` (a surprise language has none) takes the
setting tuned over all languages' dev queries pooled, and its file says so.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ensemble.fusion import ONE_PARAMETER, PARAMETER_FREE, WEIGHTED, align_runs, check_method, fuse_runs, ranx_module, truncate
from stages.cli import run_stage
from stages.config import Config, ConfigError, FusionParams, add_config_arguments, load_config
from stages.formats import ReleaseLayout, atomic_write, read_run

log = logging.getLogger("ensemble.tune")

POOLED = "all"


def weight_grid(n_runs: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector with entries in multiples of `step` that sum to 1.

    Built from integer compositions, so no vector is lost to a float sum such as 0.2 + 0.7 + 0.1
    (ranx's optimize_fusion drops those; see ../shared/FACTS.md).
    """
    units = round(1 / step)
    if units < 1 or abs(units * step - 1) > 1e-9:
        raise ConfigError(f"fusion.tune.step must divide 1 (0.1, 0.05, ...), got {step}")
    grid = []
    for bars in itertools.combinations(range(units + n_runs - 1), n_runs - 1):
        edges = (-1,) + bars + (units + n_runs - 1,)
        grid.append(tuple((edges[i + 1] - edges[i] - 1) / units for i in range(n_runs)))
    return grid


def candidates(fusion: FusionParams, n_runs: int) -> list[dict]:
    """The parameter settings to try for the configured method."""
    check_method(fusion.method, fusion.norm)
    if fusion.method in PARAMETER_FREE:
        return [{}]
    if fusion.method in WEIGHTED:
        # Most even weights first: a tie (common on few queries) goes to the least lopsided vector.
        grid = sorted(weight_grid(n_runs, fusion.tune.step), key=lambda w: sum((x - 1 / n_runs) ** 2 for x in w))
        return [{"weights": list(w)} for w in grid]
    name = ONE_PARAMETER[fusion.method]
    values = fusion.tune.values.get(name)
    if not values:
        raise ConfigError(f"fusion.tune.values.{name}: list the values of {fusion.method}'s {name} to try")
    return [{name: (int(v) if name == "k" else v)} for v in values]


def per_query_scores(qrels: dict, runs: dict, fusion: FusionParams, settings: list[dict]) -> tuple[list[str], np.ndarray]:
    """(judged qids, matrix[setting, query]) of the tuning metric; a query without hits scores 0."""
    ranx = ranx_module()
    qids = list(qrels)
    judged = ranx.Qrels({qid: {d: int(r) for d, r in docs.items()} for qid, docs in qrels.items()})
    top = {name: truncate(run, fusion.depth) for name, run in runs.items()}
    alignment = align_runs(top, qids)
    matrix = np.zeros((len(settings), len(qids)))
    for i, params in enumerate(settings):
        fused = fuse_runs(top, fusion.method, fusion.norm, params, fusion.depth, fusion.hits, alignment=alignment)
        if not fused:
            continue
        run = ranx.Run(fused)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranx.evaluate(judged, run, fusion.tune.metric, make_comparable=True)
        scores = run.scores[fusion.tune.metric]
        matrix[i] = [scores.get(qid, 0.0) for qid in qids]
    return qids, matrix


def best_setting(matrix: np.ndarray, columns=None) -> int:
    """Index of the setting with the highest mean over `columns` (the first one on ties)."""
    sub = matrix if columns is None else matrix[:, columns]
    return int(np.argmax(sub.mean(axis=1)))


def cross_validated(matrix: np.ndarray, folds: int, seed: int) -> float | None:
    """k-fold estimate: tune on k-1 folds of queries, score the held-out fold; mean over all queries."""
    n = matrix.shape[1]
    if n < 2:
        return None
    order = np.random.default_rng(seed).permutation(n)
    held_scores = np.zeros(n)
    for fold in np.array_split(order, min(folds, n)):
        train = np.setdiff1d(order, fold)
        held_scores[fold] = matrix[best_setting(matrix, train), fold]
    return float(held_scores.mean())


@dataclass
class TuningData:
    qids: list[str]
    matrix: np.ndarray
    baselines: dict[str, float]


def language_data(config: Config, layout: ReleaseLayout, lang: str, settings: list[dict]) -> TuningData | None:
    """Per-query scores of every setting on a language's judged tuning queries (None: nothing to tune on)."""
    fusion, split = config.fusion, config.evaluation.split
    if split not in config.languages[lang].splits or not layout.has_qrels(lang, split):
        return None
    qrels = layout.qrels(lang, split)
    runs = {system: read_run(config.run_path(system, lang, split)) for system in fusion.systems}
    for line in align_runs(runs, list(qrels)).describe(list(runs)):
        log.info("%s %s: %s", lang, split, line)
    qids, matrix = per_query_scores(qrels, runs, fusion, settings)
    from stages.evaluate import evaluate_run

    baselines = {system: evaluate_run(qrels, truncate(run, fusion.hits), [fusion.tune.metric])[fusion.tune.metric]
                 for system, run in runs.items()}
    return TuningData(qids, matrix, baselines)


def summarize(fusion: FusionParams, settings: list[dict], data: TuningData, chosen: int, split: str) -> dict:
    return {
        "method": fusion.method, "norm": fusion.norm, "params": settings[chosen], "systems": list(fusion.systems),
        "metric": fusion.tune.metric, "split": split, "queries": len(data.qids),
        "in_sample": round(float(data.matrix[chosen].mean()), 6),
        "inputs": {system: round(score, 6) for system, score in data.baselines.items()},
    }


def tune_language(config: Config, lang: str) -> dict:
    """The tuned parameters of one language, or a pointer to the pooled ones when dev is too small."""
    fusion = config.fusion
    settings = candidates(fusion, len(fusion.systems))
    data = language_data(config, ReleaseLayout(config.data_root), lang, settings)
    queries = 0 if data is None else len(data.qids)
    if queries < fusion.tune.min_queries:
        log.info("%s: %d judged dev queries (< %d): uses the parameters tuned over all languages",
                 lang, queries, fusion.tune.min_queries)
        return {"fallback": POOLED, "queries": queries, "reason": f"{queries} judged dev queries, fewer than "
                f"min_queries {fusion.tune.min_queries}"}
    chosen = best_setting(data.matrix)
    entry = summarize(fusion, settings, data, chosen, config.evaluation.split)
    entry["cross_validated"] = _round(cross_validated(data.matrix, fusion.tune.folds, fusion.tune.seed))
    entry["settings_tried"] = len(settings)
    log.info("%s: %s %s -> %s %.4f in sample, %s cross-validated (inputs: %s)", lang, fusion.method,
             settings[chosen], fusion.tune.metric, entry["in_sample"], entry["cross_validated"], entry["inputs"])
    return entry


def tune_pooled(config: Config) -> dict:
    """Parameters tuned over the dev queries of every language that has them, pooled."""
    fusion = config.fusion
    settings = candidates(fusion, len(fusion.systems))
    layout = ReleaseLayout(config.data_root)
    parts = {lang: d for lang in config.languages if (d := language_data(config, layout, lang, settings))}
    if not parts:
        raise ConfigError(f"no language has judged {config.evaluation.split} queries to tune fusion on")
    pooled = TuningData([f"{lang}/{q}" for lang, d in parts.items() for q in d.qids],
                        np.concatenate([d.matrix for d in parts.values()], axis=1),
                        {s: float(np.mean([d.baselines[s] for d in parts.values()])) for s in fusion.systems})
    chosen = best_setting(pooled.matrix)
    entry = summarize(fusion, settings, pooled, chosen, config.evaluation.split)
    entry["cross_validated"] = _round(cross_validated(pooled.matrix, fusion.tune.folds, fusion.tune.seed))
    entry["languages"] = list(parts)
    entry["settings_tried"] = len(settings)
    log.info("pooled over %d languages: %s -> %.4f in sample, %s cross-validated", len(parts), settings[chosen],
             entry["in_sample"], entry["cross_validated"])
    return entry


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# ---------------------------------------------------------------- files

def params_path(config: Config, lang: str) -> Path:
    return config.work_dir / "fusion" / config.fusion.name / f"params.{lang}.yaml"


def write_params(path: Path, entry: dict, config: Config, lang: str) -> None:
    header = {"language": lang, "config": str(config.source), "collection": config.collection}
    with atomic_write(path) as out:
        yaml.safe_dump(header | entry, out, allow_unicode=True, sort_keys=False)


def load_tuned(path: Path) -> dict:
    """A language's tuned parameters, following a fallback to the pooled file."""
    if not path.is_file():
        raise ConfigError(f"no tuned fusion parameters at {path}; run `make tune-fusion` first")
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "fallback" in entry:
        pooled = path.with_name(f"params.{entry['fallback']}.yaml")
        resolved = load_tuned(pooled)
        return resolved | {"source": str(pooled), "fallback_reason": entry.get("reason")}
    return entry | {"source": str(path)}


def tuning_inputs(config: Config, langs: list[str]) -> dict:
    """What a tuning result depends on: the fusion settings and the hash of every dev run and qrels file."""
    from ensemble.fusion import file_sha256
    from stages.config import plain

    layout, split = ReleaseLayout(config.data_root), config.evaluation.split
    files = {}
    for lang in langs:
        if split in config.languages[lang].splits and layout.has_qrels(lang, split):
            files[lang] = {"qrels": file_sha256(layout.qrels_path(lang, split))} | {
                system: file_sha256(config.run_path(system, lang, split)) for system in config.fusion.systems}
    return {"fusion": plain(config.fusion), "split": split, "files": files}


def up_to_date(path: Path, inputs: dict) -> bool:
    if not path.is_file():
        return False
    previous = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if previous.get("inputs") != inputs:
        return False
    log.info("%s is up to date", path)
    os.utime(path)  # newer than its inputs again, so make stops asking for it
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ensemble.tune", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--pooled", action="store_true", help="tune over all languages' dev queries (the fallback)")
    args = parser.parse_args(argv)

    def body():
        config = load_config(args.config, args.data)
        if args.pooled:
            path, inputs = params_path(config, POOLED), tuning_inputs(config, list(config.languages))
            if not up_to_date(path, inputs):
                write_params(path, tune_pooled(config) | {"inputs": inputs}, config, POOLED)
            print(path)
            return
        for lang in config.select_languages(args.lang):
            path, inputs = params_path(config, lang), tuning_inputs(config, [lang])
            if not up_to_date(path, inputs):
                write_params(path, tune_language(config, lang) | {"inputs": inputs}, config, lang)
            print(path)

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
