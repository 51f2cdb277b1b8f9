"""Small JSON records (manifests, run metadata, reports), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from stages.formats.atomic import atomic_write


def write_json(path: str | Path, data) -> None:
    with atomic_write(path) as out:
        json.dump(data, out, ensure_ascii=False, indent=2)
        out.write("\n")


def read_json(path: str | Path):
    """The record at `path`, or None when it is absent or unreadable (then the work it describes is redone)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
