"""The table of expected scores `make check` holds the pipeline to (e.g. configs/expected/miracl-mini.yaml).

It holds system x split x language x metric values, each system's average over every configured language
(`avg`), and tolerances: `tolerance`, exact, for systems whose scores do not depend on the machine (BM25,
RM3); `tolerances`, per trained system and metric, one for a language and one for the average, measured
over seeds (`measured_tolerances`, written by stages.seed_spread).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from itertools import islice
from pathlib import Path

import yaml

from stages.config import Config, ConfigError
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, iter_corpus
from stages.formats.atomic import atomic_write
from stages.formats.jsonfile import read_json

AVERAGE = "avg"  # the pseudo-language of a system's average over every configured language
EXACT = 0.0001  # scores are recorded to 4 decimals
RECALL = re.compile(r"recall@(\d+)")


def recall_depth(metric: str) -> int | None:
    """k of a recall@k metric; None for any other metric."""
    match = RECALL.fullmatch(metric)
    return int(match[1]) if match else None


def corpus_sizes(data_root: Path, langs: Iterable[str], at_most: int) -> dict[str, int]:
    """Each language's passages, counted no further than `at_most` + 1: a count above `at_most` means "more",
    which is all the rule of `uninformative` asks, and a real MIRACL corpus (millions of passages) is not read."""
    layout = ReleaseLayout(data_root)
    return {lang: sum(1 for _ in islice(iter_corpus(layout.corpus_dir(lang)), at_most + 1)) for lang in langs}


def config_corpus_sizes(config: Config, metrics: Iterable[str]) -> dict[str, int]:
    """`corpus_sizes` of every configured language, as far as the deepest recall@k of `metrics` needs; nothing
    is read when there is no recall metric."""
    depths = [k for metric in metrics if (k := recall_depth(metric)) is not None]
    return corpus_sizes(config.data_root, config.languages, max(depths)) if depths else {}


def uninformative(lang: str, metric: str, sizes: Mapping[str, int]) -> bool:
    """Whether a recall@k score of `lang` says nothing of the ranking: a corpus of at most k passages can be
    returned whole within k hits, so the score only tells whether passages were retrieved at all (every corpus of
    the sample holds under 100 passages: its recall@100 was 1.0 for nearly every system and language). The
    average is uninformative as soon as one language is: that language's share of it says nothing either."""
    k = recall_depth(metric)
    if k is None:
        return False
    if lang == AVERAGE:
        return any(size <= k for size in sizes.values())
    return lang in sizes and sizes[lang] <= k


def _selected(split_scores: dict, langs: list[str], whole: bool):
    for lang, metrics in split_scores.items():
        if lang == AVERAGE and whole or lang != AVERAGE and lang in langs:
            yield lang, metrics


def _whole(langs: list[str], all_langs: list[str] | None) -> bool:
    return all_langs is not None and set(langs) == set(all_langs)


def left_out(
    expected: dict, result: dict, langs: list[str], all_langs: list[str] | None, sizes: Mapping[str, int]
) -> list[tuple[str, str, str]]:
    """(system, language, metric) of every score of this split and selection, in the table or measured, that
    `compare` does not check because it is `uninformative`."""
    split, whole = result["split"], _whole(langs, all_langs)
    found = {}
    for system, splits in expected["scores"].items():
        for lang, metrics in _selected(splits.get(split) or {}, langs, whole):
            found |= {(system, lang, m): None for m in metrics if uninformative(lang, m, sizes)}
    for system, per_lang in result["scores"].items():
        measured = dict(per_lang) | (
            {AVERAGE: result["average"][system]} if system in (result.get("average") or {}) else {}
        )
        for lang, scores in _selected(measured, langs, whole):
            found |= {
                (system, lang, m): None for m in result["metrics"] if m in scores and uninformative(lang, m, sizes)
            }
    return list(found)


