"""The bi-encoder: how the student is built, how a saved one is loaded, how text is encoded and scored.

The student (`bi_encoder.student.scoring`) is one of:
- single: sentence-transformers' SentenceTransformer, a transformer and pooling (mean or CLS), one
  vector per text scored by dot product or cosine;
- maxsim: sentence-transformers' MultiVectorEncoder (ColBERT), one vector per token (optionally
  projected to `token_dim`), scored by MaxSim: the sum over query tokens of each one's best passage
  token. Padding is masked out of the score (MultiVectorMask); with `similarity: cosine` the token
  vectors are L2-normalised as in ColBERT, with `dot` they are not.
Either may have separate query and passage towers (a Router). The similarity and the query/passage
prefixes are saved with the model (and its kind, in config_sentence_transformers.json), so every later
stage loads and encodes it the way training did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.config import ConfigError, StudentParams
from stages.formats.jsonfile import read_json


def build_student(base: str, params: StudentParams):
    """The student over `base`: a SentenceTransformer (transformer + pooling) or, for maxsim scoring, a
    MultiVectorEncoder; one tower or two."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Router, Transformer

    if params.scoring not in ("single", "maxsim"):
        raise ConfigError(f"bi_encoder.student.scoring must be single or maxsim, got {params.scoring!r}")
    if params.pooling not in ("mean", "cls"):
        raise ConfigError(f"bi_encoder.student.pooling must be mean or cls, got {params.pooling!r}")
    if params.similarity not in ("dot", "cosine"):
        raise ConfigError(f"bi_encoder.student.similarity must be dot or cosine, got {params.similarity!r}")
    if params.scoring == "maxsim":
        return build_multi_vector_student(base, params)

    def tower() -> list:
        transformer = Transformer(
            base,
            max_seq_length=params.max_passage_length,
            query_length=params.max_query_length,
            document_length=params.max_passage_length,
        )
        return [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode=params.pooling)]

    modules = tower() if params.shared_towers else [Router.for_query_document(tower(), tower())]
    prompts = {
        name: prefix for name, prefix in (("query", params.query_prefix), ("document", params.passage_prefix)) if prefix
    }
    return SentenceTransformer(
        modules=modules, prompts=prompts or None, similarity_fn_name=params.similarity, device="cpu"
    )


def build_multi_vector_student(base: str, params: StudentParams):
    """A MultiVectorEncoder over `base`: transformer (+ projection to token_dim), scoring mask, normalisation."""
    from sentence_transformers.base.modules import Dense, Normalize, Router, Transformer
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from torch import nn

    if params.token_dim < 0:
        raise ConfigError(f"bi_encoder.student.token_dim must be 0 (keep the width) or more, got {params.token_dim}")

    def tower() -> list:
        transformer = Transformer(
            base,
            max_seq_length=params.max_passage_length,
            query_length=params.max_query_length,
            document_length=params.max_passage_length,
        )
        if not params.token_dim:
            return [transformer]
        # ColBERT's projection: linear, no bias, no activation, applied to every token vector.
        return [
            transformer,
            Dense(
                transformer.get_embedding_dimension(),
                params.token_dim,
                bias=False,
                activation_function=nn.Identity(),
                module_input_name="token_embeddings",
            ),
        ]

    modules = tower() if params.shared_towers else [Router.for_query_document(tower(), tower())]
    modules.append(MultiVectorMask())  # padding (and nothing else: no skiplist) leaves the score
    if params.similarity == "cosine":
        modules.append(Normalize(module_input_name="token_embeddings"))
    prompts = {
        name: prefix for name, prefix in (("query", params.query_prefix), ("document", params.passage_prefix)) if prefix
    }
    return MultiVectorEncoder(modules=modules, prompts=prompts or None, similarity_fn_name="maxsim", device="cpu")


def is_multi_vector(model) -> bool:
    """True for a MultiVectorEncoder (one vector per token, MaxSim), False for a single-vector model."""
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    return isinstance(model, MultiVectorEncoder)


def saved_multi_vector(path: str | Path) -> bool:
    """Whether the model saved at `path` is a MultiVectorEncoder (sentence-transformers records the class
    as model_type in config_sentence_transformers.json); read without loading the model."""
    settings = read_json(Path(path) / "config_sentence_transformers.json")
    return isinstance(settings, dict) and settings.get("model_type") == "MultiVectorEncoder"


def encoder_class(path: str | Path):
    """The class that loads the model saved at `path`: MultiVectorEncoder or SentenceTransformer."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    return MultiVectorEncoder if saved_multi_vector(path) else SentenceTransformer


def load_encoder(path: str | Path, device: str | None = None):
    """A saved bi-encoder (student or teacher), in bfloat16 on a GPU that supports it: a MultiVectorEncoder
    for a maxsim student, a SentenceTransformer otherwise."""
    import torch

    cuda = torch.cuda.is_available()
    kwargs = {"torch_dtype": torch.bfloat16} if cuda and torch.cuda.is_bf16_supported() else {}
    return encoder_class(path)(str(path), device=device or ("cuda" if cuda else "cpu"), model_kwargs=kwargs)


def encode(
    model, texts: list[str], kind: str, batch_size: int, desc: str | None = None, precision: str = "fp32"
) -> np.ndarray:
    """float32 embeddings of a single-vector model, one row per text; `kind` is query or document (prefix,
    tower, length cap); computed under `precision` (bf16, fp16 or fp32: stages.precision).

    Cosine models come back L2-normalised, so an inner product is the model's own score for both
    similarities (what faiss and the reranker compute).
    """
    if kind not in ("query", "document"):
        raise ValueError(f"kind must be query or document, got {kind!r}")
    if not texts:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    from stages.models.precision import autocast

    method = model.encode_query if kind == "query" else model.encode_document
    with autocast(precision):
        vectors = method(
            texts,
            batch_size=batch_size,
            convert_to_tensor=True,
            show_progress_bar=bool(desc),
            normalize_embeddings=model.similarity_fn_name == "cosine",
        )
    if hasattr(vectors, "float"):  # a tensor: bf16 has no numpy dtype, so convert through float32
        return vectors.float().cpu().numpy()
    return np.asarray(vectors, dtype=np.float32)


def encode_tokens(
    model, texts: list[str], kind: str, batch_size: int, desc: str | None = None, precision: str = "fp32"
) -> list[np.ndarray]:
    """A multi-vector model's float32 token vectors, one (tokens, width) array per text (scored tokens
    only: padding is left out); `kind` is query or document; computed under `precision`."""
    from stages.models.precision import autocast

    if kind not in ("query", "document"):
        raise ValueError(f"kind must be query or document, got {kind!r}")
    if not texts:
        return []
    method = model.encode_query if kind == "query" else model.encode_document
    with autocast(precision):
        vectors = method(texts, batch_size=batch_size, convert_to_numpy=False, show_progress_bar=bool(desc))
    return [v.float().cpu().numpy() for v in vectors]


def maxsim_scores(query: np.ndarray, passages: list[np.ndarray]) -> np.ndarray:
    """MaxSim of one query's token vectors against each passage's: sum over query tokens of the best
    inner product with a passage token (sentence-transformers' maxsim)."""
    from sentence_transformers.multi_vector_encoder import maxsim

    if not passages:
        return np.zeros(0, dtype=np.float32)
    return maxsim(np.asarray(query, dtype=np.float32), [np.asarray(p, dtype=np.float32) for p in passages])[0].numpy()
