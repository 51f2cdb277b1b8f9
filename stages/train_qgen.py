"""Train the query generator, a teacher for the bi-encoder (Query generator as teacher, arXiv 2303.14991).

    python -m stages.train_qgen        # -> work/<collection>/models/qgen/

A sequence-to-sequence model (mT5-style) learns to write a query for a passage from (passage, query)
pairs: each mMARCO query with its positive passage (`query_generator.mmarco` languages; with
`mmarco_cross_languages`, also the same query in another language, the ids being parallel) and each
MIRACL query with its judged positives (`query_generator.miracl_split`). The generator reads
`prompt` with the query's language filled in, then the passage ("english query: <passage>"), so one
generator writes queries in any language it was trained on; `generator_input` builds that text for
training, scoring and generation alike. As a teacher (`bi_encoder.teacher.kind: query-generator`),
its relevance score for a candidate is the log-likelihood of the English query given the prompted
passage, the sum over the query's tokens of log p(token | passage, earlier tokens), distilled into
the student with the same KL loss as the other teachers and cached the same way. For the alignment
enhancement (`bi_encoder.distillation.query_alignment`, stages.query_alignment) it writes a query
(`generate_queries`, greedy decoding) from each distillation query's best passage. Training is the
Hugging Face Seq2SeqTrainer. Offline, the starting point is a small T5 over the project's own
vocabulary (the tiny XLM-R's tokenizer), seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

from stages import console
from stages.ce_data import group_triples
from stages.cli import run_stage
from stages.config import Config, ConfigError, TinyModelParams, add_config_arguments, config_from_args, plain
from stages.formats import ReleaseLayout
from stages.formats.jsonfile import read_json
from stages.formats.mmarco import MMarcoLayout
from stages.shortlist import fetch_passages
from stages.training import (
    resolved_params,
    run_trainer,
    save_model,
    trainer_arguments,
    training_models_dir,
    up_to_date,
    weights_sha256,
)

log = logging.getLogger("stages.train_qgen")
NAME = "qgen"
TINY_NAME = "tiny-t5"


def model_dir(config: Config) -> Path:
    return training_models_dir(config) / NAME


def generator_input(prompt: str, language: str, passage: str) -> str:
    """What the generator reads: the prompt naming the language to write the query in, then the passage."""
    return prompt.format(language=language) + passage


def load_generator(path: str):
    """A sequence-to-sequence generator and its tokenizer, on the GPU when there is one, in eval mode."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(path).to("cuda" if torch.cuda.is_available() else "cpu").eval()
    return model, AutoTokenizer.from_pretrained(path)


def query_labels(tokenizer, queries: list[str], max_length: int) -> list[list[int]]:
    """Query token ids and the end-of-sequence id: what the generator is trained on and scored by."""
    ids = tokenizer(queries, add_special_tokens=False, truncation=True, max_length=max_length - 1)["input_ids"]
    return [row + [tokenizer.eos_token_id] for row in ids]


