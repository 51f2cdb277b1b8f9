"""mMARCO (MS MARCO passages and queries machine-translated into 13 languages), as its users have it.

    <root>/google/collections/<language>_collection.tsv        pid<TAB>passage
    <root>/google/queries/train/<language>_queries.train.tsv   qid<TAB>query
    <root>/triples.train.ids.small.tsv                         qid<TAB>positive pid<TAB>negative pid

Ids are shared by all languages, so one id triple names the same example in every language. The
plain text form of MS MARCO's triples (`query<TAB>positive<TAB>negative`) is read too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines
from stages.formats.topics import read_id_text


@dataclass(frozen=True)
class MMarcoLayout:
    root: Path
    # mMARCO's translations live under the translator's name ("google" in the public release).
    translation: str = "google"

    def collection_path(self, language: str) -> Path:
        return Path(self.root) / self.translation / "collections" / f"{language}_collection.tsv"

    def queries_path(self, language: str) -> Path:
        return Path(self.root) / self.translation / "queries" / "train" / f"{language}_queries.train.tsv"

    def triples_path(self) -> Path:
        return Path(self.root) / "triples.train.ids.small.tsv"

    def collection(self, language: str) -> dict[str, str]:
        return read_id_text(
            _existing(self.collection_path(language), f"mMARCO {language} collection"), "pid", "passage"
        )

    def queries(self, language: str) -> dict[str, str]:
        return read_id_text(_existing(self.queries_path(language), f"mMARCO {language} queries"), "qid", "query")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFormatError(path, None, f"{what} not found")
    return path


def iter_id_triples(path: str | Path) -> Iterator[tuple[str, str, str]]:
    """(qid, positive pid, negative pid) per line; a line without three ids is an error."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise DataFormatError(
                path, number, f"expected 'qid<TAB>positive pid<TAB>negative pid', found {len(fields)} fields"
            )
        yield fields[0], fields[1], fields[2]


def iter_text_triples(path: str | Path) -> Iterator[tuple[str, str, str]]:
    """(query, positive passage, negative passage) per line of MS MARCO's text triples."""
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise DataFormatError(
                path, number, f"expected 'query<TAB>positive passage<TAB>negative passage', found {len(fields)} fields"
            )
        yield fields[0].strip(), fields[1].strip(), fields[2].strip()
