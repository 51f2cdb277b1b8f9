"""The English teacher's targets for distillation, computed once and cached on disk (`python -m stages.teacher`
fills the cache; train-bi does it too).

On real data the teacher's scores are most of distillation's cost, so they are kept in
work/<collection>/teacher/<teacher>/: `scores.tsv` (`qid docid key score`, where key hashes the exact
query and passage text the teacher read) and `query_embeddings.npy` with its keys. A score is reused
whenever the same teacher read the same texts, so a second training run, or a run with more data, only
scores what is new. Scores are appended chunk by chunk: a run that dies keeps what it finished.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stages import console
from stages.caches.keys import claim_folder, model_slug, text_key
from stages.config import Config
from stages.data.parallel_queries import ParallelQuery
from stages.formats.keyed import append_keyed, read_keyed
from stages.models.teachers import TEACHERS, teacher_identity, teacher_prompt

log = logging.getLogger("stages.caches.teacher")


CHUNK = 4096  # pairs scored between two appends to the cache


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


def open_cache(config: Config) -> tuple[TeacherCache, Callable[[], object]]:
    """The configured teacher's cache, and a function that loads the teacher (called only on a miss)."""
    path, identity = teacher_identity(config)
    slug = model_slug(config.bi_encoder.teacher.model)
    folder = config.work_dir / "teacher" / f"{slug}-{text_key(json.dumps(identity, sort_keys=True))[:8]}"
    return TeacherCache(folder, identity), lambda: TEACHERS[identity["kind"]](
        path, config.bi_encoder.teacher, **teacher_prompt(config)
    )


def teacher_targets(
    queries: list[ParallelQuery], cache: TeacherCache, load_teacher: Callable[[], object], with_embeddings: bool
) -> tuple[list[list[float]], np.ndarray | None]:
    """Per query, the teacher's score of each candidate; and the English queries' embeddings if asked.

    Only pairs missing from the cache are scored; the teacher is loaded only if something is missing.
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
        teacher = load_teacher()
        for start in console.progress(range(0, len(missing), CHUNK), desc="teacher scores", unit=" chunks"):
            chunk = missing[start : start + CHUNK]
            values = teacher.score([(wanted[k][2], wanted[k][3]) for k in chunk])
            cache.add_scores([(wanted[k][0], wanted[k][1], k, v) for k, v in zip(chunk, values)])
        if missing_queries:
            cache.add_embeddings([text_key(text) for text in missing_queries], teacher.embed(missing_queries))
        console.say(
            f"teacher {cache.folder.name}: {len(missing)} pairs scored, {len(wanted) - len(missing)} cached"
            + (f", {len(missing_queries)} English queries embedded" if missing_queries else "")
            + f" ({console.seconds(time.perf_counter() - started)})"
        )
    scores = [[cache.scores[text_key(q.english, p)] for p in q.teacher_passages] for q in queries]
    embeddings = np.stack([cache.embeddings[text_key(q.english)] for q in queries]) if with_embeddings else None
    return scores, embeddings
