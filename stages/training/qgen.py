"""The query generator's training (`python -m stages.train_qgen` runs it; its docstring tells the method): from
(passage, query) pairs (stages.data.generator_pairs) in the Hugging Face Seq2SeqTrainer, starting offline from
a seeded small T5 over the tiny model's vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from stages.config import Config, plain
from stages.data.generator_pairs import training_pairs
from stages.formats import ReleaseLayout
from stages.formats.jsonfile import read_json
from stages.formats.mmarco import MMarcoLayout
from stages.models.generator import build_tiny_generator, generator_input, query_labels
from stages.table import recorded_config
from stages.training import (
    main_process_first,
    resolved_params,
    run_trainer,
    save_model,
    trainer_arguments,
    training_models_dir,
    up_to_date,
    weights_sha256,
)
from stages.uptodate import unchanged

log = logging.getLogger("stages.training.qgen")


NAME = "qgen"


TINY_NAME = "tiny-t5"


def model_dir(config: Config) -> Path:
    return training_models_dir(config) / NAME


def base_model(config: Config) -> str:
    if config.query_generator.base_model != "tiny":
        from stages.models.specs import resolve_model

        return resolve_model(config.query_generator.base_model, config)
    from stages.models.tiny import ensure_tiny_model

    tokenizer_dir = ensure_tiny_model(config)
    out = config.own_models_dir / TINY_NAME
    # Rebuilt when the shape or the vocabulary changes (the tiny model records both in built_by.json).
    inputs = {"params": plain(config.tiny_model), "tokenizer": read_json(tokenizer_dir / "built_by.json")["inputs"]}
    # a model this stage loads, not a make target: kept without a touch
    if not unchanged(out / "built_by.json", inputs, out / "config.json", touch=False):
        build_tiny_generator(tokenizer_dir, config.tiny_model, out, inputs)
    return str(out)


def training_pairs_of(config: Config) -> list[tuple[str, str, str, str]]:
    """The generator's training pairs from the config's sections (mMARCO where cross_encoder.nmt keeps it)."""
    nmt = config.cross_encoder.nmt
    mmarco, layout = MMarcoLayout(nmt.root, nmt.translation), ReleaseLayout(config.data_root)
    return training_pairs(config.query_generator, mmarco, layout, config.languages)


def train(config: Config) -> Path:
    import datasets
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
        set_seed,
    )

    params, out = config.query_generator, model_dir(config)
    with main_process_first():  # the precision measurement and the tiny generator: written once
        t = resolved_params(params.training, config.work_root)
        start, pairs = base_model(config), training_pairs_of(config)
    # What the generator reads (prompt included) and writes: a change of either retrains it.
    texts = [
        (source, generator_input(params.prompt, language, passage), query) for source, language, passage, query in pairs
    ]
    inputs = {
        "base_model": params.base_model,
        "base_model_sha256": weights_sha256(Path(start)),
        "params": plain(params) | {"training": plain(t)},
        "pairs_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
    } | recorded_config(config, "qgen-model")
    if up_to_date(out, inputs):
        return out
    set_seed(params.training.seed)
    tokenizer = AutoTokenizer.from_pretrained(start)
    model = AutoModelForSeq2SeqLM.from_pretrained(start)
    encoded = tokenizer([text for _, text, _ in texts], truncation=True, max_length=params.max_passage_length)
    dataset = datasets.Dataset.from_dict(
        {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": query_labels(tokenizer, [q for _, _, q in texts], params.max_query_length),
        }
    )
    args = Seq2SeqTrainingArguments(**trainer_arguments(t, out))
    trainer = Seq2SeqTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=DataCollatorForSeq2Seq(tokenizer, model=model)
    )
    result, trained = run_trainer(trainer, out)

    record = {
        "step": "qgen",
        "config": str(config.source),
        "collection": config.collection,
        "inputs": inputs,
        "base_model": start,
        "pairs": len(pairs),
        "sources": sorted({s for s, _, _, _ in pairs}),
    }
    save_model(
        lambda path: (model.save_pretrained(path), tokenizer.save_pretrained(path)),
        out,
        record | trained,
        t,
        report=f"{len(pairs)} (passage, query) pairs",
    )
    log.info("qgen: %d pairs, %d steps, loss %.4f -> %s", len(pairs), result.global_step, result.training_loss, out)
    return out
