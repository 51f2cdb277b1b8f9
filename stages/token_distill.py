"""Token-level representation distillation over cross-lingual alignments (DR.DECR, arXiv 2112.08185).

    python -m stages.token_distill     # compute (and cache) the alignments; print a few, to look at them

On parallel text (a target-language sentence and its English version) the student's vector of each
target-language token learns to match the English teacher's vector of the English token aligned to it.
It is one more task of the kd step (stages.train_bi), switched on by `distillation.token.weight`.

1. Alignment, from the encoder's own multilingual representations: the student before distillation
   reads both sides (as queries); every target token is compared with every English token by cosine
   similarity, and tokens are matched greedily:
   - many-to-one: each target token takes its most similar English token (English tokens may repeat);
   - one-to-one: the most similar remaining pair is matched first and both tokens leave the pool, so
     each English token is used once and target tokens beyond the English length stay unaligned.
   The transformer's own token vectors are compared (before a ColBERT projection, untrained then).
   Alignments are computed once per aligner (its exact weights and settings) and cached in
   work/<collection>/alignments/<aligner>-<digest>/alignments.tsv (`key<TAB>i:j,i:j,...`, positions).
2. Teacher targets: the English teacher reads the English side. A student English token's target is
   the mean of the teacher's vectors of the tokens that cover the same characters (the two tokenizers
   differ; with one tokenizer it is the token's own vector). Student tokens with no teacher token (a
   lone word-start marker) have no target, nor do the target tokens aligned to them.
3. Loss: MSE or L1 between the student's vectors of the aligned target tokens (through a learned
   projection when the widths differ) and their teacher vectors, averaged over tokens and dimensions.

Parallel text comes from the distillation's parallel queries (`token.queries`) and from
parallel-sentence files (`token.parallel_files`, `english<TAB>target` lines; stages.formats.parallel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages import console
from stages.bi_data import ParallelQuery
from stages.cli import run_stage
from stages.config import Config, ConfigError, TokenDistillParams, add_config_arguments, config_from_args, plain
from stages.formats.keyed import append_keyed, read_keyed
from stages.formats.parallel import read_parallel
from stages.teacher import claim_folder, model_slug

log = logging.getLogger("stages.token_distill")
ALIGNMENTS = ("many-to-one", "one-to-one")
LOSSES = ("mse", "l1")
CHUNK = 256  # texts aligned between two appends to the cache
LONE_MARKERS = ("▁", "Ġ")  # word-start markers of sentencepiece and byte-level BPE, as tokens of their own


@dataclass(frozen=True)
class ParallelText:
    source: str  # "queries" (the distillation's parallel queries) or "file:<lang>"
    english: str  # what the teacher reads
    target: str  # what the student reads


@dataclass(frozen=True)
class Tokens:
    """One text as a model reads it as a query: token ids, and the text's characters behind each token."""

    input_ids: tuple[int, ...]  # every token, specials and prompt included
    content: tuple[int, ...]  # positions of the text's own tokens
    spans: tuple[tuple[int, int], ...]  # (start, end) in the text, one per content position


@dataclass
class TokenTargets:
    """What the loss needs for one target-language text: where its aligned tokens are, and their targets."""

    input_ids: tuple[int, ...]  # the student's tokens of the text, as training reads it (checked in the loss)
    positions: np.ndarray  # aligned token positions, counted from the first real token
    vectors: np.ndarray  # (len(positions), teacher width): the teacher's vectors they learn


# ---------------------------------------------------------------- data


def parallel_texts(params: TokenDistillParams, queries: list[ParallelQuery]) -> list[ParallelText]:
    """The configured parallel text, each (english, target) pair once, queries first."""
    texts = [ParallelText("queries", q.english, q.query) for q in queries] if params.queries else []
    for lang, path in sorted(params.parallel_files.items()):
        texts += [ParallelText(f"file:{lang}", english, target) for english, target in read_parallel(path)]
    seen, unique = set(), []
    for text in texts:
        if (text.english, text.target) not in seen and text.english != text.target:
            seen.add((text.english, text.target))
            unique.append(text)
    return unique


# ---------------------------------------------------------------- alignment


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


# ---------------------------------------------------------------- reading text with a model


def query_encoder(model):
    """The transformer that reads queries (the query tower's, for separate towers)."""
    first = model[0]
    return first.sub_modules["query"][0] if hasattr(first, "sub_modules") else first  # a Router: one tower per task


