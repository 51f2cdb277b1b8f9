"""Write-then-rename, so a crash never leaves a half-written output that looks finished."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TEMPORARY = ".tmp-"  # atomic_write's temporary files: .<name>.tmp-<pid>


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file next to `path`; on success fsync and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMPORARY}{os.getpid()}")
    kwargs = {"encoding": encoding, "newline": "\n"} if "b" not in mode else {}
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_temporaries(directory: Path) -> list[str]:
    """Remove the temporary files atomic_write left in `directory` when its process was killed mid-write (a
    killed process runs no cleanup); the names removed. Only for a folder no other process is writing to."""
    removed = []
    for path in sorted(Path(directory).glob(f".*{TEMPORARY}*")):
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    return removed
