"""The query generator's alignment enhancement for distillation (Ren et al., EMNLP 2022, arXiv 2303.14991).

For each parallel query the generator (`distillation.query_alignment.generator`, e.g. the one
stages.train_qgen trains) writes a query in `query_alignment.language` from the candidate the teacher
scored highest, read as the teacher read it; the student learns to place the target-language query and
the generated one together. That is a second training task beside the rank distillation, with
sentence-transformers' in-batch MultipleNegativesRankingLoss scaled by `query_alignment.weight`, so the
other-language side comes from the generator rather than from parallel sentences.

Generated queries are kept in work/<collection>/teacher/<generator>/generated-<language>.tsv
(`key<TAB>query`, the key hashing the generator's exact weights and settings, the language and the
passage), appended chunk by chunk: a second run, or one after a run that died, only generates what is new.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from stages.bi_data import ParallelQuery
from stages.config import Config
from stages.formats.keyed import append_keyed, read_keyed
from stages.teacher import model_slug, text_key

log = logging.getLogger("stages.query_alignment")
CHUNK = 256  # passages generated between two appends to the cache

Generate = Callable[[list[str]], list[str]]  # passages -> one generated query each


class GeneratedQueries:
    """Queries a generator wrote, keyed by what produced them; `add` appends to the file and syncs it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.queries: dict[str, str] = read_keyed(self.path, 0, 2, "key<TAB>generated query", lambda row: row[1])

    def add(self, rows: list[tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_keyed(self.path, [[key, query] for key, query in rows])
        self.queries.update(rows)


def cached_generation(
    passages: list[str], settings: dict, cache: GeneratedQueries, load_generator: Callable[[], Generate]
) -> list[str]:
    """A generated query per passage: read from the cache, or written by the generator (loaded only on a miss)."""
    prefix = json.dumps(settings, sort_keys=True)
    keys = [text_key(prefix, passage) for passage in passages]
    missing = list(dict.fromkeys(k for k in keys if k not in cache.queries))
    log.info("generated queries %s: %d of %d cached", cache.path, len(set(keys)) - len(missing), len(set(keys)))
    if missing:
        text = dict(zip(keys, passages))
        generate = load_generator()
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            cache.add(list(zip(chunk, generate([text[k] for k in chunk]))))
    return [cache.queries[k] for k in keys]


def best_passages(queries: list[ParallelQuery], scores: list[list[float]]) -> list[str]:
    """Per query, the candidate the teacher scored highest as the teacher read it (a tie: the first docid)."""
    return [
        q.teacher_passages[min(range(len(q.docids)), key=lambda j: (-teacher[j], q.docids[j]))]
        for q, teacher in zip(queries, scores)
    ]


def alignment_rows(queries: list[ParallelQuery], scores: list[list[float]], generate: Generate) -> dict[str, list[str]]:
    """Columns query (the target-language query) and generated (written from its teacher-best passage).

    A query whose generated query is empty is left out: there is nothing to align it with.
    """
    generated = generate(best_passages(queries, scores))
    kept = [(q.query, g) for q, g in zip(queries, generated) if g.strip()]
    if len(kept) < len(queries):
        log.warning(
            "query alignment: %d of %d generated queries are empty; those queries are left out",
            len(queries) - len(kept),
            len(queries),
        )
    return {"query": [q for q, _ in kept], "generated": [g for _, g in kept]}


def generator_settings(config: Config) -> tuple[str, dict]:
    """The generator's loadable path and what fixes its output: exact weights, prompt, language, lengths."""
    from stages.bi_model import resolve_model
    from stages.training import weights_sha256

    params, generator = config.bi_encoder.distillation.query_alignment, config.query_generator
    path = resolve_model(params.generator, config)
    return path, {
        "model": params.generator,
        "weights_sha256": weights_sha256(Path(path)),
        "prompt": generator.prompt,
        "language": params.language,
        "max_passage_length": generator.max_passage_length,
        "max_new_tokens": params.max_new_tokens,
    }


def alignment_task_rows(config: Config, queries: list[ParallelQuery], scores: list[list[float]]) -> tuple[dict, dict]:
    """The alignment task's columns, and what determines them (recorded in the kd step's inputs)."""
    path, settings = generator_settings(config)
    folder = config.work_dir / "teacher" / model_slug(settings["model"])
    cache = GeneratedQueries(folder / f"generated-{model_slug(settings['language'])}.tsv")

    def load_generator() -> Generate:
        from stages.train_qgen import generate_queries, load_generator

        model, tokenizer = load_generator(path)
        batch_size = config.bi_encoder.distillation.query_alignment.batch_size
        return lambda passages: generate_queries(
            model,
            tokenizer,
            passages,
            settings["language"],
            settings["prompt"],
            settings["max_passage_length"],
            settings["max_new_tokens"],
            batch_size,
        )

    columns = alignment_rows(
        queries, scores, lambda passages: cached_generation(passages, settings, cache, load_generator)
    )
    return columns, {"generator": settings, "rows_sha256": hashlib.sha256(json.dumps(columns).encode()).hexdigest()}


def weighted_loss(loss, weight: float, name: str):
    """`loss` times `weight`, reported under `name` (the trainer logs each named part of a loss)."""
    import torch

    # sentence-transformers has no per-dataset loss weight: each dataset's loss counts as it is.
    class WeightedLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.loss, self.model = loss, loss.model  # the trainer swaps in its wrapped model (DDP) through .model

        def forward(self, features, labels):
            return {name: weight * self.loss(features, labels)}

    return WeightedLoss()
