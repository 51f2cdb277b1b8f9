"""The cross-encoder's losses: `pointwise` is binary cross-entropy on each (query, passage) pair; `listwise`
is softmax cross-entropy over a query's group (its positive and n negatives), GroupSoftmaxLoss."""

from __future__ import annotations

import torch
from sentence_transformers.cross_encoder import losses

from stages.config import ConfigError


class GroupSoftmaxLoss(losses.MultipleNegativesRankingLoss):
    """Softmax cross-entropy over a query's own group: its positive against its hard negatives."""

    # sentence-transformers' version always adds other queries' passages (in-batch negatives); not here.
    def get_in_batch_negatives(self, anchors, candidates):
        return iter(())


def make_loss(model, loss: str):
    """The loss named by cross_encoder.loss: pointwise or listwise (scale 1, no activation)."""
    if loss == "pointwise":
        return losses.BinaryCrossEntropyLoss(model)
    if loss == "listwise":
        return GroupSoftmaxLoss(model, num_negatives=None, scale=1.0, activation_fn=torch.nn.Identity())
    raise ConfigError(f"cross_encoder.loss must be 'listwise' or 'pointwise', got {loss!r}")
