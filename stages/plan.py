"""Make's include, written from the table of stages (stages/table.py).

`python -m stages.plan make-vars` writes, for each stage and language, its output files, its input files
(data, other stages' outputs) and its config stamp; the Makefile turns them into rules with one template
per kind of stage (see "stages" in the Makefile).

The config stamps, `work/<collection>/stamps/<config>/<stage>[.<lang>].yaml`, hold the values of the
config keys a stage hashes, read through the whole `extends` chain. A stamp is rewritten only when those
values change, so an edit of a parent config makes out of date, for make, exactly the stages that read the
edited keys and what follows them.

    python -m stages.plan make-vars --config configs/sample.yaml --plan work/.make/x.mk   # the make include
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from stages.config import REPO_ROOT, ConfigError, add_config_arguments, config_chain, config_from_args
from stages.errors import PipelineError
from stages.formats.layout import ReleaseLayout
from stages.formats.runs import metadata_path
from stages.table import Stage, config_values, pooled_languages, stage_table, topic_splits
from stages.uptodate import recorded_inputs

# Marks a stamp folder as complete; the Makefile writes the stamps again when it is missing.
WRITTEN = ".written"


def per_language(stage: Stage) -> bool:
    return any("{lang}" in path for path in stage.hashes)


def stamp_path(stamps: Path, stage: Stage, lang: str) -> Path:
    return stamps / (f"{stage.name}.{lang}.yaml" if per_language(stage) else f"{stage.name}.yaml")


def stamp_dir(config) -> Path:
    """Where a config's stamps live: beside the outputs they date, so `make clean` removes both."""
    source = Path(config.source).resolve()
    slug = str(source.relative_to(REPO_ROOT) if source.is_relative_to(REPO_ROOT) else source).strip("/")
    slug = slug.replace("/", "_")
    return config.work_dir / "stamps" / slug


def write_stamps(config, stamps: Path) -> list[Path]:
    """Each stage's config stamp, rewritten only where its values changed (make compares their times).

    A stamp whose values differ from the ones it held is dated now, which makes the stage's outputs out of
    date. A stamp made for the first time is dated 1970 when the stage's outputs were made from these values
    (each records them) or do not exist yet, so a lost stamp folder does not make everything out of date;
    it is dated now when an output was made from other values, or records none (another config's outputs in
    the same work folder, an older checkout's).
    """
    stamps.mkdir(parents=True, exist_ok=True)
    changed = []
    for stage in stage_table(config).values():
        for lang in stage.languages(config) if per_language(stage) else [""]:
            path = stamp_path(stamps, stage, lang)
            text = yaml.safe_dump(config_values(config, stage, lang), allow_unicode=True, sort_keys=True)
            new = not path.is_file()
            if new or path.read_text(encoding="utf-8") != text:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                if new and made_from(stage, lang, config_values(config, stage, lang), config):
                    os.utime(tmp, (0, 0))
                tmp.replace(path)
                changed.append(path)
    if not (stamps / WRITTEN).exists():  # never touched again: a make that changed nothing touches no file
        (stamps / WRITTEN).touch()
    return changed


def made_from(stage: Stage, lang: str, values: dict, config) -> bool:
    """Whether every existing output of the stage (for `lang`, or all languages) records these config values."""
    langs = [lang] if lang or stage.kind == "one" else stage.languages(config)
    for output in (path for code in langs for path in stage.outputs(code)):
        if output.exists():
            record = output if output.suffix in (".json", ".yaml") else metadata_path(output)
            if output.name == "config.json":  # the tiny model's record sits beside its config
                record = output.with_name("built_by.json")
            if (recorded_inputs(record) or {}).get("config") != values:
                return False
    return True


def _words(paths) -> str:
    return " ".join(str(p) for p in paths)


