"""The table of stages: what each one runs, reads, writes, hashes and covers, in one place.

Every stage of the pipeline is one `Stage` row of `stage_table(config)`. From the rows come

- the Makefile's rules: `python -m stages.plan make-vars` writes, for each stage and language, its output
  files, its input files (data, other stages' outputs) and its config stamp; the Makefile turns them into
  rules with one template per kind of stage (see "stages" in the Makefile);
- the config stamps: `work/<collection>/stamps/<config>/<stage>[.<lang>].yaml` holds the values of the config keys the
  stage hashes, read through the whole `extends` chain. A stamp is rewritten only when those values change,
  so an edit of a parent config makes exactly the stages that read the edited keys (and what follows them)
  out of date for make;
- the stages' own bookkeeping: a stage records `config_values(...)` of its row in each output's metadata and
  keeps an output whose recorded inputs are unchanged (`stages.uptodate`), and it writes the splits
  `stage_splits` gives, the same ones make asks for.

Adding a stage is one row here and a driver module (see README, "Adding a stage").

    python -m stages.plan make-vars --config configs/sample.yaml --plan work/.make/x.mk   # the make include
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stages.config import REPO_ROOT, ConfigError, add_config_arguments, config_chain, config_from_args, plain
from stages.errors import PipelineError
from stages.formats.layout import ReleaseLayout

# How make runs a stage: one process for everything (one), one per language (language), or one for the
# selected languages and one per other language (group: a model or numba loads once for the selection).
KINDS = ("one", "language", "group")
POOLED = "all"
# Marks a stamp folder as complete; the Makefile writes the stamps again when it is missing.
WRITTEN = ".written"


@dataclass(frozen=True)
class Stage:
    name: str
    # The driver and its fixed arguments (`python -m <module> <args>`); make adds the config, --lang, --split.
    command: str
    kind: str
    # Config keys the stage's results depend on (dotted paths; `{lang}` for the language's own entry).
    hashes: tuple[str, ...]
    # Files written, and files read (data files and other stages' outputs), for one language ("" for kind one).
    outputs: Callable[[str], list[Path]]
    inputs: Callable[[str], list[Path]]
    # The run system it writes (runs/<system>/), if any, and the splits it covers for a language.
    system: str | None = None
    splits: Callable[[str], list[str]] = field(default=lambda lang: [])
    # A training stage: under MODELS= its models come from another collection and are never rebuilt.
    trains: bool = False

    def languages(self, config) -> list[str]:
        return [""] if self.kind == "one" else [lang for lang in config.languages if self.outputs(lang)]


def topic_splits(config, lang: str) -> list[str]:
    """The configured splits of `lang` that have a topics file."""
    layout = ReleaseLayout(config.data_root)
    return [s for s in config.languages[lang].splits if layout.topics_path(lang, s).is_file()]


def corpus_files(config, lang: str) -> list[Path]:
    folder = ReleaseLayout(config.data_root).corpus_dir(lang)
    return sorted([*folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")]) if folder.is_dir() else []


def nmt_files(config) -> list[Path]:
    root = config.cross_encoder.nmt.root
    return sorted(
        [
            *root.glob("triples.train.ids.small.tsv"),
            *root.glob("*/collections/*.tsv"),
            *root.glob("*/queries/train/*.tsv"),
        ]
    )


def pooled_languages(config) -> list[str]:
    """Languages with fewer judged queries on the tuning split than `fusion.tune.min_queries`."""
    layout, split = ReleaseLayout(config.data_root), config.evaluation.split
    pooled = []
    for code, language in config.languages.items():
        judged = len(layout.qrels(code, split)) if split in language.splits and layout.has_qrels(code, split) else 0
        if judged < config.fusion.tune.min_queries:
            pooled.append(code)
    return pooled


def model_file(config, name: str, own: bool = False) -> Path:
    """The file that stands for a trained model (its training record), under MODELS= when given."""
    return (config.own_models_dir if own else config.models_dir) / name / "training.json"


def stage_table(config) -> dict[str, Stage]:
    """Every stage of the pipeline under `config`, by name, in the order they run."""
    layout = ReleaseLayout(config.data_root)
    ce, bi, fusion = config.cross_encoder, config.bi_encoder, config.fusion
    qgen, alignment, token = config.query_generator, bi.distillation.query_alignment, bi.distillation.token
    tiny = config.own_models_dir / "tiny-xlmr" / "config.json"

    def splits_of(lang, leave_out=None):
        return [s for s in topic_splits(config, lang) if s != leave_out]

    def runs(system, lang, splits):
        return [config.run_path(system, lang, s) for s in splits]

    def bm25_runs(split, langs=None):
        """BM25 runs of `split` for the languages that have its topics (training data of a model)."""
        return [config.run_path("bm25", lang, split) for lang in langs or config.languages if split in splits_of(lang)]

    def judgments(split, langs=None):
        """Topics and qrels of `split` (a model's training data) for the languages that have them."""
        return [
            path
            for lang in langs or config.languages
            for path in (layout.topics_path(lang, split), layout.qrels_path(lang, split))
            if path.is_file()
        ]

    def langs_with(split):
        return [code for code, language in config.languages.items() if split in language.splits]

    def base(spec):
        return [tiny] if config.model_paths.get(spec, spec) == "tiny" else []

    def trained(spec):
        return [model_file(config, spec.removeprefix("trained:"))] if spec.startswith("trained:") else []

    table: list[Stage] = []

    def add(**row):
        table.append(Stage(**row))

    def none(lang):
        return []

    add(
        name="tiny-model",
        command="stages.tiny_model",
        kind="one",
        hashes=("tiny_model",),
        outputs=lambda _: [tiny],
        inputs=none,
    )

    def bm25_inputs(lang):
        return corpus_files(config, lang) + [layout.topics_path(lang, s) for s in splits_of(lang)]

    def rm3_inputs(lang):
        return runs("bm25", lang, splits_of(lang))  # the index comes with them

    for system, extra, inputs in (("bm25", (), bm25_inputs), ("bm25-rm3", ("bm25.rm3",), rm3_inputs)):
        add(
            name=system,
            command="stages.bm25" + (" --systems bm25-rm3" if extra else ""),
            kind="language",
            system=system,
            # Threads and batch sizes change the speed, not the run.
            hashes=("bm25.k1", "bm25.b", "bm25.hits", *extra, "languages.{lang}.analyzer"),
            splits=splits_of,
            outputs=lambda lang, system=system: runs(system, lang, splits_of(lang)),
            inputs=inputs,
        )
    add(
        name="ce-nmt-model",
        command="stages.train_ce --step nmt",
        kind="one",
        trains=True,
        hashes=("cross_encoder.base_model", "cross_encoder.max_length", "cross_encoder.loss")
        + ("cross_encoder.negatives", "cross_encoder.nmt", "cross_encoder.nmt_training", "model_paths"),
        outputs=lambda _: [model_file(config, "ce-nmt")],
        inputs=lambda _: base(ce.base_model) + nmt_files(config),
    )
    add(
        name="ce-model",
        command="stages.train_ce --step miracl",
        kind="one",
        trains=True,
        hashes=("cross_encoder.max_length", "cross_encoder.loss", "cross_encoder.negatives")
        + ("cross_encoder.miracl", "cross_encoder.miracl_training"),
        outputs=lambda _: [model_file(config, "ce")],
        inputs=lambda _: (
            [model_file(config, "ce-nmt")]
            + bm25_runs(ce.miracl.split, langs_with(ce.miracl.split))
            + judgments(ce.miracl.split, langs_with(ce.miracl.split))
        ),
    )
    add(
        name="bi-init-model",
        command="stages.train_bi --step init",
        kind="one",
        trains=True,
        hashes=("bi_encoder.student", "model_paths"),
        outputs=lambda _: [model_file(config, f"{bi.name}-init")],
        inputs=lambda _: base(bi.student.base_model),
    )
    add(
        name="qgen-model",
        command="stages.train_qgen",
        kind="one",
        trains=True,
        hashes=("query_generator", "model_paths", "cross_encoder.nmt"),
        outputs=lambda _: [model_file(config, "qgen")],
        # Judged positives of MIRACL (their passages from the corpus) and mMARCO's triples.
        inputs=lambda _: (
            base(qgen.base_model)
            + judgments(qgen.miracl_split)
            + [p for lang in langs_with(qgen.miracl_split) for p in corpus_files(config, lang)]
            + nmt_files(config)
        ),
    )
    kd_split = bi.distillation.data.miracl_split
    add(
        name="bi-kd-model",
        command="stages.train_bi --step kd",
        kind="one",
        trains=True,
        hashes=("bi_encoder.teacher", "bi_encoder.distillation", "cross_encoder.nmt"),
        outputs=lambda _: [model_file(config, f"{bi.name}-kd")],
        inputs=lambda _: (
            [model_file(config, f"{bi.name}-init")]
            + trained(bi.teacher.model)
            + (trained(alignment.generator) if alignment.weight > 0 else [])
            + (sorted(token.parallel_files.values()) if token.weight > 0 else [])
            + bm25_runs(kd_split)
            + judgments(kd_split)
            + [
                layout.english_topics_path(lang, kd_split)
                for lang in config.languages
                if layout.english_topics_path(lang, kd_split).is_file()
            ]
            + nmt_files(config)
        ),
    )
    add(
        name="bi-model",
        command="stages.train_bi --step miracl",
        kind="one",
        trains=True,
        hashes=("bi_encoder.miracl", "bi_encoder.negatives", "bi_encoder.miracl_training"),
        outputs=lambda _: [model_file(config, bi.name)],
        inputs=lambda _: (
            [model_file(config, f"{bi.name}-kd")]
            + bm25_runs(bi.miracl.split, langs_with(bi.miracl.split))
            + judgments(bi.miracl.split, langs_with(bi.miracl.split))
        ),
    )
    # Rerankers: every split with topics but the one their model was trained on. Batch sizes change the speed;
    # precision changes the scores.
    ce_rerank = ("cross_encoder.rerank_depth", "cross_encoder.max_length", "cross_encoder.rerank_precision")
    bi_rerank = ("bi_encoder.rerank_depth", "bi_encoder.encode_precision")
    rerankers = [
        ("ce-nmt", "ce-nmt", "stages.rerank_ce", ce.miracl.split, ce_rerank),
        ("ce", "ce", "stages.rerank_ce", ce.miracl.split, ce_rerank),
        (f"{bi.name}-init", f"{bi.name}-init", "stages.rerank_bi", bi.miracl.split, bi_rerank),
        (f"{bi.name}-kd", f"{bi.name}-kd", "stages.rerank_bi", bi.miracl.split, bi_rerank),
        (bi.name, bi.name, "stages.rerank_bi", bi.miracl.split, bi_rerank),
    ]
    for system, model, module, train_split, hashes in rerankers:
        add(
            name=f"rerank-{system}",
            command=f"{module} --model {model}",
            kind="group",
            system=system,
            hashes=hashes,
            splits=lambda lang, t=train_split: splits_of(lang, t),
            outputs=lambda lang, s=system, t=train_split: runs(s, lang, splits_of(lang, t)),
            inputs=lambda lang, m=model, t=train_split: (
                runs("bm25", lang, splits_of(lang, t)) + [model_file(config, m)]
            ),
        )
    dense = bi.dense
    add(
        name="dense",
        command="stages.dense",
        kind="group",
        system=dense.name,
        hashes=("bi_encoder.dense", "bi_encoder.encode_precision"),
        splits=lambda lang: splits_of(lang, bi.miracl.split),
        outputs=lambda lang: runs(dense.name, lang, splits_of(lang, bi.miracl.split)),
        inputs=lambda lang: (
            [model_file(config, dense.model)]
            + corpus_files(config, lang)
            + [layout.topics_path(lang, s) for s in splits_of(lang, bi.miracl.split)]
        ),
    )
    producers = {row.system: row for row in table if row.system}
    dev = config.evaluation.split

    def fused_splits(lang):
        """Splits every fused system has a run of (the rerankers leave out their training split)."""
        have = [set(producers[s].splits(lang)) if s in producers else set() for s in fusion.systems]
        return [s for s in topic_splits(config, lang) if all(s in h for h in have)]

    def dev_runs(lang):
        if dev not in fused_splits(lang):
            return []
        return runs_of_systems(lang, dev) + ([layout.qrels_path(lang, dev)] if layout.has_qrels(lang, dev) else [])

    def runs_of_systems(lang, split):
        return [config.run_path(system, lang, split) for system in fusion.systems]

    fusion_dir = config.work_dir / "fusion" / fusion.name
    pooled = pooled_languages(config)
    tune_hashes = ("fusion", "evaluation.split")
    add(
        name="tune-pooled",
        command="ensemble.tune --pooled",
        kind="one",
        hashes=tune_hashes,
        outputs=lambda _: [fusion_dir / f"params.{POOLED}.yaml"],
        inputs=lambda _: [path for lang in config.languages for path in dev_runs(lang)],
    )
    add(
        name="tune",
        command="ensemble.tune",
        kind="group",
        hashes=tune_hashes,
        outputs=lambda lang: [fusion_dir / f"params.{lang}.yaml"],
        inputs=lambda lang: dev_runs(lang) + ([fusion_dir / f"params.{POOLED}.yaml"] if lang in pooled else []),
    )
    add(
        name="fuse",
        command="ensemble.fusion",
        kind="group",
        system=fusion.name,
        hashes=("fusion.systems", "fusion.depth", "fusion.hits"),
        splits=fused_splits,
        outputs=lambda lang: runs(fusion.name, lang, fused_splits(lang)),
        inputs=lambda lang: (
            [p for s in fused_splits(lang) for p in runs_of_systems(lang, s)] + [fusion_dir / f"params.{lang}.yaml"]
        ),
    )
    return {row.name: row for row in table}


def stage_splits(config, name: str, lang: str, spec: str | list[str] | None = None) -> list[str]:
    """The splits stage `name` writes for `lang` (the table's), narrowed to those selected in `spec`."""
    covered = stage_table(config)[name].splits(lang)
    return [s for s in config.select_splits(lang, spec) if s in covered]


def config_values(config, stage: Stage, lang: str = "") -> dict:
    """The values of the config keys a stage hashes, by dotted path (what its stamp and its records hold)."""
    values = {}
    for path in stage.hashes:
        path = path.format(lang=lang)
        value = config
        for key in path.split("."):
            value = value[key] if isinstance(value, dict) else getattr(value, key)
        values[path] = plain(value)
    return values


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

    A stamp made for the first time is dated 1970: it says nothing has changed, so a lost stamp folder (or
    an older checkout's work folder) does not make every output out of date; a stamp whose values differ
    from the recorded ones is dated now, which makes the stage's outputs out of date.
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
                if new:
                    os.utime(tmp, (0, 0))
                tmp.replace(path)
                changed.append(path)
    (stamps / WRITTEN).touch()
    return changed


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