def query_features(model, texts: list[str]) -> dict:
    """The model's own preprocessing of `texts` as a query column (prompt, query task, length cap), on its device."""
    prompt = model.prompts.get("query") or None
    features = model.preprocess(texts, prompt=prompt, task="query")
    return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()} | {"task": "query"}


def tokens_of(model, texts: list[str], features: dict | None = None) -> list[Tokens]:
    """Each text's tokens as training reads it as a query, with the characters behind its own tokens.

    The model's own preprocess gives the ids, so positions match the training batches; the
    tokenizer's character offsets say which text each token covers (prompt and specials left out).
    """
    prompt, tokenizer = model.prompts.get("query") or "", query_encoder(model).tokenizer
    features = features if features is not None else query_features(model, texts)
    special = set(tokenizer.all_special_ids)
    unpadded = tokenizer([prompt + t for t in texts], return_offsets_mapping=True)
    out = []
    for row in range(len(texts)):
        real = np.flatnonzero(features["attention_mask"][row].cpu().numpy())
        ids = features["input_ids"][row].cpu().numpy()[real].tolist()
        full, offsets = unpadded["input_ids"][row], unpadded["offset_mapping"][row]
        surface = tokenizer.convert_ids_to_tokens(ids)
        content, spans = [], []
        for p, token in enumerate(ids):
            # A lone word-start marker ("▁") claims the next character's offsets but carries no word.
            if p < len(full) and full[p] == token and token not in special and surface[p] not in LONE_MARKERS:
                begin, end = offsets[p]
                if end > begin and begin >= len(prompt):
                    content.append(p)
                    spans.append((begin - len(prompt), end - len(prompt)))
        out.append(Tokens(tuple(ids), tuple(content), tuple(spans)))
    return out


def read_as_queries(
    model, texts: list[str], batch_size: int, desc: str | None = None, encoder_only: bool = False
) -> list[tuple[Tokens, np.ndarray]]:
    """Each text read as training reads a query column: its tokens (`tokens_of`) and the model's token
    vectors. `encoder_only`: the transformer's vectors, before any projection (a ColBERT head is
    untrained when alignments are made)."""
    import torch

    encoder, out, was_training = query_encoder(model), [], model.training
    model.eval()  # no dropout: alignments and targets are a function of the weights
    with torch.inference_mode():
        for start in console.progress(range(0, len(texts), batch_size), desc=desc, unit=" batches", disable=not desc):
            batch = texts[start : start + batch_size]
            features = query_features(model, batch)
            output = encoder(dict(features)) if encoder_only else model(dict(features))
            vectors = output["token_embeddings"].float().cpu().numpy()
            mask = features["attention_mask"].cpu().numpy()
            for row, tokens in enumerate(tokens_of(model, batch, features)):
                out.append((tokens, vectors[row][np.flatnonzero(mask[row])]))  # padding left out, either side
    model.train(was_training)
    return out


def covering_mean(
    spans: tuple[tuple[int, int], ...], teacher: Tokens, teacher_vectors: np.ndarray
) -> list[np.ndarray | None]:
    """Per span, the mean teacher vector of the teacher tokens overlapping its characters (None if none)."""
    means = []
    for begin, end in spans:
        rows = [teacher.content[k] for k, (b, e) in enumerate(teacher.spans) if b < end and e > begin]
        means.append(teacher_vectors[rows].mean(axis=0) if rows else None)
    return means


# ---------------------------------------------------------------- the cache


class AlignmentCache:
    """Alignments of one aligner (its weights, the matching mode), keyed by the text pair."""

    def __init__(self, folder: Path, identity: dict):
        self.folder = Path(folder)
        self.path = self.folder / "alignments.tsv"
        claim_folder(self.folder, "aligner", identity)
        self.alignments = read_keyed(self.path, 0, 2, "key<TAB>i:j,i:j,...", parse_pairs)

    def add(self, rows: dict[str, list[tuple[int, int]]]) -> None:
        append_keyed(self.path, [[key, ",".join(f"{i}:{j}" for i, j in pairs)] for key, pairs in rows.items()])
        self.alignments.update(rows)


def parse_pairs(row: list[str]) -> list[tuple[int, int]]:
    pairs = []
    for pair in filter(None, row[1].split(",")):
        target, sep, english = pair.partition(":")
        if not sep or ":" in english:
            raise ValueError(f"{pair!r} is not 'target:english'")
        pairs.append((int(target), int(english)))
    return pairs


def pair_key(text: ParallelText) -> str:
    return hashlib.sha1(f"{text.english}\x1f{text.target}".encode()).hexdigest()[:20]


