"""Train the cross-encoder: first on translated MS MARCO (mMARCO), then fine-tuned on MIRACL train.

    python -m stages.train_ce --step nmt       # base model -> work/<collection>/models/ce-nmt/
    python -m stages.train_ce --step miracl    # ce-nmt     -> work/<collection>/models/ce/

Training is sentence-transformers' CrossEncoderTrainer (the Hugging Face Trainer underneath), so mixed
precision, gradient accumulation, checkpoints, multi-GPU through `torchrun` or `accelerate launch`,
and seeds come from there. Losses: `pointwise` is binary cross-entropy on each (query, passage) pair;
`listwise` is softmax cross-entropy over a query's group (its positive and n negatives):
sentence-transformers' MultipleNegativesRankingLoss with scale 1, no activation, and its in-batch
negatives turned off. Checkpoints go to `<model>.checkpoints/`; a run that died resumes from the last one.
The finished model directory holds `training.json`: config, data, base model, loss curve, versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from stages.ce_data import Group, as_rows, miracl_groups, nmt_groups
from stages.cli import run_stage
from stages.config import Config, ConfigError, TrainParams, add_config_arguments, config_from_args, plain
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

log = logging.getLogger("stages.train_ce")
STEPS = {"nmt": "ce-nmt", "miracl": "ce"}


def model_dir(config: Config, step: str) -> Path:
    return training_models_dir(config) / STEPS[step]


def base_model(config: Config, step: str) -> str:
    """Where a step starts: the configured base model (a model spec, stages.bi_model), or ce-nmt."""
    if step == "miracl":
        start = model_dir(config, "nmt")
        if not (start / "training.json").is_file():
            raise ConfigError(f"the MIRACL step starts from {start}, which is not trained yet (`make train-ce`)")
        return str(start)
    from stages.bi_model import resolve_model

    return resolve_model(config.cross_encoder.base_model, config)


def make_loss(model, loss: str):
    import torch
    from sentence_transformers.cross_encoder import losses

    if loss == "pointwise":
        return losses.BinaryCrossEntropyLoss(model)
    if loss == "listwise":
        return group_softmax_loss(losses)(model, num_negatives=None, scale=1.0, activation_fn=torch.nn.Identity())
    raise ConfigError(f"cross_encoder.loss must be 'listwise' or 'pointwise', got {loss!r}")


def group_softmax_loss(losses):
    class GroupSoftmaxLoss(losses.MultipleNegativesRankingLoss):
        """Softmax cross-entropy over a query's own group: its positive against its hard negatives."""

        # sentence-transformers' version always adds other queries' passages (in-batch negatives); not here.
        def get_in_batch_negatives(self, anchors, candidates):
            return iter(())

    return GroupSoftmaxLoss


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

    if not groups:
        raise ConfigError(f"no training groups for {out.name}")
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
        groups, params, data = nmt_groups(config), ce.nmt_training, plain(ce.nmt)
    else:
        groups, params, data = miracl_groups(config, list(config.languages)), ce.miracl_training, plain(ce.miracl)
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
    }
    if up_to_date(out, inputs):
        return out
    record = {"step": step, "config": str(config.source), "collection": config.collection, "inputs": inputs}
    if step == "nmt":  # the name in the config, beside the folder it resolved to (a model_paths stand-in, say)
        record["base_model_spec"] = ce.base_model
    return train(groups, start, out, params, ce.loss, ce.max_length, record, callbacks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_ce", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--step", choices=list(STEPS), required=True)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print(train_step(config_from_args(args), args.step)))


if __name__ == "__main__":
    sys.exit(main())
