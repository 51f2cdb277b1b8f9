"""The bi-encoder's losses: cross-lingual distillation (rank, representation, contrastive, on one batch), its
multi-vector (MaxSim) counterpart, and the contrastive loss of fine-tuning and query alignment.

sentence-transformers weighs losses only across datasets, one per batch; the distillation losses here weigh
their parts within one batch, and return them by name (the trainer logs each named part).
"""

from __future__ import annotations

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns

from stages.config import ConfigError, DistillParams
from stages.models.bi_encoder import is_multi_vector

COSINE_SCALE = 20.0  # cosine scores times 20 as logits: sentence-transformers' MNRL default scale


def scaled_pairwise_cos_sim(a, b):
    from sentence_transformers.util import pairwise_cos_sim

    return COSINE_SCALE * pairwise_cos_sim(a, b)


def pairwise_score_fn(similarity: str):
    from sentence_transformers.util import pairwise_dot_score

    return pairwise_dot_score if similarity == "dot" else scaled_pairwise_cos_sim


def contrastive_loss(model, similarity: str):
    """MultipleNegativesRankingLoss (InfoNCE) in the model's similarity; MaxSim's for a multi-vector model."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import cos_sim, dot_score

    if is_multi_vector(model):
        from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

        return MultiVectorMultipleNegativesRankingLoss(model)  # scale 1: MaxSim is a sum, not a bounded cosine
    if similarity == "dot":
        return MultipleNegativesRankingLoss(model, scale=1.0, similarity_fct=dot_score)
    return MultipleNegativesRankingLoss(model, scale=COSINE_SCALE, similarity_fct=cos_sim)


class CrossLingualDistillationLoss(torch.nn.Module):
    """The weighted rank, representation and contrastive losses of a single-vector student on one batch.

    `rank` (DistillKLDivLoss) reads the teacher's scores of the `candidates` candidates, the first columns
    of each label; `representation` (MSELoss, or None) the teacher's embedding of the English query, the
    rest of the label; `contrastive` (MultipleNegativesRankingLoss, or None) needs no label.
    """

    def __init__(
        self,
        model,
        rank,
        representation,
        contrastive,
        candidates: int,
        rank_weight: float,
        representation_weight: float,
        contrastive_weight: float,
    ):
        super().__init__()
        self.model, self.rank, self.representation, self.contrastive = model, rank, representation, contrastive
        self.candidates = candidates
        self.rank_weight = rank_weight
        self.representation_weight = representation_weight
        self.contrastive_weight = contrastive_weight

    def forward(self, features, labels):
        return self.compute_from_embeddings(embed_columns(self.model, features), labels)

    def compute_from_embeddings(self, embeddings, labels):
        # labels: the teacher's candidate scores, then its embedding of the English query (one label column).
        # Detached here: the library's compute_loss_from_embeddings does not detach teacher embeddings.
        labels = labels.detach()
        candidates = self.candidates
        losses = {"rank": self.rank_weight * self.rank.compute_loss_from_embeddings(embeddings, labels[:, :candidates])}
        if self.representation is not None:
            losses["representation"] = self.representation_weight * self.representation.compute_loss_from_embeddings(
                [embeddings[0]], [labels[:, candidates:]]
            )
        if self.contrastive is not None:
            losses["contrastive"] = self.contrastive_weight * self.contrastive.compute_loss_from_embeddings(
                embeddings, None
            )
        return losses


class MultiVectorDistillationLoss(torch.nn.Module):
    """The weighted rank and contrastive losses of a maxsim student, by MaxSim (no representation loss).

    As CrossLingualDistillationLoss; the multi-vector losses embed their own columns (they have no
    compute_loss_from_embeddings), so with the contrastive term on a batch is encoded twice.
    """

    def __init__(self, model, rank, contrastive, candidates: int, rank_weight: float, contrastive_weight: float):
        super().__init__()
        self.model, self.rank, self.contrastive = model, rank, contrastive
        self.candidates = candidates
        self.rank_weight, self.contrastive_weight = rank_weight, contrastive_weight

    def forward(self, features, labels):
        labels = labels.detach()[:, : self.candidates]  # the teacher's candidate scores
        losses = {"rank": self.rank_weight * self.rank(features, labels)}
        if self.contrastive is not None:
            losses["contrastive"] = self.contrastive_weight * self.contrastive(features, None)
        return losses


def make_distillation_loss(model, params: DistillParams, candidates: int, teacher_dim: int | None):
    """One module computing the weighted rank, representation and contrastive losses on one batch."""
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss, MSELoss

    if is_multi_vector(model):
        return multi_vector_distillation_loss(model, params, candidates)
    similarity = model.similarity_fn_name
    rank = DistillKLDivLoss(model, similarity_fct=pairwise_score_fn(similarity), temperature=params.temperature)
    representation = None
    if params.representation_weight > 0:
        width = model.get_embedding_dimension()
        representation = MSELoss(model, projection_dim=teacher_dim if teacher_dim != width else None)
    contrastive = contrastive_loss(model, similarity) if params.contrastive_weight > 0 else None
    return CrossLingualDistillationLoss(
        model,
        rank,
        representation,
        contrastive,
        candidates,
        params.rank_weight,
        params.representation_weight,
        params.contrastive_weight,
    )


def multi_vector_distillation_loss(model, params: DistillParams, candidates: int):
    """The weighted rank and contrastive losses of a maxsim student, by MaxSim (no representation loss)."""
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss

    if params.representation_weight > 0:
        raise ConfigError(
            "a maxsim student has one vector per token, no sentence embedding to match the teacher's "
            "English query embedding: set bi_encoder.distillation.representation_weight to 0 "
            "(token-level distillation, bi_encoder.distillation.token, is the maxsim equivalent)"
        )
    rank = MultiVectorDistillKLDivLoss(model, temperature=params.temperature)
    contrastive = contrastive_loss(model, model.similarity_fn_name) if params.contrastive_weight > 0 else None
    return MultiVectorDistillationLoss(
        model, rank, contrastive, candidates, params.rank_weight, params.contrastive_weight
    )
