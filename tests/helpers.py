"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stages.formats import ReleaseLayout, Run, read_run
from stages.formats.runs import metadata_path

REPO = Path(__file__).resolve().parent.parent


def write_config(path: Path, **keys) -> Path:
    """A config file extending the tiny-model one (configs/tiny.yaml: the sample with the tiny model), with
    top-level keys replaced."""
    data = {"extends": str(REPO / "configs" / "tiny.yaml")}
    data |= {key: (str(value) if isinstance(value, Path) else value) for key, value in keys.items()}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8", bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


PASSAGES = {
    "en": [
        ("1#0", "Rivers", "The Nile is the longest river of Africa."),
        ("1#1", "Rivers", "The Amazon carries more water than any other river."),
        ("2#0", "Mountains", "Kilimanjaro is the highest mountain in Africa."),
        ("2#1", "Mountains", "Everest lies on the border of Nepal and China."),
    ],
    "sw": [
        ("7#0", "Mito", "Mto Nile ni mto mrefu zaidi barani Afrika."),
        ("7#1", "Mito", "Mto Rufiji unapita katika Tanzania."),
        ("9#0", "Milima", "Kilimanjaro ni mlima mrefu zaidi barani Afrika."),
        ("9#1", "Milima", "Mlima Kenya uko katikati ya Kenya."),
    ],
}
TOPICS = {
    "en": {"dev": {"11": "longest river in Africa", "12": "highest mountain"}, "train": {"13": "Amazon water"}},
    "sw": {"dev": {"21": "mto mrefu zaidi", "22": "Kilimanjaro"}, "train": {"23": "Mlima Kenya"}},
}
QRELS = {
    "en": {"dev": ["11 Q0 1#0 1", "11 Q0 1#1 0", "12 Q0 2#0 1", "12 Q0 2#1 0"]},
    "sw": {"dev": ["21 Q0 7#0 1", "21 Q0 9#0 0", "22 Q0 9#0 1", "22 Q0 7#0 0"]},
}
TINY_LANGUAGES = {
    code: {"name": code, "analyzer": code, "splits": ["train", "dev", "test-a"], "probe": "Nile Afrika"}
    for code in ("en", "sw")
}


def make_release(root, passages=PASSAGES):
    """A two-language release (en, sw) small enough to reason about hit by hit."""
    layout = ReleaseLayout(root)
    for lang, docs in passages.items():
        write_lines(
            layout.corpus_dir(lang) / "docs-0.jsonl",
            [json.dumps({"docid": d, "title": t, "text": x}) for d, t, x in docs],
        )
        for split, topics in TOPICS[lang].items():
            write_lines(layout.topics_path(lang, split), [f"{q}\t{text}" for q, text in topics.items()])
        for split, lines in QRELS[lang].items():
            write_lines(layout.qrels_path(lang, split), lines)
    return layout


def assert_same_runs(paths: list[Path], expected: list[Run]) -> None:
    """The same queries and candidates in the same order, scores within 1e-6."""
    for path, local in zip(paths, expected, strict=True):
        run = read_run(path)
        assert {q: list(h) for q, h in run.items()} == {q: list(h) for q, h in local.items()}
        for qid, hits in run.items():
            assert all(abs(score - local[qid][docid]) <= 1e-6 for docid, score in hits.items()), (path, qid)


def run_stamps(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    """Each run's bytes and its metadata's time (an up-to-date run is touched, for make; its metadata is not)."""
    return {path: (path.read_bytes(), metadata_path(path).stat().st_mtime_ns) for path in paths}


def two_query_dev_set():
    """A dev set the benchmark drivers can score by hand: two queries, three passages, one relevant each."""
    from stages.training.curve import DevSet

    topics = {"q1": "Nile river", "q2": "bread"}
    texts = {"d1": "The Nile river flows north.", "d2": "Bread needs yeast.", "d3": "Cats sleep."}
    shortlist = {"q1": ["d1", "d2", "d3"], "q2": ["d2", "d3", "d1"]}
    return DevSet(topics, shortlist, texts, {"q1": {"d1": 1}, "q2": {"d2": 1}})
