"""Dense retrieval's library: the collection encoded by the trained bi-encoder into float16 shards (with a
manifest, resumed shard by shard), faiss search over them (exact flat, shard by shard, or any faiss
index_factory index; MaxSim over token vectors for a multi-vector student, ColBERT v1 style), and the runs of
a language's splits. The stage, and what it
writes where: stages.dense.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np

from stages import console
from stages.config import Config, ConfigError, DenseParams, ExecutorParams
from stages.console import LanguageWork
from stages.data.passages import passage_text
from stages.errors import CacheError, InputDataError
from stages.formats import ReleaseLayout, Run, atomic_write, corpus_files, describe_files, iter_corpus, write_run
from stages.formats.atomic import remove_temporaries
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json, write_json
from stages.formats.runs import metadata_path
from stages.table import recorded_config, stage_splits
from stages.training import check_tokenizer_fits
from stages.uptodate import unchanged

EXACT = "flat"  # bi_encoder.dense.index for exact search shard by shard, with no index in memory
SEED = 13  # the index's training sample
log = logging.getLogger("stages.retrieval.dense")


# ---------------------------------------------------------------- where things go


def model_path(config: Config) -> Path:
    """The trained student that encodes: work/<collection>/models/<bi_encoder.dense.model>."""
    return config.models_dir / config.bi_encoder.dense.model


def collection_dir(config: Config, lang: str) -> Path:
    return config.work_dir / "dense" / config.bi_encoder.dense.model / lang


def shard_paths(directory: Path, number: int) -> tuple[Path, Path]:
    """(vectors, docids) of shard `number`."""
    return directory / f"shard-{number:05d}.f16.npy", directory / f"shard-{number:05d}.docids.txt"


def lengths_path(directory: Path, number: int) -> Path:
    """Tokens per passage of shard `number` of a multi-vector collection."""
    return directory / f"shard-{number:05d}.lengths.npy"


def dense_splits(config: Config, lang: str, spec: str | list[str] | None) -> list[str]:
    """Selected splits with a topics file, except the one the bi-encoder was trained on (the table's)."""
    return stage_splits(config, "dense", lang, spec)


def is_exact(index: str) -> bool:
    return index.strip().lower() == EXACT


def check_params(params: DenseParams) -> None:
    if not params.index.strip():
        raise ConfigError(
            "bi_encoder.dense.index is empty: give flat (exact) or a faiss index_factory string such as IVF4096,PQ64"
        )
    for key in ("shard_size", "hits", "train_size", "maxsim_token_hits"):
        if getattr(params, key) < 1:
            raise ConfigError(f"bi_encoder.dense.{key} must be at least 1, got {getattr(params, key)}")


# ---------------------------------------------------------------- the model, loaded once if needed


class Encoder:
    """The bi-encoder, loaded at first use: a stage with nothing to do never loads torch or the model."""

    def __init__(
        self, path: Path, batch_size: int, loader: Callable[[Path], object] | None = None, precision: str = "fp32"
    ):
        # precision: a backend of stages.models.backends (fp32, bf16, openvino-fp32, ...), recorded with the
        # vectors; torch_precision: what torch computes in around an exported transformer.
        self.path, self.batch_size, self.precision = Path(path), batch_size, precision
        self.loader = loader
        self._model = None
        self.torch_precision = precision

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def __getstate__(self) -> dict:
        # A copy sent to a Ray worker loads the model there: the weights never travel.
        return self.__dict__ | {"_model": None, "torch_precision": self.precision}

    @property
    def model(self):
        if self._model is None:
            from stages.models.backends import use_backend
            from stages.models.bi_encoder import load_encoder

            log.info("loading the bi-encoder %s", self.path)
            model = (self.loader or load_encoder)(self.path)
            self.torch_precision = use_backend(model, self.path, self.precision)
            self._model = model
        return self._model

    def encode(self, texts: list[str], kind: str) -> np.ndarray:
        """float32 vectors, one row per text; kind is query or document."""
        from stages.models.bi_encoder import encode

        model = self.model  # loaded first: loading sets torch_precision
        return encode(model, texts, kind, self.batch_size, precision=self.torch_precision)

    def encode_tokens(self, texts: list[str], kind: str) -> list[np.ndarray]:
        """A multi-vector model's float32 token vectors, one (tokens, width) array per text."""
        from stages.models.bi_encoder import encode_tokens

        model = self.model  # loaded first: loading sets torch_precision
        return encode_tokens(model, texts, kind, self.batch_size, precision=self.torch_precision)


# ---------------------------------------------------------------- encoding the collection


def collection_identity(config: Config, lang: str, precision: str = "fp32") -> dict:
    """What the stored vectors depend on: the model (its training record and, for a maxsim model, its
    kind), the precision it computed in, and the corpus files."""
    from stages.models.bi_encoder import saved_multi_vector

    path = model_path(config)
    corpus = ReleaseLayout(config.data_root).corpus_dir(lang)
    identity = {
        "model": str(path),
        "model_sha256": file_sha256(path / "training.json"),
        "shard_size": config.bi_encoder.dense.shard_size,
        "precision": precision,
        "corpus": describe_files(corpus_files(corpus)),
    }  # as the BM25 stage: no full read per call
    return identity | ({"scoring": "maxsim"} if saved_multi_vector(path) else {})


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(islice(items, size)):
        yield chunk


def _shard_files(directory: Path, number: int, token_vectors: bool) -> tuple[Path, ...]:
    return shard_paths(directory, number) + ((lengths_path(directory, number),) if token_vectors else ())


def _complete(directory: Path, shards: int, token_vectors: bool = False) -> bool:
    return all(p.is_file() for n in range(shards) for p in _shard_files(directory, n, token_vectors))


@dataclass(frozen=True)
class ShardUnit:
    """One shard to encode: a work unit (stages.executors), with the passages it holds."""

    directory: Path
    number: int
    docids: list[str]
    texts: list[str]
    token_vectors: bool
    desc: str


def write_shard(unit: ShardUnit, encode_documents: Callable) -> dict:
    """Encode a shard's passages and write its files, the docids first and the vectors last, each under a
    temporary name: {number, passages, dimension, tokens}."""
    vectors_path, docids_path = shard_paths(unit.directory, unit.number)
    encoded = encode_documents(unit.texts)
    if len(encoded) != len(unit.texts):
        raise ValueError(f"the encoder returned {len(encoded)} vectors for {len(unit.texts)} passages")
    if unit.token_vectors:
        lengths = np.array([len(v) for v in encoded], dtype=np.int64)
        vectors = np.concatenate([np.asarray(v, dtype=np.float32) for v in encoded])
    else:
        vectors = np.asarray(encoded, dtype=np.float32)
    half = vectors.astype(np.float16)
    if not np.isfinite(half).all():
        raise InputDataError(
            None,
            None,
            f"{unit.desc}: shard {unit.number} has embedding values beyond float16's range "
            f"(largest magnitude {np.abs(vectors).max():.3g})",
        )
    with atomic_write(docids_path) as out:
        out.writelines(f"{docid}\n" for docid in unit.docids)
    if unit.token_vectors:
        with atomic_write(lengths_path(unit.directory, unit.number), "wb", encoding=None) as out:
            np.save(out, lengths)
    with atomic_write(vectors_path, "wb", encoding=None) as out:
        np.save(out, half)
    tokens = int(lengths.sum()) if unit.token_vectors else 0
    return {"number": unit.number, "passages": len(unit.texts), "dimension": int(vectors.shape[1]), "tokens": tokens}


def shard_writer(encode_documents: Callable) -> Callable[[ShardUnit], dict]:
    """What a worker runs for each shard (make_worker of stages.executors)."""
    return partial(write_shard, encode_documents=encode_documents)


class DocumentEncoder:
    """The encoder's passage side as one picklable function: Ray workers get a copy and load the model there."""

    def __init__(self, encoder: Encoder, token_vectors: bool):
        self.encoder, self.token_vectors = encoder, token_vectors

    def __call__(self, texts: list[str]):
        encode = self.encoder.encode_tokens if self.token_vectors else self.encoder.encode
        return encode(texts, "document")


class CollectionEncoding:
    """One corpus encoded into float16 shards under `directory`; `manifest` once it is complete.

    A shard is complete when all of its files exist (the docids are written first, the vectors
    last, each under a temporary name). A manifest with the same `identity` keeps complete shards;
    any other (or none) clears the folder and starts over. `units()` gives the missing shards as work units
    of an executor (stages.executors), `done()` hears each one's result and `finish()` writes the manifest.
    With `token_vectors`, the encoder returns one (tokens, width) array per passage: a shard stores them one
    after another, with each passage's token count, and the manifest counts the `tokens`; `on_encoded` hears
    how many passages each encoded shard held.
    """

    def __init__(
        self,
        corpus_dir: Path,
        directory: Path,
        identity: dict,
        shard_size: int,
        desc: str = "encode",
        token_vectors: bool = False,
        on_encoded: Callable[[int], None] | None = None,
    ):
        self.corpus_dir, self.directory, self.identity = corpus_dir, directory, identity
        self.shard_size, self.desc, self.token_vectors, self.on_encoded = shard_size, desc, token_vectors, on_encoded
        self.counts = {"passages": 0, "skipped": 0, "tokens": 0, "shards": 0, "dimension": None}
        manifest_path = directory / "manifest.json"
        manifest = read_json(manifest_path)
        same = isinstance(manifest, dict) and {k: manifest.get(k) for k in identity} == identity
        if same and manifest.get("complete") and _complete(directory, manifest["shards"], token_vectors):
            self.manifest = manifest
            return
        self.manifest = None
        if directory.is_dir():  # what a killed worker was writing: no other process writes here now
            remove_temporaries(directory)
        if not same:
            if directory.is_dir():
                log.info("%s: model or corpus changed (or nothing encoded yet); encoding from scratch", desc)
                for path in directory.iterdir():
                    if path.is_file():
                        path.unlink()
            directory.mkdir(parents=True, exist_ok=True)
            write_json(manifest_path, {**identity, "complete": False})

    def units(self, bar=None) -> Iterator[ShardUnit]:
        """The shards still missing, the corpus streamed; `bar` (a progress bar) counts the shards kept."""
        if self.manifest is not None:
            return
        counts, directory = self.counts, self.directory
        for number, chunk in enumerate(_chunks((p for _, _, p in iter_corpus(self.corpus_dir)), self.shard_size)):
            counts["passages"] += len(chunk)
            counts["shards"] = number + 1
            if all(p.is_file() for p in _shard_files(directory, number, self.token_vectors)):
                counts["skipped"] += 1
                vectors_path = shard_paths(directory, number)[0]
                counts["dimension"] = counts["dimension"] or int(np.load(vectors_path, mmap_mode="r").shape[1])
                counts["tokens"] += int(np.load(lengths_path(directory, number)).sum()) if self.token_vectors else 0
                if bar is not None:
                    bar.update()
                continue
            texts = [passage_text(p) for p in chunk]
            yield ShardUnit(directory, number, [p.docid for p in chunk], texts, self.token_vectors, self.desc)

    def done(self, result: dict) -> None:
        self.counts["dimension"], self.counts["tokens"] = result["dimension"], self.counts["tokens"] + result["tokens"]
        if self.on_encoded is not None:
            self.on_encoded(result["passages"])

    def finish(self) -> dict:
        if self.manifest is not None:
            return self.manifest
        counts = self.counts
        stale = remove_temporaries(self.directory)  # a worker killed while writing a shard that was then redone
        if stale:
            log.info("%s: removed %d files a killed worker left half-written: %s", self.desc, len(stale), stale)
        manifest = {
            **self.identity,
            "dimension": counts["dimension"],
            "passages": counts["passages"],
            "shards": counts["shards"],
            "complete": True,
        }
        if self.token_vectors:
            manifest["tokens"] = counts["tokens"]
        write_json(self.directory / "manifest.json", manifest)
        log.info(
            "%s: %d passages in %d shards (%d reused), dimension %s, at %s",
            self.desc,
            counts["passages"],
            counts["shards"],
            counts["skipped"],
            counts["dimension"],
            self.directory,
        )
        self.manifest = manifest
        return manifest


def encode_collections(
    encodings: list[CollectionEncoding],
    encode_documents: Callable[[list[str]], np.ndarray | list[np.ndarray]],
    executor: ExecutorParams | None = None,
    desc: str = "encode",
) -> Iterator[CollectionEncoding]:
    """Encode the missing shards of every collection (a stage's languages) through one pool of `executor`'s
    workers (stages.executors.run_batches: here, one after another; on Ray, `encode_documents` must pickle), and
    give each collection, in order, once its manifest is written."""
    from stages.executors import run_batches

    with console.progress(desc=desc, unit=" shards", mininterval=2) as bar:

        def encoded(encoding: CollectionEncoding, result: dict) -> None:
            encoding.done(result)
            bar.update()

        batches = [(encoding, encoding.units(bar)) for encoding in encodings]
        writer = partial(shard_writer, encode_documents)
        for encoding, _ in run_batches(executor or ExecutorParams(), writer, batches, encoded):
            encoding.finish()
            yield encoding


def encode_collection(
    corpus_dir: Path,
    directory: Path,
    identity: dict,
    shard_size: int,
    encode_documents: Callable[[list[str]], np.ndarray | list[np.ndarray]],
    desc: str = "encode",
    token_vectors: bool = False,
    executor: ExecutorParams | None = None,
    on_encoded: Callable[[int], None] | None = None,
) -> dict:
    """Encode one corpus into float16 shards under `directory` (CollectionEncoding says how); its manifest."""
    encoding = CollectionEncoding(corpus_dir, directory, identity, shard_size, desc, token_vectors, on_encoded)
    (encoded,) = encode_collections([encoding], encode_documents, executor, desc)
    return encoded.manifest


def read_shards(directory: Path, manifest: dict) -> tuple[list[np.ndarray], list[str]]:
    """The float16 vectors of each shard (memory-mapped) and the docids of all rows, in order."""
    shards, docids = [], []
    for number in range(manifest["shards"]):
        vectors_path, docids_path = shard_paths(directory, number)
        vectors = np.load(vectors_path, mmap_mode="r")
        ids = docids_path.read_text(encoding="utf-8").splitlines()
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise CacheError(
                f"{vectors_path}: {vectors.shape} vectors for {len(ids)} docids; delete {directory} to encode again"
            )
        shards.append(vectors)
        docids.extend(ids)
    return shards, docids


class TokenCollection:
    """A multi-vector collection read back: token vectors shard by shard (memory-mapped float16), the
    docids, and where each passage's tokens lie."""

    def __init__(self, shards: list[np.ndarray], docids: list[str], lengths: list[np.ndarray]):
        self.shards, self.docids = shards, docids
        per_passage = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.owner = np.repeat(np.arange(len(per_passage)), per_passage)  # token row -> passage row
        self.shard = np.repeat(np.arange(len(lengths)), [len(n) for n in lengths])
        self.start = np.concatenate([np.cumsum(n) - n for n in lengths]) if lengths else np.zeros(0, np.int64)
        self.length = per_passage

    def passage_tokens(self, row: int) -> np.ndarray:
        """The float32 token vectors of passage `row`."""
        start = self.start[row]
        return np.asarray(self.shards[self.shard[row]][start : start + self.length[row]], dtype=np.float32)


def read_token_shards(directory: Path, manifest: dict) -> TokenCollection:
    """A multi-vector collection's shards, each checked against its docids and token counts."""
    shards, docids, lengths = [], [], []
    for number in range(manifest["shards"]):
        vectors_path, docids_path = shard_paths(directory, number)
        vectors = np.load(vectors_path, mmap_mode="r")
        ids = docids_path.read_text(encoding="utf-8").splitlines()
        counts = np.load(lengths_path(directory, number))
        if vectors.ndim != 2 or len(counts) != len(ids) or vectors.shape[0] != int(counts.sum()):
            raise CacheError(
                f"{vectors_path}: {vectors.shape} token vectors for {len(ids)} docids and "
                f"{int(counts.sum())} counted tokens; delete {directory} to encode again"
            )
        shards.append(vectors)
        docids.extend(ids)
        lengths.append(counts.astype(np.int64))
    return TokenCollection(shards, docids, lengths)


# ---------------------------------------------------------------- search (pure functions on arrays)


def _faiss():
    import faiss

    return faiss


def gpu_count() -> int:
    """GPUs faiss can use (0 with faiss-cpu, whose module has no get_num_gpus in some builds)."""
    faiss = _faiss()
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def faiss_message(error: Exception) -> str:
    """faiss's own words from its exception, without the C++ signature and source line before them."""
    return re.split(r"\) at \S+:\d+: (?:Error: )?", str(error).strip())[-1]


def to_gpu(index, shard: bool = True):
    """The index on every GPU faiss sees (each holding a slice of it with `shard`, so an index larger than
    one GPU fits; a copy on each otherwise), or unchanged on a CPU-only host or for an index with no GPU
    implementation (HNSW).

    Untested here: the project's machines have no GPU.
    """
    faiss = _faiss()
    if gpu_count() == 0 or not hasattr(faiss, "index_cpu_to_all_gpus"):
        return index
    options = faiss.GpuMultipleClonerOptions()
    options.shard = shard
    try:
        return faiss.index_cpu_to_all_gpus(index, co=options)
    except RuntimeError as error:
        log.info("searched on the CPU: %s", faiss_message(error))
        return index


def merge_top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (score descending, id ascending on ties) of candidates; ids < 0 are empty slots."""
    scores = np.where(ids < 0, -np.inf, scores)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def search_exact(queries: np.ndarray, shards: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k over shards searched one at a time: (scores, row numbers), each (n, k).

    Row numbers count across the shards in order. Each shard is converted to float32 on its own, so
    memory holds one shard (plus its faiss index); rows beyond the collection size are -1 / -inf.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    if not shards or not len(queries):
        return best_scores, best_ids
    index = to_gpu(faiss.IndexFlatIP(queries.shape[1]), shard=False)  # one shard at a time: a copy per GPU
    offset = 0
    for shard in shards:
        if len(shard):
            index.reset()
            index.add(np.ascontiguousarray(shard, dtype=np.float32))
            scores, ids = index.search(queries, min(k, len(shard)))
            ids = np.where(ids < 0, -1, ids + offset)
            best_scores, best_ids = merge_top_k(np.hstack([best_scores, scores]), np.hstack([best_ids, ids]), k)
        offset += len(shard)
    index.reset()
    return best_scores, best_ids


def sample_rows(shards: Sequence[np.ndarray], count: int, seed: int = SEED) -> np.ndarray:
    """Up to `count` rows drawn without replacement across the shards (fixed seed), as float32."""
    sizes = np.array([len(s) for s in shards], dtype=np.int64)
    total = int(sizes.sum())
    rows = np.sort(np.random.default_rng(seed).choice(total, size=min(count, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    parts = []
    for number, shard in enumerate(shards):
        local = rows[(rows >= starts[number]) & (rows < starts[number + 1])] - starts[number]
        if len(local):
            parts.append(np.asarray(shard[local], dtype=np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, shards[0].shape[1] if shards else 0), np.float32)


def _add_shards(index, shards: Sequence[np.ndarray], desc: str) -> None:
    for shard in console.progress(shards, desc=desc, unit=" shards", mininterval=2):
        if len(shard):
            index.add(np.ascontiguousarray(shard, dtype=np.float32))


def build_index(factory: str, shards: Sequence[np.ndarray], train_size: int, seed: int = SEED, desc: str = "index"):
    """An inner-product faiss index from an index_factory string (`IVF4096,PQ64`, `HNSW32`, ...), trained (when
    its kind needs training) on up to `train_size` rows sampled across the shards, holding every row in shard
    order."""
    faiss = _faiss()
    total = sum(len(s) for s in shards)
    if not total:
        raise ValueError("cannot build an index over an empty collection")
    dimension = shards[0].shape[1]
    try:
        index = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ConfigError(
            f"bi_encoder.dense.index {factory!r} is no faiss index_factory string for {dimension}-dimension "
            f"vectors: {faiss_message(error)}"
        ) from None
    if not index.is_trained:
        sample = sample_rows(shards, train_size, seed)
        log.info("%s: training %s on %d of %d vectors", desc, factory, len(sample), total)
        try:
            index.train(sample)
        except RuntimeError as error:
            raise ConfigError(
                f"bi_encoder.dense.index {factory!r} cannot be trained on {len(sample)} vectors "
                f"(bi_encoder.dense.train_size {train_size}, {total} in the collection): {faiss_message(error)}"
            ) from None
    _add_shards(index, shards, f"{desc} add")
    return index


def apply_search_settings(index, settings: str):
    """faiss ParameterSpace settings (`nprobe=64`, `efSearch=128`, `nprobe=64,quantizer_efSearch=128`) on `index`."""
    if not settings.strip():
        return index
    faiss = _faiss()
    space = getattr(faiss, "GpuParameterSpace", faiss.ParameterSpace)() if gpu_count() else faiss.ParameterSpace()
    try:
        space.set_index_parameters(index, settings)
    except RuntimeError as error:
        raise ConfigError(
            f"bi_encoder.dense.search {settings!r} does not apply to this index: {faiss_message(error)}"
        ) from None
    return index


def search_index(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row numbers) from any faiss index, k clipped to its size; missing hits are -1 / -inf."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    width = min(k, index.ntotal)
    if not width or not len(queries):
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores, ids = index.search(queries, width)
    return np.where(ids < 0, -np.inf, scores), ids


def search_maxsim(
    queries: list[np.ndarray],
    collection: TokenCollection,
    search_tokens: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]],
    token_hits: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """ColBERT v1 end to end: (scores, passage rows), each (n, k), for each query's token vectors.

    All query tokens are searched at once among the collection's tokens (`search_tokens(vectors, n)`
    gives (scores, token rows)); the passages owning each query's `token_hits` hits per token are its
    candidates, scored exactly by MaxSim. Slots beyond the candidates are -1 / -inf.
    """
    from stages.models.bi_encoder import maxsim_scores

    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    if not queries or not len(collection.owner) or not k:
        return best_scores, best_rows
    _, token_rows = search_tokens(np.concatenate(queries), min(token_hits, len(collection.owner)))
    ends = np.cumsum([len(q) for q in queries])
    for i, (query, end) in enumerate(zip(queries, ends)):
        hits = token_rows[end - len(query) : end].ravel()
        candidates = np.unique(collection.owner[hits[hits >= 0]])
        scores = maxsim_scores(query, [collection.passage_tokens(r) for r in candidates])
        # Merged with the empty slots, so fewer than k candidates still give k columns (-1 / -inf after them).
        top_scores, top_rows = merge_top_k(
            np.concatenate([scores, best_scores[i]])[None], np.concatenate([candidates, best_rows[i]])[None], k
        )
        best_scores[i], best_rows[i] = top_scores[0], top_rows[0]
    return best_scores, best_rows


def search_vectors(index, shards: Sequence[np.ndarray], queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact search over the shards without an index, else the index's search."""
    return search_exact(queries, shards, k) if index is None else search_index(index, queries, k)


