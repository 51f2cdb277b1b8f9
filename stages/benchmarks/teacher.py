"""Benchmark: the distillation teacher's (English query, passage) pairs per second on this machine.

    python -m stages.benchmarks.teacher         (make bench-teacher)

The configured teacher (`bi_encoder.teacher`: its kind, model, max_length and batch size) scores up to
`bench.teacher_pairs` distinct (English query, passage) pairs of the configured mMARCO distillation data, as
teacher scoring reads them (a bi-encoder teacher encodes each distinct query and passage once, so the rate
depends on how many candidates a query has, as in the real work).
A warm-up call comes first; the rate is the best of `bench.repeats` rounds. `make plan` reads it as the
teacher's rate (work/bench/teacher/report.json), naming the teacher it was measured with.
"""

from __future__ import annotations

import argparse
import sys
import time

from stages.benchmarks import save_report
from stages.config import Config, ConfigError, add_config_arguments, config_from_args
from stages.console import setup
from stages.data.parallel_queries import mmarco_parallel
from stages.errors import InputDataError
from stages.formats.mmarco import MMarcoLayout


def bench_pairs(config: Config, count: int) -> list[tuple[str, str]]:
    """The first `count` distinct (English query, passage) pairs the teacher reads for the configured mMARCO
    distillation data (as teacher scoring reads them: each pair once)."""
    if count < 1:
        raise ConfigError(f"bench.teacher_pairs must be at least 1, got {count}")
    nmt, kd = config.cross_encoder.nmt, config.bi_encoder.distillation
    queries = mmarco_parallel(MMarcoLayout(nmt.root, nmt.translation), kd.data, kd.training.seed)
    pairs = list(dict.fromkeys((q.english, passage) for q in queries for passage in q.teacher_passages))[:count]
    if not pairs:
        raise InputDataError(
            None,
            None,
            f"bench-teacher times the teacher on the mMARCO distillation pairs "
            f"(bi_encoder.distillation.data.mmarco), and found none under {nmt.root}",
        )
    return pairs


def measure(config: Config, load_teacher, pairs: list[tuple[str, str]]) -> dict:
    """Seconds of the best round of scoring `pairs` with the teacher `load_teacher()` gives."""
    teacher = load_teacher()
    teacher.score(pairs[:8])  # warm-up: the first call's allocations and thread start-up
    rounds = []
    for _ in range(config.bench.repeats):
        started = time.perf_counter()
        teacher.score(pairs)
        rounds.append(time.perf_counter() - started)
    return {"pairs": len(pairs), "seconds": min(rounds), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.teacher", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)
    setup("stages.benchmarks.teacher")
    config = config_from_args(args)
    from functools import partial

    import torch

    from stages.caches.teacher import load_teacher
    from stages.models.teachers import teacher_identity, teacher_prompt

    path, identity = teacher_identity(config)
    params = config.bi_encoder.teacher
    pairs = bench_pairs(config, config.bench.teacher_pairs)
    result = measure(config, partial(load_teacher, identity["kind"], path, params, teacher_prompt(config)), pairs)
    result |= {
        "kind": params.kind,
        "model": params.model,
        "max_length": params.max_length,
        "batch_size": params.batch_size,
        "threads": torch.get_num_threads(),
    }
    rate = result["pairs"] / result["seconds"]
    text = (
        f"Teacher {params.kind} {params.model} (max_length {params.max_length}, batch {params.batch_size}, "
        f"{result['threads']} threads): {result['pairs']} pairs in {result['seconds']:.2f} s, {rate:,.1f} pairs/s "
        f"(best of {len(result['rounds'])} rounds: {', '.join(f'{s:.2f}' for s in result['rounds'])} s).\n"
    )
    save_report(config.work_root / "bench" / "teacher", text, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
