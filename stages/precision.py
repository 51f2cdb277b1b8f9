"""Which float precision to compute in, chosen by measuring this machine, never by assumption.

    python -m stages.precision          # this CPU's float32 and bfloat16 matmul rates, and the choice

The measurement and the choice are stages.models.precision; the inference backends chosen per model
(stages.models.backends, recorded by the reranking and dense stages) are listed after them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.console import say
from stages.formats.jsonfile import read_json
from stages.models.precision import cpu_rates, resolve

log = logging.getLogger("stages.precision")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.precision", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)

    def body():
        work_root = config_from_args(args).work_root
        record = cpu_rates(work_root)
        say(
            f"{record['identity']['cpu']}, {record['identity']['threads']} threads, torch {record['identity']['torch']}: "
            f"float32 {record['gflops']['float32']} GFLOP/s, bfloat16 {record['gflops']['bfloat16']} GFLOP/s "
            f"(measured {record['measured']}); precision auto -> {resolve('auto', work_root)}"
        )
        latest: dict[tuple, dict] = {}  # a model retrained, or a new engine, leaves older records behind
        for path in (work_root / ".machine").glob("backend-*.json"):
            record = read_json(path)
            if isinstance(record, dict) and "choice" in record:
                key = (record["model"], record["identity"]["kind"])
                if key not in latest or record["measured"] > latest[key]["measured"]:
                    latest[key] = record
        for (model, kind), record in sorted(latest.items()):
            timed = ", ".join(
                f"{name} {r['items_per_second']:.1f}/s (rank corr. {r['rank_correlation']:.3f})"
                for name, r in record["results"].items()
                if "items_per_second" in r
            )
            say(f"{model} ({kind}): {record['choice']} [{timed}] ({record['measured']})")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
