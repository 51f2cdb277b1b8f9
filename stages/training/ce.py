"""The cross-encoder's training steps (`python -m stages.train_ce --step nmt|miracl` runs one): first on
translated MS MARCO (mMARCO), then fine-tuned on MIRACL train, in sentence-transformers' CrossEncoderTrainer.

The finished model directory holds `training.json`: config, data, base model, loss curve, versions; a step
whose recorded inputs are unchanged is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path

from stages.config import Config, TrainParams, plain
from stages.data.groups import Group, as_rows, miracl_groups, nmt_groups
from stages.errors import InputDataError
from stages.formats import ReleaseLayout
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

log = logging.getLogger("stages.training.ce")


STEPS = {"nmt": "ce-nmt", "miracl": "ce"}


def model_dir(config: Config, step: str) -> Path:
    return training_models_dir(config) / STEPS[step]


def step_groups(config: Config, step: str, langs: list[str] | None = None) -> list[Group]:
    """A step's groups from the config's cross_encoder section: mMARCO's (nmt), or MIRACL's of `langs` (miracl;
    default: every configured language)."""
    ce = config.cross_encoder
    if step == "nmt":
        return nmt_groups(ce.nmt, ce.negatives, ce.nmt_training.seed)
    splits = {lang: config.languages[lang].splits for lang in (langs or config.languages)}
    return miracl_groups(
        ReleaseLayout(config.data_root), splits, partial(config.run_path, "bm25"), ce.miracl, ce.negatives
    )


def base_model(config: Config, step: str) -> str:
    """Where a step starts: the configured base model (a model spec, stages.models.specs), or ce-nmt."""
    if step == "miracl":
        start = model_dir(config, "nmt")
        if not (start / "training.json").is_file():
            raise InputDataError(
                None, None, f"the MIRACL step starts from {start}, which is not trained yet (`make train-ce`)"
            )
        return str(start)
    from stages.models.specs import resolve_model

    return resolve_model(config.cross_encoder.base_model, config)


def train(
    groups: list[Group],
    start: str,
    out: Path,
    params: TrainParams,
    loss: str,
    max_length: int,
    record: dict,
    callbacks: list | None = None,
) -> Path:
    """Train from `start` on `groups`; write the model to `out` (via a staging folder) with training.json."""
    import datasets
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import set_seed

    from stages.losses.cross_encoder import make_loss

    if not groups:
        raise InputDataError(None, None, f"no training groups for {out.name}")
    set_seed(params.seed)
    model = CrossEncoder(start, num_labels=1, max_length=max_length)
    prepare_for_training(model, params)
    args = CrossEncoderTrainingArguments(**trainer_arguments(params, out))
    dataset = datasets.Dataset.from_dict(as_rows(groups, loss))
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=dataset, loss=make_loss(model, loss), callbacks=callbacks
    )
    result, trained = run_trainer(trainer, out)
    save_model(
        model.save_pretrained,
        out,
        record
        | trained
        | {
            "base_model": start,
            "base_model_sha256": weights_sha256(Path(start)),
            "loss": loss,
            "groups": len(groups),
            "sources": sorted({g.source for g in groups}),
        },
        params,
        report=f"{len(groups)} groups of 1 + {len(groups[0].negatives)} passages",
    )
    log.info(
        "%s: %d groups, %d steps, loss %.4f -> %s", out.name, len(groups), result.global_step, result.training_loss, out
    )
    return out


def train_step(config: Config, step: str, out: Path | None = None, callbacks: list | None = None) -> Path:
    """Train one step, unless its model exists from the same settings, base model and data (`out` and
    `callbacks`: a scratch copy of the step with extra trainer callbacks, as stages.learning_curve trains)."""
    ce = config.cross_encoder
    if step == "nmt":
        groups, params, data = step_groups(config, step), ce.nmt_training, plain(ce.nmt)
    else:
        groups, params, data = step_groups(config, step), ce.miracl_training, plain(ce.miracl)
    with main_process_first():  # the precision measurement and a base model to build: written once
        params = resolved_params(params, config.work_root)
        start, out = base_model(config, step), out or model_dir(config, step)
    inputs = {
        "base_model": start,
        "base_model_sha256": weights_sha256(Path(start)),
        "loss": ce.loss,
        "max_length": ce.max_length,
        "negatives": ce.negatives,
        "data": data,
        "train_params": plain(params),
        "groups_sha256": hashlib.sha256(json.dumps([asdict(g) for g in groups]).encode()).hexdigest(),
    } | recorded_config(config, "ce-nmt-model" if step == "nmt" else "ce-model")
    if up_to_date(out, inputs):
        return out
    record = {"step": step, "config": str(config.source), "collection": config.collection, "inputs": inputs}
    if step == "nmt":  # the name in the config, beside the folder it resolved to (a model_paths stand-in, say)
        record["base_model_spec"] = ce.base_model
    return train(groups, start, out, params, ce.loss, ce.max_length, record, callbacks)
