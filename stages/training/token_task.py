"""Token-level representation distillation over cross-lingual alignments (DR.DECR, arXiv 2112.08185): the
kd step's token task (`python -m stages.token_distill` computes the alignments and prints a few).

On parallel text (a target-language sentence and its English version) the student's vector of each
target-language token learns to match the English teacher's vector of the English token aligned to it.
It is one more task of the kd step (stages.training.bi), switched on by `distillation.token.weight`.

1. Alignment, from the encoder's own multilingual representations: the student before distillation
   reads both sides (as queries); every target token is compared with every English token by cosine
   similarity, and tokens are matched greedily:
   - many-to-one: each target token takes its most similar English token (English tokens may repeat);
   - one-to-one: the most similar remaining pair is matched first and both tokens leave the pool, so
     each English token is used once and target tokens beyond the English length stay unaligned.
   The transformer's own token vectors are compared (before a ColBERT projection, untrained then).
   Alignments are computed once per aligner (its exact weights and settings) and cached
   (stages.caches.alignments).
2. Teacher targets: the English teacher reads the English side. A student English token's target is
   the mean of the teacher's vectors of the tokens that cover the same characters (the two tokenizers
   differ; with one tokenizer it is the token's own vector). Student tokens with no teacher token (a
   lone word-start marker) have no target, nor do the target tokens aligned to them.
3. Loss: MSE or L1 between the student's vectors of the aligned target tokens (through a learned
   projection when the widths differ) and their teacher vectors, averaged over tokens and dimensions
   (stages.losses.tokens).

Parallel text comes from the distillation's parallel queries (`token.queries`) and from
parallel-sentence files (`token.parallel_files`, `english<TAB>target` lines): stages.data.parallel_text.
A text is read as a query, token by token, as stages.models.tokens reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from stages import console
from stages.caches.alignments import AlignmentCache, open_alignment_cache, pair_key
from stages.config import Config, ConfigError, plain
from stages.data.parallel_queries import ParallelQuery
from stages.data.parallel_text import ParallelText, parallel_texts
from stages.errors import CacheError
from stages.losses.tokens import LOSSES, TokenTargets, make_token_loss
from stages.models.tokens import Tokens, read_as_queries, tokens_of

log = logging.getLogger("stages.training.token_task")


ALIGNMENTS = ("many-to-one", "one-to-one")


CHUNK = 256  # texts aligned between two appends to the cache


def align_many_to_one(similarity: np.ndarray) -> list[tuple[int, int]]:
    """Each row (target token) with its most similar column (English token); ties go to the first column."""
    return [(i, int(np.argmax(row))) for i, row in enumerate(similarity)] if similarity.size else []


def align_one_to_one(similarity: np.ndarray) -> list[tuple[int, int]]:
    """The most similar remaining (row, column) pair first; each row and each column used at most once."""
    if not similarity.size:
        return []
    rows, columns = similarity.shape
    order = np.argsort(-similarity, axis=None, kind="stable")  # ties: the earlier row, then column
    used_rows, used_columns, pairs = set(), set(), []
    for flat in order:
        i, j = divmod(int(flat), columns)
        if i not in used_rows and j not in used_columns:
            pairs.append((i, j))
            used_rows.add(i)
            used_columns.add(j)
            if len(pairs) == min(rows, columns):
                break
    return sorted(pairs)


def greedy_alignment(target_vectors: np.ndarray, english_vectors: np.ndarray, mode: str) -> list[tuple[int, int]]:
    """(target token, English token) index pairs by cosine similarity, matched `mode`-wise."""
    if mode not in ALIGNMENTS:
        raise ConfigError(
            f"bi_encoder.distillation.token.alignment must be one of {', '.join(ALIGNMENTS)}, got {mode!r}"
        )
    import torch
    from sentence_transformers.util import cos_sim

    similarity = cos_sim(torch.as_tensor(target_vectors), torch.as_tensor(english_vectors)).numpy()
    return (align_many_to_one if mode == "many-to-one" else align_one_to_one)(similarity)


def covering_mean(
    spans: tuple[tuple[int, int], ...], teacher: Tokens, teacher_vectors: np.ndarray
) -> list[np.ndarray | None]:
    """Per span, the mean teacher vector of the teacher tokens overlapping its characters (None if none)."""
    means = []
    for begin, end in spans:
        rows = [teacher.content[k] for k, (b, e) in enumerate(teacher.spans) if b < end and e > begin]
        means.append(teacher_vectors[rows].mean(axis=0) if rows else None)
    return means


def alignments(
    model, texts: list[ParallelText], mode: str, cache: AlignmentCache, batch_size: int
) -> list[list[tuple[int, int]]]:
    """Per text, (target position, English position) pairs over the model's query tokens; cached."""
    missing = [t for t in dict.fromkeys(texts) if pair_key(t) not in cache.alignments]
    log.info("alignments %s: %d of %d text pairs cached", cache.folder, len(texts) - len(missing), len(texts))
    for start in console.progress(
        range(0, len(missing), CHUNK), desc="alignments", unit=" chunks", disable=not missing
    ):
        chunk = missing[start : start + CHUNK]
        target = read_as_queries(model, [t.target for t in chunk], batch_size, encoder_only=True)
        english = read_as_queries(model, [t.english for t in chunk], batch_size, encoder_only=True)
        rows = {}
        for text, (t_tokens, t_vectors), (e_tokens, e_vectors) in zip(chunk, target, english):
            pairs = greedy_alignment(t_vectors[list(t_tokens.content)], e_vectors[list(e_tokens.content)], mode)
            rows[pair_key(text)] = [(t_tokens.content[i], e_tokens.content[j]) for i, j in pairs]
        cache.add(rows)
    return [cache.alignments[pair_key(t)] for t in texts]


