"""One reader and one writer per file format; every stage goes through these.

- topics: `qid<TAB>query` (MIRACL topics, and the English side files of the sample)
- qrels:  `qid Q0 docid rel`, tabs or spaces
- corpus: JSON lines `{"docid", "title", "text"}`, plain or gzipped
- runs:   TREC `qid Q0 docid rank score tag`
- layout: where those files sit in the MIRACL release layout
- mmarco: mMARCO's collections, queries and training triples (stages.formats.mmarco)
- parallel: `english<TAB>target` parallel sentences (stages.formats.parallel)
- keyed: append-only `key<TAB>...` tables of cached model output (stages.formats.keyed)

Malformed input raises `DataFormatError`, whose message names the file, the line and what was expected.
"""

from stages.formats.atomic import atomic_write
from stages.formats.corpus import Passage, corpus_files, describe_files, iter_corpus, read_corpus
from stages.formats.errors import DataFormatError
from stages.formats.layout import ReleaseLayout
from stages.formats.qrels import read_qrels, write_qrels
from stages.formats.runs import Run, iter_run, read_run, write_run
from stages.formats.topics import read_topics, write_topics

__all__ = [
    "DataFormatError",
    "atomic_write",
    "read_topics",
    "write_topics",
    "read_qrels",
    "write_qrels",
    "Passage",
    "corpus_files",
    "describe_files",
    "iter_corpus",
    "read_corpus",
    "Run",
    "iter_run",
    "read_run",
    "write_run",
    "ReleaseLayout",
]
