"""The one check every stage makes before working: is an output's record of its inputs the same as now?

A stage writes each output together with a record of what it was made from (a run's metadata file, a
model's training.json, a tuning's parameters file), including `stages.table.recorded_config`: the config
values its row of the table hashes. When the record matches, the work is skipped and the output touched,
so make, which compares times, stops asking for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from stages.formats.jsonfile import read_json

log = logging.getLogger("stages.uptodate")


def recorded_inputs(record: Path) -> dict | None:
    """The `inputs` a record holds (JSON, or YAML for parameter files), or None without a readable one."""
    if not record.is_file():
        return None
    data = yaml.safe_load(record.read_text(encoding="utf-8")) if record.suffix == ".yaml" else read_json(record)
    return data.get("inputs") if isinstance(data, dict) else None


def unchanged(record: Path, inputs: dict, output: Path | None = None, touch: bool = True) -> bool:
    """True when `record` holds exactly `inputs` and `output` (default: the record itself) exists; then the
    output is touched, newer than its inputs again (`touch=False` where no make rule asked for it: a model
    another stage loads, whose new time would make that stage's siblings out of date)."""
    output = output or record
    if not output.exists() or recorded_inputs(record) != inputs:
        return False
    log.info("%s is up to date", output)
    if touch:
        os.utime(output)
    return True