def token_targets(
    student, teacher, texts: list[ParallelText], pairs: list[list[tuple[int, int]]], batch_size: int
) -> list[TokenTargets]:
    """Per text, the aligned target positions and the teacher vectors of their English tokens."""
    target_tokens = tokens_of(student, [t.target for t in texts])  # the student's tokens only: no forward pass
    english_tokens = tokens_of(student, [t.english for t in texts])
    teacher_read = read_as_queries(teacher, [t.english for t in texts], batch_size, desc="teacher tokens")
    out = []
    for text, aligned, t_tokens, e_tokens, (teacher_tokens, teacher_vectors) in zip(
        texts, pairs, target_tokens, english_tokens, teacher_read
    ):
        means = dict(zip(e_tokens.content, covering_mean(e_tokens.spans, teacher_tokens, teacher_vectors)))
        if not all(i in t_tokens.content and j in means for i, j in aligned):
            raise CacheError(
                f"cached alignment of {text.target!r} names tokens the student does not read there; "
                "remove work/<collection>/alignments/ (the student's tokens changed)"
            )
        kept = [(i, means[j]) for i, j in aligned if means[j] is not None]
        width = teacher_vectors.shape[1]
        out.append(
            TokenTargets(
                t_tokens.input_ids,
                np.array([i for i, _ in kept], dtype=np.int64),
                np.stack([v for _, v in kept]).astype(np.float32) if kept else np.zeros((0, width), np.float32),
            )
        )
    return out


def token_task_inputs(config: Config, texts: list[ParallelText], aligner: Path) -> dict:
    """What decides the token task's rows: recorded with the kd model, so a change retrains it."""
    params = config.bi_encoder.distillation.token
    from stages.formats.hashing import file_sha256

    return {
        "token": plain(params),
        "aligner": str(aligner),
        "files_sha256": {lang: file_sha256(path) for lang, path in sorted(params.parallel_files.items())},
        "texts_sha256": hashlib.sha256(json.dumps([(t.english, t.target) for t in texts]).encode()).hexdigest(),
    }


def token_texts(config: Config, queries: list[ParallelQuery]) -> list[ParallelText]:
    """The token task's parallel text ([] when the task is off), checked before any model is loaded."""
    params, bi = config.bi_encoder.distillation.token, config.bi_encoder
    if params.weight <= 0:
        return []
    if params.loss not in LOSSES or params.alignment not in ALIGNMENTS:
        raise ConfigError(
            f"bi_encoder.distillation.token: loss must be one of {', '.join(LOSSES)} (got {params.loss!r}) "
            f"and alignment one of {', '.join(ALIGNMENTS)} (got {params.alignment!r})"
        )
    if bi.teacher.kind != "bi-encoder":
        raise ConfigError(
            "token-level distillation reads the teacher's token vectors: it needs "
            f"bi_encoder.teacher.kind bi-encoder, not {bi.teacher.kind!r}"
        )
    texts = parallel_texts(params, queries)
    if not texts:
        raise ConfigError(
            "token-level distillation has no parallel text: set distillation.token.queries or parallel_files"
        )
    return texts


def build_token_task(config: Config, student, aligner: Path, texts: list[ParallelText]):
    """(columns, loss) of the token task for the kd step: alignments (cached), teacher targets, the loss."""
    from stages.models.bi_encoder import load_encoder
    from stages.models.specs import resolve_model

    params, bi = config.bi_encoder.distillation.token, config.bi_encoder

    cache = open_alignment_cache(config.work_dir, aligner, params.alignment)
    pairs = alignments(student, texts, params.alignment, cache, bi.encode_batch_size)
    teacher = load_encoder(
        resolve_model(bi.teacher.model, config), device="cpu" if student.device.type == "cpu" else None
    )
    teacher.max_seq_length = bi.teacher.max_length
    targets = token_targets(student, teacher, texts, pairs, bi.encode_batch_size)
    aligned = sum(len(t.positions) for t in targets)
    log.info(
        "token distillation: %d parallel texts (%s), %d aligned tokens, %s alignment, %s loss",
        len(texts),
        ", ".join(sorted({t.source for t in texts})),
        aligned,
        params.alignment,
        params.loss,
    )
    columns = {"target": [t.target for t in texts], "label": list(range(len(texts)))}
    return columns, make_token_loss(student, targets, params)
