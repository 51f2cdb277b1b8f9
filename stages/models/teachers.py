"""The English teachers of distillation and what identifies one (its kind, model, exact weights, prompt).

A teacher reads the English version of each query against the candidates and scores each pair: a
bi-encoder (its query-passage similarity; it also embeds English queries), a cross-encoder (its logits) or a
query generator (log p(query | prompt + passage)). Their scores are cached by stages.caches.teacher.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.config import Config, ConfigError, TeacherParams


class BiEncoderTeacher:
    def __init__(self, path: str, params: TeacherParams):
        from stages.models.bi_encoder import load_encoder

        self.model, self.batch_size = load_encoder(path), params.batch_size
        self.model.max_seq_length = params.max_length

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.models.bi_encoder import encode

        queries, passages = sorted({q for q, _ in pairs}), sorted({p for _, p in pairs})
        q_vectors = dict(zip(queries, encode(self.model, queries, "query", self.batch_size)))
        p_vectors = dict(zip(passages, encode(self.model, passages, "document", self.batch_size, desc="teacher")))
        return [float(q_vectors[q] @ p_vectors[p]) for q, p in pairs]

    def embed(self, queries: list[str]) -> np.ndarray:
        from stages.models.bi_encoder import encode

        return encode(self.model, queries, "query", self.batch_size)


class CrossEncoderTeacher:
    def __init__(self, path: str, params: TeacherParams):
        from stages.models.cross_encoder import load_model

        self.model, self.batch_size = load_model(Path(path), params.max_length), params.batch_size

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.models.cross_encoder import score_pairs

        return score_pairs(self.model, pairs, self.batch_size, desc="teacher")

    def embed(self, queries: list[str]) -> np.ndarray:
        raise ConfigError(
            "a cross-encoder teacher has no query embeddings: set "
            "bi_encoder.distillation.representation_weight to 0, or use a bi-encoder teacher"
        )


class QueryGeneratorTeacher:
    """Scores are log p(English query | prompt + passage) under a sequence-to-sequence query generator.

    `prompt` (query_generator.prompt) with `language` filled in is read before each passage, as in the
    generator's training (stages.models.generator.generator_input); an empty prompt reads the bare passage.
    """

    def __init__(self, path: str, params: TeacherParams, prompt: str = "", language: str = "english"):
        from stages.models.generator import load_generator

        self.model, self.tokenizer = load_generator(path)
        self.params, self.prompt, self.language = params, prompt, language

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        from stages.models.generator import generator_input, log_likelihoods

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
    from stages.models.specs import resolve_model
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
