"""A synthetic collection in the MIRACL release layout, for benchmarks.

Words are made-up syllable strings drawn from a Zipf distribution (as word frequencies are in real
text), so posting lists have realistic skew; queries are a few words taken from one passage each.
The same seed and sizes give byte-identical files. bench_config points a config at one, and timed runs a
whole command (make bench-bm25, make plan-check).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import yaml

from stages import console
from stages.config import REPO_ROOT, BenchParams, ConfigError, load_config
from stages.formats.atomic import atomic_write
from stages.formats.layout import ReleaseLayout

LANG = "en"  # the synthetic collection's language (its analyzer: Porter English)
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
FILES = 4
DATA_FIELDS = ("passages", "queries", "words_per_passage", "vocabulary", "seed")


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """`size` distinct pseudo-words of 2 to 4 syllables."""
    words: dict[str, None] = {}
    while len(words) < size:
        lengths = rng.integers(2, 5, size=size)
        picks = rng.integers(0, len(SYLLABLES), size=(size, 4))
        for length, row in zip(lengths, picks):
            words["".join(SYLLABLES[i] for i in row[:length])] = None
            if len(words) == size:
                break
    return list(words)


def generate(root: Path, lang: str, params: BenchParams) -> dict:
    """Write corpus files and a `dev` topics file under `root`; skip if the same ones exist."""
    layout = ReleaseLayout(root)
    stamp = root / f"synthetic-{lang}.json"
    # what shapes the files: a new bench setting (the timing's repeats, say) must not make them again
    description = {key: asdict(params)[key] for key in DATA_FIELDS} | {"lang": lang, "files": FILES}
    if stamp.is_file() and json.loads(stamp.read_text()) == description:
        return description
    rng = np.random.default_rng(params.seed)
    words = vocabulary(params.vocabulary, rng)
    ranks = np.arange(1, params.vocabulary + 1)
    probabilities = 1.0 / ranks**1.07
    probabilities /= probabilities.sum()
    corpus_dir = layout.corpus_dir(lang)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    per_file = -(-params.passages // FILES)
    query_sources = set(rng.choice(params.passages, size=params.queries, replace=False).tolist())
    topics = {}
    passage = 0
    with console.progress(total=params.passages, desc="generate passages", unit=" passages", mininterval=2) as bar:
        for number in range(FILES):
            with atomic_write(corpus_dir / f"docs-{number}.jsonl") as out:
                for _ in range(min(per_file, params.passages - passage)):
                    ids = rng.choice(params.vocabulary, size=params.words_per_passage, p=probabilities)
                    text = " ".join(words[i] for i in ids)
                    docid = f"{passage // 5}#{passage % 5}"
                    title = " ".join(words[i] for i in ids[:3])
                    out.write(json.dumps({"docid": docid, "title": title, "text": text}) + "\n")
                    if passage in query_sources:
                        picked = rng.choice(ids, size=int(rng.integers(3, 7)), replace=False)
                        topics[str(len(topics))] = " ".join(words[i] for i in picked)
                    passage += 1
                    bar.update()
    topics_path = layout.topics_path(lang, "dev")
    with atomic_write(topics_path) as out:
        for qid, query in topics.items():
            out.write(f"{qid}\t{query}\n")
    stamp.write_text(json.dumps(description))
    return description


def timed(command: list[str], env: dict, log: Path) -> float:
    started = time.perf_counter()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, cwd=REPO_ROOT)
    return time.perf_counter() - started


def bench_config(root: Path, source: Path) -> Path:
    """A config for the synthetic collection: the main config, one language, its own folders."""
    path = root / "bench.yaml"
    base = load_config(source)
    language = base.languages.get(LANG)
    if language is None:
        raise ConfigError(f"{source}: the benchmark needs language {LANG!r} in the config")
    data = {
        "extends": str(source.resolve()),
        "data_root": str(root / "data"),
        "work_root": str(root / "work"),
        "languages": {
            LANG: {"name": language.name, "analyzer": language.analyzer, "splits": ["dev"], "probe": language.probe}
        },
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path
