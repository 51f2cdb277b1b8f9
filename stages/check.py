"""Two-click reproduction: compare evaluated scores with the table of expected ones.

    python -m stages.check --split dev            # after `python -m stages.evaluate --split dev`
    python -m stages.check --split dev --record   # write the current scores as the expectation

The table (`expected_scores` in the config, e.g. configs/expected/miracl-mini.yaml) holds
system x split x language x metric values, each system's 18-language average (`avg`), and tolerances:

- `tolerance`: for systems whose scores do not depend on the machine (BM25, RM3: exact to the 4 decimals
  recorded);
- `tolerances`: for each system built from trained models, per metric, one for a language and one for the
  average. Trained models' scores move with the CPU's float arithmetic, so these are measured, not guessed:
  `make check-tolerance` (stages.seed_spread) trains the same config under other seeds and records the
  widest spread it saw (max - min over the seeds, the config's own included), widened for the number of
  seeds (`width_factor`).

Any score outside its tolerance, or an expected score that was not produced, makes the check fail and is
named in the summary, so a regression shows at once.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import yaml

from stages.cli import run_stage
from stages.config import Config, ConfigError, add_config_arguments, config_from_args
from stages.console import say
from stages.formats.atomic import atomic_write
from stages.formats.jsonfile import read_json

log = logging.getLogger("stages.check")
AVERAGE = "avg"  # the pseudo-language of a system's average over every configured language
EXACT = 0.0001  # scores are recorded to 4 decimals


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


def tolerance_of(expected: dict, system: str, lang: str, metric: str) -> float:
    """The measured tolerance of a trained system's score, or the exact one."""
    measured = ((expected.get("tolerances") or {}).get(system) or {}).get(metric)
    if measured is None:
        return float(expected["tolerance"])
    return float(measured[AVERAGE if lang == AVERAGE else "language"])


def compare(expected: dict, result: dict, langs: list[str], all_langs: list[str] | None = None) -> list[dict]:
    """One row per expected (system, language, metric) of this split and language selection; a system's `avg`
    row is compared when the selection is every configured language (`all_langs`)."""
    split, rows = result["split"], []
    whole = all_langs is not None and set(langs) == set(all_langs)
    for system, splits in expected["scores"].items():
        for lang, metrics in (splits.get(split) or {}).items():
            if lang == AVERAGE and not whole or lang != AVERAGE and lang not in langs:
                continue
            for metric, want in metrics.items():
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


def record(path: Path, result: dict, previous: dict | None, all_langs: list[str] | None = None) -> None:
    """Merge the current scores of this split into the expected table (rounded to 4 decimals); each system's
    average too when the result covers every configured language (`all_langs`)."""
    data = previous or {"tolerance": EXACT, "scores": {}}
    for system, per_lang in result["scores"].items():
        target = data["scores"].setdefault(system, {}).setdefault(result["split"], {})
        for lang, scores in per_lang.items():
            target[lang] = {m: round(scores[m], 4) for m in result["metrics"]}
        if all_langs is not None and set(per_lang) == set(all_langs) and system in (result.get("average") or {}):
            target[AVERAGE] = {m: round(result["average"][system][m], 4) for m in result["metrics"]}
    write_expected(path, data, result["collection"])


def write_expected(path: Path, data: dict, collection: str) -> None:
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


def measured_tolerances(results: list[dict], split: str, all_langs: list[str]) -> dict:
    """{system: {metric: {language, avg}}} for every system whose scores differ between the runs: the widest
    spread (max - min over the runs) of any language's score, and of the average, times `width_factor` (rounded
    up to 4 decimals). Systems that score the same in every run (deterministic ones) are left out: they keep the
    exact tolerance."""
    factor = width_factor(len(results))
    systems = set.intersection(*(set(r["scores"]) for r in results))
    tolerances = {}
    for system in sorted(systems):
        metrics = results[0]["metrics"]
        per_metric = {}
        for metric in metrics:
            widest = 0.0
            for lang in all_langs:
                values = [r["scores"][system][lang][metric] for r in results if lang in r["scores"][system]]
                if len(values) == len(results):
                    widest = max(widest, max(values) - min(values))
            averages = [
                sum(r["scores"][system][lang][metric] for lang in all_langs) / len(all_langs)
                for r in results
                if all(lang in r["scores"][system] for lang in all_langs)
            ]
            spread_avg = max(averages) - min(averages) if len(averages) == len(results) else 0.0
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
        raise ConfigError(f"no evaluation at {source}; run `make eval SPLIT={split}` first")
    return result


def summary(rows: list[dict], expected_path: Path) -> list[str]:
    """The check's last lines: how many held, and each one that did not."""
    failed = [r for r in rows if not r["ok"]]
    lines = [f"{len(rows) - len(failed)} of {len(rows)} expected scores hold ({expected_path})"]
    for row in failed:
        measured = "missing" if row["measured"] is None else f"{row['measured']:.4f}"
        lines.append(
            f"  FAIL {row['system']} {row['language']} {row['metric']}: {measured}, expected "
            f"{row['expected']:.4f} ± {row['tolerance']:g}"
        )
    return lines


def system_table(rows: list[dict]) -> list[str]:
    """Per system: rows checked, rows that hold, the largest deviation seen and the tolerances applied."""
    lines = ["| system | scores | hold | largest deviation | tolerance |", "|---|---|---|---|---|"]
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        deviations = [abs(r["measured"] - r["expected"]) for r in mine if r["measured"] is not None]
        low, high = min(r["tolerance"] for r in mine), max(r["tolerance"] for r in mine)
        largest = f"{max(deviations):.4f}" if deviations else "-"
        tolerance = f"{low:g}" if low == high else f"{low:g} to {high:g}"
        lines.append(f"| {system} | {len(mine)} | {sum(r['ok'] for r in mine)} | {largest} | {tolerance} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.check", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--record", action="store_true", help="write the current scores into the expected table")
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        langs = config.select_languages(args.lang)
        split = args.split or config.evaluation.split
        if config.expected_scores is None:
            raise ConfigError(f"{config.source}: no expected_scores file configured")
        result = read_result(config, split)
        if args.record:
            previous = load_expected(config.expected_scores) if config.expected_scores.is_file() else None
            record(config.expected_scores, result, previous, list(config.languages))
            say(f"recorded {split} scores in {config.expected_scores}")
            return 0
        expected = load_expected(config.expected_scores)
        rows = compare(expected, result, langs, list(config.languages))
        if not rows:
            raise ConfigError(f"{config.expected_scores} has no expected {split} scores for {' '.join(langs)}")
        table = ["| system | language | metric | expected | measured | tolerance | |", "|---|---|---|---|---|---|---|"]
        for row in rows:
            measured = "missing" if row["measured"] is None else f"{row['measured']:.4f}"
            table.append(
                f"| {row['system']} | {row['language']} | {row['metric']} | {row['expected']:.4f} | {measured} | "
                f"±{row['tolerance']:g} | {'ok' if row['ok'] else 'FAIL'} |"
            )
        rows_path = config.work_dir / "runs" / f"check.{split}.md"
        with atomic_write(rows_path) as out:
            out.write("\n".join(table) + "\n")
        say("\n".join(system_table(rows) + ["", f"every row: {rows_path}"] + summary(rows, config.expected_scores)))
        return 1 if any(not r["ok"] for r in rows) else 0

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
