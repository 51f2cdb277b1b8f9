"""Token alignments of parallel text, per aligner: work/<collection>/alignments/<aligner>-<digest>/alignments.tsv
(`key<TAB>i:j,i:j,...`, target and English token positions), the key hashing the text pair.

An aligner is its exact weights, its training record (prompt, length caps, towers: positions depend on them)
and the matching mode; stages.training.token_task computes what is missing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from stages.caches.keys import claim_folder, model_slug
from stages.data.parallel_text import ParallelText
from stages.formats.keyed import append_keyed, read_keyed


class AlignmentCache:
    """Alignments of one aligner (its weights, the matching mode), keyed by the text pair."""

    def __init__(self, folder: Path, identity: dict):
        self.folder = Path(folder)
        self.path = self.folder / "alignments.tsv"
        claim_folder(self.folder, "aligner", identity)
        self.alignments = read_keyed(self.path, 0, 2, "key<TAB>i:j,i:j,...", parse_pairs)

    def add(self, rows: dict[str, list[tuple[int, int]]]) -> None:
        append_keyed(self.path, [[key, ",".join(f"{i}:{j}" for i, j in pairs)] for key, pairs in rows.items()])
        self.alignments.update(rows)


def parse_pairs(row: list[str]) -> list[tuple[int, int]]:
    pairs = []
    for pair in filter(None, row[1].split(",")):
        target, sep, english = pair.partition(":")
        if not sep or ":" in english:
            raise ValueError(f"{pair!r} is not 'target:english'")
        pairs.append((int(target), int(english)))
    return pairs


def pair_key(text: ParallelText) -> str:
    return hashlib.sha1(f"{text.english}\x1f{text.target}".encode()).hexdigest()[:20]


def open_alignment_cache(work_dir: Path, aligner: Path, mode: str) -> AlignmentCache:
    """The cache of `aligner`'s alignments in `mode`, under `work_dir`/alignments/."""
    from stages.formats.hashing import file_sha256
    from stages.training import weights_sha256

    # The aligner's record names its student settings (prompt, length caps, towers): positions depend on them.
    identity = {
        "aligner": str(aligner),
        "weights_sha256": weights_sha256(aligner),
        "record_sha256": file_sha256(aligner / "training.json"),
        "alignment": mode,
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return AlignmentCache(Path(work_dir) / "alignments" / f"{model_slug(aligner.name)}-{digest}", identity)
