"""Where a stage's work units run: one after another in this process (`local`, the default: nothing to install
or start), or on Ray workers (`EXECUTOR=ray`, the `.[ray]` extra): on the cluster that RAY_ADDRESS names, else on
a Ray instance started here for the stage and stopped after it.

A unit writes its own output under a temporary name and renames it, so a worker that dies leaves nothing
half-written; Ray runs the unit again on a restarted worker (`executor.max_retries` times), and a rerun
skips the units whose output is there (callers submit only the missing ones). On Ray each worker is an actor
that builds its unit function once (`make_worker()`: a model loaded once, not once per unit): one worker per
GPU where the cluster has GPUs, else one per `executor.cpus_per_worker` CPUs.

A stage with several languages sends all of their units through one pool (`run_batches`): 32 workers stay busy
while any language has units left, not only as many as the language at hand has.
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


def run_batches(
    params: ExecutorParams,
    make_worker: Callable[[], Callable],
    batches: Iterable[tuple[object, Iterable]],
    on_result: Callable[[object, object], None] | None = None,
) -> Iterator[tuple[object, list]]:
    """Run the units of several batches ((key, units): a stage's languages) through one pool of workers and give
    each batch's results (key, [result, ...], in the order they finished) once it is done, batches in the order
    given. Here (local) a batch's units run in turn and the batch is given right after its last one, before the
    next batch's units are read, as a loop over the batches would; on Ray the workers go on with the next
    batches' units meanwhile. `units` are read lazily, as run_units reads them; `on_result(key, result)` hears
    each result as it comes (a progress bar)."""
    batches = list(batches)
    if executor_kind(params) == "local":
        worker = None
        for key, units in batches:
            results = []
            for unit in units:
                worker = worker or make_worker()  # built at the first unit: no units, no model loaded
                results.append(worker(unit))
                if on_result is not None:
                    on_result(key, results[-1])
            yield key, results
        return
    submitted, results, read = [0] * len(batches), [[] for _ in batches], [False] * len(batches)

    def tagged_units() -> Iterator[tuple[int, object]]:
        for number, (_, units) in enumerate(batches):
            for unit in units:
                submitted[number] += 1
                yield number, unit
            read[number] = True  # every unit of the batch is submitted

    given = 0

    def ready() -> Iterator[tuple[object, list]]:
        nonlocal given
        while given < len(batches) and read[given] and len(results[given]) == submitted[given]:
            yield batches[given][0], results[given]
            given += 1

    for number, result in _ray_units(params, _TaggedWorker(make_worker), tagged_units()):
        results[number].append(result)
        if on_result is not None:
            on_result(batches[number][0], result)
        yield from ready()
    read[:] = [True] * len(batches)  # batches after the last unit, or with none at all
    yield from ready()
    if given != len(batches):  # a unit's result went missing: say so rather than drop the batch
        raise RuntimeError(
            f"the executor gave {len(results[given])} of {submitted[given]} results of batch {batches[given][0]!r}"
        )


class _TaggedWorker:
    """make_worker for run_batches: its worker takes (batch number, unit) and gives (batch number, result)."""

    def __init__(self, make_worker: Callable[[], Callable]):
        self.make_worker = make_worker

    def __call__(self) -> Callable:
        worker = self.make_worker()
        return lambda tagged: (tagged[0], worker(tagged[1]))


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
