"""The text a model reads of a MIRACL passage, for training data and reranking alike."""

from __future__ import annotations

from pathlib import Path

from stages.errors import InputDataError
from stages.formats import Passage, iter_corpus


def passage_text(passage: Passage) -> str:
    """What the model reads of a MIRACL passage: its article title, then the text."""
    return f"{passage.title}: {passage.text}" if passage.title else passage.text


def fetch_passages(corpus_dir: Path, docids: set[str]) -> dict[str, str]:
    """The text the model reads for each docid, streaming the corpus once; a missing docid is an error."""
    texts = {p.docid: passage_text(p) for _, _, p in iter_corpus(corpus_dir) if p.docid in docids}
    missing = sorted(docids - set(texts))
    if missing:
        raise InputDataError(
            None, None, f"{len(missing)} docids of the run are not in the corpus {corpus_dir}: {' '.join(missing[:10])}"
        )
    return texts
