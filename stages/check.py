"""Two-click reproduction: compare evaluated scores with the table of expected ones.

    python -m stages.check --split dev            # after `python -m stages.evaluate --split dev`
    python -m stages.check --split dev --record   # write the current scores as the expectation

The table (`expected_scores` in the config, e.g. configs/expected/miracl-mini.yaml; read and written by
stages.expected) holds system x split x language x metric values, each system's 18-language average (`avg`),
and tolerances:

- `tolerance`: for systems whose scores do not depend on the machine (BM25, RM3: exact to the 4 decimals
  recorded);
- `tolerances`: for each system built from trained models, per metric, one for a language and one for the
  average. Trained models' scores move with the CPU's float arithmetic, so these are measured, not guessed:
  `make check-tolerance` (stages.seed_spread) trains the same config under other seeds and records the
  widest spread it saw (max - min over the seeds, the config's own included), widened for the number of
  seeds (`width_factor`).

Any score outside its tolerance, or an expected score that was not produced, makes the check fail and is
named in the summary, so a regression shows at once. A recall@k score of a language whose corpus holds at
most k passages is neither checked nor recorded: within k hits every passage can be returned, so it says
whether passages were retrieved at all, not how they were ranked (one line says how many were left out).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stages.cli import run_stage
from stages.config import ConfigError, add_config_arguments, config_from_args
from stages.console import say
from stages.expected import (
    AVERAGE,
    compare,
    config_corpus_sizes,
    left_out,
    load_expected,
    read_result,
    record,
    table_metrics,
)
from stages.formats.atomic import atomic_write

log = logging.getLogger("stages.check")


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


def left_out_line(left: list[tuple[str, str, str]]) -> str | None:
    """One line: how many scores the check leaves out, which, and why; None when it leaves none out."""
    if not left:
        return None
    metrics = " ".join(dict.fromkeys(metric for _, _, metric in left))
    langs = [lang for lang in dict.fromkeys(lang for _, lang, _ in left) if lang != AVERAGE]
    averages = ", and the averages over the languages" if any(lang == AVERAGE for _, lang, _ in left) else ""
    return (
        f"{len(left)} {metrics} scores not checked ({' '.join(langs)}{averages}): "
        "a corpus of at most k passages fits whole in k hits, so recall@k there says whether passages were "
        "retrieved at all, not how they were ranked"
    )


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
        # --record starts a table where there is none; the check itself needs one
        expected = (
            load_expected(config.expected_scores) if config.expected_scores.is_file() or not args.record else None
        )
        sizes = config_corpus_sizes(config, [*result["metrics"], *table_metrics(expected, split)])
        if args.record:
            record(config.expected_scores, result, expected, list(config.languages), sizes=sizes)
            say(f"recorded {split} scores in {config.expected_scores}")
            return 0
        rows = compare(expected, result, langs, list(config.languages), sizes=sizes)
        skipped = left_out_line(left_out(expected, result, langs, list(config.languages), sizes))
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
            out.write("\n".join(table + ([f"\n{skipped}"] if skipped else [])) + "\n")
        say(
            "\n".join(
                system_table(rows)
                + ["", f"every row: {rows_path}"]
                + ([skipped] if skipped else [])
                + summary(rows, config.expected_scores)
            )
        )
        return 1 if any(not r["ok"] for r in rows) else 0

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