def load_expected(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"expected-scores file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data.get("scores"), dict) or not isinstance(data.get("tolerance"), (int, float)):
        raise ConfigError(
            f"{path}: expected keys 'tolerance' (a number) and 'scores' (system: split: language: metric: value)"
        )
    if not isinstance(data.get("tolerances", {}), dict):
        raise ConfigError(f"{path}: 'tolerances' must map systems to metric: {{language: x, avg: y}}")
    return data


def table_metrics(expected: dict | None, split: str) -> list[str]:
    """Every metric the table holds for `split` (none without a table)."""
    splits = (expected or {}).get("scores") or {}
    return list(dict.fromkeys(m for s in splits.values() for ms in ((s or {}).get(split) or {}).values() for m in ms))


def tolerance_of(expected: dict, system: str, lang: str, metric: str) -> float:
    """The measured tolerance of a trained system's score, or the exact one."""
    measured = ((expected.get("tolerances") or {}).get(system) or {}).get(metric)
    if measured is None:
        return float(expected["tolerance"])
    return float(measured[AVERAGE if lang == AVERAGE else "language"])


def compare(
    expected: dict,
    result: dict,
    langs: list[str],
    all_langs: list[str] | None = None,
    *,
    sizes: Mapping[str, int],
) -> list[dict]:
    """One row per expected (system, language, metric) of this split and language selection; a system's `avg`
    row is compared when the selection is every configured language (`all_langs`). Rows that are
    `uninformative` for the corpus `sizes` are not compared (`left_out` names them)."""
    split, rows = result["split"], []
    whole = _whole(langs, all_langs)
    for system, splits in expected["scores"].items():
        for lang, metrics in _selected(splits.get(split) or {}, langs, whole):
            for metric, want in metrics.items():
                if uninformative(lang, metric, sizes):
                    continue
                if lang == AVERAGE:
                    got = (result.get("average") or {}).get(system, {}).get(metric)
                else:
                    got = result["scores"].get(system, {}).get(lang, {}).get(metric)
                tolerance = tolerance_of(expected, system, lang, metric)
                ok = got is not None and abs(got - want) <= tolerance + 1e-12
                rows.append(
                    {
                        "system": system,
                        "language": lang,
                        "metric": metric,
                        "expected": want,
                        "measured": got,
                        "tolerance": tolerance,
                        "ok": ok,
                    }
                )
    return rows


def record(
    path: Path, result: dict, previous: dict | None, all_langs: list[str] | None = None, *, sizes: Mapping[str, int]
) -> None:
    """Merge the current scores of this split into the expected table (rounded to 4 decimals); each system's
    average too when the result covers every configured language (`all_langs`). `uninformative` scores are
    not recorded (`write_expected`)."""
    data = previous or {"tolerance": EXACT, "scores": {}}
    for system, per_lang in result["scores"].items():
        target = data["scores"].setdefault(system, {}).setdefault(result["split"], {})
        for lang, scores in per_lang.items():
            target[lang] = {m: round(scores[m], 4) for m in result["metrics"]}
        if all_langs is not None and set(per_lang) == set(all_langs) and system in (result.get("average") or {}):
            target[AVERAGE] = {m: round(result["average"][system][m], 4) for m in result["metrics"]}
    write_expected(path, data, result["collection"], sizes=sizes)


def without_uninformative(scores: dict, sizes: Mapping[str, int]) -> dict:
    """The table's scores ({system: {split: {language: {metric: value}}}}) less its `uninformative` rows, and
    less the languages, splits and systems left empty by that."""
    kept = {}
    for system, splits in scores.items():
        for split, per_lang in (splits or {}).items():
            for lang, metrics in (per_lang or {}).items():
                informative = {m: v for m, v in (metrics or {}).items() if not uninformative(lang, m, sizes)}
                if informative:
                    kept.setdefault(system, {}).setdefault(split, {})[lang] = informative
    return kept


def write_expected(path: Path, data: dict, collection: str, *, sizes: Mapping[str, int]) -> None:
    """Write the table; a score that is `uninformative` for the corpus `sizes` is never written, by whichever
    path (--record, make check-tolerance), so the check cannot be handed one again."""
    data = data | {"scores": without_uninformative(data["scores"], sizes)}
    with atomic_write(path) as out:
        out.write(f"# Expected scores on {collection}; regenerate with `python -m stages.check --record`\n")
        out.write(
            "# after a deliberate change, and say why in the commit. `tolerances` (trained systems) are measured\n"
        )
        out.write(
            "# by `make check-tolerance` (stages.seed_spread): the widest spread over seeds of the same config.\n"
        )
        yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True)


def _ceil4(value: float) -> float:
    return math.ceil(round(value * 1e4, 6)) / 1e4


def width_factor(runs: int) -> float:
    """(n + 1) / (n - 1): the range of n draws from a bounded spread, scaled to an unbiased estimate of that
    spread's whole width (for a uniform one; the expected range is the width times (n - 1) / (n + 1)). The
    plain range is too narrow by construction: a new run falls outside the range of n with odds 2 / (n + 1)."""
    if runs < 2:
        raise ConfigError("a spread needs at least two runs: the config's own and one more seed")
    return (runs + 1) / (runs - 1)


def measured_tolerances(results: list[dict], split: str, all_langs: list[str], *, sizes: Mapping[str, int]) -> dict:
    """{system: {metric: {language, avg}}} for every system whose scores differ between the runs: the widest
    spread (max - min over the runs) of any language's score, and of the average, times `width_factor` (rounded
    up to 4 decimals). Systems that score the same in every run (deterministic ones) are left out: they keep the
    exact tolerance. `uninformative` scores take no part: the check never compares them."""
    factor = width_factor(len(results))
    systems = set.intersection(*(set(r["scores"]) for r in results))
    tolerances = {}
    for system in sorted(systems):
        metrics = results[0]["metrics"]
        per_metric = {}
        for metric in metrics:
            widest = 0.0
            for lang in all_langs:
                if uninformative(lang, metric, sizes):
                    continue
                values = [r["scores"][system][lang][metric] for r in results if lang in r["scores"][system]]
                if len(values) == len(results):
                    widest = max(widest, max(values) - min(values))
            averages = [
                sum(r["scores"][system][lang][metric] for lang in all_langs) / len(all_langs)
                for r in results
                if all(lang in r["scores"][system] for lang in all_langs)
            ]
            spread_avg = (
                max(averages) - min(averages)
                if len(averages) == len(results) and not uninformative(AVERAGE, metric, sizes)
                else 0.0
            )
            if widest > EXACT / 2 or spread_avg > EXACT / 2:
                per_metric[metric] = {
                    "language": max(_ceil4(widest * factor), EXACT),
                    AVERAGE: max(_ceil4(spread_avg * factor), EXACT),
                }
        if per_metric:
            tolerances[system] = per_metric
    return tolerances


def result_path(config: Config, split: str) -> Path:
    return config.work_dir / "runs" / f"eval.{split}.json"


def read_result(config: Config, split: str) -> dict:
    source = result_path(config, split)
    result = read_json(source)
    if not isinstance(result, dict):
        raise InputDataError(None, None, f"no evaluation at {source}; run `make eval SPLIT={split}` first")
    return result
