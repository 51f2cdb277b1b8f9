"""What to submit when `submission.system` is `auto`: the system, fused or single, with the best dev estimate.

The candidates are the fused run and each of its inputs. A single system's estimate is its dev score
(nothing was tuned on dev, so the score is already out of sample); the fused run's is the k-fold
cross-validated score of its tuning (ensemble.tune), since its in-sample score has seen the queries it is
scored on. Both are the tuning metric, per language, averaged over the selected languages that every
candidate has an estimate for (a language that falls back to the pooled parameters contributes the pooled
tuning's held-out scores of its own queries). The highest average wins; a tie goes to the fused run, then
to the inputs in their configured order. The manifest records every candidate's estimate, the choice and
the reason.
"""

from __future__ import annotations

import logging

import numpy as np

from ensemble.params import load_tuned, params_path
from stages.config import Config
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, read_run
from stages.formats.hashing import file_sha256

log = logging.getLogger("submissions.choose")
AUTO = "auto"


def recorded_score(config: Config, system: str, lang: str, path) -> float | None:
    """`system`'s dev score as the fusion tuning recorded it, if the tuning read this very run file.

    Tuning scores every input run anyway; reading its record spares a second evaluation (ranx's numba start-up
    was most of a repeated `make submission`)."""
    tuned_path = params_path(config, lang)
    if not tuned_path.is_file():
        return None
    tuned = load_tuned(tuned_path)
    scores = (
        (tuned.get("input_scores_by_language") or {}).get(lang)
        if "fallback_reason" in tuned
        else tuned.get("input_scores")
    )
    read = ((tuned.get("inputs") or {}).get("files") or {}).get(lang, {}).get(system)
    if (
        not scores
        or system not in scores
        or tuned.get("metric") != config.fusion.tune.metric
        or read != file_sha256(path)
    ):
        return None
    return float(scores[system])


def single_estimates(config: Config, system: str, langs: list[str]) -> dict[str, float]:
    """The tuning metric of `system`'s dev run per language (languages with judged dev queries and a run)."""
    from ensemble.methods import truncate  # with ranx and pandas: only when a run is scored here
    from stages.retrieval.evaluation import evaluate_run

    layout, split, metric = ReleaseLayout(config.data_root), config.evaluation.split, config.fusion.tune.metric
    scores = {}
    for lang in langs:
        path = config.run_path(system, lang, split)
        if split in config.languages[lang].splits and layout.has_qrels(lang, split) and path.is_file():
            recorded = recorded_score(config, system, lang, path)
            if recorded is None:
                run = truncate(read_run(path), config.fusion.hits)
                recorded = evaluate_run(layout.qrels(lang, split), run, [metric])[metric]
            scores[lang] = recorded
    return scores


def fused_estimates(config: Config, langs: list[str]) -> dict[str, float]:
    """The fused run's cross-validated estimate per language, from the tuned parameter files."""
    scores = {}
    for lang in langs:
        path = params_path(config, lang)
        if not path.is_file():
            continue
        tuned = load_tuned(path)
        value = (
            (tuned.get("cross_validated_by_language") or {}).get(lang)
            if "fallback_reason" in tuned
            else tuned.get("cross_validated")
        )
        if value is not None:
            scores[lang] = float(value)
    return scores


def choose_system(config: Config, langs: list[str]) -> tuple[str, dict]:
    """The submitted system and the record of why (candidates' estimates, languages, rule)."""
    fusion = config.fusion
    per_system = {fusion.name: fused_estimates(config, langs)}
    per_system |= {system: single_estimates(config, system, langs) for system in fusion.systems}
    shared = [lang for lang in langs if all(lang in scores for scores in per_system.values())]
    if not shared:
        raise InputDataError(
            None,
            None,
            f"submission.system: auto needs dev estimates of {', '.join(per_system)} for at least one "
            f"of {' '.join(langs)}; `make tune-fusion` writes the fused run's (judged "
            f"{config.evaluation.split} queries are needed)",
        )
    means = {system: float(np.mean([scores[lang] for lang in shared])) for system, scores in per_system.items()}
    order = list(per_system)  # the fused run first, then the inputs in their configured order: ties go early
    chosen = max(order, key=lambda s: (means[s], -order.index(s)))
    best_single = max(fusion.systems, key=lambda s: (means[s], -order.index(s)))
    metric = fusion.tune.metric
    if chosen == fusion.name:
        reason = (
            f"the fused run's cross-validated {metric} {means[chosen]:.4f} is the best estimate "
            f"(best single system: {best_single} {means[best_single]:.4f})"
        )
    else:
        reason = (
            f"{chosen}'s dev {metric} {means[chosen]:.4f} is above the fused run's cross-validated "
            f"{means[fusion.name]:.4f}: on these dev queries fusion does not pay"
        )
    record = {
        "rule": "best mean dev estimate over the languages: single systems' dev score, the fused run's "
        "k-fold cross-validated score",
        "metric": metric,
        "split": config.evaluation.split,
        "languages": shared,
        "candidates": {system: round(value, 6) for system, value in means.items()},
        "per_language": {
            system: {lang: round(scores[lang], 6) for lang in shared} for system, scores in per_system.items()
        },
        "chosen": chosen,
        "reason": reason,
    }
    log.info("submission.system auto: %s (%s)", chosen, reason)
    return chosen, record


def submitted_system(config: Config, langs: list[str]) -> tuple[str, dict | None]:
    """The configured system, or the automatic choice and its record."""
    if config.submission.system != AUTO:
        return config.submission.system, None
    return choose_system(config, langs)
