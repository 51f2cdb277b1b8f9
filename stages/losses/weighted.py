"""A loss times a weight, as the loss of a task of its own (sentence-transformers has no per-dataset loss
weight: each dataset's loss counts as it is)."""

from __future__ import annotations

import torch


class WeightedLoss(torch.nn.Module):
    """`loss` times `weight`, reported under `name` (the trainer logs each named part of a loss)."""

    def __init__(self, loss, weight: float, name: str):
        super().__init__()
        self.loss, self.model = loss, loss.model  # the trainer swaps in its wrapped model (DDP) through .model
        self.weight, self.name = weight, name

    def forward(self, features, labels):
        return {self.name: self.weight * self.loss(features, labels)}


def weighted_loss(loss, weight: float, name: str) -> WeightedLoss:
    """`loss` times `weight`, reported under `name` (the trainer logs each named part of a loss)."""
    return WeightedLoss(loss, weight, name)
