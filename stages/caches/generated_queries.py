"""Queries a generator wrote, cached: work/<collection>/teacher/<generator>/generated-<language>.tsv
(`key<TAB>query`, the key hashing the generator's exact weights and settings, the language and the
passage), appended chunk by chunk: a second run, or one after a run that died, only generates what is new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from stages.caches.keys import text_key
from stages.formats.keyed import append_keyed, read_keyed

log = logging.getLogger("stages.caches.generated_queries")


CHUNK = 256  # passages generated between two appends to the cache


Generate = Callable[[list[str]], list[str]]  # passages -> one generated query each


class GeneratedQueries:
    """Queries a generator wrote, keyed by what produced them; `add` appends to the file and syncs it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.queries: dict[str, str] = read_keyed(self.path, 0, 2, "key<TAB>generated query", lambda row: row[1])

    def add(self, rows: list[tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_keyed(self.path, [[key, query] for key, query in rows])
        self.queries.update(rows)


def cached_generation(
    passages: list[str], settings: dict, cache: GeneratedQueries, load_generator: Callable[[], Generate]
) -> list[str]:
    """A generated query per passage: read from the cache, or written by the generator (loaded only on a miss)."""
    prefix = json.dumps(settings, sort_keys=True)
    keys = [text_key(prefix, passage) for passage in passages]
    missing = list(dict.fromkeys(k for k in keys if k not in cache.queries))
    log.info("generated queries %s: %d of %d cached", cache.path, len(set(keys)) - len(missing), len(set(keys)))
    if missing:
        text = dict(zip(keys, passages))
        generate = load_generator()
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            cache.add(list(zip(chunk, generate([text[k] for k in chunk]))))
    return [cache.queries[k] for k in keys]
