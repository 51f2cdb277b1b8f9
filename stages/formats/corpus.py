"""Corpus: JSON lines `{"docid": "39#0", "title": ..., "text": ...}`, in `docs-*.jsonl[.gz]` files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stages.formats.errors import DataFormatError
from stages.formats.lines import iter_lines

CORPUS_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True, slots=True)
class Passage:
    docid: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """What Anserini's MrTyDiCollection indexes: title, newline, text."""
        return f"{self.title}\n{self.text}"


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def corpus_files(corpus_dir: str | Path) -> list[Path]:
    """The corpus files of a directory in natural order (docs-2 before docs-10).

    Anserini indexes every file in the directory, so anything that is not `.jsonl`/`.jsonl.gz` is an
    error here rather than a surprise there.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataFormatError(
            corpus_dir, None, "corpus directory not found; expected docs-*.jsonl or docs-*.jsonl.gz files in it"
        )
    files, strays = [], []
    for path in corpus_dir.iterdir():
        if path.name.startswith("."):
            continue
        (files if path.is_file() and path.name.endswith(CORPUS_SUFFIXES) else strays).append(path)
    if strays:
        names = ", ".join(sorted(p.name for p in strays))
        raise DataFormatError(
            corpus_dir,
            None,
            f"unexpected entries {names}; the corpus directory may hold only .jsonl or .jsonl.gz files",
        )
    if not files:
        raise DataFormatError(corpus_dir, None, "no .jsonl or .jsonl.gz files")
    return sorted(files, key=_natural_key)


def _parse(path: Path, number: int, line: str) -> Passage:
    if not line.strip():
        raise DataFormatError(path, number, "empty line; expected a JSON object with docid, title and text")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise DataFormatError(path, number, f"expected a JSON object, found {type(record).__name__}")
    docid = record.get("docid")
    if not isinstance(docid, str) or not docid.strip():
        raise DataFormatError(path, number, "missing or empty 'docid' (a non-empty string is expected)")
    for key in ("title", "text"):
        if not isinstance(record.get(key), str):
            raise DataFormatError(path, number, f"docid {docid!r}: missing '{key}' (a string is expected)")
    return Passage(docid.strip(), record["title"], record["text"])


def iter_corpus(source: str | Path | Iterable[Path]) -> Iterator[tuple[Path, int, Passage]]:
    """Yield (file, line number, passage) for every line of a corpus directory or list of files."""
    files = corpus_files(source) if isinstance(source, (str, Path)) else list(source)
    for path in files:
        for number, line in iter_lines(path):
            yield path, number, _parse(path, number, line)


def count_passages(source: str | Path | Iterable[Path]) -> int:
    """How many passages a corpus holds: its non-empty lines, none parsed (a plan over 106M passages)."""
    files = corpus_files(source) if isinstance(source, (str, Path)) else list(source)
    return sum(1 for path in files for _, line in iter_lines(path) if line.strip())


def read_corpus(source: str | Path | Iterable[Path]) -> dict[str, Passage]:
    """Load a (small) corpus into {docid: passage}; a docid seen twice is an error naming both places."""
    passages: dict[str, Passage] = {}
    seen_at: dict[str, str] = {}
    for path, number, passage in iter_corpus(source):
        if passage.docid in passages:
            raise DataFormatError(
                path, number, f"duplicate docid {passage.docid!r} (first at {seen_at[passage.docid]})"
            )
        passages[passage.docid] = passage
        seen_at[passage.docid] = f"{path.name}:{number}"
    return passages


def describe_files(files: list[Path]) -> list[dict]:
    """Name, size and modification time: enough to notice a changed corpus without reading it."""
    return [{"name": p.name, "bytes": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns} for p in files]
