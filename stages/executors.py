"""Where a stage's work units run: one after another in this process (`local`, the default: nothing to install
or start), or on Ray workers (`EXECUTOR=ray`, the `.[ray]` extra): on the cluster that RAY_ADDRESS names, else on
a Ray instance started here for the stage and stopped after it.

A unit writes its own output under a temporary name and renames it, so a worker that dies leaves nothing
half-written; Ray runs the unit again on a restarted worker (`executor.max_retries` times), and a rerun
skips the units whose output is there (callers submit only the missing ones). On Ray each worker is an actor
that builds its unit function once (`make_worker()`: a model loaded once, not once per unit): one worker per
GPU where the cluster has GPUs, else one per `executor.cpus_per_worker` CPUs.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator

from stages.config import ConfigError, ExecutorParams

KINDS = ("local", "ray")
log = logging.getLogger("stages.executors")


def executor_kind(params: ExecutorParams) -> str:
    """EXECUTOR= (make exports it as PIPELINE_EXECUTOR) over the config's `executor.kind`."""
    kind = os.environ.get("PIPELINE_EXECUTOR") or params.kind
    if kind not in KINDS:
        raise ConfigError(f"EXECUTOR={kind}: give {' or '.join(KINDS)}")
    return kind


def run_units(params: ExecutorParams, make_worker: Callable[[], Callable], units: Iterable) -> Iterator:
    """Each unit's result, in the order units finish. `units` is read lazily (at most one unit per worker is
    waiting at a time, so a corpus streams through); `make_worker` must pickle for Ray."""
    if executor_kind(params) == "local":
        worker = None
        for unit in units:
            worker = worker or make_worker()  # built at the first unit: no units, no model loaded
            yield worker(unit)
        return
    yield from _ray_units(params, make_worker, units)


class _Worker:
    """A Ray actor: the unit function built once, then run for each unit sent to it."""

    def __init__(self, make_worker: Callable[[], Callable]):
        self.make_worker, self.worker = make_worker, None

    def run(self, unit):
        self.worker = self.worker or self.make_worker()
        return self.worker(unit)


def start_ray():
    """The Ray module, connected: to RAY_ADDRESS's cluster, or to a new instance on this machine whose workers
    import what this process imports (its sys.path). Returns (ray, whether this call started it)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("EXECUTOR=ray needs Ray: pip install -e '.[ray]' (make setup installs it)") from None
    if ray.is_initialized():
        return ray, False
    options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if not os.environ.get("RAY_ADDRESS"):
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
    ray.init(**options)
    return ray, True


def worker_options(resources: dict, params: ExecutorParams) -> tuple[int, dict]:
    """(how many workers, each one's Ray resources): one per GPU, else one per `cpus_per_worker` CPUs."""
    if params.cpus_per_worker < 1:
        raise ConfigError(f"executor.cpus_per_worker must be at least 1, got {params.cpus_per_worker}")
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, {"num_gpus": 1}
    cpus = max(1, int(resources.get("CPU", 1)))
    per_worker = min(params.cpus_per_worker, cpus)
    return max(1, cpus // per_worker), {"num_cpus": per_worker}


def _ray_units(params: ExecutorParams, make_worker: Callable[[], Callable], units: Iterable) -> Iterator:
    from ray.util import ActorPool

    units = iter(units)
    first = next(units, None)
    if first is None:  # nothing to do: no Ray to start, no model to load
        return
    units = itertools.chain([first], units)
    ray, started = start_ray()
    count, resources = worker_options(ray.cluster_resources(), params)
    # A dead worker's actor restarts and its unit runs again (Ray's own retry), up to max_retries times.
    actor = ray.remote(max_restarts=-1, max_task_retries=params.max_retries, **resources)(_Worker)
    actors = [actor.remote(make_worker) for _ in range(count)]
    log.info("ray: %d workers, each with %s", count, resources)
    pool = ActorPool(actors)
    try:
        for unit in units:
            if not pool.has_free():
                yield pool.get_next_unordered()
            pool.submit(lambda worker, value: worker.run.remote(value), unit)
        while pool.has_next():
            yield pool.get_next_unordered()
    finally:
        for handle in actors:
            ray.kill(handle)
        if started:
            ray.shutdown()
