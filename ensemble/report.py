"""The comparison people read: per metric, a table of languages by systems, a bar chart, the tuned weights.

    python -m ensemble.report --lang all --split dev      # what `make report` calls

Writes `work/<collection>/reports/report.<split>.md` (both metric tables and the tuned parameters),
one CSV per metric, and `report.<split>.ndcg@10.png` (grouped bars: languages by system).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from ensemble.params import load_tuned, params_path
from stages.cli import run_stage
from stages.config import Config, add_config_arguments, config_from_args
from stages.console import say
from stages.errors import InputDataError
from stages.formats import atomic_write
from stages.retrieval.evaluation import METRIC_LABELS, evaluate_systems

log = logging.getLogger("ensemble.report")


def system_order(config: Config, systems: list[str]) -> list[str]:
    """Fusion inputs in their configured order, other systems next, the fused run last."""
    fusion = config.fusion
    first = [s for s in fusion.systems if s in systems]
    rest = sorted(s for s in systems if s not in first and s != fusion.name)
    return first + rest + ([fusion.name] if fusion.name in systems else [])


def metric_table(result: dict, metric: str, systems: list[str]) -> pd.DataFrame:
    """Rows: languages then `avg` (over the languages every system has); columns: systems."""
    langs = [lang for lang in _languages(result) if all(lang in result["scores"].get(s, {}) for s in systems)]
    frame = pd.DataFrame(
        {s: {lang: result["scores"][s][lang][metric] for lang in langs} for s in systems}, index=langs, columns=systems
    )
    frame.loc["avg"] = frame.mean(axis=0)
    return frame


def _languages(result: dict) -> list[str]:
    return list(dict.fromkeys(lang for per_lang in result["scores"].values() for lang in per_lang))


def tuned_table(config: Config, langs: list[str]) -> pd.DataFrame:
    """Per language: method, parameters, tuned and cross-validated scores, and where they came from."""
    rows = {}
    for lang in langs:
        path = params_path(config, lang)
        if not path.is_file():
            continue
        tuned = load_tuned(path)
        rows[lang] = {
            "method": tuned["method"],
            "norm": tuned["norm"],
            "params": _params_text(tuned["params"]),
            "tuned on": "all languages (pooled)" if "fallback_reason" in tuned else f"{lang} {tuned['split']}",
            "queries": tuned["queries"],
            "in-sample": tuned["in_sample"],
            "cross-validated": tuned.get("cross_validated"),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _params_text(params: dict) -> str:
    if "weights" in params:
        return " ".join(f"{w:g}" for w in params["weights"])
    return " ".join(f"{k}={v}" for k, v in params.items()) or "-"


def chart_figure(frame: pd.DataFrame, title: str):
    """Grouped bars, languages by system, the legend outside the plot area. A score of 0 is drawn as a marker
    and labelled `0`; a missing score is labelled `n/a`, so the two never look alike (neither has a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(frame)) + 2, 4))
    frame.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel(title)
    ax.set_ylim(0, 1)
    # Outside, right of the axes: over the plot it hid the tallest bars.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    for container, system in zip(ax.containers, frame.columns):
        for patch, value in zip(container.patches, frame[system]):
            x = patch.get_x() + patch.get_width() / 2
            if pd.isna(value):
                ax.annotate(
                    "n/a",
                    (x, 0),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize="x-small",
                    color="0.4",
                )
            elif value == 0:
                ax.plot([x], [0], marker="v", color=patch.get_facecolor(), markersize=6, clip_on=False, zorder=3)
                ax.annotate(
                    "0", (x, 0), xytext=(0, 5), textcoords="offset points", ha="center", va="bottom", fontsize="x-small"
                )
    fig.tight_layout()
    return fig


def bar_chart(frame: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = chart_figure(frame, title)
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def build_report(config: Config, langs: list[str], split: str) -> dict[str, Path]:
    result = evaluate_systems(config, langs, split)
    if not result["scores"]:
        raise InputDataError(
            None, None, f"no runs for {split} under {config.work_dir / 'runs'}; run `make report` to build them"
        )
    systems = system_order(config, list(result["scores"]))
    out_dir = config.work_dir / "reports"
    written, sections = {}, [f"# {config.collection}, {split}\n"]
    for metric in result["metrics"]:
        label = METRIC_LABELS.get(metric, metric)
        table = metric_table(result, metric, systems)
        csv_path = out_dir / f"report.{split}.{metric}.csv"
        with atomic_write(csv_path) as out:
            table.to_csv(out, float_format="%.4f", index_label="language")
        written[metric] = csv_path
        sections.append(f"## {label}\n\n{table.to_markdown(floatfmt='.4f')}\n")
        if metric == result["metrics"][0]:
            png = out_dir / f"report.{split}.{metric}.png"
            bar_chart(table, f"{label} ({split})", png)
            written["chart"] = png
            sections.append(f"![{label} per language and system]({png.name})\n")
    tuned = tuned_table(config, langs)
    if not tuned.empty:
        sections.append(
            f"## Fusion parameters ({config.fusion.name}: {' + '.join(config.fusion.systems)})\n\n"
            f"{tuned.to_markdown(floatfmt='.4f')}\n"
        )
    md = out_dir / f"report.{split}.md"
    with atomic_write(md) as out:
        out.write("\n".join(sections))
    written["markdown"] = md
    say("\n".join(sections))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ensemble.report", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        written = build_report(config, config.select_languages(args.lang), args.split or config.evaluation.split)
        for path in written.values():
            log.info("wrote %s", path)

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
