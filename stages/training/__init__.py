"""Training: what every training step shares around the Hugging Face Trainer, here; the steps in the submodules.

Precision flags, the hash that names a model's exact weights, resuming from the last checkpoint,
saving a finished model through a staging folder with its `training.json`, and the check that skips
a step whose recorded inputs are unchanged. Under torchrun (`make train-ce NPROC=2`) rank 0 writes what the
processes share first (main_process_first), answers the skip check for all, saves and reports; the others wait.

Submodules: bi (the bi-encoder's steps: init, kd, miracl), token_task (token-level distillation's task),
query_alignment (the generator's alignment task), ce (the cross-encoder's steps), qgen (the query
generator's training), curve (a step's dev score while it trains).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path

from stages.config import ConfigError, TrainParams, plain
from stages.errors import CacheError, EnvironmentProblem
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json, write_json

log = logging.getLogger("stages.training")

# How long the other processes wait for rank 0's preparations (teacher scores for millions of pairs, generated
# queries) before torch gives up on them: its default (30 min with gloo, 10 with nccl) is too short.
PREPARE_TIMEOUT_SECONDS = 12 * 3600
_alone = False  # inside main_process_first: this process runs the block while the others wait or went on


# ---------------------------------------------------------------- several processes (torchrun)


def world_size() -> int:
    """How many processes train together: torchrun's WORLD_SIZE, 1 in a plain run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 under torchrun (or the only process): the one that writes the model and reports."""
    return int(os.environ.get("RANK", "0")) == 0


def _together() -> bool:
    """True when this process trains with others and is not alone in a main_process_first block; the process
    group is set up first if the Trainer has not done it yet."""
    if world_size() == 1 or _alone:
        return False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # the Trainer (accelerate) keeps this group; gloo carries barriers and objects, nccl the GPUs' tensors
        dist.init_process_group(
            backend="cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timedelta(seconds=PREPARE_TIMEOUT_SECONDS)
        )
    return True


def barrier() -> None:
    """Wait until every training process gets here (nothing in a plain run)."""
    if _together():
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first, the others after it: what the block writes (caches, a base model, the
    precision measurement) is written once, and the other processes find it there."""
    global _alone
    if not _together():
        yield
        return
    if not is_main_process():
        barrier()
    _alone = True
    try:
        yield
    finally:
        _alone = False
    if is_main_process():
        barrier()


def print_result(path: Path) -> None:
    """A stage's result (the model folder) on standard output: once, from rank 0, under torchrun."""
    if is_main_process():
        print(path)


def resolved_params(params: TrainParams, work_root: Path) -> TrainParams:
    """`params` with `precision: auto` replaced by what it means on this machine (stages.models.precision): the
    drivers resolve it before training, so training.json records, and the skip check compares, the precision
    actually used."""
    from stages.models.precision import resolve

    return dataclasses.replace(params, precision=resolve(params.precision, work_root))


def precision_flags(precision: str) -> dict:
    """The Trainer's mixed-precision flags; an unresolved `auto` means mixed precision on GPUs only."""
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if precision in ("bf16", "fp16"):
        if torch.cuda.is_available():
            return {precision: True}
        if precision == "fp16":
            raise EnvironmentProblem("fp16 training needs a GPU; on a CPU use bf16, fp32 or auto")
        return {"bf16": True, "use_cpu": True}  # the Trainer refuses bf16 without a GPU unless told it is on CPU
    if precision == "fp32":
        return {}
    raise ConfigError(f"training precision must be auto, bf16, fp16 or fp32, got {precision!r}")


def trainer_arguments(params: TrainParams, out: Path) -> dict:
    """The Hugging Face Trainer arguments every training stage sets the same way from its TrainParams."""
    import torch

    from stages.console import trainer_progress_flags

    return {
        "output_dir": str(checkpoints_dir(out)),
        "num_train_epochs": params.epochs,
        "learning_rate": params.learning_rate,
        "per_device_train_batch_size": params.batch_size,
        "gradient_accumulation_steps": params.gradient_accumulation,
        # transformers 5 takes the warmup fraction as a float warmup_steps (warmup_ratio is deprecated)
        "warmup_steps": params.warmup_ratio,
        "save_steps": params.save_steps,
        "save_total_limit": 2,
        "logging_steps": params.logging_steps,
        "seed": params.seed,
        "data_seed": params.seed,
        "report_to": "none",
        # pinned memory only helps copies to a GPU; without one torch warns at every epoch
        "dataloader_pin_memory": torch.cuda.is_available(),
        **trainer_progress_flags(),
        **precision_flags(params.precision),
        **distributed_flags(),
    }


