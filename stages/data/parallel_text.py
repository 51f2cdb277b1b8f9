"""The parallel text of token-level distillation: an English text (what the teacher reads) and its version in a
target language (what the student reads), from the distillation's parallel queries and from
parallel-sentence files (`english<TAB>target` lines; stages.formats.parallel).
"""

from __future__ import annotations

from dataclasses import dataclass

from stages.config import TokenDistillParams
from stages.data.parallel_queries import ParallelQuery
from stages.formats.parallel import read_parallel


@dataclass(frozen=True)
class ParallelText:
    source: str  # "queries" (the distillation's parallel queries) or "file:<lang>"
    english: str  # what the teacher reads
    target: str  # what the student reads


def parallel_texts(params: TokenDistillParams, queries: list[ParallelQuery]) -> list[ParallelText]:
    """The configured parallel text, each (english, target) pair once, queries first."""
    texts = [ParallelText("queries", q.english, q.query) for q in queries] if params.queries else []
    for lang, path in sorted(params.parallel_files.items()):
        texts += [ParallelText(f"file:{lang}", english, target) for english, target in read_parallel(path)]
    seen, unique = set(), []
    for text in texts:
        if (text.english, text.target) not in seen and text.english != text.target:
            seen.add((text.english, text.target))
            unique.append(text)
    return unique
