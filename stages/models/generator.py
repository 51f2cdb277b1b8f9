"""The query generator (a sequence-to-sequence model): loading, the text it reads, log-likelihood scores and
greedy queries, and the seeded small T5 it starts from offline.

`generator_input` builds what the generator reads (the prompt naming the query's language, then the passage)
for training (stages.training.qgen), scoring as a teacher (stages.models.teachers) and generation
(stages.training.query_alignment) alike.
"""

from __future__ import annotations

from pathlib import Path

from stages import console
from stages.config import TinyModelParams
from stages.training import save_model


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
