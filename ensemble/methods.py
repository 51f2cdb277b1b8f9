"""ranx's fusion methods by what they need, and fusion of runs that answer different queries.

ranx fuses runs that answer exactly the same queries. Real runs do not always: a reranker may skip
a query, a dense run may have nothing for another. `fuse_runs` groups the queries by the set of runs
that answer them, fuses each group with those runs only (their weights unchanged, so a missing run
counts as contributing nothing, as in ranx's own sum of normalised scores), keeps the ranking of the
only run that answers a query, and describes every such group (`Alignment.describe`) for the log.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from stages.config import ConfigError
from stages.formats import Run
from stages.retrieval.evaluation import ranx_module

# ranx's methods by what they need (ranx 0.3.21, ranx.fuse):
PARAMETER_FREE = ("min", "max", "med", "sum", "anz", "mnz", "isr", "log_isr", "bordafuse", "condorcet")
WEIGHTED = ("wsum", "wmnz", "mixed", "w_bordafuse", "w_condorcet")
ONE_PARAMETER = {"rrf": "k", "gmnz": "gamma", "logn_isr": "sigma", "rbc": "phi"}
# Learned from judged runs (ranx's optimize_fusion on dev): per-run probabilities or scores by rank segment.
TRAINED = ("probfuse", "slidefuse", "segfuse", "bayesfuse", "mapfuse", "posfuse")
METHODS = PARAMETER_FREE + WEIGHTED + tuple(ONE_PARAMETER) + TRAINED
NORMS = ("min-max", "min-max-inverted", "max", "sum", "zmuv", "rank", "borda", "none")


def check_method(method: str, norm: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"fusion method {method!r} is not one of: {', '.join(METHODS)}")
    if norm not in NORMS:
        raise ConfigError(f"fusion norm {norm!r} is not one of: {', '.join(NORMS)}")


def truncate(run: Run, depth: int) -> Run:
    """The top `depth` hits of every query (score descending, docid ascending on ties)."""
    return {qid: dict(sorted(hits.items(), key=lambda h: (-h[1], h[0]))[:depth]) for qid, hits in run.items() if hits}


@dataclass
class Alignment:
    """Which runs answer which queries: {tuple of run names: [qids]}, plus the queries no run answers."""

    groups: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    unanswered: list[str] = field(default_factory=list)

    def describe(self, names: list[str]) -> list[str]:
        lines = []
        for covering, qids in self.groups.items():
            if len(covering) < len(names):
                absent = [n for n in names if n not in covering]
                lines.append(f"{len(qids)} queries lack {', '.join(absent)}: fused from {', '.join(covering)} only")
        if self.unanswered:
            lines.append(
                f"{len(self.unanswered)} queries answered by no run: {', '.join(self.unanswered[:5])}"
                + (" ..." if len(self.unanswered) > 5 else "")
            )
        return lines


def align_runs(runs: dict[str, Run], qids: list[str] | None = None) -> Alignment:
    """Group `qids` (default: every query any run answers) by the runs that have hits for them."""
    if qids is None:
        qids = list(dict.fromkeys(qid for run in runs.values() for qid, hits in run.items() if hits))
    alignment = Alignment()
    for qid in qids:
        covering = tuple(name for name, run in runs.items() if run.get(qid))
        if covering:
            alignment.groups.setdefault(covering, []).append(qid)
        else:
            alignment.unanswered.append(qid)
    return alignment


def fuse_runs(
    runs: dict[str, Run],
    method: str,
    norm: str = "min-max",
    params: dict | None = None,
    depth: int | None = 100,
    hits: int = 100,
    qids: list[str] | None = None,
    alignment: Alignment | None = None,
) -> Run:
    """Fuse named runs ({name: run}) into one run with at most `hits` hits per query.

    `params` are ranx's (`weights` in the order of `runs`, or `k`, `gamma`, `phi`, `sigma`, or a trained
    method's state). `depth=None` takes the runs as already cut (the tuner fuses the same runs many times).
    """
    check_method(method, norm)
    params = dict(params or {})
    names = list(runs)
    if method in WEIGHTED and len(params.get("weights", ())) != len(names):
        raise ConfigError(f"{method} needs one weight per run ({', '.join(names)}), got {params.get('weights')}")
    ranx = ranx_module()
    top = runs if depth is None else {name: truncate(run, depth) for name, run in runs.items()}
    alignment = alignment or align_runs(top, qids)
    fused: Run = {}
    for covering, group in alignment.groups.items():
        if len(covering) == 1:
            (only,) = covering
            fused.update({qid: top[only][qid] for qid in group})
            continue
        group_params = dict(params)
        for key, value in params.items():
            if isinstance(value, list) and len(value) == len(names):  # one entry per run: keep those present
                group_params[key] = [_as_ranx(value[names.index(name)]) for name in covering]
        ranx_runs = [ranx.Run({qid: top[name][qid] for qid in group}, name=name) for name in covering]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba's int casts warn on every call
            result = ranx.fuse(ranx_runs, norm=None if norm == "none" else norm, method=method, params=group_params)
        fused.update(result.to_dict())
    return truncate(fused, hits)


def _as_ranx(value):
    # Trained parameters come back from YAML as lists; ranx's kernels take float arrays.
    return np.asarray(value, dtype=float) if isinstance(value, list) else value
