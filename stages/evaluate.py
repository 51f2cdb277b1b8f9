"""Evaluation: nDCG@10 and Recall@100 per language and their average, for every system with runs.

    python -m stages.evaluate --lang all --split dev

Scores follow trec_eval with `-c`: every query of the qrels counts, and a query the run does not
answer (no hits) scores 0. Runs are found under `<work>/<collection>/runs/<system>/`; the table is
printed as markdown and saved beside the runs as `eval.<split>.md`, `.csv` and `.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.console import say
from stages.errors import InputDataError
from stages.formats.atomic import atomic_write
from stages.retrieval.evaluation import METRIC_LABELS, evaluate_systems

log = logging.getLogger("stages.evaluate")


def to_frame(result: dict) -> pd.DataFrame:
    """Rows: languages then `avg`; columns: `<system> <metric>`."""
    columns = {}
    for system, per_lang in result["scores"].items():
        for metric in result["metrics"]:
            label = f"{system} {METRIC_LABELS.get(metric, metric)}"
            column = {lang: scores[metric] for lang, scores in per_lang.items()}
            column["avg"] = result["average"][system][metric]
            columns[label] = column
    frame = pd.DataFrame(columns)
    order = [lang for lang in _languages_in(result)] + ["avg"]
    return frame.reindex(order)


def _languages_in(result: dict) -> list[str]:
    seen = []
    for per_lang in result["scores"].values():
        for lang in per_lang:
            if lang not in seen:
                seen.append(lang)
    return seen


def save(result: dict, frame: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    stem = f"eval.{result['split']}"
    paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "json")}
    with atomic_write(paths["md"]) as out:
        out.write(frame.to_markdown(floatfmt=".4f") + "\n")
    with atomic_write(paths["csv"]) as out:
        frame.to_csv(out, float_format="%.4f", index_label="language")
    with atomic_write(paths["json"]) as out:
        json.dump(result, out, indent=2)
        out.write("\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        split = args.split or config.evaluation.split
        result = evaluate_systems(config, config.select_languages(args.lang), split)
        if not result["scores"]:
            raise InputDataError(None, None, f"no {split} runs under {config.work_dir / 'runs'}; run `make bm25` first")
        frame = to_frame(result)
        paths = save(result, frame, config.work_dir / "runs")
        say(f"\n{config.collection}, {split} split\n")
        say(frame.to_markdown(floatfmt=".4f"))
        say(f"\nsaved: {', '.join(str(p) for p in paths.values())}")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
