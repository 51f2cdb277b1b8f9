"""Train the bi-encoder: cross-lingual distillation from an English teacher, then fine-tuning on MIRACL.

    python -m stages.train_bi --step init     # base model + pooling      -> models/bi-init/ (the student before training)
    python -m stages.train_bi --step kd       # bi-init, teacher targets  -> models/bi-kd/
    python -m stages.train_bi --step miracl   # bi-kd, MIRACL train       -> models/bi/
(`bi` is `bi_encoder.name`: a recipe with another name trains beside this one.)

Distillation (DR.DECR, Translate-Distill): for each parallel query the English teacher scored the
candidates for the English query (stages.teacher, cached); the student scores the same candidates for
the target-language query. One batch gives three weighted losses, each sentence-transformers' own:
- rank: DistillKLDivLoss, KL(softmax(teacher/T) || softmax(student/T)) * T^2 over the candidates;
- representation: MSELoss between the student's embedding of the target-language query and the
  teacher's embedding of the English one (a learned projection when the widths differ);
- contrastive (optional): MultipleNegativesRankingLoss with the teacher's top candidate as the
  positive, the other candidates as hard negatives, and the batch's other passages.
Token-level distillation (optional, `distillation.token`, DR.DECR; stages.token_distill): a task whose
batches are target-language texts of parallel text, each aligned token learning the teacher's vector of
its English token (MSE or L1 times its weight).
Query alignment (optional, `distillation.query_alignment`, arXiv 2303.14991; stages.query_alignment): a
second task whose batches pair each target-language query with the query a generator wrote (in English
by default) from the teacher's best candidate, under MultipleNegativesRankingLoss times its weight.
Fine-tuning: MultipleNegativesRankingLoss (InfoNCE) over the judged positive, BM25 hard negatives and
in-batch negatives. Training runs in sentence-transformers' SentenceTransformerTrainer (the Hugging Face
Trainer), so mixed precision, checkpoints and resume, seeds and multi-GPU (`torchrun`) come from there.
A maxsim student (`bi_encoder.student.scoring: maxsim`, a MultiVectorEncoder) trains the same way with
the multi-vector counterparts: MultiVectorDistillKLDivLoss and MultiVectorMultipleNegativesRankingLoss
over MaxSim scores, in MultiVectorEncoderTrainer; it has no sentence embedding, so the representation
loss must be off (token-level distillation is its equivalent).
Each model folder holds training.json; a step whose recorded inputs are unchanged is skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from stages.bi_data import ParallelQuery, distillation_queries
from stages.ce_data import as_rows, miracl_groups
from stages.cli import run_stage
from stages.config import Config, ConfigError, DistillParams, TrainParams, add_config_arguments, config_from_args, plain
from stages.console import say
from stages.formats.hashing import file_sha256
from stages.token_distill import build_token_task, token_task_inputs, token_texts
from stages.training import (
    prepare_for_training,
    resolved_params,
    run_trainer,
    save_model,
    trainer_arguments,
    training_models_dir,
    up_to_date,
    weights_sha256,
)

log = logging.getLogger("stages.train_bi")
STEPS = {"init": "-init", "kd": "-kd", "miracl": ""}  # model folder: bi_encoder.name + this
COSINE_SCALE = 20.0  # cosine scores times 20 as logits: sentence-transformers' MNRL default scale


def model_dir(config: Config, step: str) -> Path:
    return training_models_dir(config) / (config.bi_encoder.name + STEPS[step])


def scaled_pairwise_cos_sim(a, b):
    from sentence_transformers.util import pairwise_cos_sim

    return COSINE_SCALE * pairwise_cos_sim(a, b)


def pairwise_score_fn(similarity: str):
    from sentence_transformers.util import pairwise_dot_score

    return pairwise_dot_score if similarity == "dot" else scaled_pairwise_cos_sim


def contrastive_loss(model, similarity: str):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import cos_sim, dot_score

    from stages.bi_model import is_multi_vector

    if is_multi_vector(model):
        from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

        return MultiVectorMultipleNegativesRankingLoss(model)  # scale 1: MaxSim is a sum, not a bounded cosine
    if similarity == "dot":
        return MultipleNegativesRankingLoss(model, scale=1.0, similarity_fct=dot_score)
    return MultipleNegativesRankingLoss(model, scale=COSINE_SCALE, similarity_fct=cos_sim)


def make_distillation_loss(model, params: DistillParams, candidates: int, teacher_dim: int | None):
    """One module computing the weighted rank, representation and contrastive losses on one batch."""
    import torch
    from sentence_transformers.base.losses.merged_forward import embed_columns
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss, MSELoss

    from stages.bi_model import is_multi_vector

    if is_multi_vector(model):
        return multi_vector_distillation_loss(model, params, candidates)
    similarity = model.similarity_fn_name
    rank = DistillKLDivLoss(model, similarity_fct=pairwise_score_fn(similarity), temperature=params.temperature)
    representation = None
    if params.representation_weight > 0:
        width = model.get_embedding_dimension()
        representation = MSELoss(model, projection_dim=teacher_dim if teacher_dim != width else None)
    contrastive = contrastive_loss(model, similarity) if params.contrastive_weight > 0 else None

    # sentence-transformers weighs losses only across datasets, one per batch; here all three share a batch.
    class CrossLingualDistillationLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.rank, self.representation, self.contrastive = model, rank, representation, contrastive

        def forward(self, features, labels):
            return self.compute_from_embeddings(embed_columns(self.model, features), labels)

        def compute_from_embeddings(self, embeddings, labels):
            # labels: the teacher's candidate scores, then its embedding of the English query (one label column).
            # Detached here: the library's compute_loss_from_embeddings does not detach teacher embeddings.
            labels = labels.detach()
            losses = {
                "rank": params.rank_weight * self.rank.compute_loss_from_embeddings(embeddings, labels[:, :candidates])
            }
            if self.representation is not None:
                losses["representation"] = (
                    params.representation_weight
                    * self.representation.compute_loss_from_embeddings([embeddings[0]], [labels[:, candidates:]])
                )
            if self.contrastive is not None:
                losses["contrastive"] = params.contrastive_weight * self.contrastive.compute_loss_from_embeddings(
                    embeddings, None
                )
            return losses

    return CrossLingualDistillationLoss()


def multi_vector_distillation_loss(model, params: DistillParams, candidates: int):
    """The weighted rank and contrastive losses of a maxsim student, by MaxSim (no representation loss)."""
    import torch
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss

    if params.representation_weight > 0:
        raise ConfigError(
            "a maxsim student has one vector per token, no sentence embedding to match the teacher's "
            "English query embedding: set bi_encoder.distillation.representation_weight to 0 "
            "(token-level distillation, bi_encoder.distillation.token, is the maxsim equivalent)"
        )
    rank = MultiVectorDistillKLDivLoss(model, temperature=params.temperature)
    contrastive = contrastive_loss(model, model.similarity_fn_name) if params.contrastive_weight > 0 else None

    # As CrossLingualDistillationLoss; the multi-vector losses embed their own columns (they have no
    # compute_loss_from_embeddings), so with the contrastive term on a batch is encoded twice.
    class MultiVectorDistillationLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.rank, self.contrastive = model, rank, contrastive

        def forward(self, features, labels):
            labels = labels.detach()[:, :candidates]  # the teacher's candidate scores
            losses = {"rank": params.rank_weight * self.rank(features, labels)}
            if self.contrastive is not None:
                losses["contrastive"] = params.contrastive_weight * self.contrastive(features, None)
            return losses

    return MultiVectorDistillationLoss()


def distillation_rows(queries: list[ParallelQuery], scores: list[list[float]], embeddings, score_scale: float) -> dict:
    """Columns query, candidate_1..k (the teacher's order, best first) and label (scores, then embedding)."""
    columns: dict[str, list] = {"query": []}
    k = len(queries[0].docids)
    for i in range(1, k + 1):
        columns[f"candidate_{i}"] = []
    columns["label"] = []
    for row, (q, teacher) in enumerate(zip(queries, scores)):
        order = sorted(range(k), key=lambda j: (-teacher[j], q.docids[j]))
        columns["query"].append(q.query)
        for i, j in enumerate(order, 1):
            columns[f"candidate_{i}"].append(q.passages[j])
        label = [score_scale * teacher[j] for j in order]
        columns["label"].append(label + (embeddings[row].tolist() if embeddings is not None else []))
    return columns


@dataclass
class Task:
    """One training dataset and its loss: `columns` (text columns and an optional `label`)."""

    columns: dict[str, list]
    loss: object
    query_columns: tuple[str, ...] = ("query",)  # read with the query prefix and tower; the rest as passages

    def routes(self) -> dict[str, str]:
        return {c: "query" if c in self.query_columns else "document" for c in self.columns if c != "label"}


def train(
    model, tasks: dict[str, Task], out: Path, params: TrainParams, record: dict, callbacks: list | None = None
) -> Path:
    """Train `model` on each task's columns with its loss; write it to `out` (via a staging folder) with training.json.

    One task is one dataset; several are sentence-transformers' multi-dataset training (batches
    drawn from one dataset at a time, in proportion to their sizes, each with its own loss). A
    MultiVectorEncoder trains in MultiVectorEncoderTrainer, which reads each column's task (query or
    document: length cap, scoring mask) from the routes.
    """
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.training_args import BatchSamplers
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from transformers import set_seed

    from stages.bi_model import is_multi_vector

    set_seed(params.seed)
    prepare_for_training(model, params)
    multi_vector = is_multi_vector(model)
    trainer_class, arguments_class = (
        (MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments)
        if multi_vector
        else (SentenceTransformerTrainer, SentenceTransformerTrainingArguments)
    )
    routes = {name: task.routes() for name, task in tasks.items()}
    prompts = {
        name: {c: model.prompts[r] for c, r in route.items() if model.prompts.get(r)} for name, route in routes.items()
    }
    data = {name: datasets.Dataset.from_dict(task.columns) for name, task in tasks.items()}
    losses = {name: task.loss for name, task in tasks.items()}
    if len(tasks) == 1:  # a single dataset keeps the plain (column -> value) form of each setting
        (name,) = tasks
        routes, prompts, data, losses = routes[name], prompts[name], data[name], losses[name]
    else:
        data = datasets.DatasetDict(data)
    args = arguments_class(
        **trainer_arguments(params, out),
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts if any_prompt(prompts) else None,
        router_mapping=routes,
    )  # routes: each column's length cap and tower
    trainer = trainer_class(model=model, args=args, train_dataset=data, loss=losses, callbacks=callbacks)
    result, trained = run_trainer(trainer, out)
    rows = {name: len(next(iter(task.columns.values()))) for name, task in tasks.items()}
    save_model(
        model.save,
        out,
        record | trained | {"rows": sum(rows.values()), "rows_per_task": rows},
        params,
        report=" + ".join(f"{n} {name} rows" for name, n in rows.items()),
    )
    log.info("%s: %s rows, %d steps, loss %.4f -> %s", out.name, rows, result.global_step, result.training_loss, out)
    return out


def any_prompt(prompts: dict) -> bool:
    return any(any_prompt(v) if isinstance(v, dict) else bool(v) for v in prompts.values())


def build_init(config: Config) -> Path:
    """The student before any training: the base model with pooling (the 'before distillation' system)."""
    from stages.bi_model import build_student, resolve_model

    student = config.bi_encoder.student
    base, out = resolve_model(student.base_model, config), model_dir(config, "init")
    inputs = {
        "base_model": student.base_model,
        "base_model_sha256": weights_sha256(Path(base)),
        "student": plain(student),
    }
    if up_to_date(out, inputs):
        return out
    from transformers import set_seed

    set_seed(
        config.bi_encoder.distillation.training.seed
    )  # new layers (a ColBERT projection) start the same each build
    save_model(
        build_student(base, student).save,
        out,
        {
            "step": "init",
            "config": str(config.source),
            "collection": config.collection,
            "inputs": inputs,
            "base_model": base,
        },
    )
    say(f"train {out.name}: built from {student.base_model} ({student.pooling} pooling, {student.similarity})")
    log.info(
        "%s: %s with %s pooling, %s similarity -> %s",
        out.name,
        student.base_model,
        student.pooling,
        student.similarity,
        out,
    )
    return out


def load_student(path: Path):
    """A saved student in float32 for training (mixed precision comes from the trainer's flags): a
    MultiVectorEncoder for a maxsim student, a SentenceTransformer otherwise."""
    from stages.bi_model import encoder_class

    return encoder_class(path)(str(path))


def previous_model(config: Config, step: str) -> Path:
    start = model_dir(config, {"kd": "init", "miracl": "kd"}[step])
    if not (start / "training.json").is_file():
        raise ConfigError(f"step {step} starts from {start}, which is not built yet (`make train-bi`)")
    return start


def train_kd(config: Config, out: Path | None = None, callbacks: list | None = None) -> Path:
    from stages.query_alignment import alignment_task_rows, weighted_loss
    from stages.teacher import open_cache, teacher_targets

    bi, kd = config.bi_encoder, config.bi_encoder.distillation
    start, out = previous_model(config, "kd"), out or model_dir(config, "kd")
    training = resolved_params(kd.training, config.work_root)
    queries = distillation_queries(config)
    if not queries:
        raise ConfigError(
            "no parallel queries for distillation: configure bi_encoder.distillation.data "
            "(mMARCO languages, or MIRACL queries with English side files)"
        )
    cache, load_teacher = open_cache(config)
    scores, embeddings = teacher_targets(queries, cache, load_teacher, kd.representation_weight > 0)
    columns = distillation_rows(queries, scores, embeddings, bi.teacher.score_scale)
    inputs = {
        "start": str(start),
        "start_sha256": file_sha256(start / "training.json"),
        "teacher": cache.folder.name,
        "distillation": plain(kd) | {"training": plain(training)},
        "score_scale": bi.teacher.score_scale,
        "rows_sha256": hashlib.sha256(json.dumps(columns).encode()).hexdigest(),
    }
    parallel = token_texts(config, queries)
    if parallel:
        inputs["token"] = token_task_inputs(config, parallel, start)
    alignment = None
    if kd.query_alignment.weight > 0:  # generated queries are cached, so this is cheap on a rerun
        alignment, inputs["query_alignment"] = alignment_task_rows(config, queries, scores)
    if up_to_date(out, inputs):
        return out
    from transformers import set_seed

    set_seed(kd.training.seed)  # the representation loss's projection is initialised here, before train()
    model = load_student(start)
    loss = make_distillation_loss(
        model, kd, len(queries[0].docids), None if embeddings is None else embeddings.shape[1]
    )
    tasks = {"ranking": Task(columns, loss)}
    if parallel:  # DR.DECR's token-level distillation, aligned by the student before training
        tasks["tokens"] = Task(*build_token_task(config, model, start, parallel), query_columns=("target",))
    if alignment is not None:  # the generator's alignment enhancement: target query <-> generated query
        loss = weighted_loss(
            contrastive_loss(model, model.similarity_fn_name), kd.query_alignment.weight, "query_alignment"
        )
        tasks["query_alignment"] = Task(alignment, loss, query_columns=("query", "generated"))
    record = {
        "step": "kd",
        "config": str(config.source),
        "collection": config.collection,
        "inputs": inputs,
        "base_model": str(start),
        "sources": sorted({q.source for q in queries}),
        "teacher": cache.folder.name,
    }
    return train(model, tasks, out, training, record, callbacks)


def train_miracl(config: Config, out: Path | None = None, callbacks: list | None = None) -> Path:
    bi = config.bi_encoder
    start, out = previous_model(config, "miracl"), out or model_dir(config, "miracl")
    training = resolved_params(bi.miracl_training, config.work_root)
    groups = miracl_groups(config, list(config.languages), bi.miracl, bi.negatives)
    if not groups:
        raise ConfigError(f"no MIRACL {bi.miracl.split} groups to fine-tune the bi-encoder on")
    columns = as_rows(groups, "listwise")
    inputs = {
        "start": str(start),
        "start_sha256": file_sha256(start / "training.json"),
        "miracl": plain(bi.miracl),
        "negatives": bi.negatives,
        "train_params": plain(training),
        "groups_sha256": hashlib.sha256(json.dumps([asdict(g) for g in groups]).encode()).hexdigest(),
    }
    if up_to_date(out, inputs):
        return out
    from transformers import set_seed

    set_seed(bi.miracl_training.seed)  # layers the checkpoint lacks (an unused pooler) start the same each run
    model = load_student(start)
    record = {
        "step": "miracl",
        "config": str(config.source),
        "collection": config.collection,
        "inputs": inputs,
        "base_model": str(start),
        "sources": sorted({g.source for g in groups}),
    }
    return train(
        model,
        {"miracl": Task(columns, contrastive_loss(model, model.similarity_fn_name))},
        out,
        training,
        record,
        callbacks,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_bi", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--step", choices=list(STEPS), required=True)
    args = parser.parse_args(argv)
    steps = {"init": build_init, "kd": train_kd, "miracl": train_miracl}
    return run_stage(log, lambda: print(steps[args.step](config_from_args(args))))


if __name__ == "__main__":
    sys.exit(main())
