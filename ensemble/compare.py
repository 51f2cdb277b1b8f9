"""Is the fused run significantly better than each run it fuses? ranx's comparison, per language.

    python -m ensemble.compare --lang all --split dev      # what `make compare` calls

For each language: the fused run and every input run on the split's judged queries, each metric,
with the configured test (paired t-test by default, or Fisher's randomisation test). A superscript
in ranx's table names the systems a score is significantly better than (p < max_p). Saved as
`work/<collection>/reports/compare.<split>.md`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from ensemble.methods import truncate
from stages.cli import run_stage
from stages.config import Config, add_config_arguments, config_from_args
from stages.console import say
from stages.formats import ReleaseLayout, atomic_write, read_run
from stages.retrieval.evaluation import ranx_module

log = logging.getLogger("ensemble.compare")


def compare_language(config: Config, lang: str, split: str):
    """ranx's Report for one language: the fused run first, then each input run."""
    ranx = ranx_module()
    fusion, evaluation = config.fusion, config.evaluation
    qrels = ReleaseLayout(config.data_root).qrels(lang, split)
    systems = [fusion.name, *fusion.systems]
    runs = []
    for system in systems:
        run = truncate(read_run(config.run_path(system, lang, split)), fusion.hits)
        runs.append(ranx.Run(run, name=system))
    judged = ranx.Qrels({qid: {d: int(r) for d, r in docs.items()} for qid, docs in qrels.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ranx.compare(
            judged,
            runs,
            list(evaluation.metrics),
            stat_test=evaluation.significance,
            max_p=evaluation.max_p,
            make_comparable=True,
            rounding_digits=4,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ensemble.compare", description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        split = args.split or config.evaluation.split
        layout = ReleaseLayout(config.data_root)
        sections = [
            f"# {config.fusion.name} against its inputs, {config.collection} {split} "
            f"({config.evaluation.significance} test, p < {config.evaluation.max_p})\n"
        ]
        for lang in config.select_languages(args.lang):
            if split in config.languages[lang].splits and layout.has_qrels(lang, split):
                report = compare_language(config, lang, split)
                sections.append(f"## {lang}\n\n```\n{report.to_table()}\n```\n")
        out = config.work_dir / "reports" / f"compare.{split}.md"
        with atomic_write(out) as handle:
            handle.write("\n".join(sections))
        say("\n".join(sections))
        log.info("wrote %s", out)

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