def distributed_flags() -> dict:
    """The Trainer's settings for several processes (torchrun); none for one."""
    import torch

    if world_size() == 1:
        return {}
    # The listwise losses run the model more than once a step, which DDP's search for unused parameters refuses;
    # its static graph allows that, and parameters no loss uses (a pooler).
    flags = {"ddp_static_graph": True, "ddp_timeout": PREPARE_TIMEOUT_SECONDS}
    if not torch.cuda.is_available():  # the Trainer splits the work over CPU processes only when told it is on CPU
        flags |= {"use_cpu": True, "ddp_backend": "gloo"}
    return flags


def report_training(out: Path, record: dict, what: str) -> None:
    """The stage's one line for a trained model: data, steps, loss curve, precision, time."""
    from stages.console import say, seconds

    losses = [entry["loss"] for entry in record.get("log_history", ()) if "loss" in entry]
    curve = (
        f", loss {losses[0]:.3f} -> {losses[-1]:.3f}"
        if len(losses) > 1
        else f", loss {losses[0]:.3f}"
        if losses
        else ""
    )
    precision = (record.get("train_params") or {}).get("precision", "")
    say(
        f"train {out.name}: {what}, {record.get('steps')} steps{curve}, {precision} ({seconds(record.get('seconds', 0))})"
    )


def freeze_input_embeddings(model) -> int:
    """Stop gradients to the input embedding table of every Hugging Face model inside `model` (one per
    tower); the trainer's optimizer then leaves them out. Returns how many weights were frozen."""
    from transformers import PreTrainedModel

    frozen = 0
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            table = module.get_input_embeddings()
            if table is not None and table.weight.requires_grad:
                table.weight.requires_grad_(False)
                frozen += table.weight.numel()
    return frozen


def set_attention_dropout(model, probability: float) -> int:
    """Set the attention-probability dropout of every BERT-style self-attention inside `model` (the saved
    config keeps the model's own value); returns how many attention modules were changed."""
    from torch import nn

    changed = 0
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout) and name.endswith("attention.self.dropout"):
            module.p = probability
            changed += 1
    return changed


def prepare_for_training(model, params: TrainParams) -> None:
    """What TrainParams ask of the model itself before the trainer takes it: a frozen embedding table, the
    attention dropout."""
    if params.freeze_embeddings:
        log.info("input embeddings frozen: %d weights", freeze_input_embeddings(model))
    if params.attention_dropout is not None:
        set_attention_dropout(model, params.attention_dropout)


def training_models_dir(config) -> Path:
    """Where a training stage writes: always this collection's own models folder. Models read from another
    collection (MODELS=) are for reranking and retrieval; training over them would overwrite that
    collection's models with ones trained on this collection's data."""
    if config.models_root is not None:
        raise ConfigError(
            f"MODELS={config.models_root} is for reranking and retrieval with models trained on "
            f"another collection; training writes {config.own_models_dir}: drop MODELS= to train"
        )
    return config.own_models_dir


def weights_sha256(model: Path) -> str | None:
    """Hash of a local model's weights (None for a hub name), so a run can name the exact model.

    Weights in module subfolders count too (a Router's towers, a ColBERT projection); a model with
    weights only at the top hashes as it always did.
    """
    if not model.is_dir():
        return None
    top = sorted(model.glob("*.safetensors")) + sorted(model.glob("*.bin"))
    nested = sorted(
        p
        for pattern in ("*/**/*.safetensors", "*/**/*.bin")
        for p in model.glob(pattern)
        if checkpoints_dir(model).name not in p.parts
    )
    files = top + nested
    if not files:
        return None
    return hashlib.sha256("".join(file_sha256(path) for path in files).encode()).hexdigest()


