"""Work units run here one after another (local) or on Ray workers: the same results, a killed worker's unit
run again, nothing submitted twice."""

import os

import pytest

from stages.config import ConfigError, ExecutorParams
from stages.executors import executor_kind, run_batches, run_units, worker_options


class Doubler:
    """make_worker for the tests: counts how often it is built (per process)."""

    built = 0

    def __call__(self):
        Doubler.built += 1
        return lambda unit: unit * 2


def test_local_units_run_in_order_and_the_worker_is_built_once_and_only_when_there_is_work(monkeypatch):
    monkeypatch.delenv("PIPELINE_EXECUTOR", raising=False)
    Doubler.built = 0
    assert list(run_units(ExecutorParams(), Doubler(), iter([]))) == [] and Doubler.built == 0
    assert list(run_units(ExecutorParams(), Doubler(), iter([1, 2, 3]))) == [2, 4, 6] and Doubler.built == 1


def test_batches_share_one_worker_and_each_is_given_in_order_right_after_its_last_unit(monkeypatch):
    monkeypatch.delenv("PIPELINE_EXECUTOR", raising=False)
    Doubler.built, ran = 0, []

    def units(name, values):
        for value in values:
            ran.append((name, value))
            yield value

    given, heard = [], []
    batches = [("a", units("a", [1, 2])), ("b", units("b", [])), ("c", units("c", [3]))]
    for key, results in run_batches(ExecutorParams(), Doubler(), batches, lambda key, r: heard.append((key, r))):
        given.append((key, results, list(ran)))
    # as a loop over the batches: a is given before c's first unit is read, b (no units) right after a
    assert given == [("a", [2, 4], [("a", 1), ("a", 2)]), ("b", [], [("a", 1), ("a", 2)]), ("c", [6], ran)]
    assert heard == [("a", 2), ("a", 4), ("c", 6)] and Doubler.built == 1  # one worker for all batches
    assert list(run_batches(ExecutorParams(), Doubler(), [("a", []), ("b", iter([]))])) == [("a", []), ("b", [])]
    assert Doubler.built == 1  # no units: no worker built


@pytest.mark.slow
def test_on_ray_the_batches_come_back_in_order_with_their_own_results(local_ray, monkeypatch):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    batches = [("a", iter([1, 2, 3])), ("b", []), ("c", iter([4]))]
    given = [
        (key, sorted(results)) for key, results in run_batches(ExecutorParams(cpus_per_worker=1), Doubler(), batches)
    ]
    assert given == [("a", [2, 4, 6]), ("b", []), ("c", [8])]


def test_a_batch_whose_result_never_came_back_is_named_not_dropped(monkeypatch):
    import stages.executors

    def loses_the_last(params, make_worker, units):  # a pool that drops the last unit's result
        worker, units = make_worker(), list(units)
        for tagged in units[:-1]:
            yield worker(tagged)

    monkeypatch.setattr(stages.executors, "_ray_units", loses_the_last)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    given = run_batches(ExecutorParams(), Doubler(), [("a", [1]), ("b", [2, 3])])
    assert next(given) == ("a", [2])
    with pytest.raises(RuntimeError, match=r"gave 1 of 2 results of batch 'b'"):
        next(given)


def test_executor_on_make_s_command_line_wins_over_the_config_and_a_wrong_one_is_named(monkeypatch):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    assert executor_kind(ExecutorParams(kind="local")) == "ray"
    monkeypatch.setenv("PIPELINE_EXECUTOR", "dask")
    with pytest.raises(ConfigError, match="EXECUTOR=dask: give local or ray"):
        executor_kind(ExecutorParams())
    monkeypatch.delenv("PIPELINE_EXECUTOR")
    assert executor_kind(ExecutorParams(kind="ray")) == "ray"


def test_one_worker_per_gpu_else_per_cpus_per_worker():
    params = ExecutorParams(cpus_per_worker=2)
    assert worker_options({"CPU": 64.0, "GPU": 8.0}, params) == (8, {"num_gpus": 1})
    assert worker_options({"CPU": 16.0}, params) == (8, {"num_cpus": 2})
    assert worker_options({"CPU": 2.0}, ExecutorParams(cpus_per_worker=4)) == (1, {"num_cpus": 2})
    with pytest.raises(ConfigError, match="executor.cpus_per_worker must be at least 1, got 0"):
        worker_options({"CPU": 2.0}, ExecutorParams(cpus_per_worker=0))


@pytest.mark.slow
def test_ray_workers_give_the_local_results_and_rerun_a_unit_whose_worker_died(local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    marker = tmp_path / "killed-once"
    results = sorted(run_units(ExecutorParams(cpus_per_worker=1), DiesOnce(str(marker), 3), iter(range(6))))
    assert results == [0, 2, 4, 6, 8, 10]
    assert marker.exists()  # the worker holding unit 3 died, and the unit ran again


class DiesOnce:
    """make_worker whose worker process exits (as a killed one would) at unit `unit`, the first time only."""

    def __init__(self, marker: str, unit: int):
        self.marker, self.unit = marker, unit

    def __call__(self):
        def work(unit):
            if unit == self.unit and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(1)
            return unit * 2

        return work


def test_ray_is_not_started_when_there_are_no_units(monkeypatch):
    import stages.executors as executors

    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    monkeypatch.setattr(executors, "start_ray", lambda: pytest.fail("Ray started with nothing to run"))
    assert list(run_units(ExecutorParams(), Doubler(), iter([]))) == []
