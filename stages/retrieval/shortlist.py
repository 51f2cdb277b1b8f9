"""What both rerankers share: BM25's shortlist per query and the per-split loop (stages.cli.rerank_main is
their command line).

A reranker is a function `(topics, shortlist, texts, desc) -> Run` that scores exactly the
shortlisted candidates. `rerank_splits` runs it for one language and its splits: each run is written
under a temporary name with metadata naming the BM25 run, topics and model it came from, so an
interrupted stage keeps the splits it finished and a rerun skips runs whose inputs are unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from stages.config import Config
from stages.console import LanguageWork
from stages.data.passages import fetch_passages
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, Run, read_run, write_run
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json
from stages.formats.runs import metadata_path
from stages.table import recorded_config
from stages.training import check_tokenizer_fits
from stages.uptodate import unchanged

log = logging.getLogger("stages.retrieval.shortlist")


Reranker = Callable[[dict[str, str], dict[str, list[str]], dict[str, str], str], Run]


def candidates(run: Run, depth: int) -> dict[str, list[str]]:
    """Each query's top `depth` docids in rank order (score descending, docid ascending on ties)."""
    return {qid: [d for d, _ in sorted(hits.items(), key=lambda h: (-h[1], h[0]))[:depth]] for qid, hits in run.items()}


def trained_model(config: Config, name: str, make_target: str) -> tuple[Path, dict]:
    """A model folder under work/<collection>/models and its training record."""
    path = config.models_dir / name
    if not (path / "training.json").is_file():
        where = f" (MODELS={config.models_root})" if config.models_root else ""
        raise InputDataError(None, None, f"no trained model at {path}{where}; `make {make_target}` trains it")
    check_tokenizer_fits(path)
    return path, read_json(path / "training.json")


def rerank_splits(
    config: Config,
    system: str,
    model_path: Path,
    lang: str,
    splits: list[str],
    depth: int,
    settings: dict,
    load_reranker: Callable[[], Reranker],
    record: dict,
    work: LanguageWork | None = None,
) -> list[Path]:
    """Rerank `lang`'s BM25 runs of `splits` as `system`; `load_reranker` is called only if a split needs work.
    `work` (the stage's report line) learns which splits were written and which were up to date."""
    layout, written = ReleaseLayout(config.data_root), []
    work = work or LanguageWork(f"rerank {system}", lang)
    for split in splits:
        bm25_path, out = config.run_path("bm25", lang, split), config.run_path(system, lang, split)
        inputs = (
            {
                "bm25_run": str(bm25_path),
                "bm25_sha256": file_sha256(bm25_path),
                "topics_sha256": file_sha256(layout.topics_path(lang, split)),
                "model": str(model_path),
                "model_sha256": file_sha256(model_path / "training.json"),
                "depth": depth,
            }
            | settings
            | recorded_config(config, f"rerank-{system}")
        )
        if unchanged(metadata_path(out), inputs, out):
            work.kept.append(split)
            written.append(out)
            continue
        topics = layout.topics(lang, split)
        shortlist = candidates(read_run(bm25_path), depth)
        texts = fetch_passages(layout.corpus_dir(lang), {d for docids in shortlist.values() for d in docids})
        run = load_reranker()(topics, shortlist, texts, f"{lang} {split}")
        write_run(
            run,
            out,
            tag=f"{system}-{record.get('step', '')}",
            metadata={
                "system": system,
                "language": lang,
                "split": split,
                "config": str(config.source),
                "collection": config.collection,
                "inputs": inputs,
                "model_training": record,
                "models": {"folder": str(model_path.parent), "trained_on": record.get("collection")},
            },
        )
        log.info("%s %s: %d queries reranked by %s -> %s", lang, split, len(run), system, out)
        work.written[split] = len(run)
        work.count("candidates scored", sum(len(shortlist[qid]) for qid in run))
        written.append(out)
    return written