def tokenizer_ids(tokenizer_file: Path) -> int:
    """How many token ids a tokenizer.json can produce: its vocabulary and added tokens, highest id + 1."""
    data = read_json(tokenizer_file)
    vocab = data.get("model", {}).get("vocab", ())
    added = [token.get("id", -1) for token in data.get("added_tokens", ())]
    return max([len(vocab) - 1, *added]) + 1


def check_tokenizer_fits(model: Path) -> None:
    """Refuse a model folder whose tokenizer yields ids past its embedding table: a tokenizer copied from
    another model (or a folder mixed from two collections) would index out of range or, worse, read the
    wrong rows silently."""
    pairs = tuple(
        (
            str(c),
            str(c.with_name("tokenizer.json")),
            c.stat().st_mtime_ns,
            c.with_name("tokenizer.json").stat().st_mtime_ns,
        )
        for c in sorted(Path(model).rglob("config.json"))
        if checkpoints_dir(Path(model)).name not in c.parts and c.with_name("tokenizer.json").is_file()
    )
    _check_pairs(str(model), pairs)


@functools.lru_cache(maxsize=64)
def _check_pairs(model: str, pairs: tuple) -> None:
    # Cached by the files' mtimes: a reranker asks once per language, and e5's tokenizer.json is 17 MB of JSON.
    for config_name, tokenizer_name, _, _ in pairs:
        config_file, tokenizer_file = Path(config_name), Path(tokenizer_name)
        rows = read_json(config_file).get("vocab_size")
        ids = tokenizer_ids(tokenizer_file)
        if isinstance(rows, int) and ids > rows:
            raise CacheError(
                f"{tokenizer_file} yields {ids} token ids but the model's embedding table in {config_file} "
                f"has {rows} rows: the tokenizer belongs to another model; rebuild {model} "
                f"(or point MODELS= at the folder it was trained in)"
            )


def checkpoints_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def up_to_date(out: Path, inputs: dict) -> bool:
    """True (and training.json touched, so make stops asking) when `out` was trained from `inputs`; under
    torchrun rank 0's answer, for every process."""
    from stages.uptodate import unchanged

    if _together():  # one answer: a process that trains while another exits would wait for it forever
        import torch.distributed as dist

        answer = [is_main_process() and unchanged(out / "training.json", inputs)]
        dist.broadcast_object_list(answer, src=0)
        fresh = answer[0]
    else:
        fresh = unchanged(out / "training.json", inputs)
    if fresh:
        from stages.console import say

        say(f"train {out.name}: up to date")
        return True
    return False


def run_trainer(trainer, out: Path) -> tuple[object, dict]:
    """Train, resuming from the last checkpoint of a run that died; the result and what to record of it."""
    import torch

    checkpoints = checkpoints_dir(out)
    resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    if resume:
        log.info("resuming from the last checkpoint in %s", checkpoints)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    return result, {
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "seconds": round(time.time() - started, 1),
        "log_history": trainer.state.log_history,
        "resumed": resume,
        "processes": world_size(),
        "versions": {pkg: metadata.version(pkg) for pkg in ("torch", "transformers", "sentence-transformers")},
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def save_model(
    save: Callable[[str], None],
    out: Path,
    record: dict,
    params: TrainParams | None = None,
    record_name: str = "training.json",
    report: str | None = None,
) -> Path:
    """Save through a staging folder with its record (training.json), replace `out`, drop the checkpoints;
    `report` (what the model was trained on) makes the stage's one line for it (report_training). Under
    torchrun rank 0 saves and reports while the other processes wait for it."""
    together = _together()
    if together and not is_main_process():
        barrier()  # rank 0 saves: no process exits, nor starts a later step, before the model is saved
        return out
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save(str(staging))
    # The record names the exact weights, so whatever hashes the record (a run's inputs) sees new weights.
    record = record | {"weights_sha256": weights_sha256(staging)} | ({"train_params": plain(params)} if params else {})
    write_json(staging / record_name, record)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    shutil.rmtree(checkpoints_dir(out), ignore_errors=True)
    if report is not None:
        report_training(out, record, report)
    if together:
        barrier()
    return out
