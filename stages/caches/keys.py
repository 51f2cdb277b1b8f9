"""What every cache shares: the key of the text a model read, a folder name for a model spec, and the folder
claimed by one identity (a cache made by one model is never read for another).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from stages.errors import CacheError
from stages.formats.jsonfile import read_json, write_json


def text_key(*texts: str) -> str:
    return hashlib.sha1("\x1f".join(texts).encode("utf-8")).hexdigest()[:20]


def claim_folder(folder: Path, owner: str, identity: dict) -> None:
    """Make `folder` the cache of `identity` (in <owner>.json); one that belongs to another is refused."""
    identity_path = folder / f"{owner}.json"
    if identity_path.is_file() and read_json(identity_path) != identity:
        raise CacheError(f"{identity_path} belongs to another {owner}; remove {folder} or change its name")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(identity_path, identity)


def model_slug(spec: str) -> str:
    """A folder name for a model spec (its last 60 safe characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_")[-60:]