def make_vars(config, stamps: Path) -> str:
    """The Makefile's include: where things live, the languages and splits, and every stage's files."""
    lines = [
        f"COLLECTION := {config.collection}",
        f"DATA_ROOT := {config.data_root}",
        f"WORK_DIR := {config.work_dir}",
        f"ALL_LANGS := {' '.join(config.languages)}",
        f"JOBS ?= {config.jobs}",
        f"EVAL_SPLIT := {config.evaluation.split}",
        f"CONFIG_CHAIN := {_words(config_chain(config.source))}",
        f"SUBMISSION_SYSTEM := {config.submission.system}",
        f"SUBMISSION_TAG := {config.submission.tag}",
        f"FUSION_NAME := {config.fusion.name}",
        f"FUSION_SYSTEMS := {' '.join(config.fusion.systems)}",
        f"FUSION_POOLED_LANGS := {' '.join(pooled_languages(config))}",
        f"BI_NAME := {config.bi_encoder.name}",
        f"DENSE_NAME := {config.bi_encoder.dense.name}",
        f"TINY_MODEL := {config.own_models_dir / 'tiny-xlmr' / 'config.json'}",
        f"STAMP_DIR := {stamps}",
    ]
    for code, language in config.languages.items():
        lines.append(f"SPLITS_{code} := {' '.join(language.splits)}")
        lines.append(f"TOPIC_SPLITS_{code} := {' '.join(topic_splits(config, code))}")
    table = stage_table(config)
    lines.append(f"STAGES := {' '.join(table)}")
    for stage in table.values():
        n = stage.name
        module, _, args = stage.command.partition(" ")
        lines += [f"stage_module_{n} := {module}", f"stage_args_{n} := {args}", f"stage_kind_{n} := {stage.kind}"]
        lines.append(f"stage_trains_{n} := {'yes' if stage.trains else ''}")
        if stage.system:
            lines.append(f"system_stage_{stage.system} := {n}")
        langs = stage.languages(config)
        if stage.kind != "one":
            lines.append(f"stage_langs_{n} := {' '.join(langs)}")
        for lang in langs:
            suffix = f"_{lang}" if lang else ""
            lines += [
                f"stage_out_{n}{suffix} := {_words(stage.outputs(lang))}",
                f"stage_in_{n}{suffix} := {_words(stage.inputs(lang) + [stamp_path(stamps, stage, lang)])}",
            ]
            if lang:
                lines.append(f"stage_splits_{n}{suffix} := {' '.join(stage.splits(lang))}")
    # The plan itself is out of date when a config of the chain changes or the data folders gain or lose files.
    watched = [config.data_root] + [
        d
        for code in config.languages
        for d in (
            ReleaseLayout(config.data_root).language_dir(code) / "topics",
            ReleaseLayout(config.data_root).language_dir(code) / "qrels",  # pooled tuning counts judged queries
            ReleaseLayout(config.data_root).corpus_dir(code),
        )
        if d.is_dir()
    ]
    lines.append(f"PLAN_INPUTS := {_words(config_chain(config.source) + watched)}")
    return "\n".join(lines) + "\n"


def error_plan(plan: str, message: str) -> str:
    """A make include that deletes itself (so the next make asks again) and stops make with `message`."""
    # One line: a line of the message reading `endef` would end the definition early.
    text = " ".join(line.strip() for line in message.splitlines() if line.strip()).replace("$", "$$")
    return f"$(shell rm -f {plan})\ndefine PLAN_ERROR\n{text}\nendef\n$(error $(PLAN_ERROR))\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.plan", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["make-vars", "stamps"], help="the make include, or only the stamps")
    parser.add_argument(
        "--plan",
        default=None,
        help="the include file being made: a config error becomes a plan that stops make with the message "
        "(exit 0), instead of an error of this command",
    )
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)

    try:
        config = config_from_args(args)
        if not config.data_root.is_dir():
            raise ConfigError(
                f"the data root {config.data_root} is not a folder; point DATA= at a MIRACL release "
                f"(miracl-v1.0-<lang>/, miracl-corpus-v1.0-<lang>/) or set data_root in {config.source}"
            )
        stamps = stamp_dir(config)
        write_stamps(config, stamps)
        text = make_vars(config, stamps) if args.command == "make-vars" else ""
    except PipelineError as err:
        if args.plan and args.command == "make-vars":
            sys.stdout.write(error_plan(args.plan, f"{err.label}: {err}"))
            return 0
        print(f"{err.label}: {err}", file=sys.stderr)
        return err.exit_status
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
