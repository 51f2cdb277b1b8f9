"""What both rerankers share: BM25's shortlist per query and the per-split loop (stages.cli.rerank_main is
their command line).

A reranker is a function `(topics, shortlist, texts, desc) -> Run` that scores exactly the
shortlisted candidates. `language_batch` gathers what one language and its splits need, and `rerank_batches` runs
every language's splits as work units of one `executor` pool (stages.executors: one after another here, or on
Ray workers, each building its reranker once from a picklable `RerankerLoader`): each run is written under a temporary name with metadata naming the BM25 run,
topics and model it came from, so an interrupted stage keeps the splits it finished and a rerun skips runs
whose inputs are unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from stages.config import Config
from stages.console import LanguageWork
from stages.data.passages import fetch_passages
from stages.errors import InputDataError
from stages.executors import run_batches
from stages.formats import ReleaseLayout, Run, read_run, write_run
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json
from stages.formats.runs import metadata_path
from stages.table import recorded_config
from stages.training import check_tokenizer_fits
from stages.uptodate import unchanged

log = logging.getLogger("stages.retrieval.shortlist")


Reranker = Callable[[dict[str, str], dict[str, list[str]], dict[str, str], str], Run]


def candidates(run: Run, depth: int) -> dict[str, list[str]]:
    """Each query's top `depth` docids in rank order (score descending, docid ascending on ties)."""
    return {qid: [d for d, _ in sorted(hits.items(), key=lambda h: (-h[1], h[0]))[:depth]] for qid, hits in run.items()}


def trained_model(config: Config, name: str, make_target: str) -> tuple[Path, dict]:
    """A model folder under work/<collection>/models and its training record."""
    path = config.models_dir / name
    if not (path / "training.json").is_file():
        where = f" (MODELS={config.models_root})" if config.models_root else ""
        raise InputDataError(None, None, f"no trained model at {path}{where}; `make {make_target}` trains it")
    check_tokenizer_fits(path)
    return path, read_json(path / "training.json")


PER_QUERY = 8  # candidates per calibration query: several queries, so the slice is not one topic's


class NoCalibrationData(Exception):
    """No BM25 run to calibrate the inference backends on."""


def calibration_slice(config: Config, size: int) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str], str]:
    """(topics, shortlist, texts, what it is): the top `PER_QUERY` BM25 candidates of the first queries of the
    first configured language and split with a BM25 run, `size` pairs at most, on which precision auto times
    the backends. Always the same slice, whichever language's stage asks first (make -j)."""
    layout = ReleaseLayout(config.data_root)
    for lang, language in config.languages.items():
        for split in language.splits:
            bm25_path = config.run_path("bm25", lang, split)
            if not bm25_path.is_file() or not layout.topics_path(lang, split).is_file():
                continue
            topics = layout.topics(lang, split)
            ranked = candidates(read_run(bm25_path), PER_QUERY)
            shortlist: dict[str, list[str]] = {}
            left = size
            for qid in sorted(q for q in ranked if q in topics):
                if left <= 0:
                    break
                shortlist[qid] = ranked[qid][:left]
                left -= len(shortlist[qid])
            texts = fetch_passages(layout.corpus_dir(lang), {d for docids in shortlist.values() for d in docids})
            what = f"{lang} {split}: top {PER_QUERY} BM25 candidates of {len(shortlist)} queries ({size - left} pairs)"
            return topics, shortlist, texts, what
    raise NoCalibrationData("no BM25 run to calibrate the inference backends on")


def choose_backend(
    config: Config,
    setting: str,
    model_path: Path,
    kind: str,
    load_model: Callable[[], object],
    rerank: Callable[..., Run],
) -> str:
    """The backend `setting` means here (stages.models.backends.choose), calibrated on `calibration_slice`
    through the reranker's own `rerank(model, topics, shortlist, texts, desc, precision)`. Without any BM25
    run to calibrate on (dense retrieval alone), auto means fp32 this time, and nothing is recorded."""
    import numpy as np

    from stages.console import say
    from stages.models.backends import choose

    def calibrate():
        topics, shortlist, texts, what = calibration_slice(config, config.inference.calibration_size)
        keys = [(qid, docid) for qid, docids in shortlist.items() for docid in docids]

        def score(model, precision: str):
            run = rerank(model, topics, shortlist, texts, "calibrate", precision)
            return np.array([run[qid][docid] for qid, docid in keys])

        return load_model(), score, len(keys), what

    try:
        return choose(setting, config.work_root, model_path, kind, config.inference, calibrate)
    except NoCalibrationData as reason:
        say(f"precision auto for {model_path.name}: {reason} (`make bm25` makes one), so fp32 this time")
        return "fp32"


