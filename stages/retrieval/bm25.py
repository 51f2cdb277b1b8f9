"""BM25's library: one Lucene index per language (built unless one of the same corpus and analyzer exists,
checked to hold exactly the corpus' passages) and a top-k run per split, BM25 or BM25 + RM3, written with a
`.meta.json` sidecar and skipped while its inputs are unchanged; one process per language. The stage, and
what it writes where: stages.bm25.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

from stages import console
from stages.config import BM25Params, Config
from stages.errors import CacheError, EnvironmentProblem, InputDataError
from stages.formats import DataFormatError, ReleaseLayout, Run, corpus_files, describe_files, iter_corpus, write_run
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json, write_json
from stages.formats.runs import metadata_path
from stages.table import recorded_config
from stages.uptodate import unchanged

SYSTEM = "bm25"
RM3_SYSTEM = "bm25-rm3"  # the same index, queries expanded by RM3 pseudo-relevance feedback
log = logging.getLogger("stages.retrieval.bm25")


# ---------------------------------------------------------------- where things go


def index_dir(config: Config, lang: str) -> Path:
    return config.work_dir / "indexes" / SYSTEM / lang


def run_path(config: Config, lang: str, split: str, system: str = SYSTEM) -> Path:
    return config.run_path(system, lang, split)


def run_tag(params: BM25Params, system: str = SYSTEM) -> str:
    tag = f"{system}-k1_{params.k1:g}-b_{params.b:g}"
    if system == RM3_SYSTEM:
        rm3 = params.rm3
        tag += f"-fbt_{rm3.fb_terms}-fbd_{rm3.fb_docs}-w_{rm3.original_query_weight:g}"
    return tag


# ---------------------------------------------------------------- corpus and index


@dataclass(frozen=True)
class CorpusSummary:
    files: list[dict]
    passages: int

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()[:16]


def summarize_corpus(corpus_dir: Path, lang: str) -> CorpusSummary:
    """Validate every corpus line (JSON, docid, title, text, no docid twice) and count passages."""
    files = corpus_files(corpus_dir)
    seen: dict[str, str] = {}
    count = 0
    with console.progress(desc=f"{lang} validate corpus", unit=" passages", mininterval=2) as bar:
        for path, number, passage in iter_corpus(files):
            where = seen.get(passage.docid)
            if where is not None:
                raise DataFormatError(path, number, f"duplicate docid {passage.docid!r} (first at {where})")
            seen[passage.docid] = f"{path.name}:{number}"
            count += 1
            bar.update()
    return CorpusSummary(describe_files(files), count)


def _corpus_unchanged(manifest: dict, corpus_dir: Path) -> bool:
    try:
        return manifest.get("corpus_files") == describe_files(corpus_files(corpus_dir))
    except DataFormatError:
        return False


def build_index(config: Config, lang: str, layout: ReleaseLayout) -> dict:
    """Index one language unless an index of the same corpus and analyzer exists; return its manifest."""
    from stages import lucene
    from stages.java import start_jvm

    language = config.languages[lang]
    target = index_dir(config, lang)
    corpus_dir = layout.corpus_dir(lang)
    manifest = read_json(target / "manifest.json")
    if manifest and manifest.get("analyzer") == language.analyzer and _corpus_unchanged(manifest, corpus_dir):
        log.info("%s: index up to date (%d passages) at %s", lang, manifest["documents"], target)
        return manifest | {"built_now": False}

    runtime = start_jvm()
    tokens = lucene.probe_language(language.analyzer, language.probe)
    log.info("%s: %s analyses the probe sentence into %d tokens", lang, runtime.describe(), len(tokens))
    summary = summarize_corpus(corpus_dir, lang)
    log.info("%s: corpus has %d passages in %d files", lang, summary.passages, len(summary.files))

    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{lang}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = target.parent / f".{lang}.tmp-{os.getpid()}"
    started = time.perf_counter()
    lucene.index_collection(corpus_dir, scratch, language.analyzer, config.bm25.index_threads)
    seconds = time.perf_counter() - started
    documents = lucene.index_doc_count(scratch)
    if documents != summary.passages:
        missing = lucene.missing_from_index(scratch, iter_corpus(corpus_dir)) if documents < summary.passages else []
        shutil.rmtree(scratch, ignore_errors=True)
        raise lucene.IndexCountMismatch(
            None,
            None,
            f"{lang}: the index holds {documents} documents but the corpus {corpus_dir} has {summary.passages} "
            f"passages"
            + (
                f"; not indexed: {', '.join(missing)} (Anserini skips passages whose title and text "
                f"are both empty, and logs any it fails on above)"
                if missing
                else ""
            ),
        )
    manifest = {
        "language": lang,
        "analyzer": language.analyzer,
        "documents": documents,
        "corpus_dir": str(corpus_dir),
        "corpus_files": summary.files,
        "corpus_fingerprint": summary.fingerprint,
        "java": runtime.describe(),
        "pyserini": importlib_metadata.version("pyserini"),
        "index_threads": config.bm25.index_threads,
        "seconds": round(seconds, 3),
    }
    write_json(scratch / "manifest.json", manifest)
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)
    log.info("%s: indexed %d passages in %.1f s at %s", lang, documents, seconds, target)
    return manifest | {"built_now": True}


# ---------------------------------------------------------------- search


def bm25_run(searcher, topics: dict[str, str], params: BM25Params, desc: str = "search") -> Run:
    """Top-`hits` BM25 results for every topic, {qid: {docid: score}}; a topic with no hit maps to {}."""
    run: Run = {}
    qids = list(topics)
    with console.progress(total=len(qids), desc=desc, unit=" queries", mininterval=2) as bar:
        for start in range(0, len(qids), params.batch_size):
            batch = {qid: topics[qid] for qid in qids[start : start + params.batch_size]}
            for qid, hits in searcher.batch_search(batch, params.hits, params.search_threads).items():
                run[qid] = dict(hits)
            bar.update(len(batch))
    return run


def _file_sha256(path: Path) -> str:
    return file_sha256(path)[:16]


@dataclass
class LanguageRuns:
    """What the stage did for one language: its runs, and the work it had to (re)do for them."""

    lang: str
    paths: list[Path] = field(default_factory=list)
    indexed: int | None = None  # passages indexed now; None: index up to date
    documents: int = 0
    index_seconds: float = 0.0
    searched: dict[str, int] = field(default_factory=dict)  # "<system> <split>" searched now -> queries
    search_seconds: float = 0.0

    def report(self, systems: tuple[str, ...]) -> str:
        """The stage's one line for this language."""
        parts = (
            [f"indexed {self.indexed} passages ({console.seconds(self.index_seconds)})"]
            if self.indexed is not None
            else []
        )
        if self.searched:
            splits = " ".join(dict.fromkeys(key.split()[1] for key in self.searched))
            parts.append(
                f"{splits}: {sum(self.searched.values())} queries searched ({console.seconds(self.search_seconds)})"
            )
        elif self.paths:
            parts.append("runs up to date")
        return (
            f"{' + '.join(systems)} {self.lang}: {'; '.join(parts) or f'index up to date ({self.documents} passages)'}"
        )


