"""What every stage's command line shares: output set up by stages.console, an error the user can act on
reported as one line with its kind's exit status (stages.errors); and the command line both reranking stages
share."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from stages import console
from stages.config import add_config_arguments, config_from_args
from stages.console import LanguageWork
from stages.errors import PipelineError
from stages.table import stage_splits


def run_stage(log: logging.Logger, body: Callable[[], int | None]) -> int:
    """Run a stage's body; a PipelineError is logged as `<label>: <message>`, exit its kind's status (2 to 5).

    Quiet (under make), any other exception is written whole to the stage's log file and named in one line
    on the terminal, exit 1; verbose, it propagates with its traceback as usual.
    """
    console.setup(log.name)
    try:
        return body() or 0
    except PipelineError as err:
        # labelled: the terminal shows the kind ("config error: ...") instead of a bare "error: ..."
        log.error("%s: %s", err.label, err, extra={"labelled": True})
        console.point_at_log()
        return err.exit_status
    except Exception as err:  # noqa: BLE001 (reported, not swallowed: exit 1 and the traceback in the log)
        if not console.quiet():
            raise
        console.report_crash(log.name, err)
        return 1


def rerank_main(argv: list[str] | None, module, rerank_batch, default_model: str, models: str) -> int:
    """The command line of a reranking stage `module`: `rerank_batch` for each selected language, all their splits
    reranked through one pool of workers (stages.retrieval.shortlist.rerank_batches), a line per language."""
    from stages.retrieval.shortlist import rerank_batches  # here: the other drivers need no model code

    name = module.__spec__.name if module.__spec__ else module.__name__  # "__main__" under python -m
    parser = argparse.ArgumentParser(prog=f"python -m {name}", description=module.__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument(
        "--model", default=default_model, help=f"model folder under work/<collection>/models ({models})"
    )
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        cache = {}
        batches = []
        for lang in config.select_languages(args.lang):
            # the splits make asks for: every one with topics but the model's training split
            splits = stage_splits(config, f"rerank-{args.model}", lang, args.split)
            work = LanguageWork(f"rerank {args.model}", lang)
            batches.append(rerank_batch(config, args.model, lang, splits, cache, work))
        since = None
        for batch in rerank_batches(config, batches):
            for path in batch.paths:
                print(path)
            console.say(batch.work.line(since))
            since = time.perf_counter()

    return run_stage(logging.getLogger(name), body)
