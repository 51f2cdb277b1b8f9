"""The English teacher's targets for distillation, computed once and cached on disk.

    python -m stages.teacher        # fill the cache for the configured distillation data (train-bi does it too)

The teacher is an English retriever: a bi-encoder (`kind: bi-encoder`, scores are its query-passage
similarity, and it also gives the English query embeddings the representation loss needs), a
cross-encoder (`kind: cross-encoder`, scores are its logits), or a query generator
(`kind: query-generator`, scores are log p(query | "english query: " + passage), the generator's
prompt naming English; stages.train_qgen trains one). It reads the English version of each
query against the candidates; it is only ever run under `torch.inference_mode`, so it gets no gradient.

On real data the teacher's scores are most of distillation's cost, so they are kept in
work/<collection>/teacher/<teacher>/: `scores.tsv` (`qid docid key score`, where key hashes the exact
query and passage text the teacher read) and `query_embeddings.npy` with its keys. A score is reused
whenever the same teacher read the same texts, so a second training run, or a run with more data, only
scores what is new. Scores are appended chunk by chunk: a run that dies keeps what it finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stages import console
from stages.bi_data import ParallelQuery, distillation_queries
from stages.cli import run_stage
from stages.config import Config, ConfigError, TeacherParams, add_config_arguments, config_from_args, plain
from stages.formats.jsonfile import read_json, write_json
from stages.formats.keyed import append_keyed, read_keyed

log = logging.getLogger("stages.teacher")
CHUNK = 4096  # pairs scored between two appends to the cache


def text_key(*texts: str) -> str:
    return hashlib.sha1("\x1f".join(texts).encode("utf-8")).hexdigest()[:20]


def claim_folder(folder: Path, owner: str, identity: dict) -> None:
    """Make `folder` the cache of `identity` (in <owner>.json); one that belongs to another is refused."""
    identity_path = folder / f"{owner}.json"
    if identity_path.is_file() and read_json(identity_path) != identity:
        raise ConfigError(f"{identity_path} belongs to another {owner}; remove {folder} or change its name")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(identity_path, identity)


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


class BiEncoderTeacher:
    def __init__(self, path: str, params: TeacherParams):
        from stages.bi_model import load_encoder

        self.model, self.batch_size = load_encoder(path), params.batch_size
        self.model.max_seq_length = params.max_length

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.bi_model import encode

        queries, passages = sorted({q for q, _ in pairs}), sorted({p for _, p in pairs})
        q_vectors = dict(zip(queries, encode(self.model, queries, "query", self.batch_size)))
        p_vectors = dict(zip(passages, encode(self.model, passages, "document", self.batch_size, desc="teacher")))
        return [float(q_vectors[q] @ p_vectors[p]) for q, p in pairs]

    def embed(self, queries: list[str]) -> np.ndarray:
        from stages.bi_model import encode

        return encode(self.model, queries, "query", self.batch_size)


class CrossEncoderTeacher:
    def __init__(self, path: str, params: TeacherParams):
        from stages.rerank_ce import load_model

        self.model, self.batch_size = load_model(Path(path), params.max_length), params.batch_size

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.rerank_ce import score_pairs

        return score_pairs(self.model, pairs, self.batch_size, desc="teacher")

    def embed(self, queries: list[str]) -> np.ndarray:
        raise ConfigError(
            "a cross-encoder teacher has no query embeddings: set "
            "bi_encoder.distillation.representation_weight to 0, or use a bi-encoder teacher"
        )


class QueryGeneratorTeacher:
    """Scores are log p(English query | prompt + passage) under a sequence-to-sequence query generator.

    `prompt` (query_generator.prompt) with `language` filled in is read before each passage, as in the
    generator's training (stages.train_qgen.generator_input); an empty prompt reads the bare passage.
    """

    def __init__(self, path: str, params: TeacherParams, prompt: str = "", language: str = "english"):
        from stages.train_qgen import load_generator

        self.model, self.tokenizer = load_generator(path)
        self.params, self.prompt, self.language = params, prompt, language

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.train_qgen import generator_input, log_likelihoods

        prompted = [(query, generator_input(self.prompt, self.language, passage)) for query, passage in pairs]
        return log_likelihoods(
            self.model,
            self.tokenizer,
            prompted,
            self.params.batch_size,
            self.params.max_length,
            self.params.max_length,
            desc="teacher",
        )

    def embed(self, queries: list[str]) -> np.ndarray:
        raise ConfigError(
            "a query-generator teacher has no query embeddings: set "
            "bi_encoder.distillation.representation_weight to 0, or use a bi-encoder teacher"
        )


TEACHERS = {
    "bi-encoder": BiEncoderTeacher,
    "cross-encoder": CrossEncoderTeacher,
    "query-generator": QueryGeneratorTeacher,
}


def teacher_prompt(config: Config) -> dict[str, str]:
    """What a query-generator teacher reads before each passage: the generator's prompt naming the English
    side (`distillation.data.english`); nothing for the other kinds."""
    if config.bi_encoder.teacher.kind != "query-generator":
        return {}
    return {"prompt": config.query_generator.prompt, "language": config.bi_encoder.distillation.data.english}


def teacher_identity(config: Config) -> tuple[str, dict]:
    """The loadable path of the configured teacher and what identifies it (kind, model, exact weights, and a
    generator's prompt: a cache of scores read without it is not reused)."""
    from stages.bi_model import resolve_model
    from stages.training import weights_sha256

    params = config.bi_encoder.teacher
    if params.kind not in TEACHERS:
        raise ConfigError(f"bi_encoder.teacher.kind must be one of {', '.join(TEACHERS)}, got {params.kind!r}")
    path = resolve_model(params.model, config)
    return path, {
        "kind": params.kind,
        "model": params.model,
        "weights_sha256": weights_sha256(Path(path)),
        "max_length": params.max_length,
    } | teacher_prompt(config)


def model_slug(spec: str) -> str:
    """A folder name for a model spec (its last 60 safe characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[-60:]


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.teacher", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        cache, load = open_cache(config)
        queries = distillation_queries(config)
        teacher_targets(queries, cache, load, config.bi_encoder.distillation.representation_weight > 0)
        print(cache.folder)
        print(json.dumps(plain(config.bi_encoder.teacher)))

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