def log_likelihoods(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    batch_size: int,
    max_passage_length: int,
    max_query_length: int,
    desc: str | None = None,
) -> list[float]:
    """log p(query | passage) for each (query, passage): the query's token log-probabilities, summed."""
    import torch

    scores = [0.0] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    with torch.inference_mode():
        for start in console.progress(range(0, len(order), batch_size), desc=desc, unit=" batches", disable=not desc):
            batch = order[start : start + batch_size]
            inputs = tokenizer(
                [pairs[i][1] for i in batch],
                truncation=True,
                max_length=max_passage_length,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            labels = query_labels(tokenizer, [pairs[i][0] for i in batch], max_query_length)
            width = max(len(row) for row in labels)
            target = torch.tensor([row + [-100] * (width - len(row)) for row in labels], device=model.device)
            logits = model(**inputs, labels=target).logits.float()
            token_logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            summed = (token_logp * (target != -100)).sum(dim=1)
            for i, value in zip(batch, summed.tolist()):
                scores[i] = value
    return scores


def generate_queries(
    model,
    tokenizer,
    passages: list[str],
    language: str,
    prompt: str,
    max_passage_length: int,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """A query in `language` for each passage: greedy decoding (deterministic), whitespace collapsed."""
    import torch

    queries = [""] * len(passages)
    order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
    with torch.inference_mode():
        for start in console.progress(
            range(0, len(order), batch_size), desc=f"generating {language} queries", unit=" batches"
        ):
            batch = order[start : start + batch_size]
            inputs = tokenizer(
                [generator_input(prompt, language, passages[i]) for i in batch],
                truncation=True,
                max_length=max_passage_length,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            for i, text in zip(batch, tokenizer.batch_decode(output, skip_special_tokens=True)):
                queries[i] = " ".join(text.split())
    return queries


def build_tiny_generator(tokenizer_dir: Path, params: TinyModelParams, out: Path, record: dict | None = None) -> Path:
    """A small T5 with the given tokenizer (pad starts the decoder, </s> ends a query), seeded."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(params.seed)
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=params.hidden,
            d_ff=params.intermediate,
            num_layers=params.layers,
            num_heads=params.heads,
            d_kv=params.hidden // params.heads,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    )
    return save_model(
        lambda path: (model.save_pretrained(path), tokenizer.save_pretrained(path)),
        out,
        {"stage": "stages.train_qgen", "tokenizer": str(tokenizer_dir), "inputs": record or {}},
        record_name="built_by.json",
    )


def base_model(config: Config) -> str:
    if config.query_generator.base_model != "tiny":
        from stages.bi_model import resolve_model

        return resolve_model(config.query_generator.base_model, config)
    from stages.tiny_model import ensure_tiny_model

    tokenizer_dir = ensure_tiny_model(config)
    out = config.own_models_dir / TINY_NAME
    # Rebuilt when the shape or the vocabulary changes (the tiny model records both in built_by.json).
    inputs = {"params": plain(config.tiny_model), "tokenizer": read_json(tokenizer_dir / "built_by.json")["inputs"]}
    built = out / "built_by.json"
    if not (built.is_file() and read_json(built).get("inputs") == inputs):
        build_tiny_generator(tokenizer_dir, config.tiny_model, out, inputs)
    return str(out)


def training_pairs(config: Config) -> list[tuple[str, str, str, str]]:
    """(source, query language, passage, query): mMARCO positives of each configured language (and the same
    query in each cross language), then MIRACL judged positives. The language is the prompt's name for it."""
    params, layout = config.query_generator, ReleaseLayout(config.data_root)
    pairs: list[tuple[str, str, str, str]] = []
    if params.mmarco:
        nmt = config.cross_encoder.nmt
        mmarco = MMarcoLayout(nmt.root, nmt.translation)
        by_query = group_triples(mmarco.triples_path())
        for language, count in params.mmarco.items():
            collection = mmarco.collection(language)
            for written in [language] + [c for c in params.mmarco_cross_languages if c != language]:
                queries = mmarco.queries(written)
                source = f"mmarco:{language}" + (f">{written}" if written != language else "")
                for qid in sorted(by_query)[:count]:
                    pairs.append((source, written, collection[by_query[qid][0]], queries[qid]))
    for lang, language in config.languages.items():
        split = params.miracl_split
        if split not in language.splits or not layout.has_qrels(lang, split):
            continue
        topics, qrels = layout.topics(lang, split), layout.qrels(lang, split)
        wanted = {(qid, d) for qid, judged in qrels.items() if qid in topics for d, rel in judged.items() if rel > 0}
        texts = fetch_passages(layout.corpus_dir(lang), {d for _, d in wanted})
        pairs += [(f"miracl:{lang}", language.name.lower(), texts[d], topics[qid]) for qid, d in sorted(wanted)]
    if not pairs:
        raise ConfigError("no (passage, query) pairs to train the query generator on")
    return pairs


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
    t = resolved_params(params.training, config.work_root)
    start, pairs = base_model(config), training_pairs(config)
    # What the generator reads (prompt included) and writes: a change of either retrains it.
    texts = [
        (source, generator_input(params.prompt, language, passage), query) for source, language, passage, query in pairs
    ]
    inputs = {
        "base_model": params.base_model,
        "base_model_sha256": weights_sha256(Path(start)),
        "params": plain(params) | {"training": plain(t)},
        "pairs_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
    }
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.train_qgen", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print(train(config_from_args(args))))


if __name__ == "__main__":
    sys.exit(main())
