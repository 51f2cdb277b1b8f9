"""What make bench-index and make gpu-check share: clustered synthetic vectors and faiss indexes built, searched
and measured over them (the driver and its method: stages.benchmarks.index)."""

from __future__ import annotations

import logging
import time

import numpy as np

from stages.config import IndexBenchParams
from stages.retrieval.dense import apply_search_settings, build_index, search_index, to_gpu

log = logging.getLogger("stages.benchmarks.indexes")


def clustered_vectors(count: int, params: IndexBenchParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` unit vectors from the mixture and the centre each was drawn around: a centre picked at random
    (the same centres for every call: they come from `params.seed`) plus Gaussian noise of `params.spread` per
    dimension."""
    centres = np.random.default_rng(params.seed).standard_normal((params.clusters, params.dimension), np.float32)
    labels = rng.integers(params.clusters, size=count)
    out = np.empty((count, params.dimension), np.float32)
    for start in range(0, count, 100_000):  # in blocks: the noise of all rows at once would double the memory
        block = centres[labels[start : start + 100_000]]
        block += params.spread * rng.standard_normal(block.shape, np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, labels


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k ids among its found ids."""
    return float(np.mean([len(np.intersect1d(f[f >= 0], e)) / len(e) for f, e in zip(found, exact)]))


def measure(params: IndexBenchParams, vectors: np.ndarray, queries: np.ndarray, on_gpu: bool = False) -> dict:
    """Every index of `params.indexes` built over `vectors` and searched with each of its settings (`on_gpu`:
    on all GPUs, sharded, as the dense stage searches there; make gpu-check)."""
    import faiss

    k = min(params.hits, len(vectors))
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    del exact
    results = {}
    for entry in params.indexes:
        started = time.perf_counter()
        index = build_index(entry.factory, [vectors], params.train_size, params.seed, desc=entry.factory)
        built = time.perf_counter() - started
        size = len(faiss.serialize_index(index))
        if on_gpu:
            placed = to_gpu(index)
            if placed is index:  # to_gpu kept it on the CPU: timings labelled GPU would be the CPU's
                raise RuntimeError(f"faiss could not put {entry.factory} on the GPU")
            index = placed
        rows = {}
        for setting in entry.search or [""]:
            apply_search_settings(index, setting)
            search_index(index, queries[:8], k)  # warm-up: first-touch page faults out of the timing
            best = float("inf")
            for _ in range(params.repeats):
                started = time.perf_counter()
                _, found = search_index(index, queries, k)
                best = min(best, time.perf_counter() - started)
            rows[setting] = {"recall": recall(found, truth), "qps": len(queries) / best, "seconds": best}
            log.info(
                "%s %s: recall@%d %.4f, %.0f queries/s",
                entry.factory,
                setting,
                k,
                rows[setting]["recall"],
                rows[setting]["qps"],
            )
        results[entry.factory] = {
            "build_seconds": built,
            "bytes": size,
            "mb_per_million": size / len(vectors),
            "search": rows,
        }
        del index
    return results
