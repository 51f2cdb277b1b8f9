"""Two-click reproduction: compare evaluated scores with the table of expected ones.

    python -m stages.check --split dev            # after `python -m stages.evaluate --split dev`
    python -m stages.check --split dev --record   # write the current scores as the expectation

The table (`expected_scores` in the config, e.g. configs/expected/miracl-mini.yaml) holds
system x split x language x metric values and a tolerance. Any score outside it, or an expected
score that was not produced, makes the check fail, so a regression shows at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from stages.config import Config, ConfigError, add_config_arguments, config_from_args
from stages.formats.atomic import atomic_write


def load_expected(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"expected-scores file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data.get("scores"), dict) or not isinstance(data.get("tolerance"), (int, float)):
        raise ConfigError(f"{path}: expected keys 'tolerance' (a number) and 'scores' (system: split: language: metric: value)")
    return data


def compare(expected: dict, result: dict, langs: list[str]) -> list[dict]:
    """One row per expected (system, language, metric) of this split and language selection."""
    split, rows = result["split"], []
    tolerance = float(expected["tolerance"])
    for system, splits in expected["scores"].items():
        for lang, metrics in (splits.get(split) or {}).items():
            if lang not in langs:
                continue
            for metric, want in metrics.items():
                got = result["scores"].get(system, {}).get(lang, {}).get(metric)
                ok = got is not None and abs(got - want) <= tolerance
                rows.append({"system": system, "language": lang, "metric": metric, "expected": want,
                             "measured": got, "ok": ok})
    return rows


def record(path: Path, result: dict, previous: dict | None) -> None:
    """Merge the current scores of this split into the expected table (rounded to 4 decimals)."""
    data = previous or {"tolerance": 0.0001, "scores": {}}
    for system, per_lang in result["scores"].items():
        target = data["scores"].setdefault(system, {}).setdefault(result["split"], {})
        for lang, scores in per_lang.items():
            target[lang] = {m: round(scores[m], 4) for m in result["metrics"]}
    with atomic_write(path) as out:
        out.write(f"# Expected scores on {result['collection']}; regenerate with `python -m stages.check --record`\n")
        out.write("# after a deliberate change, and say why in the commit.\n")
        yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True)


def result_path(config: Config, split: str) -> Path:
    return config.work_dir / "runs" / f"eval.{split}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.check", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--record", action="store_true", help="write the current scores into the expected table")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        langs = config.select_languages(args.lang)
        split = args.split or config.evaluation.split
        if config.expected_scores is None:
            raise ConfigError(f"{config.source}: no expected_scores file configured")
        source = result_path(config, split)
        if not source.is_file():
            raise ConfigError(f"no evaluation at {source}; run `make eval SPLIT={split}` first")
        result = json.loads(source.read_text(encoding="utf-8"))
        if args.record:
            previous = load_expected(config.expected_scores) if config.expected_scores.is_file() else None
            record(config.expected_scores, result, previous)
            print(f"recorded {split} scores in {config.expected_scores}")
            return 0
        expected = load_expected(config.expected_scores)
    except ConfigError as err:
        print(f"check: {err}", file=sys.stderr)
        return 2
    rows = compare(expected, result, langs)
    if not rows:
        print(f"check: {config.expected_scores} has no expected {split} scores for {' '.join(langs)}", file=sys.stderr)
        return 2
    print("| system | language | metric | expected | measured | |\n|---|---|---|---|---|---|")
    for row in rows:
        measured = "missing" if row["measured"] is None else f"{row['measured']:.4f}"
        print(f"| {row['system']} | {row['language']} | {row['metric']} | {row['expected']:.4f} | {measured} | "
              f"{'ok' if row['ok'] else 'FAIL'} |")
    failed = [r for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} scores within ±{expected['tolerance']} of {config.expected_scores}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
