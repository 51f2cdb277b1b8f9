"""Benchmarks, each measured side by side with the reference tool in the same run."""

from __future__ import annotations

import json
from pathlib import Path

from stages.console import say
from stages.formats import atomic_write


def save_report(root: Path, text: str, record: dict) -> None:
    """A benchmark's results: `text` (its tables) as report.md, shown on the terminal, and `record` (every
    figure, for make plan and later comparisons) as report.json, both under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(root / "report.md") as out:
        out.write(text.rstrip("\n") + "\n")
    with atomic_write(root / "report.json") as out:
        json.dump(record, out, indent=1, default=str)
    say(text.rstrip("\n"))
    say(f"saved {root / 'report.md'}")
