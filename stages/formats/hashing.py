"""The content hash every stage records in its metadata, so an output names exactly what it came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

from stages.formats.errors import DataFormatError


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks (model weights can be gigabytes); a missing file is named."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found (the stage that writes it has not run)")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
