"""A text read by a bi-encoder as training reads a query column, token by token: the token ids, the characters
of the text behind each token, and the model's token vectors.

Token-level distillation (stages.training.token_task) aligns and trains on these positions, so they come
from the model's own preprocessing (prompt, query task, length cap) and never from a separate tokenization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages import console

LONE_MARKERS = ("▁", "Ġ")  # word-start markers of sentencepiece and byte-level BPE, as tokens of their own


@dataclass(frozen=True)
class Tokens:
    """One text as a model reads it as a query: token ids, and the text's characters behind each token."""

    input_ids: tuple[int, ...]  # every token, specials and prompt included
    content: tuple[int, ...]  # positions of the text's own tokens
    spans: tuple[tuple[int, int], ...]  # (start, end) in the text, one per content position


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


def token_width(model) -> int:
    """The width of the vectors the model puts in `token_embeddings` (after any projection)."""
    import torch

    with torch.inference_mode():
        return int(model(query_features(model, ["a"]))["token_embeddings"].shape[-1])
