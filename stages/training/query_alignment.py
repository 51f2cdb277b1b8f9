"""The query generator's alignment enhancement for distillation (Ren et al., EMNLP 2022, arXiv 2303.14991).

For each parallel query the generator (`distillation.query_alignment.generator`, e.g. the one
stages.training.qgen trains) writes a query in `query_alignment.language` from the candidate the teacher
scored highest, read as the teacher read it; the student learns to place the target-language query and
the generated one together. That is a second training task beside the rank distillation, with
sentence-transformers' in-batch MultipleNegativesRankingLoss scaled by `query_alignment.weight`, so the
other-language side comes from the generator rather than from parallel sentences.
Generated queries are cached (stages.caches.generated_queries); the loss is stages.losses.weighted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from stages.caches.generated_queries import Generate, GeneratedQueries, cached_generation
from stages.caches.keys import model_slug
from stages.config import Config
from stages.data.parallel_queries import ParallelQuery

log = logging.getLogger("stages.training.query_alignment")


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
    from stages.models.specs import resolve_model
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
        from stages.models.generator import generate_queries, load_generator

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
