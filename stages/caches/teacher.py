"""The English teacher's targets for distillation, computed once and cached on disk (`python -m stages.teacher`
fills the cache; train-bi does it too).

On real data the teacher's scores are most of distillation's cost, so they are kept in
work/<collection>/teacher/<teacher>/: `scores.tsv` (`qid docid key score`, where key hashes the exact
query and passage text the teacher read) and `query_embeddings.npy` with its keys. A score is reused
whenever the same teacher read the same texts, so a second training run, or a run with more data, only
scores what is new.

The missing pairs are scored in chunks, each a work unit of the executor (stages.executors: here, one after
another, or on Ray workers, each loading the teacher once). Workers only score; this process, the cache's
one writer, appends each chunk's scores as it comes back, so a run that dies keeps the chunks it finished
and a rerun submits only the pairs still missing. The English query embeddings are computed here.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from stages import console
from stages.caches.keys import claim_folder, model_slug, text_key
from stages.config import Config, ExecutorParams, TeacherParams
from stages.data.parallel_queries import ParallelQuery
from stages.executors import run_units
from stages.formats.keyed import append_keyed, read_keyed
from stages.models.teachers import TEACHERS, teacher_identity, teacher_prompt

log = logging.getLogger("stages.caches.teacher")


class TeacherCache:
    """Scores and English-query embeddings of one teacher, keyed by the text it read."""

    def __init__(self, folder: Path, identity: dict):
        self.folder = Path(folder)
        self.scores_path = self.folder / "scores.tsv"
        self.embeddings_path = self.folder / "query_embeddings.npy"
        self.embedding_keys_path = self.folder / "query_embeddings.keys.txt"
        claim_folder(self.folder, "teacher", identity)
        self.scores = self._read_scores()
        self.embeddings = self._read_embeddings()

    def _read_scores(self) -> dict[str, float]:
        return read_keyed(self.scores_path, 2, 4, "qid<TAB>docid<TAB>key<TAB>score", lambda row: float(row[3]))

    def _read_embeddings(self) -> dict[str, np.ndarray]:
        if not (self.embeddings_path.is_file() and self.embedding_keys_path.is_file()):
            return {}
        keys = self.embedding_keys_path.read_text(encoding="utf-8").split()
        matrix = np.load(self.embeddings_path)
        if len(keys) != len(matrix):
            log.warning("%s: %d keys for %d embeddings; recomputing them", self.folder, len(keys), len(matrix))
            return {}
        return dict(zip(keys, matrix))

    def add_scores(self, rows: list[tuple[str, str, str, float]]) -> None:
        append_keyed(self.scores_path, [[qid, docid, key, repr(score)] for qid, docid, key, score in rows])
        self.scores.update({key: score for _, _, key, score in rows})

    def add_embeddings(self, keys: list[str], matrix: np.ndarray) -> None:
        self.embeddings.update(zip(keys, matrix))
        all_keys = list(self.embeddings)
        tmp_keys, tmp_matrix = self.embedding_keys_path.with_suffix(".tmp"), self.folder / "query_embeddings.tmp.npy"
        tmp_keys.write_text("\n".join(all_keys) + "\n", encoding="utf-8")
        np.save(tmp_matrix, np.stack([self.embeddings[k] for k in all_keys]).astype(np.float32))
        tmp_matrix.replace(self.embeddings_path)
        tmp_keys.replace(self.embedding_keys_path)


def load_teacher(kind: str, path: str, params: TeacherParams, prompt: dict[str, str]):
    """The teacher of `kind` at `path` (stages.models.teachers), `prompt` being teacher_prompt's."""
    return TEACHERS[kind](path, params, **prompt)


def open_cache(config: Config) -> tuple[TeacherCache, Callable[[], object]]:
    """The configured teacher's cache, and a function that loads the teacher (called only on a miss); it
    pickles, so that Ray workers load the teacher themselves."""
    path, identity = teacher_identity(config)
    slug = model_slug(config.bi_encoder.teacher.model)
    folder = config.work_dir / "teacher" / f"{slug}-{text_key(json.dumps(identity, sort_keys=True))[:8]}"
    loader = partial(load_teacher, identity["kind"], path, config.bi_encoder.teacher, teacher_prompt(config))
    return TeacherCache(folder, identity), loader


