"""The table of stages: what each one runs, reads, writes, hashes and covers, in one place.

Every stage of the pipeline is one `Stage` row of `stage_table(config)`. From the rows come the Makefile's
rules and config stamps (`stages.plan`, the driver that writes make's include), and each stage's own
bookkeeping: a stage records `recorded_config(...)` of its row among each output's inputs and keeps an output
whose recorded inputs are unchanged (`stages.uptodate`), and it writes the splits `stage_splits` gives, the
same ones make asks for. Adding a stage is one row here and a driver module (README, "Adding a stage").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stages.config import plain
from stages.formats.layout import ReleaseLayout

# How make runs a stage: one process for everything (one), one per language (language), or one for the
# selected languages and one per other language (group: a model or numba loads once for the selection).
KINDS = ("one", "language", "group")
POOLED = "all"


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

    def __post_init__(self):
        if self.kind not in KINDS:  # a new row's typo would otherwise give it no make rule at all
            raise ValueError(f"stage {self.name}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

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
    # What of the mMARCO section a stage reads when it takes texts from it (the languages and counts are the
    # cross-encoder's own); and distillation's keys that change its results (batch sizes only its speed).
    nmt_texts = ("cross_encoder.nmt.root", "cross_encoder.nmt.translation")
    distillation_keys = ("data", "temperature", "rank_weight", "representation_weight", "contrastive_weight")
    distillation_keys += ("token", "training")
    alignment_keys = ("weight", "generator", "language", "max_new_tokens")

    def add(**row):
        table.append(Stage(**row))

    add(
        name="tiny-model",
        command="stages.tiny_model",
        kind="one",
        # Its vocabulary is learnt from every language's passages and topics and the mMARCO texts.
        hashes=("tiny_model", "languages.*.splits", *nmt_texts, "cross_encoder.nmt.languages"),
        outputs=lambda _: [tiny],
        inputs=lambda _: (
            [p for lang in config.languages for p in corpus_files(config, lang)]
            + [layout.topics_path(lang, s) for lang in config.languages for s in splits_of(lang)]
            + nmt_files(config)
        ),
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
        hashes=("cross_encoder.base_model", f"model_paths[{ce.base_model}]", "cross_encoder.max_length")
        + ("cross_encoder.loss", "cross_encoder.negatives", "cross_encoder.nmt", "cross_encoder.nmt_training"),
        outputs=lambda _: [model_file(config, "ce-nmt")],
        inputs=lambda _: base(ce.base_model) + nmt_files(config),
    )
    add(
        name="ce-model",
        command="stages.train_ce --step miracl",
        kind="one",
        trains=True,
        hashes=("cross_encoder.max_length", "cross_encoder.loss", "cross_encoder.negatives")
        + ("cross_encoder.miracl", "cross_encoder.miracl_training", "languages.*.splits"),
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
        # The seed of the layers a student adds to its base (pooling, a maxsim projection) is distillation's.
        hashes=("bi_encoder.student", f"model_paths[{bi.student.base_model}]", "bi_encoder.distillation.training.seed"),
        outputs=lambda _: [model_file(config, f"{bi.name}-init")],
        inputs=lambda _: base(bi.student.base_model),
    )
    add(
        name="qgen-model",
        command="stages.train_qgen",
        kind="one",
        trains=True,
        hashes=("query_generator", f"model_paths[{qgen.base_model}]", *nmt_texts)
        + ("languages.*.splits", "languages.*.name"),  # the prompt names the language
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
        hashes=tuple(f"bi_encoder.teacher.{key}" for key in ("kind", "model", "max_length", "score_scale"))
        + (f"model_paths[{bi.teacher.model}]", f"model_paths[{alignment.generator}]")
        + tuple(f"bi_encoder.distillation.{key}" for key in distillation_keys)
        + tuple(f"bi_encoder.distillation.query_alignment.{key}" for key in alignment_keys)
        + (*nmt_texts, "languages.*.splits"),
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
        hashes=("bi_encoder.miracl", "bi_encoder.negatives", "bi_encoder.miracl_training", "languages.*.splits"),
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
    # Read from every language's qrels: only when a tuning row's inputs are asked for.
    pooled = functools.cache(lambda: pooled_languages(config))
    tune_hashes = ("fusion", "evaluation.split", "languages.*.splits")
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
        inputs=lambda lang: dev_runs(lang) + ([fusion_dir / f"params.{POOLED}.yaml"] if lang in pooled() else []),
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
    """The values of the config keys a stage hashes, by dotted path (what its stamp and its records hold).
    A path may take every key of a mapping (`languages.*.splits`) or one entry of it (`model_paths[<spec>]`)."""
    values = {}
    for path in stage.hashes:
        path = path.format(lang=lang)
        name, _, entry = path.partition("[")
        if entry:  # one entry of a mapping, e.g. model_paths[<spec>] (None where the mapping lacks it)
            values[path] = plain(_lookup(config, name.split(".")).get(entry.removesuffix("]")))
        else:
            values[path] = plain(_lookup(config, path.split(".")))
    return values


def _lookup(value, keys: list[str]):
    """The value at a dotted path; `*` takes every key of a mapping (languages.*.splits)."""
    for i, key in enumerate(keys):
        if key == "*":
            return {k: _lookup(v, keys[i + 1 :]) for k, v in value.items()}
        value = value[key] if isinstance(value, dict) else getattr(value, key)
    return value


def recorded_config(config, name: str, lang: str = "") -> dict:
    """What a stage records of the config among its inputs: the values of the keys its row hashes (the
    same values its make stamp holds), so the stage and make agree on when the config changed its work."""
    return {"config": config_values(config, stage_table(config)[name], lang)}
