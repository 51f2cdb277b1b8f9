"""Where files sit in a MIRACL release (the layout of the Hugging Face `miracl/miracl` datasets).

<root>/miracl-v1.0-<lang>/topics/topics.miracl-v1.0-<lang>-<split>.tsv
<root>/miracl-v1.0-<lang>/topics/topics-en.miracl-v1.0-<lang>-<split>.tsv  (English side file)
<root>/miracl-v1.0-<lang>/qrels/qrels.miracl-v1.0-<lang>-<split>.tsv
<root>/miracl-corpus-v1.0-<lang>/docs-*.jsonl[.gz]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.formats.errors import DataFormatError
from stages.formats.qrels import Qrels, read_qrels
from stages.formats.topics import read_topics

SPLITS = ("train", "dev", "test-a", "test-b")
VERSION = "v1.0"


@dataclass(frozen=True)
class ReleaseLayout:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def language_dir(self, lang: str) -> Path:
        return self.root / f"miracl-{VERSION}-{lang}"

    def topics_path(self, lang: str, split: str) -> Path:
        return self.language_dir(lang) / "topics" / f"topics.miracl-{VERSION}-{lang}-{split}.tsv"

    def english_topics_path(self, lang: str, split: str) -> Path:
        return self.language_dir(lang) / "topics" / f"topics-en.miracl-{VERSION}-{lang}-{split}.tsv"

    def qrels_path(self, lang: str, split: str) -> Path:
        return self.language_dir(lang) / "qrels" / f"qrels.miracl-{VERSION}-{lang}-{split}.tsv"

    def corpus_dir(self, lang: str) -> Path:
        return self.root / f"miracl-corpus-{VERSION}-{lang}"

    def available_splits(self, lang: str) -> list[str]:
        """Splits of a language that have a topics file, in MIRACL's order."""
        return [split for split in SPLITS if self.topics_path(lang, split).is_file()]

    def has_qrels(self, lang: str, split: str) -> bool:
        return self.qrels_path(lang, split).is_file()

    def _require(self, path: Path, what: str, lang: str) -> None:
        if path.is_file():
            return
        if not self.language_dir(lang).is_dir():
            raise DataFormatError(
                path, None, f"no {what}: language folder {self.language_dir(lang).name} is missing from {self.root}"
            )
        found = ", ".join(self.available_splits(lang)) or "none"
        raise DataFormatError(path, None, f"no {what} (splits with topics for {lang}: {found})")

    def topics(self, lang: str, split: str) -> dict[str, str]:
        path = self.topics_path(lang, split)
        self._require(path, f"topics file for {lang} {split}", lang)
        return read_topics(path)

    def english_topics(self, lang: str, split: str) -> dict[str, str]:
        path = self.english_topics_path(lang, split)
        self._require(path, f"English topics side file for {lang} {split}", lang)
        return read_topics(path)

    def qrels(self, lang: str, split: str) -> Qrels:
        path = self.qrels_path(lang, split)
        self._require(path, f"qrels file for {lang} {split} (test splits have none)", lang)
        return read_qrels(path)