def search_language(
    config: Config,
    lang: str,
    splits: list[str],
    layout: ReleaseLayout,
    manifest: dict,
    system: str = SYSTEM,
    outcome: LanguageRuns | None = None,
) -> list[Path]:
    """Write the run of each split; a run whose inputs and parameters are unchanged is kept."""
    from stages import lucene

    outcome = outcome or LanguageRuns(lang)

    params = config.bm25
    rm3 = (params.rm3.fb_terms, params.rm3.fb_docs, params.rm3.original_query_weight) if system == RM3_SYSTEM else None
    written, searcher = [], None
    try:
        for split in splits:
            out = run_path(config, lang, split, system)
            topics_file = layout.topics_path(lang, split)
            inputs = {
                "topics": str(topics_file),
                "topics_sha256": _file_sha256(topics_file),
                "index": str(index_dir(config, lang)),
                "corpus_fingerprint": manifest["corpus_fingerprint"],
            } | recorded_config(config, system, lang)
            if unchanged(metadata_path(out), inputs, out):
                written.append(out)
                continue
            topics = layout.topics(lang, split)
            started = time.perf_counter()
            if searcher is None:
                searcher = lucene.Searcher(
                    index_dir(config, lang), config.languages[lang].analyzer, params.k1, params.b, rm3
                )
            run = bm25_run(searcher, topics, params, desc=f"{lang} {split}")
            empty = [qid for qid, hits in run.items() if not hits]
            if empty:
                log.warning(
                    "%s %s: %d of %d queries retrieve nothing (they score 0 in evaluation): %s",
                    lang,
                    split,
                    len(empty),
                    len(run),
                    " ".join(empty[:10]),
                )
            write_run(
                run,
                out,
                run_tag(params, system),
                depth=params.hits,
                metadata={
                    "system": system,
                    "language": lang,
                    "split": split,
                    "tag": run_tag(params, system),
                    "config": str(config.source),
                    "collection": config.collection,
                    "inputs": inputs,
                    "queries": len(topics),
                    "java": manifest["java"],
                    "pyserini": manifest["pyserini"],
                    "analyzer": searcher.analyzer_name(),
                },
            )
            log.info("%s %s: %d queries, run written to %s", lang, split, len(topics), out)
            outcome.searched[f"{system} {split}"] = len(topics)
            outcome.search_seconds += time.perf_counter() - started
            written.append(out)
    finally:
        if searcher is not None:
            searcher.close()
    return written


