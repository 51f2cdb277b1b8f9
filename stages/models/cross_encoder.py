"""The cross-encoder: a trained (or base) model loaded for scoring, and its scores of (query, passage) pairs.

Pairs are scored in batches sorted by length (little padding), with no gradients, under the precision asked
for; the model loads in bfloat16 on a GPU that supports it. The reranker, the cross-encoder teacher and the
reranking benchmark all score through `score_pairs`.
"""

from __future__ import annotations

from pathlib import Path

from stages import console


def load_model(path: Path, max_length: int):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    kwargs = {"torch_dtype": torch.bfloat16} if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else {}
    return CrossEncoder(str(path), num_labels=1, max_length=max_length, model_kwargs=kwargs)


def score_pairs(
    model, pairs: list[tuple[str, str]], batch_size: int, desc: str = "rerank", precision: str = "fp32"
) -> list[float]:
    """Model scores in the order of `pairs`, computed in batches of similar length under `precision`."""
    import torch

    from stages.models.precision import autocast

    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    scores = [0.0] * len(pairs)
    with (
        torch.inference_mode(),
        autocast(precision),
        console.progress(total=len(pairs), desc=desc, unit=" pairs", mininterval=2) as bar,
    ):
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            values = model.predict(
                [pairs[i] for i in batch],
                batch_size=len(batch),
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            for i, value in zip(batch, values):
                scores[i] = float(value)
            bar.update(len(batch))
    return scores
