"""Per-language fusion tuning on dev, with a cross-validated estimate of how much of the gain is real.

    python -m ensemble.tune --lang sw          # work/<collection>/fusion/<name>/params.sw.yaml
    python -m ensemble.tune --pooled           # params.all.yaml: tuned over every language's dev queries

For each candidate parameter setting (every weight vector of the simplex grid, or every listed value
of RRF's k, ...), the fused run's metric is computed per dev query once; the tuned setting is the best
mean, and the k-fold estimate picks the best setting on k-1 folds and scores it on the held-out fold.
A language with fewer judged dev queries than `min_queries` (a surprise language has none) takes the
setting tuned over all languages' dev queries pooled, and its file says so. Pooled, every mean (the one
the setting is chosen by, the in-sample and cross-validated scores, the input runs' scores) is taken per
language and then over the languages, as MIRACL's leaderboard averages.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from ensemble.methods import (
    ONE_PARAMETER,
    PARAMETER_FREE,
    TRAINED,
    WEIGHTED,
    align_runs,
    check_method,
    fuse_runs,
    truncate,
)
from ensemble.params import POOLED, params_path, write_params
from stages.cli import run_stage
from stages.config import Config, ConfigError, FusionParams, add_config_arguments, config_from_args
from stages.console import Stopwatch, say
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, read_run
from stages.retrieval.evaluation import ranx_module
from stages.table import recorded_config
from stages.uptodate import unchanged

log = logging.getLogger("ensemble.tune")


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
    """The parameter settings to try for the configured method (not a trained one)."""
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


def query_scores(judged, fused: dict, qids: list[str], metric: str) -> np.ndarray:
    """The metric of each of `qids` in a fused run (trec_eval -c: a query without hits scores 0)."""
    ranx = ranx_module()
    answered = {qid: hits for qid, hits in fused.items() if hits}
    if not answered:
        return np.zeros(len(qids))
    run = ranx.Run(answered)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranx.evaluate(judged, run, metric, make_comparable=True)
    scores = run.scores[metric]
    return np.array([scores.get(qid, 0.0) for qid in qids])


def _ranx_qrels(qrels: dict, qids: list[str]):
    return ranx_module().Qrels({qid: {d: int(r) for d, r in qrels[qid].items()} for qid in qids})


def per_query_scores(
    qrels: dict, runs: dict, fusion: FusionParams, settings: list[dict]
) -> tuple[list[str], np.ndarray]:
    """(judged qids, matrix[setting, query]) of the tuning metric; a query without hits scores 0."""
    qids = list(qrels)
    judged = _ranx_qrels(qrels, qids)
    top = {name: truncate(run, fusion.depth) for name, run in runs.items()}
    alignment = align_runs(top, qids)
    matrix = np.zeros((len(settings), len(qids)))
    for i, params in enumerate(settings):
        fused = fuse_runs(top, fusion.method, fusion.norm, params, None, fusion.hits, alignment=alignment)
        matrix[i] = query_scores(judged, fused, qids, fusion.tune.metric)
    return qids, matrix


def train_params(qrels: dict, runs: dict, fusion: FusionParams, qids: list[str]) -> dict:
    """Fit a trained method (probfuse, segfuse, ...) with ranx on `qids`: those judged relevant somewhere
    and answered by every run, as ranx requires."""
    ranx = ranx_module()
    usable = [q for q in qids if any(r > 0 for r in qrels[q].values()) and all(run.get(q) for run in runs.values())]
    if not usable:
        raise InputDataError(
            None, None, f"{fusion.method}: no tuning query is judged relevant and answered by every run"
        )
    ranx_runs = [ranx.Run({q: run[q] for q in usable}, name=name) for name, run in runs.items()]
    extra = {"show_progress": False} if fusion.method in ("probfuse", "slidefuse") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = ranx.optimize_fusion(
            _ranx_qrels(qrels, usable),
            ranx_runs,
            norm=None if fusion.norm == "none" else fusion.norm,
            method=fusion.method,
            metric=fusion.tune.metric,
            **extra,
        )
    return to_plain(params)


def to_plain(params: dict) -> dict:
    """ranx's trained state (numpy arrays, one per run) as plain lists, for YAML."""
    plain = {}
    for key, value in params.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            plain[key] = [np.asarray(v, dtype=float).tolist() if np.ndim(v) else float(v) for v in value]
        else:
            plain[key] = value.item() if isinstance(value, np.generic) else value
    return plain