def score_shortlist(
    rerank: Callable[..., Run],
    batch_size: int,
    model,
    topics: dict[str, str],
    shortlist: dict[str, list[str]],
    texts: dict,
    desc: str,
    precision: str,
) -> Run:
    """A reranker module's `rerank(model, topics, shortlist, texts, batch_size, desc, precision)` in the argument
    order of `backend_reranker`'s `rerank`; bound with functools.partial to a module's function and a batch
    size, it pickles (Ray workers get a copy)."""
    return rerank(model, topics, shortlist, texts, batch_size, desc, precision)


def cached_model(cache: dict, load: Callable[[], object]):
    """The torch model held in `cache`, loaded by `load()` the first time."""
    if "model" not in cache:
        cache["model"] = load()
    return cache["model"]


class RerankerLoader:
    """A reranker described so that it pickles: the model folder, the backend chosen for it, `load()` giving
    the torch model and `score(model, topics, shortlist, texts, desc, precision)` (module functions bound
    with functools.partial). Calling it gives the reranker, the model loaded (or taken from `cache`) and
    put on the backend: in the stage's process for the local executor, where `cache` is the stage's model
    cache (shared with the calibration and between languages), and in each Ray worker for itself (a copy
    sent to Ray leaves the cache, and the weights in it, behind)."""

    def __init__(
        self,
        model_path: Path,
        backend: str,
        load: Callable[[], object],
        score: Callable[..., Run],
        cache: dict | None = None,
    ):
        self.model_path, self.backend, self.load, self.score = Path(model_path), backend, load, score
        self.cache = {} if cache is None else cache

    def __getstate__(self) -> dict:
        return self.__dict__ | {"cache": {}}

    def __call__(self) -> Reranker:
        from stages.models.backends import use_backend

        model, cache = cached_model(self.cache, self.load), self.cache
        if cache.get("backend") != self.backend:
            cache["torch_precision"] = use_backend(model, self.model_path, self.backend)
            cache["backend"] = self.backend
        return lambda topics, shortlist, texts, desc: self.score(
            model, topics, shortlist, texts, desc, cache["torch_precision"]
        )


def backend_reranker(
    config: Config,
    setting: str,
    model_path: Path,
    kind: str,
    load_model: Callable[[], object],
    rerank: Callable[..., Run],
    model_cache: dict,
) -> tuple[str, RerankerLoader]:
    """(the backend `setting` means here, the loader of the reranker that scores with it). The torch model is
    loaded once into `model_cache` (calibration and reranking share it); `rerank(model, topics, shortlist,
    texts, desc, precision)` is the reranker's own scoring. For Ray workers, `load_model` and `rerank` must
    pickle (the backend is chosen here, once)."""
    backend = choose_backend(config, setting, model_path, kind, partial(cached_model, model_cache, load_model), rerank)
    return backend, RerankerLoader(model_path, backend, load_model, rerank, model_cache)


@dataclass(frozen=True)
class RerankUnit:
    """One (language, split) to rerank: a work unit (stages.executors) with the shortlist and passages it
    scores, and the run it writes with its metadata."""

    split: str
    topics: dict[str, str]
    shortlist: dict[str, list[str]]
    texts: dict[str, str]
    desc: str
    out: Path
    tag: str
    metadata: dict


def write_reranked(unit: RerankUnit, reranker: Reranker) -> dict:
    """Rerank a unit's shortlist and write its run (under a temporary name, then renamed):
    {split, queries, candidates}."""
    run = reranker(unit.topics, unit.shortlist, unit.texts, unit.desc)
    write_run(run, unit.out, tag=unit.tag, metadata=unit.metadata)
    return {"split": unit.split, "queries": len(run), "candidates": sum(len(unit.shortlist[qid]) for qid in run)}


def run_writer(load_reranker: Callable[[], Reranker]) -> Callable[[RerankUnit], dict]:
    """What a worker runs for each split (make_worker of stages.executors): the reranker built once."""
    return partial(write_reranked, reranker=load_reranker())


