"""What both rerankers' training stages share around the Hugging Face Trainer.

Precision flags, the hash that names a model's exact weights, resuming from the last checkpoint,
saving a finished model through a staging folder with its `training.json`, and the check that skips
a step whose recorded inputs are unchanged.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from stages.config import ConfigError, TrainParams, plain
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json, write_json

log = logging.getLogger("stages.training")


def precision_flags(precision: str) -> dict:
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            return {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if precision in ("bf16", "fp16"):
        return {precision: True}
    if precision == "fp32":
        return {}
    raise ConfigError(f"training precision must be auto, bf16, fp16 or fp32, got {precision!r}")


def weights_sha256(model: Path) -> str | None:
    """Hash of a local model's weights (None for a hub name), so a run can name the exact model.

    Weights in module subfolders count too (a Router's towers, a ColBERT projection); a model with
    weights only at the top hashes as it always did.
    """
    if not model.is_dir():
        return None
    top = sorted(model.glob("*.safetensors")) + sorted(model.glob("*.bin"))
    nested = sorted(p for pattern in ("*/**/*.safetensors", "*/**/*.bin") for p in model.glob(pattern)
                    if checkpoints_dir(model).name not in p.parts)
    files = top + nested
    if not files:
        return None
    return hashlib.sha256("".join(file_sha256(path) for path in files).encode()).hexdigest()


def checkpoints_dir(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoints")


def up_to_date(out: Path, inputs: dict) -> bool:
    """True (and training.json touched, so make stops asking) when `out` was trained from `inputs`."""
    done = out / "training.json"
    if done.is_file() and read_json(done).get("inputs") == inputs:
        log.info("%s is up to date", out)
        os.utime(done)
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
        "steps": result.global_step, "train_loss": result.training_loss, "seconds": round(time.time() - started, 1),
        "log_history": trainer.state.log_history, "resumed": resume,
        "versions": {pkg: metadata.version(pkg) for pkg in ("torch", "transformers", "sentence-transformers")},
        "device": "cuda" if torch.cuda.is_available() else "cpu"}


def save_model(save: Callable[[str], None], out: Path, record: dict, params: TrainParams | None = None,
               record_name: str = "training.json") -> Path:
    """Save through a staging folder with its record (training.json), replace `out`, drop the checkpoints."""
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    save(str(staging))
    # The record names the exact weights, so whatever hashes the record (a run's inputs) sees new weights.
    record = record | {"weights_sha256": weights_sha256(staging)}
    write_json(staging / record_name, record | ({"train_params": plain(params)} if params else {}))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    shutil.rmtree(checkpoints_dir(out), ignore_errors=True)
    return out