def index_build_params(params: DenseParams) -> dict:
    """What an index's structure depends on (search-time settings excluded)."""
    if is_exact(params.index):
        return {"index": EXACT}
    return {"index": params.index.strip(), "train_size": params.train_size, "seed": SEED}


def index_search_params(params: DenseParams) -> dict:
    """Everything about the index that can change a run."""
    build = index_build_params(params)
    return build if is_exact(params.index) else {**build, "search": params.search.strip()}


def index_files(directory: Path, factory: str) -> tuple[Path, Path]:
    """(index, its record) beside the shards, named after the factory string."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", factory).strip("_")
    return directory / f"index.{name}.faiss", directory / f"index.{name}.json"


def approximate_index(params: DenseParams, directory: Path, shards: Sequence[np.ndarray], manifest: dict, desc: str):
    """The index of a collection, with the search settings: read from disk when built from the same shards and
    parameters, else built and saved beside the shards."""
    faiss = _faiss()
    factory = params.index.strip()
    path, record_path = index_files(directory, factory)
    record = {"manifest": manifest, "build": index_build_params(params)}
    if path.is_file() and read_json(record_path) == record:
        log.info("%s: reusing the index %s", desc, path)
        index = faiss.read_index(str(path))
    else:
        index = build_index(factory, shards, params.train_size, SEED, desc)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
        write_json(record_path, record)
        log.info("%s: %s index of %d vectors saved to %s", desc, factory, index.ntotal, path)
    apply_search_settings(index, params.search)  # on the CPU first: a wrong setting fails on every host alike
    gpu_index = to_gpu(index)
    return index if gpu_index is index else apply_search_settings(gpu_index, params.search)


# ---------------------------------------------------------------- the stage


def as_run(qids: list[str], scores: np.ndarray, rows: np.ndarray, docids: list[str]) -> Run:
    """{qid: {docid: score}} from search results; empty slots (-1) are dropped."""
    return {
        qid: {docids[r]: float(s) for s, r in zip(srow, rrow) if r >= 0} for qid, srow, rrow in zip(qids, scores, rows)
    }


def _sha(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class DenseBatch:
    """One language's share of the dense stage: the splits whose run is still to write (with their recorded
    inputs), the runs up to date, the collection's encoding (None when nothing is pending), and the stage's
    report line."""

    lang: str
    multi_vector: bool
    pending: list[tuple[str, Path, dict]]
    written: list[Path]
    encoding: CollectionEncoding | None
    work: LanguageWork


def dense_batch(
    config: Config, lang: str, splits: list[str], encoder: Encoder, work: LanguageWork | None = None
) -> DenseBatch:
    """What the dense runs of `lang`'s `splits` ask for: the runs whose inputs are unchanged are kept (`work`
    learns so); for the others, the collection's encoding (the shards still missing are work units)."""
    from stages.models.bi_encoder import saved_multi_vector

    params = config.bi_encoder.dense
    check_params(params)
    path = model_path(config)
    if not (path / "training.json").is_file():
        raise InputDataError(None, None, f"no trained bi-encoder at {path}; `make train-bi` trains it")
    check_tokenizer_fits(path)
    multi_vector = saved_multi_vector(path)
    layout = ReleaseLayout(config.data_root)
    identity = collection_identity(config, lang, encoder.precision)
    pending, written = [], []
    work = work or LanguageWork(params.name, lang)
    for split in splits:
        out = config.run_path(params.name, lang, split)
        inputs = {
            "topics_sha256": file_sha256(layout.topics_path(lang, split)),
            "model": str(path),
            "model_sha256": identity["model_sha256"],
            "collection_sha256": _sha(identity),
            "index": index_search_params(params),
            "hits": params.hits,
        }
        if multi_vector:
            inputs |= {"scoring": "maxsim", "token_hits": params.maxsim_token_hits}
        inputs |= recorded_config(config, "dense")
        if unchanged(metadata_path(out), inputs, out):
            work.kept.append(split)
            written.append(out)
        else:
            pending.append((split, out, inputs))
    encoding = None
    if pending:
        encoding = CollectionEncoding(
            layout.corpus_dir(lang),
            collection_dir(config, lang),
            identity,
            params.shard_size,
            f"{lang} encode",
            token_vectors=multi_vector,
            on_encoded=lambda passages: work.count("passages encoded", passages),
        )
    return DenseBatch(lang, multi_vector, pending, written, encoding, work)