def resolve_splits(config: Config, lang: str, layout: ReleaseLayout, split_spec: str | None) -> list[str]:
    """Configured splits with a topics file; a split asked for by name must exist."""
    wanted = config.select_splits(lang, split_spec)
    present = [s for s in wanted if layout.topics_path(lang, s).is_file()]
    missing = [s for s in wanted if s not in present]
    if missing and split_spec:
        layout.topics(lang, missing[0])  # raises the error that names the missing file
    for split in missing:
        log.info("%s %s: no topics file at %s, skipped", lang, split, layout.topics_path(lang, split))
    return present


def bm25_language(
    config: Config,
    lang: str,
    split_spec: str | None = None,
    index_only: bool = False,
    systems: tuple[str, ...] = (SYSTEM,),
) -> LanguageRuns:
    """Index one language and write the runs of each system (bm25, bm25-rm3); `.paths` are the runs."""
    layout = ReleaseLayout(config.data_root)
    splits = resolve_splits(config, lang, layout, split_spec)
    outcome = LanguageRuns(lang)
    started = time.perf_counter()
    manifest = build_index(config, lang, layout)
    outcome.documents = manifest["documents"]
    if manifest["built_now"]:
        outcome.indexed, outcome.index_seconds = manifest["documents"], time.perf_counter() - started
    if not index_only:
        for system in systems:
            outcome.paths += search_language(config, lang, splits, layout, manifest, system, outcome)
    return outcome


def run_languages(
    config: Config, langs: list[str], split_spec: str | None, index_only: bool, systems: tuple[str, ...] = (SYSTEM,)
) -> dict[str, LanguageRuns | Exception]:
    """One language per process (each starts its own JVM), `config.jobs` at a time.

    A language that fails (bad input, an analyzer the JDK lacks) does not stop the others: its entry
    is the error, and the caller reports every failure at the end.
    """
    if len(langs) == 1 or config.jobs <= 1:
        return {lang: _worker(config, lang, split_spec, index_only, systems) for lang in langs}
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=config.jobs, backend="loky")(
        delayed(_worker)(config, lang, split_spec, index_only, systems) for lang in langs
    )
    return dict(zip(langs, results))


def _worker(config, lang, split_spec, index_only, systems) -> LanguageRuns | Exception:
    from stages.java import JavaNotFound

    if not logging.getLogger().handlers:  # a fresh worker process: its output already goes where the parent's went
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A language's own data, index or Java support fails that language alone; a config error or a missing Java
    # concerns them all, so it stops the stage with one message.
    try:
        return bm25_language(config, lang, split_spec, index_only, systems)
    except JavaNotFound:
        raise
    except (InputDataError, CacheError, EnvironmentProblem) as err:
        log.error("%s: %s", lang, err)
        return err