def open_alignment_cache(config: Config, aligner: Path, mode: str) -> AlignmentCache:
    from stages.formats.hashing import file_sha256
    from stages.training import weights_sha256

    # The aligner's record names its student settings (prompt, length caps, towers): positions depend on them.
    identity = {
        "aligner": str(aligner),
        "weights_sha256": weights_sha256(aligner),
        "record_sha256": file_sha256(aligner / "training.json"),
        "alignment": mode,
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return AlignmentCache(config.work_dir / "alignments" / f"{model_slug(aligner.name)}-{digest}", identity)


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


# ---------------------------------------------------------------- targets and loss


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
            raise ConfigError(
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


def token_loss(student_vectors, teacher_vectors, kind: str):
    """Mean over aligned tokens and dimensions of the squared (mse) or absolute (l1) difference."""
    import torch

    if kind not in LOSSES:
        raise ConfigError(f"bi_encoder.distillation.token.loss must be one of {', '.join(LOSSES)}, got {kind!r}")
    if student_vectors.numel() == 0:
        return student_vectors.sum() * 0.0
    difference = student_vectors - teacher_vectors
    return (difference**2).mean() if kind == "mse" else torch.abs(difference).mean()


def make_token_loss(model, targets: list[TokenTargets], params: TokenDistillParams):
    """A loss over one `target` text column whose `label` is the row of `targets` to learn from."""
    import torch

    teacher_width = next((t.vectors.shape[1] for t in targets if len(t.vectors)), None) or token_width(model)

    # Token targets vary in length per row, so they stay with the loss and the label column carries the row.
    class TokenDistillationLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.targets = model, targets
            student_width = token_width(model)
            self.projection = torch.nn.Linear(student_width, teacher_width) if student_width != teacher_width else None

        def forward(self, features, labels):
            (column,) = features
            vectors = self.model(column)["token_embeddings"]
            students, teachers = [], []
            for b, row in enumerate(labels.tolist()):
                target = self.targets[int(row)]
                mask = column["attention_mask"][b]
                first = int(torch.nonzero(mask)[0])
                ids = column["input_ids"][b][mask.bool()].tolist()
                if tuple(ids) != target.input_ids:
                    raise RuntimeError(
                        f"token targets of row {row} were computed for other tokens than training reads "
                        f"({len(target.input_ids)} tokens {list(target.input_ids)[:12]}..., training "
                        f"reads {len(ids)}: {ids[:12]}...): the text must be tokenized as a query"
                    )
                students.append(
                    vectors[b, first + torch.as_tensor(target.positions, dtype=torch.long, device=vectors.device)]
                )
                teachers.append(torch.as_tensor(target.vectors, device=vectors.device))
            student = torch.cat(students)
            if self.projection is not None:
                student = self.projection(student)
            teacher = torch.cat(teachers).to(student.dtype)
            return {"tokens": params.weight * token_loss(student, teacher, params.loss)}  # a named term: logged apart

    return TokenDistillationLoss()


def token_width(model) -> int:
    """The width of the vectors the model puts in `token_embeddings` (after any projection)."""
    import torch

    with torch.inference_mode():
        return int(model(query_features(model, ["a"]))["token_embeddings"].shape[-1])


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
    from stages.bi_model import load_encoder, resolve_model

    params, bi = config.bi_encoder.distillation.token, config.bi_encoder

    cache = open_alignment_cache(config, aligner, params.alignment)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.token_distill", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args(argv)

    def body():
        from stages.bi_data import distillation_queries
        from stages.bi_model import load_encoder
        from stages.train_bi import previous_model

        config = config_from_args(args)
        params = config.bi_encoder.distillation.token
        aligner = previous_model(config, "kd")
        student = load_encoder(aligner)
        texts = parallel_texts(params, distillation_queries(config))
        pairs = alignments(
            student,
            texts,
            params.alignment,
            open_alignment_cache(config, aligner, params.alignment),
            config.bi_encoder.encode_batch_size,
        )
        tokenizer, shown = query_encoder(student).tokenizer, list(zip(texts, pairs))[: args.show]
        for text, aligned in shown:
            target, english = tokens_of(student, [text.target, text.english])
            words = [
                f"{tokenizer.convert_ids_to_tokens(target.input_ids[i])}->"
                f"{tokenizer.convert_ids_to_tokens(english.input_ids[j])}"
                for i, j in aligned
            ]
            print(f"[{text.source}] {text.target} | {text.english}\n  {' '.join(words)}")
        print(f"{len(texts)} parallel texts, {sum(map(len, pairs))} aligned tokens")

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