def dense_languages(config: Config, batches: list[DenseBatch], encoder: Encoder) -> Iterator[DenseBatch]:
    """Every batch's collection encoded (all languages' missing shards through one pool of `config.executor`'s
    workers), then, language by language as its encoding completes, indexed and searched; each batch given
    once its runs are written (`batch.written`)."""
    from stages.executors import executor_kind

    encodings = [batch.encoding for batch in batches if batch.encoding is not None]
    token_vectors = any(encoding.token_vectors for encoding in encodings)  # one model: all or none
    encoded = encode_collections(encodings, DocumentEncoder(encoder, token_vectors), config.executor)
    with contextlib.closing(encoded):  # the pool and its progress bar closed, also when a search fails
        if executor_kind(config.executor) != "local":
            encoded = iter(list(encoded))  # Ray's workers encode every language first: a search here idles them
        for batch in batches:
            if batch.encoding is not None:
                next(encoded)  # this language's collection: they come in the batches' order
                batch.written += search_language(config, batch, encoder)
            yield batch
        for _ in encoded:
            pass


def dense_language(
    config: Config, lang: str, splits: list[str], encoder: Encoder, work: LanguageWork | None = None
) -> list[Path]:
    """Write the dense run of each split of `lang` (encoding and indexing first, if needed); `work` learns
    what was done, for the stage's report line."""
    (batch,) = dense_languages(config, [dense_batch(config, lang, splits, encoder, work)], encoder)
    return batch.written