def language_mean(scores: np.ndarray, groups: np.ndarray | None = None, columns=None) -> np.ndarray:
    """The mean over queries (the last axis, `columns` of it) taken per language, then over the languages:
    MIRACL's leaderboard averages languages, so a pooled tuning that averaged its queries would weigh a language
    by its number of queries. `groups` holds each query's language; None is one language (a plain mean)."""
    sub = scores if columns is None else scores[..., columns]
    if groups is None:
        return sub.mean(axis=-1)
    labels = groups if columns is None else groups[columns]
    return np.mean([sub[..., labels == label].mean(axis=-1) for label in np.unique(labels)], axis=0)


def best_setting(matrix: np.ndarray, columns=None, groups: np.ndarray | None = None) -> int:
    """Index of the setting with the highest `language_mean` over `columns` (the first one on ties)."""
    return int(np.argmax(language_mean(matrix, groups, columns)))


def folds_of(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.array_split(order, min(folds, n))


def held_out_scores(matrix: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray | None:
    """Each query's score under the setting tuned on the other folds (k-fold); None for fewer than 2 queries."""
    n = matrix.shape[1]
    if n < 2:
        return None
    held_scores = np.zeros(n)
    for fold in folds_of(n, folds, seed):
        train = np.setdiff1d(np.arange(n), fold)
        held_scores[fold] = matrix[best_setting(matrix, train, groups), fold]
    return held_scores


def cross_validated(matrix: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None) -> float | None:
    """k-fold estimate: tune on k-1 folds of queries, score the held-out fold; the `language_mean` of all
    queries' held-out scores."""
    held = held_out_scores(matrix, folds, seed, groups)
    return None if held is None else float(language_mean(held, groups))


@dataclass
class TuningData:
    """A language's (or all languages', qids prefixed) judged tuning queries and input runs."""

    qrels: dict
    runs: dict
    baselines: dict[str, float]
    # The language of each query, in the order of `qids`, when several are pooled (None: one language).
    languages: list[str] | None = None

    @property
    def qids(self) -> list[str]:
        return list(self.qrels)

    @property
    def groups(self) -> np.ndarray | None:
        return None if self.languages is None else np.array(self.languages)


def language_data(config: Config, layout: ReleaseLayout, lang: str) -> TuningData | None:
    """The judged tuning queries and input runs of a language (None: nothing to tune on)."""
    from stages.retrieval.evaluation import evaluate_run

    fusion, split = config.fusion, config.evaluation.split
    if split not in config.languages[lang].splits or not layout.has_qrels(lang, split):
        return None
    qrels = layout.qrels(lang, split)
    runs = {system: truncate(read_run(config.run_path(system, lang, split)), fusion.depth) for system in fusion.systems}
    for line in align_runs(runs, list(qrels)).describe(list(runs)):
        log.info("%s %s: %s", lang, split, line)
    metric = fusion.tune.metric
    baselines = {
        system: evaluate_run(qrels, truncate(run, fusion.hits), [metric])[metric] for system, run in runs.items()
    }
    return TuningData(qrels, runs, baselines)


def pooled_data(parts: dict[str, TuningData]) -> TuningData:
    """All languages' tuning data as one, qids prefixed by language."""
    qrels = {f"{lang}/{q}": judged for lang, d in parts.items() for q, judged in d.qrels.items()}
    systems = list(next(iter(parts.values())).runs)
    runs = {s: {f"{lang}/{q}": hits for lang, d in parts.items() for q, hits in d.runs[s].items()} for s in systems}
    baselines = {s: float(np.mean([d.baselines[s] for d in parts.values()])) for s in systems}
    languages = [lang for lang, d in parts.items() for _ in d.qrels]
    return TuningData(qrels, runs, baselines, languages)


def tune(data: TuningData, fusion: FusionParams) -> dict:
    """The chosen parameters with their in-sample and k-fold cross-validated scores, each a `language_mean` (as
    the input runs' `baselines` are), and the setting chosen by that mean too."""
    qids, tune_params, groups = data.qids, fusion.tune, data.groups
    if fusion.method in TRAINED:
        judged = _ranx_qrels(data.qrels, qids)
        params = train_params(data.qrels, data.runs, fusion, qids)
        fused = fuse_runs(data.runs, fusion.method, fusion.norm, params, None, fusion.hits, qids=qids)
        in_sample = query_scores(judged, fused, qids, tune_params.metric)
        held = np.zeros(len(qids))
        for fold in folds_of(len(qids), tune_params.folds, tune_params.seed):
            train = [qids[i] for i in np.setdiff1d(np.arange(len(qids)), fold)]
            held_qids = [qids[i] for i in fold]
            fold_params = train_params(data.qrels, data.runs, fusion, train)
            fused = fuse_runs(data.runs, fusion.method, fusion.norm, fold_params, None, fusion.hits, qids=held_qids)
            held[fold] = query_scores(judged, fused, held_qids, tune_params.metric)
        held = held if len(qids) > 1 else None
        return {
            "params": params,
            "in_sample": float(language_mean(in_sample, groups)),
            "cross_validated": None if held is None else float(language_mean(held, groups)),
            "held_out": held,
            "settings_tried": "trained",
        }
    settings = candidates(fusion, len(fusion.systems))
    _, matrix = per_query_scores(data.qrels, data.runs, fusion, settings)
    chosen = best_setting(matrix, groups=groups)
    held = held_out_scores(matrix, tune_params.folds, tune_params.seed, groups)
    return {
        "params": settings[chosen],
        "in_sample": float(language_mean(matrix[chosen], groups)),
        "cross_validated": None if held is None else float(language_mean(held, groups)),
        "held_out": held,
        "settings_tried": len(settings),
    }


def summarize(fusion: FusionParams, data: TuningData, tuned: dict, split: str) -> dict:
    return {
        "method": fusion.method,
        "norm": fusion.norm,
        "params": tuned["params"],
        "systems": list(fusion.systems),
        "metric": fusion.tune.metric,
        "split": split,
        "queries": len(data.qids),
        "in_sample": round(tuned["in_sample"], 6),
        "cross_validated": _round(tuned["cross_validated"]),
        "settings_tried": tuned["settings_tried"],
        # each input run's own dev score (not "inputs": that key holds the hashes the up-to-date check reads)
        "input_scores": {system: round(score, 6) for system, score in data.baselines.items()},
    }


def tune_language(config: Config, lang: str) -> dict:
    """The tuned parameters of one language, or a pointer to the pooled ones when dev is too small."""
    fusion = config.fusion
    check_method(fusion.method, fusion.norm)
    data = language_data(config, ReleaseLayout(config.data_root), lang)
    queries = 0 if data is None else len(data.qids)
    if queries < fusion.tune.min_queries:
        log.info(
            "%s: %d judged dev queries (< %d): uses the parameters tuned over all languages",
            lang,
            queries,
            fusion.tune.min_queries,
        )
        return {
            "fallback": POOLED,
            "queries": queries,
            "reason": f"{queries} judged dev queries, fewer than min_queries {fusion.tune.min_queries}",
        }
    entry = summarize(fusion, data, tune(data, fusion), config.evaluation.split)
    log.info(
        "%s: %s %s -> %s %.4f in sample, %s cross-validated (inputs: %s)",
        lang,
        fusion.method,
        _short(entry["params"]),
        fusion.tune.metric,
        entry["in_sample"],
        entry["cross_validated"],
        entry["input_scores"],
    )
    return entry


def tune_pooled(config: Config) -> dict:
    """Parameters tuned over the dev queries of every language that has them, pooled."""
    fusion = config.fusion
    check_method(fusion.method, fusion.norm)
    layout = ReleaseLayout(config.data_root)
    parts = {lang: d for lang in config.languages if (d := language_data(config, layout, lang))}
    if not parts:
        raise InputDataError(None, None, f"no language has judged {config.evaluation.split} queries to tune fusion on")
    data = pooled_data(parts)
    tuned = tune(data, fusion)
    entry = summarize(fusion, data, tuned, config.evaluation.split) | {"languages": list(parts)}
    entry["input_scores_by_language"] = {
        lang: {system: round(score, 6) for system, score in d.baselines.items()} for lang, d in parts.items()
    }
    if tuned["held_out"] is not None:
        # Each language's own mean of the pooled held-out scores: what a language falling back to these
        # parameters can expect (stages average languages, not queries: submissions.choose compares these).
        by_language = {lang: [] for lang in parts}
        for qid, score in zip(data.qids, tuned["held_out"]):
            by_language[qid.split("/", 1)[0]].append(float(score))
        entry["cross_validated_by_language"] = {
            lang: round(float(np.mean(v)), 6) for lang, v in by_language.items() if v
        }
    log.info(
        "pooled over %d languages: %s -> %.4f in sample, %s cross-validated",
        len(parts),
        _short(entry["params"]),
        entry["in_sample"],
        entry["cross_validated"],
    )
    return entry


def describe(entry: dict) -> str:
    """A tuned setting as one reads it: `wsum min-max, weights 0.2 0 0.4 0.4 0`."""
    params = entry["params"]
    if "weights" in params:
        setting = "weights " + " ".join(f"{w:g}" for w in params["weights"])
    else:
        setting = _short(params) if params else "no parameters"
    return f"{entry['method']} {entry['norm']}, {setting}"


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _short(params: dict) -> str:
    text = str(params)
    return text if len(text) < 80 else text[:77] + "..."


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# ---------------------------------------------------------------- files


def tuning_inputs(config: Config, langs: list[str]) -> dict:
    """What a tuning result depends on: the fusion settings and the hash of every dev run and qrels file."""
    from stages.formats.hashing import file_sha256

    layout, split = ReleaseLayout(config.data_root), config.evaluation.split
    files = {}
    for lang in langs:
        if split in config.languages[lang].splits and layout.has_qrels(lang, split):
            files[lang] = {"qrels": file_sha256(layout.qrels_path(lang, split))} | {
                system: file_sha256(config.run_path(system, lang, split)) for system in config.fusion.systems
            }
    return {"files": files} | recorded_config(config, "tune")  # tune and tune-pooled hash the same keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ensemble.tune", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--pooled", action="store_true", help="tune over all languages' dev queries (the fallback)")
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        metric = config.fusion.tune.metric
        if args.pooled:
            path, inputs = params_path(config, POOLED), tuning_inputs(config, list(config.languages))
            with Stopwatch() as watch:
                kept = unchanged(path, inputs)
                if not kept:
                    entry = tune_pooled(config)
                    write_params(path, entry | {"inputs": inputs}, config, POOLED)
            if kept:
                say("tune fusion, pooled: up to date")
            else:
                say(
                    f"tune fusion, pooled over {len(entry['languages'])} languages ({entry['queries']} dev queries): "
                    f"{describe(entry)}, {metric} {entry['in_sample']:.4f} in sample, "
                    f"{_format(entry['cross_validated'])} cross-validated ({watch.text})"
                )
            print(path)
            return
        fallback, kept = [], []
        for lang in config.select_languages(args.lang):
            path, inputs = params_path(config, lang), tuning_inputs(config, [lang])
            with Stopwatch() as watch:
                if unchanged(path, inputs):
                    kept.append(lang)
                    entry = None
                else:
                    entry = tune_language(config, lang)
                    write_params(path, entry | {"inputs": inputs}, config, lang)
            if entry is not None and "fallback" in entry:
                fallback.append(lang)
            elif entry is not None:
                say(
                    f"tune fusion {lang}: {entry['queries']} dev queries: {describe(entry)}, {metric} "
                    f"{entry['in_sample']:.4f} in sample, {_format(entry['cross_validated'])} cross-validated ({watch.text})"
                )
            print(path)
        if fallback:
            say(
                f"tune fusion {' '.join(fallback)}: fewer than {config.fusion.tune.min_queries} judged dev queries each, "
                "so they take the pooled parameters"
            )
        if kept:
            say(f"tune fusion {' '.join(kept)}: up to date")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
