"""Rank fusion of several runs of one language and split, with ranx and the tuned parameters.

    python -m ensemble.fusion --lang "sw yo" --split test-a      # what `make fuse` calls

The methods and the alignment of runs that answer different queries are in ensemble.methods; the
parameters come from the files ensemble.tune writes (ensemble.params). Every group of queries fused
from fewer than all runs is logged and recorded in the fused run's metadata.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ensemble.methods import align_runs, fuse_runs, truncate
from ensemble.params import load_tuned, params_path
from stages.cli import run_stage
from stages.config import FusionParams, add_config_arguments, config_from_args
from stages.console import Stopwatch, say
from stages.formats import ReleaseLayout, read_run, write_run
from stages.formats.hashing import file_sha256
from stages.formats.runs import metadata_path
from stages.table import recorded_config, stage_splits
from stages.uptodate import unchanged

log = logging.getLogger("ensemble.fusion")


def fuse_language(config, layout, lang: str, split: str, tuned: dict) -> tuple[Path, bool]:
    """Fuse the configured systems' runs of one language and split with its tuned parameters.

    A fused run whose input runs and parameters are unchanged is kept as it is. Returns the run and
    whether it was written now.
    """
    fusion: FusionParams = config.fusion
    paths = {system: config.run_path(system, lang, split) for system in fusion.systems}
    out = config.run_path(fusion.name, lang, split)
    inputs = {
        "runs": {system: {"path": str(p), "sha256": file_sha256(p)} for system, p in paths.items()},
        "method": tuned["method"],
        "norm": tuned["norm"],
        "params": tuned["params"],
    } | recorded_config(config, "fuse")
    if unchanged(metadata_path(out), inputs, out):
        return out, False
    runs = {system: truncate(read_run(path), fusion.depth) for system, path in paths.items()}
    alignment = align_runs(runs, list(layout.topics(lang, split)))
    for line in alignment.describe(list(runs)):
        log.info("%s %s: %s", lang, split, line)
    fused = fuse_runs(runs, tuned["method"], tuned["norm"], tuned["params"], None, fusion.hits, alignment=alignment)
    write_run(
        fused,
        out,
        tag=f"{fusion.name}-{tuned['method']}",
        metadata={
            "stage": "ensemble.fusion",
            "system": fusion.name,
            "language": lang,
            "split": split,
            "config": str(config.source),
            "collection": config.collection,
            "inputs": inputs,
            "tuned_from": tuned.get("source"),
            "alignment": alignment.describe(list(runs)),
        },
    )
    log.info("%s %s: fused %s with %s %s -> %s", lang, split, "+".join(runs), tuned["method"], tuned["params"], out)
    return out, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ensemble.fusion", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        layout = ReleaseLayout(config.data_root)
        fused, kept, langs = [], 0, set()
        with Stopwatch() as watch:
            for lang in config.select_languages(args.lang):
                tuned = load_tuned(params_path(config, lang))
                # the splits every fused system has a run of (the table's)
                for split in stage_splits(config, "fuse", lang, args.split):
                    path, written = fuse_language(config, layout, lang, split, tuned)
                    print(path)
                    if written:
                        fused.append(split)
                        langs.add(lang)
                    else:
                        kept += 1
        fusion = config.fusion
        splits = " ".join(dict.fromkeys(fused))
        say(
            f"fuse {fusion.name}: "
            + (
                f"{len(fused)} runs of {len(langs)} languages ({splits}) fused from "
                f"{' + '.join(fusion.systems)} ({watch.text})"
                if fused
                else "runs up to date"
            )
            + (f"; {kept} up to date" if fused and kept else "")
        )

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
