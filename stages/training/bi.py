"""The bi-encoder's training steps (`python -m stages.train_bi --step init|kd|miracl` runs one; its docstring
tells the method): the student before training (init), cross-lingual distillation from the English teacher
with its optional token and query-alignment tasks (kd), fine-tuning on MIRACL (miracl).

`train` runs any set of tasks (a dataset and its loss each) in SentenceTransformerTrainer, or
MultiVectorEncoderTrainer for a maxsim student. Each model folder holds training.json; a step whose recorded
inputs are unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from stages.config import Config, ConfigError, TrainParams, plain
from stages.console import say
from stages.data.groups import as_rows, miracl_groups
from stages.data.parallel_queries import ParallelQuery, distillation_queries
from stages.errors import InputDataError
from stages.formats import ReleaseLayout
from stages.formats.hashing import file_sha256
from stages.formats.mmarco import MMarcoLayout
from stages.table import recorded_config
from stages.training import (
    main_process_first,
    prepare_for_training,
    resolved_params,
    run_trainer,
    save_model,
    trainer_arguments,
    training_models_dir,
    up_to_date,
    weights_sha256,
)

log = logging.getLogger("stages.training.bi")


STEPS = {"init": "-init", "kd": "-kd", "miracl": ""}  # model folder: bi_encoder.name + this


def model_dir(config: Config, step: str) -> Path:
    return training_models_dir(config) / (config.bi_encoder.name + STEPS[step])


def parallel_queries(config: Config, langs: list[str] | None = None) -> list[ParallelQuery]:
    """The distillation's parallel queries from the config's sections: mMARCO's (where cross_encoder.nmt keeps
    it), then MIRACL's of `langs` (default: every configured language)."""
    nmt, kd = config.cross_encoder.nmt, config.bi_encoder.distillation
    return distillation_queries(
        MMarcoLayout(nmt.root, nmt.translation),
        ReleaseLayout(config.data_root),
        {lang: config.languages[lang].splits for lang in (langs or config.languages)},
        partial(config.run_path, "bm25"),
        kd.data,
        kd.training.seed,
    )


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

    from stages.models.bi_encoder import is_multi_vector

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
    from stages.models.bi_encoder import build_student
    from stages.models.specs import resolve_model

    student = config.bi_encoder.student
    with main_process_first():  # a base model to build (tiny, packaged): written once
        base, out = resolve_model(student.base_model, config), model_dir(config, "init")
    inputs = {
        "base_model": student.base_model,
        "base_model_sha256": weights_sha256(Path(base)),
        "student": plain(student),
    } | recorded_config(config, "bi-init-model")
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
    from stages.models.bi_encoder import encoder_class

    return encoder_class(path)(str(path))


def previous_model(config: Config, step: str) -> Path:
    start = model_dir(config, {"kd": "init", "miracl": "kd"}[step])
    if not (start / "training.json").is_file():
        raise InputDataError(None, None, f"step {step} starts from {start}, which is not built yet (`make train-bi`)")
    return start


def train_kd(config: Config, out: Path | None = None, callbacks: list | None = None) -> Path:
    from stages.caches.teacher import open_cache, teacher_targets
    from stages.training.query_alignment import alignment_task_rows
    from stages.training.token_task import token_task_inputs, token_texts

    bi, kd = config.bi_encoder, config.bi_encoder.distillation
    start, out = previous_model(config, "kd"), out or model_dir(config, "kd")
    # Rank 0 first under torchrun: the precision measurement, teacher scores and generated queries are
    # appended to their caches once; the other processes then read them.
    with main_process_first():
        training = resolved_params(kd.training, config.work_root)
        queries = parallel_queries(config)
        if not queries:
            raise ConfigError(
                "no parallel queries for distillation: configure bi_encoder.distillation.data "
                "(mMARCO languages, or MIRACL queries with English side files)"
            )
        cache, load_teacher = open_cache(config)
        with_embeddings = kd.representation_weight > 0
        scores, embeddings = teacher_targets(
            queries, cache, load_teacher, with_embeddings, config.executor, config.bi_encoder.teacher.chunk_pairs
        )
        columns = distillation_rows(queries, scores, embeddings, bi.teacher.score_scale)
        inputs = {
            "start": str(start),
            "start_sha256": file_sha256(start / "training.json"),
            "teacher": cache.folder.name,
            "distillation": plain(kd) | {"training": plain(training)},
            "score_scale": bi.teacher.score_scale,
            "rows_sha256": hashlib.sha256(json.dumps(columns).encode()).hexdigest(),
        } | recorded_config(config, "bi-kd-model")
        parallel = token_texts(config, queries)
        if parallel:
            inputs["token"] = token_task_inputs(config, parallel, start)
        alignment = None
        if kd.query_alignment.weight > 0:  # generated queries are cached, so this is cheap on a rerun
            alignment, inputs["query_alignment"] = alignment_task_rows(config, queries, scores)
    if up_to_date(out, inputs):
        return out
    from transformers import set_seed

    from stages.losses.bi_encoder import contrastive_loss, make_distillation_loss
    from stages.losses.weighted import weighted_loss
    from stages.training.token_task import build_token_task

    set_seed(kd.training.seed)  # the representation loss's projection is initialised here, before train()
    model = load_student(start)
    loss = make_distillation_loss(
        model, kd, len(queries[0].docids), None if embeddings is None else embeddings.shape[1]
    )
    tasks = {"ranking": Task(columns, loss)}
    if parallel:  # DR.DECR's token-level distillation, aligned by the student before training
        with main_process_first():  # the alignments are appended to their cache once
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
    with main_process_first():  # the precision measurement: written once
        training = resolved_params(bi.miracl_training, config.work_root)
    splits = {lang: language.splits for lang, language in config.languages.items()}
    groups = miracl_groups(
        ReleaseLayout(config.data_root), splits, partial(config.run_path, "bm25"), bi.miracl, bi.negatives
    )
    if not groups:
        raise InputDataError(None, None, f"no MIRACL {bi.miracl.split} groups to fine-tune the bi-encoder on")
    columns = as_rows(groups, "listwise")
    inputs = {
        "start": str(start),
        "start_sha256": file_sha256(start / "training.json"),
        "miracl": plain(bi.miracl),
        "negatives": bi.negatives,
        "train_params": plain(training),
        "groups_sha256": hashlib.sha256(json.dumps([asdict(g) for g in groups]).encode()).hexdigest(),
    } | recorded_config(config, "bi-model")
    if up_to_date(out, inputs):
        return out
    from transformers import set_seed

    from stages.losses.bi_encoder import contrastive_loss

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