@dataclass
class RerankBatch:
    """One language's share of a reranking stage: the runs it asks for, the splits among them still to write
    (`units()` reads their shortlists lazily), the reranker's loader, and the stage's report line for it."""

    lang: str
    paths: list[Path]
    pending: list[tuple[str, Path, Path, dict]]  # (split, BM25 run, run to write, its recorded inputs)
    units: Callable[[], Iterator[RerankUnit]]
    load_reranker: Callable[[], Reranker]
    work: LanguageWork


def language_batch(
    config: Config,
    system: str,
    model_path: Path,
    lang: str,
    splits: list[str],
    depth: int,
    settings: dict,
    load_reranker: Callable[[], Reranker],
    record: dict,
    work: LanguageWork | None = None,
) -> RerankBatch:
    """What reranking `lang`'s BM25 runs of `splits` as `system` involves: the splits whose run is up to date
    are kept (and `work` learns so), the others are work units for `rerank_batches`."""
    layout = ReleaseLayout(config.data_root)
    work = work or LanguageWork(f"rerank {system}", lang)
    pending = []
    for split in splits:
        bm25_path, out = config.run_path("bm25", lang, split), config.run_path(system, lang, split)
        inputs = (
            {
                "bm25_run": str(bm25_path),
                "bm25_sha256": file_sha256(bm25_path),
                "topics_sha256": file_sha256(layout.topics_path(lang, split)),
                "model": str(model_path),
                "model_sha256": file_sha256(model_path / "training.json"),
                "depth": depth,
            }
            | settings
            | recorded_config(config, f"rerank-{system}")
        )
        if unchanged(metadata_path(out), inputs, out):
            work.kept.append(split)
        else:
            pending.append((split, bm25_path, out, inputs))

    def units() -> Iterator[RerankUnit]:
        # read as the executor asks for them: one split's shortlist and passages per waiting worker
        for split, bm25_path, out, inputs in pending:
            topics = layout.topics(lang, split)
            shortlist = candidates(read_run(bm25_path), depth)
            texts = fetch_passages(layout.corpus_dir(lang), {d for docids in shortlist.values() for d in docids})
            metadata = {
                "system": system,
                "language": lang,
                "split": split,
                "config": str(config.source),
                "collection": config.collection,
                "inputs": inputs,
                "model_training": record,
                "models": {"folder": str(model_path.parent), "trained_on": record.get("collection")},
            }
            yield RerankUnit(
                split, topics, shortlist, texts, f"{lang} {split}", out, f"{system}-{record.get('step', '')}", metadata
            )

    paths = [config.run_path(system, lang, split) for split in splits]
    return RerankBatch(lang, paths, pending, units, load_reranker, work)


def rerank_batches(config: Config, batches: list[RerankBatch]) -> Iterator[RerankBatch]:
    """Rerank every batch's pending splits, all languages' splits through one pool of `config.executor`'s
    workers (stages.executors.run_batches), and give each batch, in order, once its runs are written. The
    reranker is loaded only if a split needs work, once per worker (on Ray its loader must pickle, as a
    RerankerLoader does)."""
    # one model per stage: the languages' loaders load the same model onto the same backend
    load_reranker = next((batch.load_reranker for batch in batches if batch.pending), None)
    runs = run_batches(
        config.executor, partial(run_writer, load_reranker), [(batch, batch.units()) for batch in batches]
    )
    with contextlib.closing(runs):  # Ray's workers stopped, also when a batch fails
        yield from _record(runs)


def _record(runs: Iterator[tuple[RerankBatch, list[dict]]]) -> Iterator[RerankBatch]:
    """Each batch with what its units wrote counted on its report line (`work`)."""
    for batch, results in runs:
        done = {result["split"]: result for result in results}
        for split, _, out, _ in batch.pending:  # in the order asked for, whichever worker finished first
            if split not in done:
                raise RuntimeError(f"{batch.lang} {split}: the executor gave no result for {out}")
            log.info("%s %s: %d queries reranked -> %s", batch.lang, split, done[split]["queries"], out)
            batch.work.written[split] = done[split]["queries"]
            batch.work.count("candidates scored", done[split]["candidates"])
        yield batch


def rerank_now(config: Config, batch: RerankBatch) -> list[Path]:
    """One language's reranking run on its own; the paths of its runs."""
    (batch,) = rerank_batches(config, [batch])
    return batch.paths