def search_language(config: Config, batch: DenseBatch, encoder: Encoder) -> list[Path]:
    """The pending runs of a batch whose collection is encoded: indexed (an index_factory string) and searched."""
    params, lang, multi_vector, work = config.bi_encoder.dense, batch.lang, batch.multi_vector, batch.work
    path, layout, manifest = model_path(config), ReleaseLayout(config.data_root), batch.encoding.manifest
    pending, written = batch.pending, []
    directory = batch.encoding.directory
    if multi_vector:
        collection = read_token_shards(directory, manifest)
        shards, docids = collection.shards, collection.docids
    else:
        shards, docids = read_shards(directory, manifest)
    index = None if is_exact(params.index) else approximate_index(params, directory, shards, manifest, lang)
    training = read_json(path / "training.json") or {}
    for split, out, inputs in pending:
        topics = layout.topics(lang, split)
        qids = list(topics)
        k = min(params.hits, len(docids))
        if multi_vector:
            queries = encoder.encode_tokens([topics[q] for q in qids], "query")
            scores, rows = search_maxsim(
                queries, collection, lambda q, n: search_vectors(index, shards, q, n), params.maxsim_token_hits, k
            )
        else:
            queries = encoder.encode([topics[q] for q in qids], "query")
            scores, rows = search_vectors(index, shards, queries, k)
        run = as_run(qids, scores, rows, docids)
        write_run(
            run,
            out,
            tag=f"{params.name}-{params.model}",
            metadata={
                "system": params.name,
                "language": lang,
                "split": split,
                "config": str(config.source),
                "collection": config.collection,
                "index": EXACT if is_exact(params.index) else params.index.strip(),
                "passages": len(docids),
                "dimension": manifest["dimension"],
                "inputs": inputs,
                "model_training": {
                    key: training.get(key) for key in ("step", "collection", "base_model", "steps", "train_loss")
                }
                if isinstance(training, dict)
                else {},
                "models": {
                    "folder": str(path.parent),
                    "trained_on": training.get("collection") if isinstance(training, dict) else None,
                },
            },
        )
        log.info(
            "%s %s: %d queries searched (%s, top %d of %d passages) -> %s",
            lang,
            split,
            len(run),
            params.index.strip(),
            k,
            len(docids),
            out,
        )
        work.written[split] = len(run)
        written.append(out)
    return written
