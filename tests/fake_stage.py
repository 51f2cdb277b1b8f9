"""Stands in for the project's python under make in tests (make PY=<wrapper>): the plan is made for real;
any other stage command is recorded and does its work as a file system sees it, touching every output the
table of stages promises for it. So `make` itself decides what is out of date, grouped targets included
(`make -n` does not follow a grouped target's remaking to what depends on it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run as a script, its folder (tests/, which has a `stages` package of its own) would come first on the path.
sys.path[0] = str(Path(__file__).resolve().parent.parent)
SHARED_FLAGS = ("--config", "--data", "--models", "--lang", "--split")


def parse(words: list[str]) -> tuple[str, str, dict]:
    """`-m module args...` -> the module, its fixed arguments, and the values of the shared flags."""
    module, fixed, values, words = words[1], [], {}, words[2:]
    while words:
        word, words = words[0], words[1:]
        if word in SHARED_FLAGS:
            values[word], words = words[0], words[1:]
        else:
            fixed.append(word)
    return module, " ".join(fixed), values


def stage_of(table: dict, module: str, fixed: str):
    for stage in table.values():
        if stage.command.partition(" ")[::2] == (module, fixed):
            return stage
    raise SystemExit(f"fake stage: no row of the table runs {module} {fixed}")


def main(argv: list[str]) -> int:
    if argv[:2] == ["-m", "stages.plan"]:
        os.execv(sys.executable, [sys.executable, *argv])
    from stages.config import load_config
    from stages.table import stage_table

    module, fixed, values = parse(argv)
    config = load_config(values["--config"], values.get("--data"), values.get("--models"))
    stage = stage_of(stage_table(config), module, fixed)
    with open(os.environ["FAKE_STAGE_LOG"], "a", encoding="utf-8") as log:
        log.write(stage.name + "\n")
    for lang in values["--lang"].split() if "--lang" in values else [""]:
        for path in stage.outputs(lang):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
