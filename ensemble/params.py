"""The tuned fusion parameters' files: `work/<collection>/fusion/<name>/params.<lang>.yaml`.

A language tuned on its own dev queries has its parameters in its file; one with too few points to the
pooled file (`params.all.yaml`, tuned over every language's dev queries) and says why.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from stages.config import Config
from stages.errors import InputDataError
from stages.formats import atomic_write

POOLED = "all"


def params_path(config: Config, lang: str) -> Path:
    return config.work_dir / "fusion" / config.fusion.name / f"params.{lang}.yaml"


def write_params(path: Path, entry: dict, config: Config, lang: str) -> None:
    header = {"language": lang, "config": str(config.source), "collection": config.collection}
    with atomic_write(path) as out:
        yaml.safe_dump(header | entry, out, allow_unicode=True, sort_keys=False)


def load_tuned(path: Path) -> dict:
    """A language's tuned parameters, following a fallback to the pooled file."""
    if not path.is_file():
        raise InputDataError(None, None, f"no tuned fusion parameters at {path}; run `make tune-fusion` first")
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "fallback" in entry:
        pooled = path.with_name(f"params.{entry['fallback']}.yaml")
        resolved = load_tuned(pooled)
        return resolved | {"source": str(pooled), "fallback_reason": entry.get("reason")}
    return entry | {"source": str(path)}
