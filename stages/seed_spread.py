"""How far trained models' scores move when only the seed changes: the tolerances `make check` applies to them.

    make check-tolerance SEEDS="14 15 16 17" # python -m stages.seed_spread --seeds "14 15 16 17"

A trained model's dev score depends on the seed and on the CPU's float arithmetic (the same config gave
0.4201 on one CPU and 0.4562 on another for one language's cross-encoder). So the expected-scores table
cannot hold trained systems to its 4 decimals. For each seed this stage writes a child config
(`work/seeds/<collection>/seed-<n>.yaml`: the config, every training seed set to n, its own work folder),
builds and evaluates every system's dev runs under it with make, then takes, with this machine's run of the
config itself, the widest spread (max - min over the seeds) of each trained system's scores, per metric
(one for any language, one for the average), widened by (n + 1) / (n - 1) for n seeds: the range of a few
runs underestimates how far the next one can land (stages.expected.width_factor). Those go into the table's `tolerances`, with the
seeds, the machine and the date. Systems that score the same under every seed (BM25, RM3) keep the exact
tolerance. The spread is over seeds only, never against the table: a tolerance that took in the table's
distance to this run would widen to swallow the regression the check is for. Last, it says how many of
the table's scores this machine's run meets within the new tolerances.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from stages.cli import run_stage
from stages.config import REPO_ROOT, Config, ConfigError, add_config_arguments, config_from_args, load_config
from stages.console import Stopwatch, restored_terminal, say
from stages.errors import PipelineError
from stages.expected import (
    compare,
    config_corpus_sizes,
    load_expected,
    measured_tolerances,
    read_result,
    table_metrics,
    write_expected,
)

log = logging.getLogger("stages.seed_spread")


def seeded_config(config: Config, seed: int, folder: Path) -> Path:
    """A child config: `config` with every training seed set to `seed` and a work folder of its own."""
    path = folder / f"seed-{seed}.yaml"

    def training():
        return {"seed": seed}

    child = {
        "extends": str(Path(config.source).resolve()),
        "work_root": str(folder / f"seed-{seed}"),
        "cross_encoder": {"nmt_training": training(), "miracl_training": training()},
        "bi_encoder": {"distillation": {"training": training()}, "miracl_training": training()},
        "query_generator": {"training": training()},
    }
    folder.mkdir(parents=True, exist_ok=True)
    text = f"# make check-tolerance: {config.source} trained under seed {seed}\n" + yaml.safe_dump(
        child, sort_keys=False
    )
    if not path.is_file() or path.read_text(encoding="utf-8") != text:  # rewritten, it would make every run stale
        path.write_text(text, encoding="utf-8")
    return path


def share_machine_records(config: Config, seeded: Config) -> None:
    """The seeded run measures nothing again: the precision choice (work/.machine/) and the converted packaged
    models are this machine's, so the seeds differ in their seed alone."""
    for name in (".machine", "packaged"):
        source, target = config.work_root / name, seeded.work_root / name
        if source.is_dir() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target)


def build_and_evaluate(config_path: Path, data: str | None, split: str) -> None:
    """Every system's runs of `split` under the child config, and their evaluation (make check-runs)."""
    command = ["make", "--no-print-directory", "check-runs", f"CONFIG={config_path}", f"SPLIT={split}"]
    if data:
        command.append(f"DATA={data}")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    with restored_terminal():  # make's stages report to the person running this one, not to this stage's log
        result = subprocess.run(command, cwd=REPO_ROOT, env=env)
    if result.returncode != 0:
        # The nested make reported the failure, and its kind, above; exit 1 like any failure of unknown kind.
        raise PipelineError(
            f"building the runs of {config_path} failed (exit {result.returncode}); see the lines above"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.seed_spread", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False)
    parser.add_argument("--seeds", default="14 15 16 17", help="training seeds to run besides the config's own")
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        split = args.split or config.evaluation.split
        if config.expected_scores is None:
            raise ConfigError(f"{config.source}: no expected_scores file configured")
        seeds = [int(s) for s in args.seeds.replace(",", " ").split()]
        if not seeds:
            raise ConfigError('give at least one seed: SEEDS="14 15 16 17"')
        expected = load_expected(config.expected_scores)
        # Seeds only: a spread that took in the table or this run against it would widen to swallow the very
        # regression the check is for.
        results = [read_result(config, split)]
        folder = config.work_root / "seeds" / config.collection
        for seed in seeds:
            path = seeded_config(config, seed, folder)
            seeded = load_config(path, args.data)
            share_machine_records(config, seeded)
            with Stopwatch() as watch:
                build_and_evaluate(path, args.data, split)
            results.append(read_result(seeded, split))
            say(f"seed {seed}: every system's {split} runs built and evaluated ({watch.text})")
        langs = list(config.languages)
        # the rows the check leaves out (stages.expected.uninformative) get no tolerance and are not written
        sizes = config_corpus_sizes(config, [*results[0]["metrics"], *table_metrics(expected, split)])
        tolerances = measured_tolerances(results, split, langs, sizes=sizes)
        from stages.models.precision import cpu_identity, resolve

        expected["tolerances"] = tolerances
        expected["tolerances_measured"] = {
            "seeds": [_own_seed(config)] + seeds,
            "split": split,
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{cpu_identity()['cpu']}, {cpu_identity()['threads']} threads, training precision "
            f"{resolve(config.cross_encoder.miracl_training.precision, config.work_root)}",
            "rule": "per trained system and metric: the widest max - min over the seeds of any language's score "
            "(language) and of the average over the languages (avg), times (n + 1) / (n - 1) for n seeds, "
            "rounded up to 4 decimals",
        }
        write_expected(config.expected_scores, expected, config.collection, sizes=sizes)
        # What the check will say of this machine's own run under the new tolerances.
        rows = compare(expected, results[0], langs, langs, sizes=sizes)
        outside = [r for r in rows if not r["ok"]]
        say(
            f"this machine's run of {config.source}: {len(rows) - len(outside)} of {len(rows)} expected scores within "
            f"the measured tolerances"
            + (
                ""
                if not outside
                else "; outside: "
                + ", ".join(f"{r['system']} {r['language']} {r['metric']}" for r in outside[:12])
                + (" ..." if len(outside) > 12 else "")
            )
        )
        for system, per_metric in tolerances.items():
            say(
                f"tolerance {system}: "
                + ", ".join(
                    f"{metric} ±{t['language']:g} a language, ±{t['avg']:g} the average"
                    for metric, t in per_metric.items()
                )
            )
        say(f"tolerances of {len(tolerances)} trained systems written to {config.expected_scores}")

    return run_stage(log, body)


def _own_seed(config: Config) -> int:
    return config.cross_encoder.miracl_training.seed


if __name__ == "__main__":
    sys.exit(main())