@dataclass
class PairChunk:
    """Missing pairs to score: a work unit (stages.executors), rows of (qid, docid, key, English query,
    passage)."""

    rows: list[tuple[str, str, str, str, str]]


def score_chunk(chunk: PairChunk, teacher) -> list[tuple[str, str, str, float]]:
    """The chunk's rows as the cache stores them: (qid, docid, key, the teacher's score)."""
    values = teacher.score([(english, passage) for _, _, _, english, passage in chunk.rows])
    if len(values) != len(chunk.rows):
        raise ValueError(f"the teacher returned {len(values)} scores for {len(chunk.rows)} pairs")
    return [(qid, docid, key, value) for (qid, docid, key, _, _), value in zip(chunk.rows, values)]


def chunk_scorer(load: Callable[[], object]) -> Callable[[PairChunk], list[tuple[str, str, str, float]]]:
    """What a worker runs for each chunk (make_worker of stages.executors): the teacher loaded once."""
    return partial(score_chunk, teacher=load())


class LoadedOnce:
    """A loader that loads at its first call and then gives the same object: with the local executor the
    scoring and the query embeddings share one teacher, loaded once. A pickled copy (a Ray worker's) leaves
    the loaded teacher behind and loads its own."""

    def __init__(self, load: Callable[[], object]):
        self.load, self.loaded = load, None

    def __getstate__(self) -> dict:
        return self.__dict__ | {"loaded": None}

    def __call__(self):
        if self.loaded is None:
            self.loaded = self.load()
        return self.loaded


def teacher_targets(
    queries: list[ParallelQuery],
    cache: TeacherCache,
    load_teacher: Callable[[], object],
    with_embeddings: bool,
    executor: ExecutorParams | None = None,
    chunk_size: int = TeacherParams.chunk_pairs,  # the config's bi_encoder.teacher.chunk_pairs
) -> tuple[list[list[float]], np.ndarray | None]:
    """Per query, the teacher's score of each candidate; and the English queries' embeddings if asked.

    Only pairs missing from the cache are scored, `chunk_size` pairs a work unit of `executor` (local by
    default; Ray workers need `load_teacher` to pickle); the teacher is loaded only if something is missing.
    """
    wanted: dict[str, tuple[str, str, str, str]] = {}
    for q in queries:
        for docid, passage in zip(q.docids, q.teacher_passages):
            wanted.setdefault(text_key(q.english, passage), (q.qid, docid, q.english, passage))
    missing = [key for key in wanted if key not in cache.scores]
    missing_queries = (
        sorted({q.english for q in queries if text_key(q.english) not in cache.embeddings}) if with_embeddings else []
    )
    english = {q.english for q in queries}
    log.info(
        "teacher cache %s: %d of %d pairs cached%s",
        cache.folder,
        len(wanted) - len(missing),
        len(wanted),
        f", {len(english) - len(missing_queries)} of {len(english)} English query embeddings"
        if with_embeddings
        else "",
    )
    if missing or missing_queries:
        started = time.perf_counter()
        teacher = LoadedOnce(load_teacher)

        def chunks() -> Iterator[PairChunk]:
            for start in range(0, len(missing), chunk_size):
                keys = missing[start : start + chunk_size]
                yield PairChunk([(wanted[k][0], wanted[k][1], k, wanted[k][2], wanted[k][3]) for k in keys])

        with console.progress(total=math.ceil(len(missing) / chunk_size), desc="teacher scores", unit=" chunks") as bar:
            for rows in run_units(executor or ExecutorParams(), partial(chunk_scorer, teacher), chunks()):
                cache.add_scores(rows)
                bar.update()
        if missing_queries:
            cache.add_embeddings([text_key(text) for text in missing_queries], teacher().embed(missing_queries))
        console.say(
            f"teacher {cache.folder.name}: {len(missing)} pairs scored, {len(wanted) - len(missing)} cached"
            + (f", {len(missing_queries)} English queries embedded" if missing_queries else "")
            + f" ({console.seconds(time.perf_counter() - started)})"
        )
    scores = [[cache.scores[text_key(q.english, p)] for p in q.teacher_passages] for q in queries]
    embeddings = np.stack([cache.embeddings[text_key(q.english)] for q in queries]) if with_embeddings else None
    return scores, embeddings
